"""A cheap stamp of the catalog rows that findings and statistics are computed from, so
that a face which keeps computed documents can tell when they went stale (catalog layer)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ddm.catalog.models import Dataset, Evaluation, FeatureCache


def catalog_stamp(session: Session) -> tuple[Any, ...]:
    """A value that changes whenever a row that `tasks.report.evaluation_findings`, `ddm
    stats` or a dataset's overview reads is added or changed: an evaluation stored (its
    predictions are never changed after), a feature cache added or changed (fallback
    frames, validity), or a dataset's videos changed (every ingest and every `ddm split`
    bumps its `ingest_version`). A few reads of indexed maxima and of the datasets' rows:
    milliseconds at DFDC size."""
    evaluations = session.execute(select(func.count(), func.max(Evaluation.id))).one()
    newest = select(func.max(FeatureCache.updated_at), func.max(FeatureCache.id))
    # Counted too: a cache invalidated by a worker whose clock lags leaves the maxima alone.
    valid = select(func.count()).where(FeatureCache.is_valid.is_(True))
    caches = (*session.execute(newest).one(), session.scalar(valid))
    datasets = session.execute(
        select(Dataset.id, Dataset.ingest_version, Dataset.updated_at).order_by(Dataset.id)
    ).all()
    return (tuple(evaluations), caches, tuple(tuple(row) for row in datasets))
