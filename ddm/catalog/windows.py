"""Per-window predictions of long-video evaluations: which part of each video a run
flagged (catalog layer).

An evaluation asked for segments (`ddm report --segments`) keeps, beside its one score per
video, a score per window for one window length and stride; several settings may be
stored for the same evaluation, each under its own (window, stride).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from ddm.catalog.models import Evaluation, PredictionWindow
from ddm.errors import InvalidInput, NotFound


@dataclass(frozen=True)
class WindowRow:
    """One window's score, as the evaluation job stores it and the report reads it."""

    video_id: int
    index: int
    start_frame: int
    end_frame: int  # exclusive
    start_seconds: float
    end_seconds: float
    score: float
    logit: float
    frames_sampled: int
    fallback_frames: int


@dataclass(frozen=True)
class StoredWindows:
    """An evaluation's windows of one setting, in video id then window order."""

    evaluation_id: int
    window_seconds: float
    stride_seconds: float
    rows: list[WindowRow]


def record_windows(
    session: Session,
    evaluation_id: int,
    window_seconds: float,
    stride_seconds: float,
    rows: Sequence[WindowRow],
) -> int:
    """Store the windows of an evaluation for one setting; the caller commits.

    Returns:
        The number of rows stored.

    Raises:
        NotFound: no such evaluation.
        InvalidInput: a logit that is not finite, a score outside [0, 1] or an empty window.
    """
    if session.get(Evaluation, evaluation_id) is None:
        raise NotFound(f"no evaluation {evaluation_id}")
    for row in rows:
        _check(row)
    if rows:
        session.execute(
            insert(PredictionWindow),
            [
                {
                    **row.__dict__,
                    "evaluation_id": evaluation_id,
                    "window_seconds": window_seconds,
                    "stride_seconds": stride_seconds,
                }
                for row in rows
            ],
        )
    return len(rows)


def _check(row: WindowRow) -> None:
    if not math.isfinite(row.logit):
        raise InvalidInput(f"video {row.video_id} window {row.index}: the logit is not finite")
    if not 0.0 <= row.score <= 1.0:
        raise InvalidInput(f"video {row.video_id} window {row.index}: score {row.score}")
    if not row.start_frame < row.end_frame:
        raise InvalidInput(f"video {row.video_id} window {row.index}: it holds no frame")


def has_windows(
    session: Session, evaluation_id: int, window_seconds: float, stride_seconds: float
) -> bool:
    """True when the evaluation's windows of this setting were stored."""
    count = session.scalar(
        select(func.count(PredictionWindow.id)).where(
            PredictionWindow.evaluation_id == evaluation_id,
            PredictionWindow.window_seconds == window_seconds,
            PredictionWindow.stride_seconds == stride_seconds,
        )
    )
    return bool(count)


def evaluation_windows(
    session: Session,
    evaluation_id: int,
    window_seconds: float | None = None,
    stride_seconds: float | None = None,
) -> StoredWindows | None:
    """The evaluation's windows of the given setting, or of the one stored last when none
    is given; None when there are none."""
    if window_seconds is None or stride_seconds is None:
        newest = session.execute(
            select(PredictionWindow.window_seconds, PredictionWindow.stride_seconds)
            .where(PredictionWindow.evaluation_id == evaluation_id)
            .order_by(PredictionWindow.id.desc())
            .limit(1)
        ).first()
        if newest is None:
            return None
        window_seconds, stride_seconds = newest
    query = (
        select(
            PredictionWindow.video_id,
            PredictionWindow.index,
            PredictionWindow.start_frame,
            PredictionWindow.end_frame,
            PredictionWindow.start_seconds,
            PredictionWindow.end_seconds,
            PredictionWindow.score,
            PredictionWindow.logit,
            PredictionWindow.frames_sampled,
            PredictionWindow.fallback_frames,
        )
        .where(
            PredictionWindow.evaluation_id == evaluation_id,
            PredictionWindow.window_seconds == window_seconds,
            PredictionWindow.stride_seconds == stride_seconds,
        )
        .order_by(PredictionWindow.video_id, PredictionWindow.index)
    )
    rows = [WindowRow(*row) for row in session.execute(query)]
    if not rows:
        return None
    return StoredWindows(evaluation_id, window_seconds, stride_seconds, rows)
