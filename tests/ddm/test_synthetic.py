"""The demo's generated clips: real layouts, and reals and fakes that differ in nothing but
the artefact (no metadata, no mean colour), as the catalog's own bias statistics say."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from ddm.catalog.stats import video_facts
from ddm.db import session_scope
from ddm.services.ingest import ingest_dataset
from ddm.synthetic.clips import ClipCfg
from ddm.synthetic.trees import build_dfdc_tree, build_ffpp_tree
from ddm.vocab import Split
from model.bias import attribute_separation
from tasks.bias import MIN_PER_CLASS, SHORTCUT_SEPARATION, catalog_bias

CLIP = ClipCfg(frames=12, size=128, strength=0.3)  # short and small, as strong as the demo


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("synthetic")
    pairs = {Split.TRAIN: 4, Split.VAL: 1, Split.TEST: 1}
    build_ffpp_tree(root / "ff", pairs, CLIP, seed=1)
    build_dfdc_tree(root / "dfdc", 6, CLIP, seed=1)
    return {"ffpp": root / "ff", "dfdc": root / "dfdc"}


def _mean_colour(path: str) -> float:
    capture = cv2.VideoCapture(path)
    total, frames = 0.0, 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        total, frames = total + float(frame.mean()), frames + 1
    capture.release()
    return total / frames


def test_the_trees_ingest_with_their_official_splits_and_labels(trees, engine) -> None:
    from ddm.db import make_session_factory

    factory = make_session_factory(engine)
    ff = ingest_dataset(factory, trees["ffpp"], format="ffpp", name="synff", workers=2)
    dfdc = ingest_dataset(factory, trees["dfdc"], format="dfdc", name="syndfdc", workers=2)
    assert (ff.counts.new, dfdc.counts.new) == (24, 12)
    with session_scope(factory) as session:
        facts = video_facts(session)
    ff_facts = [f for f in facts if f.dataset == "synff"]
    assert {f.split for f in ff_facts} == {"train", "val", "test"}
    assert sum(f.label == "fake" for f in ff_facts) == 12
    assert {f.method for f in ff_facts if f.label == "fake"} == {"Recolor", "Seam"}
    # Every clip has the same frame count, size, fps and duration: nothing to learn there.
    assert len({(f.frame_count, f.width, f.height, f.fps, f.duration_s) for f in facts}) == 1

    document = catalog_bias(facts)
    assert document["sentences"] == [], document["sentences"]
    # Fakes compress worse; every clip of a tree is padded to one size, so size says nothing.
    for entry in document["datasets"].values():
        assert entry["separation"]["file size"]["separation"] == 0.5
        assert entry["separation"]["bitrate"]["separation"] == 0.5
    for name, entry in document["datasets"].items():
        for attribute, result in entry["separation"].items():
            if result is not None and min(result["n_real"], result["n_fake"]) >= MIN_PER_CLASS:
                assert result["separation"] < SHORTCUT_SEPARATION, (name, attribute, result)


def test_reals_and_fakes_have_the_same_mean_colour(trees) -> None:
    clips = sorted(trees["ffpp"].rglob("*.mp4")) + sorted(trees["dfdc"].rglob("*.mp4"))
    labels = [int("manipulated" in str(p) or _is_dfdc_fake(p)) for p in clips]
    means = [_mean_colour(str(p)) for p in clips]
    result = attribute_separation(labels, means)
    assert result["n_fake"] == 18 and result["separation"] < SHORTCUT_SEPARATION, result


def _is_dfdc_fake(path: Path) -> bool:
    import json

    metadata = path.parent / "metadata.json"
    return metadata.is_file() and json.loads(metadata.read_text())[path.name]["label"] == "FAKE"


def test_a_fake_differs_from_its_real_only_inside_the_face(trees, tmp_path) -> None:
    from ddm.synthetic.clips import ARTEFACTS, render_clip

    real = render_clip(tmp_path / "real.mp4", 7, CLIP)
    fake = render_clip(tmp_path / "fake.mp4", 7, CLIP, ARTEFACTS["Recolor"])
    a, b = (cv2.VideoCapture(str(p)).read()[1].astype(np.float32) for p in (real, fake))
    difference = np.abs(a - b).mean(axis=2)
    centre = difference[32:96, 32:96].mean()
    border = np.concatenate([difference[:8].ravel(), difference[-8:].ravel()]).mean()
    assert centre > 3 * border
