"""Each video's latest score, kept on its row (catalog layer).

A video's latest score is its prediction by the newest evaluation (highest id) that scored
it. The video table sorts and filters by it, so it is stored on the video
(`Video.latest_score`, `Video.latest_evaluation_id`, indexed) rather than looked up among
the video's predictions per request; `record_evaluation` keeps it in the transaction that
stores the predictions.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import or_, select, text, update
from sqlalchemy.orm import Session

from ddm.catalog.models import Prediction, Video

_BATCH = 500  # SQLite caps a statement's parameters
# Any constant works: advisory lock ids are scoped to one database ("ddm_lat").
LATEST_SCORES_LOCK = 0x64646D5F6C6174


def keep_latest_scores(session: Session, evaluation_id: int) -> int:
    """Make the evaluation's predictions the latest scores of the videos it scored, except
    where a newer evaluation (a higher id) already is: evaluations recorded at once by two
    workers may commit in either order, and the higher id must win both ways. Returns how
    many videos changed.

    Holds `take_latest_scores_lock` until the transaction ends; the statement then reads
    (READ COMMITTED) whatever an evaluation that held it before has committed.
    """
    take_latest_scores_lock(session)
    scored = (
        select(Prediction.video_id, Prediction.score)
        .where(Prediction.evaluation_id == evaluation_id)
        .subquery()
    )
    result = session.execute(
        update(Video)
        .where(Video.id == scored.c.video_id, _older_than(evaluation_id))
        .values(
            latest_score=scored.c.score,
            latest_evaluation_id=evaluation_id,
            updated_at=Video.updated_at,  # a derived value changed, not the video's facts
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0


def take_latest_scores_lock(session: Session) -> None:
    """Wait for, then hold until the transaction ends, the right to write latest scores
    (PostgreSQL; SQLite has one writer at a time). Two evaluations of the same videos
    would otherwise lock their rows in whatever orders their plans give, and could
    deadlock; locking the rows in id order first doubled the cost of the write."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": LATEST_SCORES_LOCK})


def _older_than(evaluation_id: int) -> Any:
    return or_(Video.latest_evaluation_id.is_(None), Video.latest_evaluation_id < evaluation_id)


def refresh_latest_scores(session: Session, video_ids: Iterable[int] | None = None) -> None:
    """Compute the latest scores of `video_ids` (None: every video) afresh from the stored
    predictions, in one statement per batch: for whatever writes or removes predictions
    other than `record_evaluation` (a removed evaluation, rows written straight to the
    tables). Videos without a prediction get none."""
    take_latest_scores_lock(session)
    if video_ids is None:
        session.execute(_refresh(None))
        return
    ids = list(video_ids)
    for start in range(0, len(ids), _BATCH):
        session.execute(_refresh(ids[start : start + _BATCH]))


def _refresh(video_ids: list[int] | None) -> Any:
    newest = (
        select(Prediction.evaluation_id, Prediction.score)
        .where(Prediction.video_id == Video.id)
        .order_by(Prediction.evaluation_id.desc())
        .limit(1)
        .correlate(Video)
    )
    statement = update(Video).values(
        latest_evaluation_id=newest.with_only_columns(Prediction.evaluation_id).scalar_subquery(),
        latest_score=newest.with_only_columns(Prediction.score).scalar_subquery(),
        updated_at=Video.updated_at,
    )
    if video_ids is not None:
        statement = statement.where(Video.id.in_(video_ids))
    return statement.execution_options(synchronize_session=False)
