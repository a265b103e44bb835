"""Per-window predictions in the catalog, on both dialects: stored per evaluation and
setting, read back in order, refused when they are not scores, gone with their evaluation."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from ddm.catalog.models import Dataset, Evaluation, PredictionWindow, Run, Video
from ddm.catalog.windows import WindowRow, evaluation_windows, has_windows, record_windows
from ddm.errors import InvalidInput, NotFound


def _evaluation(session) -> tuple[int, list[int]]:
    dataset = Dataset(name="long", format="folder", root_path="/data/long")
    session.add(dataset)
    session.flush()
    videos = [
        Video(dataset_id=dataset.id, path=f"v{i}.mp4", content_hash=f"{i:064x}") for i in (1, 2)
    ]
    run = Run(name="r", datasets=["long"], status="succeeded")
    session.add_all([*videos, run])
    session.flush()
    evaluation = Evaluation(run_id=run.id, dataset_id=dataset.id, split=None)
    session.add(evaluation)
    session.flush()
    return evaluation.id, [video.id for video in videos]


def _row(video_id: int, index: int, score: float = 0.25) -> WindowRow:
    logit = math.log(score) - math.log1p(-score)
    start = 125 * index
    return WindowRow(video_id, index, start, start + 250, start / 25, (start + 250) / 25,
                     score, logit, 32, 0)  # fmt: skip


def test_windows_are_stored_per_setting_and_read_in_order(session) -> None:
    evaluation_id, (first, second) = _evaluation(session)
    assert evaluation_windows(session, evaluation_id) is None
    rows = [_row(second, 0), _row(first, 1, 0.9), _row(first, 0)]
    assert record_windows(session, evaluation_id, 10.0, 5.0, rows) == 3
    assert record_windows(session, evaluation_id, 4.0, 4.0, [_row(first, 0, 0.5)]) == 1
    assert has_windows(session, evaluation_id, 10.0, 5.0)
    assert not has_windows(session, evaluation_id, 10.0, 2.5)

    stored = evaluation_windows(session, evaluation_id, 10.0, 5.0)
    assert stored is not None
    assert [(r.video_id, r.index) for r in stored.rows] == [(first, 0), (first, 1), (second, 0)]
    assert stored.rows[1] == _row(first, 1, 0.9)
    newest = evaluation_windows(session, evaluation_id)  # no setting: the one stored last
    assert newest is not None and (newest.window_seconds, newest.stride_seconds) == (4.0, 4.0)

    session.execute(delete(Evaluation).where(Evaluation.id == evaluation_id))
    session.flush()
    assert session.scalar(select(func.count(PredictionWindow.id))) == 0


def test_a_window_twice_or_a_window_that_is_no_score_is_refused(session) -> None:
    evaluation_id, (first, _) = _evaluation(session)
    with pytest.raises(InvalidInput, match="score 1.5"):
        bad = WindowRow(first, 0, 0, 10, 0.0, 0.4, 1.5, 0.0, 8, 0)
        record_windows(session, evaluation_id, 10.0, 5.0, [bad])
    with pytest.raises(InvalidInput, match="not finite"):
        bad = WindowRow(first, 0, 0, 10, 0.0, 0.4, 0.5, float("nan"), 8, 0)
        record_windows(session, evaluation_id, 10.0, 5.0, [bad])
    with pytest.raises(NotFound):
        record_windows(session, evaluation_id + 1, 10.0, 5.0, [_row(first, 0)])
    record_windows(session, evaluation_id, 10.0, 5.0, [_row(first, 0)])
    with pytest.raises(IntegrityError), session.begin_nested():
        record_windows(session, evaluation_id, 10.0, 5.0, [_row(first, 0)])
