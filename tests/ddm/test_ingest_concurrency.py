"""Two ingests of one dataset at once, in real threads on real catalogs (both dialects).

Each ingest probes with no transaction open, so two can overlap for hours; the tests pause
one at its `on_start` hook (after it has read the catalog, before it probes) to make the
interleaving exact instead of hoping for it.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import event, select

from ddm.catalog.models import Dataset
from ddm.catalog.videos import list_videos
from ddm.db import session_scope
from ddm.services.ingest import IngestReport, ingest_dataset
from tests.ddm.conftest import FF_REAL

WAIT_S = 60


def _in_thread(run: Callable[[], IngestReport]) -> tuple[threading.Thread, dict[str, object]]:
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["report"] = run()
        except BaseException as exc:  # noqa: BLE001  (re-raised in the test's thread)
            outcome["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    return thread, outcome


def _finish(thread: threading.Thread, outcome: dict[str, object]) -> IngestReport:
    thread.join(WAIT_S)
    assert not thread.is_alive(), "the paused ingest never finished"
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    report = outcome["report"]
    assert isinstance(report, IngestReport)
    return report


def test_an_older_ingest_recording_last_does_not_lose_a_newer_file(factory, ff_copy) -> None:
    ingest_dataset(factory, ff_copy, workers=1)
    probing, resume = threading.Event(), threading.Event()

    def pause(_total: int) -> None:
        probing.set()
        assert resume.wait(WAIT_S)

    older = _in_thread(
        lambda: ingest_dataset(factory, ff_copy, workers=1, rehash=True, on_start=pause)
    )
    assert probing.wait(WAIT_S)
    # While the older run probes, a new file arrives and a newer ingest records it.
    shutil.copyfile(ff_copy / FF_REAL / "004.mp4", ff_copy / FF_REAL / "999.mp4")
    newer = ingest_dataset(factory, ff_copy, workers=1)
    assert newer.counts.new == 1
    resume.set()

    report = _finish(*older)

    with session_scope(factory) as session:
        videos = {video.path: video for video in list_videos(session, dataset="ff")}
    assert videos[f"{FF_REAL}/999.mp4"].present is True
    assert report.summary.dataset.videos == 8
    assert (report.counts.new, report.counts.missing) == (0, 0)
    assert report.attempts == 2  # it saw the catalog move on and reconciled again


@pytest.mark.parametrize("is_new", [True, False], ids=["new dataset", "known dataset"])
def test_two_ingests_at_once_both_succeed_one_after_the_other(
    factory, ff_copy, is_new: bool
) -> None:
    # A new dataset: both insert its row, the unique name decides. A known one: both
    # bump its version, PostgreSQL's row lock or SQLite's write lock decides.
    if not is_new:
        ingest_dataset(factory, ff_copy, workers=1)
    both_scanned = threading.Barrier(2, timeout=WAIT_S)
    first_flush = threading.Lock()

    @event.listens_for(factory, "after_flush")
    def hold_the_first_writer(*_: object) -> None:
        # The first run to write holds its transaction open, so the second reaches its own
        # write while the first has not committed: the overlap two processes have.
        if first_flush.acquire(blocking=False):
            time.sleep(2)

    def run() -> IngestReport:
        rounds: list[int] = []

        def meet_once(total: int) -> None:  # a second round meets nobody
            if not rounds:
                both_scanned.wait()
            rounds.append(total)

        return ingest_dataset(factory, ff_copy, workers=1, on_start=meet_once)

    with ThreadPoolExecutor(2) as pool:
        reports = [future.result(WAIT_S) for future in [pool.submit(run), pool.submit(run)]]

    with session_scope(factory) as session:
        [dataset] = session.scalars(select(Dataset)).all()
        videos = list_videos(session, dataset="ff")
    assert len(videos) == 7 and all(video.present for video in videos)
    assert (dataset.name, dataset.video_count) == ("ff", 7)
    assert dataset.ingest_version == (2 if is_new else 3)
    assert sorted(report.counts.new for report in reports) == ([0, 7] if is_new else [0, 0])
    assert sorted(report.attempts for report in reports) == [1, 2]
