"""Per-video facts for the catalog's bias statistics: what a detector could learn instead of
the manipulation (catalog layer). No run is needed; the statistics themselves are computed
by the jobs layer (tasks/bias.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ddm.catalog.datasets import get_dataset
from ddm.catalog.models import Dataset, FeatureCache, Video
from ddm.vocab import ProbeStatus


@dataclass(frozen=True)
class VideoFacts:
    """One labelled, readable video as the bias statistics see it.

    `fallback_frames` and `frames_sampled` come from the video's valid feature cache of
    `cache_fingerprint`, the one extractor its dataset's statistics read (all None
    without such a cache).
    """

    video_id: int
    dataset: str
    label: str
    split: str | None
    method: str | None
    compression: str | None
    frame_count: int | None
    width: int | None
    height: int | None
    fps: float | None
    duration_s: float | None
    size_bytes: int | None
    fallback_frames: int | None
    frames_sampled: int | None
    cache_fingerprint: str | None = None


def video_facts(
    session: Session, datasets: Sequence[str] | None = None, *, fingerprint: str | None = None
) -> list[VideoFacts]:
    """Facts of every present, readable, labelled video of `datasets` (default: all).

    Cache facts come from one extractor per dataset, never the newest cache of any: two
    extractors (T = 32 and T = 64, say) sample different frames, and a statistic mixing
    them would measure the mix. That extractor is `fingerprint` when given, else the one
    with valid caches of the most videos of the dataset (the newest on a tie).

    Raises:
        NotFound: an unknown dataset name.
    """
    query = (
        select(Video, Dataset.name)
        .join(Dataset, Dataset.id == Video.dataset_id)
        .where(
            Video.is_present.is_(True),
            Video.probe_status == ProbeStatus.OK.value,
            Video.label.is_not(None),
        )
        .order_by(Dataset.name, Video.id)
    )
    if datasets:
        query = query.where(Video.dataset_id.in_([get_dataset(session, n).id for n in datasets]))
    chosen = _fingerprint_per_dataset(session, fingerprint)
    caches = _valid_caches(session, chosen)
    facts = []
    for video, name in session.execute(query):
        fallback, sampled = caches.get(video.id, (None, None))
        cache_fingerprint = chosen.get(video.dataset_id)
        facts.append(
            VideoFacts(
                video_id=video.id,
                dataset=name,
                label=video.label,
                split=video.split,
                method=video.method,
                compression=video.compression,
                frame_count=video.frame_count,
                width=video.width,
                height=video.height,
                fps=video.fps,
                duration_s=video.duration_s,
                size_bytes=video.size_bytes,
                fallback_frames=fallback,
                frames_sampled=sampled,
                cache_fingerprint=cache_fingerprint,
            )
        )
    return facts


def _fingerprint_per_dataset(session: Session, fingerprint: str | None) -> dict[int, str]:
    """Dataset id -> the extractor whose caches its statistics read."""
    query = (
        select(
            Video.dataset_id,
            FeatureCache.fingerprint,
            func.count(FeatureCache.id).label("videos"),
            func.max(FeatureCache.updated_at).label("newest"),
        )
        .join(Video, Video.id == FeatureCache.video_id)
        .where(FeatureCache.is_valid.is_(True))
        .group_by(Video.dataset_id, FeatureCache.fingerprint)
    )
    if fingerprint is not None:
        query = query.where(FeatureCache.fingerprint == fingerprint)
    best: dict[int, tuple[int, object, str]] = {}
    for row in session.execute(query):
        candidate = (row.videos, row.newest, row.fingerprint)
        if row.dataset_id not in best or candidate > best[row.dataset_id]:
            best[row.dataset_id] = candidate
    return {dataset_id: choice[2] for dataset_id, choice in best.items()}


def _valid_caches(
    session: Session, chosen: dict[int, str]
) -> dict[int, tuple[int | None, int | None]]:
    caches: dict[int, tuple[int | None, int | None]] = {}
    for dataset_id, fingerprint in chosen.items():
        query = (
            select(FeatureCache.video_id, FeatureCache.fallback_frames, FeatureCache.frames_sampled)
            .join(Video, Video.id == FeatureCache.video_id)
            .where(
                Video.dataset_id == dataset_id,
                FeatureCache.fingerprint == fingerprint,
                FeatureCache.is_valid.is_(True),
            )
        )
        caches.update(
            (row.video_id, (row.fallback_frames, row.frames_sampled))
            for row in session.execute(query)
        )
    return caches


def fallback_frame_rate(session: Session, datasets: Sequence[str]) -> float | None:
    """The share of sampled frames that fell back to a centre crop, over the valid caches
    of `datasets` (None without any)."""
    ids = [get_dataset(session, name).id for name in datasets]
    fallback, sampled = session.execute(
        select(func.sum(FeatureCache.fallback_frames), func.sum(FeatureCache.frames_sampled))
        .join(Video, Video.id == FeatureCache.video_id)
        .where(Video.dataset_id.in_(ids), FeatureCache.is_valid.is_(True))
    ).one()
    return None if not sampled else float(fallback or 0) / float(sampled)
