"""Re-scans of a DFDC-layout tree of a few hundred files, on both dialects: an unchanged tree
is read as plain rows (no video becomes an ORM object), and a tree with every kind of change
is counted and recorded as a fresh ingest of it would be."""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event, select

from ddm.catalog.models import FeatureCache, Video
from ddm.catalog.records import DatasetRecord
from ddm.catalog.videos import list_videos
from ddm.db import session_scope
from ddm.services.ingest import ingest_dataset
from tests.ingest.conftest import write_clip

PART = "dfdc_train_part_0"
PAIRS = 100


class Tree:
    """A DFDC training part of real/fake pairs; every file is one tiny clip with a trailing
    `free` box holding its own number, so each has a content hash of its own."""

    def __init__(self, root: Path, clip: bytes) -> None:
        self.part = root / PART
        self.part.mkdir(parents=True)
        self.clip = clip
        self.metadata: dict[str, dict[str, str]] = {}
        self.number = 0

    def add_pair(self, pair: int, *, with_real: bool = True) -> None:
        real, fake = f"r{pair:03d}.mp4", f"f{pair:03d}.mp4"
        self.metadata[real] = {"label": "REAL", "split": "train"}
        self.metadata[fake] = {"label": "FAKE", "split": "train", "original": real}
        self.write(fake)
        if with_real:
            self.write(real)

    def write(self, name: str) -> None:
        self.number += 1
        (self.part / name).write_bytes(self.clip + struct.pack(">I4sQ", 16, b"free", self.number))

    def save(self) -> None:
        (self.part / "metadata.json").write_text(json.dumps(self.metadata))

    def later(self, name: str) -> None:
        """Move the file's mtime ten seconds on (what any rewrite does, made certain)."""
        path = self.part / name
        stat = path.stat()
        os.utime(path, (stat.st_atime, stat.st_mtime + 10))


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    clip = write_clip(tmp_path / "clip.mp4", frames=4, size=(32, 32)).read_bytes()
    tree = Tree(tmp_path / "dfdc", clip)
    for pair in range(PAIRS):
        tree.add_pair(pair)
    tree.add_pair(PAIRS, with_real=False)  # a fake whose real is not downloaded yet
    tree.save()
    return tree


@pytest.fixture
def video_loads() -> Iterator[list[int]]:
    """The ids of videos loaded as ORM objects while the test runs."""
    loaded: list[int] = []

    def on_load(video: Video, _context: object) -> None:
        loaded.append(video.id)

    event.listen(Video, "load", on_load)
    yield loaded
    event.remove(Video, "load", on_load)


def test_an_unchanged_rescan_loads_no_video_object(factory, tree: Tree, video_loads) -> None:
    first = ingest_dataset(factory, tree.part.parent, workers=2)
    assert (first.counts.new, first.summary.dataset.videos) == (2 * PAIRS + 1, 2 * PAIRS + 1)
    video_loads.clear()

    again = ingest_dataset(factory, tree.part.parent, workers=2)
    assert (again.counts.new, again.counts.changed, again.counts.missing) == (0, 0, 0)
    assert (again.counts.unchanged, again.probed) == (2 * PAIRS + 1, 0)
    assert video_loads == []
    assert _counts(again.summary.dataset) == _counts(first.summary.dataset)
    assert again.summary.by_label_split == first.summary.by_label_split


def _counts(dataset: DatasetRecord) -> tuple[int, ...]:
    return (dataset.videos, dataset.real, dataset.fake, dataset.missing, dataset.unreadable)


def test_a_rescan_counts_and_records_every_kind_of_change(factory, tree: Tree) -> None:
    ingest_dataset(factory, tree.part.parent, workers=2)
    rewritten = ["f001.mp4", "r002.mp4", "f003.mp4"]  # new content, same size
    with session_scope(factory) as session:
        rewritten_id = session.scalars(select(Video.id).where(Video.path.endswith("f001.mp4")))
        session.add(FeatureCache(video_id=rewritten_id.one(), fingerprint="f" * 64, is_valid=True))
    for name in rewritten:
        tree.write(name)
        tree.later(name)
    touched = ["r010.mp4", "f011.mp4"]  # same content, a later mtime
    for name in touched:
        tree.later(name)
    deleted = ["r020.mp4", "r021.mp4", "f030.mp4", "f031.mp4"]  # two reals keep their fakes
    for name in deleted:
        (tree.part / name).unlink()
    relabelled = ["r040.mp4", "f041.mp4", "r042.mp4"]
    for name in relabelled:
        tree.metadata[name]["split"] = "test"
    for pair in range(PAIRS + 1, PAIRS + 6):
        tree.add_pair(pair)
    tree.write(f"r{PAIRS:03d}.mp4")  # the real of the first fake that lacked one
    tree.save()

    report = ingest_dataset(factory, tree.part.parent, workers=2)

    counts = report.counts
    assert (counts.new, counts.changed, counts.missing) == (11, 6, 4)
    assert counts.unchanged == 2 * PAIRS + 1 - 6 - 4
    assert report.probed == len(rewritten) + len(touched) + 11
    assert counts.content_changed == [f"{PART}/{name}" for name in sorted(rewritten)]
    assert counts.caches_invalidated == 1
    dataset = report.summary.dataset
    assert (dataset.videos, dataset.missing) == (2 * PAIRS + 1 + 11 - 4, 4)
    assert (dataset.real, dataset.fake) == (PAIRS + 6 - 2, PAIRS + 6 - 2)

    fresh = ingest_dataset(factory, tree.part.parent, name="fresh", workers=2)
    assert fresh.summary.dataset.videos == dataset.videos
    with session_scope(factory) as session:
        rescanned = {v.path: v for v in list_videos(session, dataset="dfdc")}
        expected = {v.path: v for v in list_videos(session, dataset="fresh")}
    kept_links = {f"{PART}/f020.mp4", f"{PART}/f021.mp4"}  # to reals gone missing
    for path, video in rescanned.items():
        if not video.present:
            assert path.rsplit("/", 1)[-1] in deleted
            continue
        want = expected[path]
        assert _columns(video, path in kept_links) == _columns(want, path in kept_links), path
        if path in kept_links:
            assert video.original_path == path.replace("/f", "/r")
    assert rescanned[f"{PART}/f{PAIRS:03d}.mp4"].original_path == f"{PART}/r{PAIRS:03d}.mp4"


def _columns(video: object, without_link: bool) -> dict[str, object]:
    facts = {
        name: getattr(video, name)
        for name in (
            "label",
            "split",
            "split_source",
            "identity_group",
            "raw_label",
            "part",
            "metadata_error",
            "content_hash",
            "size_bytes",
            "frame_count",
            "probe_status",
            "original_path",
        )
    }
    if without_link:
        del facts["original_path"]
    return facts
