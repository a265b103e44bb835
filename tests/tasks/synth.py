"""A synthetic dataset of cached features for the train and evaluate job tests: videos in
the catalog with feature files whose style flow carries the label, and a tiny detector."""

from __future__ import annotations

import torch

from ddm.catalog.models import Dataset, FeatureCache, Run, Video
from ddm.db import session_scope
from ddm.fs import cache_path, sha256_of
from model.features import save_features
from model.train import TrainCfg

FINGERPRINT = "random-" + "c" * 40
TINY_DETECTOR = {
    "gru_hidden": 16,
    "gru_layers": 1,
    "dim": 32,
    "num_heads": 4,
    "mlp_dim": 64,
    "head_hidden": 16,
}
QUICK = TrainCfg(epochs=4, lr=3e-3, mixup_alpha=0.2, patience=100, seed=0)
SPLITS = {"train": 12, "val": 6, "test": 4}


def add_video(
    session,
    settings,
    dataset,
    name: str,
    split: str,
    label: str,
    seed: int,
    fingerprint: str = FINGERPRINT,
):
    generator = torch.Generator().manual_seed(seed)
    video = Video(
        dataset_id=dataset.id,
        path=f"{split}/{name}.mp4",
        content_hash=f"{seed:064x}",
        split=split,
        label=label,
        probe_status="ok",
        is_present=True,
    )
    session.add(video)
    session.flush()
    # Fakes jitter from frame to frame, reals drift: the style flow carries the label.
    steps = torch.randn(8, 1, 512, generator=generator)
    style = torch.randn(1, 1, 512, generator=generator) + (
        steps if label == "fake" else 0.05 * steps
    )
    features = {"content": torch.randn(1, 2048, generator=generator), "style": style}
    add_valid_cache(session, settings, video, features, fingerprint)


def add_valid_cache(session, settings, video, features: dict, fingerprint: str = FINGERPRINT):
    """Write `features` as `video`'s cache file and record it as a valid cache row."""
    target = cache_path(settings.cache_dir, fingerprint, video.content_hash)
    save_features(target, features)
    session.add(
        FeatureCache(
            video_id=video.id,
            fingerprint=fingerprint,
            path=target.relative_to(settings.cache_dir).as_posix(),
            is_valid=True,
            checksum=sha256_of(target),
            bytes=target.stat().st_size,
            video_hash=video.content_hash,
        )
    )


def make_synth(
    settings, factory, name: str = "synth", first_seed: int = 0, fingerprint: str = FINGERPRINT
) -> str:
    with session_scope(factory) as session:
        dataset = Dataset(name=name, format="folder", root_path=f"/data/{name}")
        session.add(dataset)
        session.flush()
        seed = first_seed
        for split, count in SPLITS.items():
            for index in range(count):
                label = "fake" if index % 3 else "real"  # twice as many fakes
                seed += 1
                add_video(session, settings, dataset, f"v{index}", split, label, seed, fingerprint)
    return name


def with_tiny_detector(factory, run_id: int) -> None:

    with session_scope(factory) as session:
        run = session.get(Run, run_id)
        run.config = {**run.config, "detector": TINY_DETECTOR}
