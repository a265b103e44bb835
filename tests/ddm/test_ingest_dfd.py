"""DeepFakeDetection is a dataset of its own: one ingest of a FaceForensics tree records `ff`
and `dfd`, and a catalog whose `ff` still holds DFD rows has them moved, caches and all."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

from sqlalchemy import select

from ddm.catalog.datasets import get_dataset
from ddm.catalog.models import FeatureCache, Video
from ddm.catalog.videos import list_videos, record_ingest
from ddm.db import session_scope
from ddm.ingest.probe import probe_many
from ddm.ingest.registry import scan
from ddm.services.ingest import IngestReport, ingest_dataset
from tests.conftest import MEDIA
from tests.ddm.conftest import FF_REAL
from tests.ingest.trees import DFD_VIDEOS, add_deepfakedetection, is_dfd

MEDIA_CLIP = MEDIA / "ff++" / FF_REAL / "004.mp4"
FF_TEST = {
    f"{FF_REAL}/634.mp4",
    "manipulated_sequences/FaceSwap/c23/videos/634_660.mp4",
}


def _paths(factory, dataset: str, **filters: str) -> set[str]:
    with session_scope(factory) as session:
        return {v.path for v in list_videos(session, dataset=dataset, **filters)}


def test_one_ingest_records_ff_with_official_test_pairs_and_dfd_apart(factory, ff_copy) -> None:
    add_deepfakedetection(ff_copy, ff_copy / FF_REAL / "004.mp4")

    report = ingest_dataset(factory, ff_copy, workers=2)

    assert (report.name, report.format, report.counts.new) == ("ff", "ffpp", 7)
    [dfd] = report.companions
    assert (dfd.name, dfd.format, dfd.counts.new) == ("dfd", "dfd", len(DFD_VIDEOS))
    assert (dfd.summary.dataset.real, dfd.summary.dataset.fake) == (2, 3)
    assert (report.probed, dfd.probed) == (7, len(DFD_VIDEOS))
    assert _paths(factory, "ff", split="test") == FF_TEST
    assert _paths(factory, "dfd", split="test") == set(DFD_VIDEOS)
    with session_scope(factory) as session:
        assert get_dataset(session, "ff").videos == 7
        assert get_dataset(session, "dfd").videos == len(DFD_VIDEOS)
        fake = {v.path: v for v in list_videos(session, dataset="dfd")}[DFD_VIDEOS[2]]
    assert fake.original_path == DFD_VIDEOS[0]

    again = ingest_dataset(factory, ff_copy, workers=2)
    assert (again.counts.unchanged, again.companions[0].counts.unchanged) == (7, 5)
    assert again.probed == again.companions[0].probed == 0


def test_a_named_ingest_names_its_dfd_part_after_it(factory, ff_copy) -> None:
    add_deepfakedetection(ff_copy, ff_copy / FF_REAL / "004.mp4")

    report = ingest_dataset(factory, ff_copy, name="ffc23", workers=2)

    assert [report.name, *(c.name for c in report.companions)] == ["ffc23", "ffc23-dfd"]
    assert _paths(factory, "ffc23-dfd") == set(DFD_VIDEOS)


def _record_as_older_versions_did(factory, root: Path) -> None:
    """The catalog an older ddm left: DFD's videos inside `ff`'s test split."""
    layout = scan(root)
    entries = layout.entries + layout.companions[0].entries
    legacy = dataclasses.replace(layout, entries=entries, companions=())
    facts = probe_many([root / e.path for e in entries], workers=2)
    with session_scope(factory) as session:
        record_ingest(
            session,
            "ff",
            legacy,
            {e.path: facts[root / e.path] for e in entries},
            seen_version=None,
        )


def test_reingest_moves_dfd_rows_out_of_ff_with_their_caches(factory, ff_copy) -> None:
    add_deepfakedetection(ff_copy, ff_copy / FF_REAL / "004.mp4")
    _record_as_older_versions_did(factory, ff_copy)
    assert _paths(factory, "ff", split="test") == FF_TEST | set(DFD_VIDEOS)
    with session_scope(factory) as session:
        before = {v.path: v.id for v in session.scalars(select(Video))}
        cached = before[DFD_VIDEOS[2]]
        session.add(FeatureCache(video_id=cached, fingerprint="f" * 64, is_valid=True))

    report = ingest_dataset(factory, ff_copy, workers=2)

    [dfd] = report.companions
    assert dfd.counts.moved_in == {"ff": len(DFD_VIDEOS)}
    assert report.counts.moved_out == {"dfd": len(DFD_VIDEOS)}
    assert (dfd.counts.new, dfd.counts.unchanged, report.counts.missing) == (0, 5, 0)
    assert report.probed == dfd.probed == 0  # the moved files are unchanged: nothing is re-read
    assert _paths(factory, "ff", split="test") == FF_TEST
    assert not {p for p in _paths(factory, "ff") if is_dfd(p)}
    with session_scope(factory) as session:
        after = {v.path: v.id for v in session.scalars(select(Video))}
        cache = session.scalars(select(FeatureCache)).one()
        assert (get_dataset(session, "ff").videos, get_dataset(session, "dfd").videos) == (7, 5)
        assert get_dataset(session, "dfd").real == 2
        moved = {v.path: v for v in list_videos(session, dataset="dfd", fingerprint="f" * 64)}
    assert after == before  # the same rows, re-parented: ids, caches and history kept
    assert (cache.video_id, cache.is_valid) == (before[DFD_VIDEOS[2]], True)
    assert moved[DFD_VIDEOS[2]].cache_valid is True
    assert moved[DFD_VIDEOS[2]].original_path == DFD_VIDEOS[0]


def test_a_tree_of_dfd_alone_takes_its_rows_from_the_ff_dataset_of_that_tree(
    factory, tmp_path
) -> None:
    root = tmp_path / "FaceForensics"
    add_deepfakedetection(root, MEDIA_CLIP)
    legacy = scan(root)
    facts = probe_many([root / e.path for e in legacy.entries], workers=2)
    with session_scope(factory) as session:
        record_ingest(
            session,
            "ff",
            dataclasses.replace(legacy, format="ffpp"),
            {e.path: facts[root / e.path] for e in legacy.entries},
            seen_version=None,
        )

    report = ingest_dataset(factory, root, workers=2)

    assert (report.name, report.counts.moved_in, report.probed) == ("dfd", {"ff": 5}, 0)
    with session_scope(factory) as session:
        ff = get_dataset(session, "ff")
    assert (ff.videos, ff.missing) == (0, 0)
    assert _paths(factory, "ff") == set()


def test_an_ingest_that_another_beat_to_the_move_scans_again_and_moves_nothing_twice(
    factory, ff_copy
) -> None:
    add_deepfakedetection(ff_copy, ff_copy / FF_REAL / "004.mp4")
    _record_as_older_versions_did(factory, ff_copy)
    with session_scope(factory) as session:
        before = {v.path: v.id for v in session.scalars(select(Video))}
    probing, resume = threading.Event(), threading.Event()
    rounds: list[int] = []

    def pause_once(total: int) -> None:
        if not rounds:
            probing.set()
            assert resume.wait(60)
        rounds.append(total)

    outcome: dict[str, object] = {}
    older = threading.Thread(
        target=lambda: outcome.update(
            report=ingest_dataset(factory, ff_copy, workers=1, on_start=pause_once)
        )
    )
    older.start()
    assert probing.wait(60)  # it has read `ff` with DFD's rows and planned to adopt them
    newer = ingest_dataset(factory, ff_copy, workers=1)
    resume.set()
    older.join(60)

    report = outcome["report"]
    assert isinstance(report, IngestReport)
    assert newer.companions[0].counts.moved_in == {"ff": len(DFD_VIDEOS)}
    assert (report.attempts, report.companions[0].counts.moved_in) == (2, {})
    assert report.companions[0].counts.unchanged == len(DFD_VIDEOS)
    with session_scope(factory) as session:
        after = {v.path: v.id for v in session.scalars(select(Video))}
        counts = {n: get_dataset(session, n).videos for n in ("ff", "dfd")}
    assert after == before and counts == {"ff": 7, "dfd": len(DFD_VIDEOS)}
