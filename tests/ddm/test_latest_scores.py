"""Each video's latest score as the catalog keeps it on the video: after every evaluation
`record_evaluation` stores, it equals what the predictions say (the prediction by the
highest evaluation id that scored the video), whatever order evaluations commit in; the
video table's order and score filter read it. On both dialects, except where noted."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, insert, select, text
from sqlalchemy.orm import Session

from ddm.catalog.evaluations import (
    EvalCandidate,
    EvaluationRecord,
    EvaluationSelection,
    record_evaluation,
)
from ddm.catalog.latest_scores import (
    keep_latest_scores,
    refresh_latest_scores,
    take_latest_scores_lock,
)
from ddm.catalog.models import Dataset, Prediction, Run, Video
from ddm.catalog.videos import iter_videos
from ddm.db import create_db_engine, make_session_factory, session_scope

VIDEOS = 9


def _catalog(session: Session) -> tuple[int, int, list[int]]:
    """A dataset of VIDEOS videos and one run: (dataset id, run id, video ids)."""
    dataset = Dataset(name="d", format="folder", root_path="/data/d")
    session.add(dataset)
    session.flush()
    run = Run(name="r", datasets=["d"], fingerprint="f" * 40)
    videos = [
        Video(dataset_id=dataset.id, path=f"v{n}.mp4", label="fake" if n % 2 else "real")
        for n in range(VIDEOS)
    ]
    session.add_all([run, *videos])
    session.flush()
    return dataset.id, run.id, [video.id for video in videos]


def _record(
    session: Session, ids: tuple[int, int, list[int]], scores: dict[int, float]
) -> EvaluationRecord:
    """`record_evaluation` of the run on the videos of `scores` (video id -> score)."""
    dataset_id, run_id, _ = ids
    candidates = [
        EvalCandidate(video, f"v{video}.mp4", "fake", f"c/{video}", "0" * 64, None)
        for video in scores
    ]
    selection = EvaluationSelection(
        run_id, "d", dataset_id, None, "f" * 40, candidates, {}, None, None
    )
    logits = [score - 0.5 for score in scores.values()]
    return record_evaluation(
        session, selection, logits, list(scores.values()), threshold=0.5, metrics={}
    )


def _stored(session: Session) -> dict[int, tuple[float | None, int | None]]:
    query = select(Video.id, Video.latest_score, Video.latest_evaluation_id)
    return {video: (score, evaluation) for video, score, evaluation in session.execute(query)}


def _computed(session: Session) -> dict[int, tuple[float | None, int | None]]:
    """Every video's latest score computed afresh from all its predictions, in Python."""
    latest: dict[int, tuple[float | None, int | None]] = {
        video: (None, None) for video in session.scalars(select(Video.id))
    }
    rows = session.execute(select(Prediction.video_id, Prediction.evaluation_id, Prediction.score))
    for video, evaluation, score in rows:
        if latest[video][1] is None or evaluation > latest[video][1]:
            latest[video] = (score, evaluation)
    return latest


def test_the_stored_latest_score_follows_every_evaluation(session: Session) -> None:
    ids = _catalog(session)
    videos = ids[2]
    # Evaluations of overlapping subsets: some videos are scored by an older one only, the
    # last video by none; two videos tie on the newest score.
    subsets = [videos[:6], videos[2:5], videos[4:8:2], [videos[0], videos[7]]]
    for number, subset in enumerate(subsets):
        scores = {video: round(0.1 * ((video * 7 + number) % 10), 1) for video in subset}
        if number == 2:
            scores = dict.fromkeys(subset, 0.25)
        record = _record(session, ids, scores)
        session.flush()
        assert _stored(session) == _computed(session), f"after evaluation {record.id}"
    assert _stored(session)[videos[-1]] == (None, None)
    assert len({evaluation for _, evaluation in _stored(session).values()}) == len(subsets) + 1


def test_an_older_evaluation_kept_after_a_newer_one_changes_nothing(session: Session) -> None:
    # What happens when two workers' evaluations commit in the reverse order of their ids
    # (for real on PostgreSQL below): the older one's update comes last.
    ids = _catalog(session)
    videos = ids[2]
    older = _record(session, ids, {video: 0.2 for video in videos[:5]})
    newer = _record(session, ids, {video: 0.9 for video in videos[3:]})
    before = _stored(session)
    assert keep_latest_scores(session, older.id) == 0
    assert _stored(session) == before == _computed(session)
    assert {before[video][1] for video in videos[3:]} == {newer.id}
    assert {before[video][1] for video in videos[:3]} == {older.id}


def test_a_refresh_gives_what_the_predictions_say(session: Session) -> None:
    # Rows written straight to the tables (as the benchmarks fill their catalogs), then
    # refreshed: for a few videos, then for all.
    ids = _catalog(session)
    videos = ids[2]
    _record(session, ids, {video: 0.5 for video in videos})
    newer = _record(session, ids, {videos[0]: 0.7})
    rows = [
        {"evaluation_id": newer.id, "video_id": video, "score": 0.125, "predicted_label": "real"}
        for video in videos[1:4]
    ]
    session.execute(insert(Prediction), rows)
    assert _stored(session) != _computed(session)
    refresh_latest_scores(session, videos[1:3])
    assert _stored(session)[videos[2]] == (0.125, newer.id)
    assert _stored(session)[videos[3]] != (0.125, newer.id)
    refresh_latest_scores(session)
    assert _stored(session) == _computed(session)


def test_pages_by_latest_score_are_slices_of_the_whole_listing(session: Session) -> None:
    ids = _catalog(session)
    videos = ids[2]
    # Ties (0.5 three times), an unscored video in the middle of the ids, and a newer
    # evaluation that lowers two scores.
    scores = [0.5, 0.9, 0.5, 0.1, 0.5, 0.3, 0.7]
    _record(session, ids, dict(zip(videos[:7], scores, strict=True)))
    _record(session, ids, {videos[1]: 0.05, videos[6]: 0.5})
    stored = _computed(session)
    for descending in (False, True):
        listing = list(
            iter_videos(session, sort="latest_score", descending=descending, with_scores=True)
        )
        scored = sorted(
            (video for video in videos if stored[video][0] is not None),
            key=lambda video: (-stored[video][0] if descending else stored[video][0], video),
        )
        unscored = [video for video in videos if stored[video][0] is None]
        assert [record.id for record in listing] == scored + unscored
        for filters in ({}, {"label": "fake"}, {"score_range": (0.1, 0.5)}, {"dataset": "d"}):
            options = {"sort": "latest_score", "descending": descending, **filters}
            whole = list(iter_videos(session, with_scores=True, **options))
            for offset in (0, 2, 5, 6, 8, 12):
                for limit in (1, 3, 50):
                    page = iter_videos(
                        session, with_scores=True, limit=limit, offset=offset, **options
                    )
                    assert list(page) == whole[offset : offset + limit], (options, offset, limit)
    shown = {record.id: (record.latest_score, record.latest_evaluation_id) for record in listing}
    assert shown == stored
    plain = iter_videos(session, sort="latest_score", limit=3)
    assert {(r.latest_score, r.latest_evaluation_id) for r in plain} == {(None, None)}
    within = iter_videos(session, sort="id", score_range=(0.1, 0.5))
    assert [r.id for r in within] == [v for v in videos if 0.1 <= (stored[v][0] or -1) <= 0.5]


# --------------------------------------------------------------------------- PostgreSQL


@pytest.fixture
def pg_engine(pg_server, pg_template) -> Iterator[Engine]:
    """A migrated PostgreSQL catalog whose transactions commit (two sessions at once)."""
    engine = create_db_engine(pg_server.create_database(template=pg_template))
    yield engine
    engine.dispose()


def _wait_for_a_lock_wait(engine: Engine, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            if connection.scalar(query):
                return
        time.sleep(0.05)
    raise AssertionError("the older evaluation never waited for the latest scores' lock")


@pytest.mark.postgres
def test_a_lower_evaluation_id_committed_last_does_not_win(pg_engine: Engine) -> None:
    # Two workers record evaluations of the same videos at once: the older one (lower id)
    # comes to write the latest scores while the newer one is writing them, and commits
    # after it.
    factory = make_session_factory(pg_engine)
    with session_scope(factory) as session:
        ids = _catalog(session)
    videos = ids[2]
    newer_session = factory()
    take_latest_scores_lock(newer_session)  # as if its evaluation were writing them now
    outcome: dict[str, object] = {}

    def record_older() -> None:
        try:
            with session_scope(factory) as session:
                outcome["older"] = _record(session, ids, {video: 0.2 for video in videos})
        except Exception as exc:  # reported below, in the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=record_older)
    thread.start()
    try:
        _wait_for_a_lock_wait(pg_engine)
        newer = _record(newer_session, ids, {video: 0.8 for video in videos[2:]})
        assert thread.is_alive()  # the older evaluation has not committed yet
        newer_session.commit()
    finally:
        newer_session.close()
        thread.join(60)
    assert "error" not in outcome, outcome.get("error")
    older = outcome["older"]
    assert isinstance(older, EvaluationRecord) and older.id < newer.id
    with session_scope(factory) as session:
        stored = _stored(session)
        assert stored == _computed(session)
    assert {stored[video] for video in videos[2:]} == {(0.8, newer.id)}
    assert {stored[video] for video in videos[:2]} == {(0.2, older.id)}
