"""A label or split file that cannot be read on re-ingest keeps the labels it gave before
(both dialects, every format whose labels come from the dataset's own files)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from ddm.catalog.videos import list_videos
from ddm.db import session_scope
from ddm.services.ingest import ingest_dataset
from tests.conftest import MEDIA

CLIP = MEDIA / "ff++/original_sequences/youtube/c23/videos/004.mp4"
LABEL_COLUMNS = ("label", "split", "split_source", "raw_label", "method", "identity_group")


@dataclass(frozen=True)
class Tree:
    """A dataset tree and the one file that labels (or splits) its videos."""

    root: Path
    label_file: str


def _clip(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(CLIP, path)


def _dfdc_part(root: Path) -> Tree:
    shutil.copytree(MEDIA / "dfdc/dfdc_train_part_0", root / "dfdc_train_part_0")
    return Tree(root, "dfdc_train_part_0/metadata.json")


def _dfdc_test_labels(root: Path) -> Tree:
    _clip(root / "test/a.mp4")
    _clip(root / "test/b.mp4")
    (root / "test/labels.csv").write_text("filename,label\na.mp4,1\nb.mp4,0\n")
    return Tree(root, "test/labels.csv")


def _dfdc_preview(root: Path) -> Tree:
    fake, real = "method_A/1/1_A/1_A_001.mp4", "original_videos/1/1_A/001.mp4"
    _clip(root / fake)
    _clip(root / real)
    index = {fake: {"label": "fake", "set": "train"}, real: {"label": "real", "set": "test"}}
    (root / "dataset.json").write_text(json.dumps(index))
    return Tree(root, "dataset.json")


def _celebdf_list(root: Path) -> Tree:
    _clip(root / "Celeb-real/id0_0000.mp4")
    _clip(root / "Celeb-synthesis/id0_id1_0000.mp4")
    listed = "1 Celeb-real/id0_0000.mp4\n0 Celeb-synthesis/id0_id1_0000.mp4\n"
    (root / "List_of_testing_videos.txt").write_text(listed)
    return Tree(root, "List_of_testing_videos.txt")


TREES: dict[str, Callable[[Path], Tree]] = {
    "dfdc part metadata.json": _dfdc_part,
    "dfdc test labels.csv": _dfdc_test_labels,
    "dfdc preview dataset.json": _dfdc_preview,
    "celebdf test list": _celebdf_list,
}
GARBAGE = {
    "garbage bytes": b"\x00\xff garbage {{",
    "200,000 levels deep": b"[" * 200_000 + b"]" * 200_000,
}


def _labels(factory) -> dict[str, dict[str, object]]:
    with session_scope(factory) as session:
        return {
            video.path: {name: getattr(video, name) for name in LABEL_COLUMNS + ("metadata_error",)}
            for video in list_videos(session)
        }


@pytest.mark.parametrize("garbage", GARBAGE.values(), ids=GARBAGE.keys())
@pytest.mark.parametrize("make_tree", TREES.values(), ids=TREES.keys())
def test_an_unreadable_label_file_keeps_the_labels_it_gave(
    factory, tmp_path: Path, make_tree: Callable[[Path], Tree], garbage: bytes
) -> None:
    tree = make_tree(tmp_path / "dataset")
    ingest_dataset(factory, tree.root, workers=1)
    before = _labels(factory)
    assert all(row["label"] and row["split"] for row in before.values()), before

    (tree.root / tree.label_file).write_bytes(garbage)
    report = ingest_dataset(factory, tree.root, workers=1)

    after = _labels(factory)
    assert set(after) == set(before)
    for path, row in after.items():
        assert {name: row[name] for name in LABEL_COLUMNS} == {
            name: before[path][name] for name in LABEL_COLUMNS
        }
        assert tree.label_file in str(row["metadata_error"])
    assert any(tree.label_file in problem for problem in report.summary.problems)
    # Labels kept, not re-derived: the dataset's counts still see them.
    assert report.summary.dataset.real + report.summary.dataset.fake == len(after)
