"""The stored scores of one evaluation as numpy columns: what its metrics read, and all a
cross-dataset matrix cell needs (catalog layer).

A matrix over 10 runs reads about a million predictions; as Python rows that took seconds
per DFDC evaluation. On PostgreSQL the columns come as one aggregated binary value, read by
numpy without a Python object per value; SQLite reads rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from ddm.catalog.models import Prediction
from ddm.vocab import Label


@dataclass(frozen=True)
class StoredScores:
    """Parallel columns in video id order.

    Attributes:
        is_fake: 1 where the stored label is fake, else 0 (a missing label counts as real).
        logits: None when any prediction lacks one (stored before logits were kept).
    """

    is_fake: np.ndarray
    scores: np.ndarray
    logits: np.ndarray | None
    is_leaked: np.ndarray

    @classmethod
    def of(
        cls,
        labels: Sequence[str | None],
        scores: Sequence[float],
        logits: Sequence[float | None],
        is_leaked: Sequence[bool],
    ) -> StoredScores:
        """The columns of per-prediction values."""
        return cls(
            np.array([label == Label.FAKE for label in labels], dtype=np.int64),
            np.array(scores, dtype=np.float64),
            None if any(logit is None for logit in logits) else np.array(logits, np.float64),
            np.array(is_leaked, dtype=bool),
        )


def evaluation_scores(session: Session, evaluation_id: int) -> StoredScores:
    """The evaluation's stored labels, scores, logits and leak flags, without the videos'
    facts (`evaluations.evaluation_predictions` joins those)."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        return _aggregated_scores(connection.connection.driver_connection, evaluation_id)
    query = (
        select(Prediction.label, Prediction.score, Prediction.logit, Prediction.is_leaked)
        .where(Prediction.evaluation_id == evaluation_id)
        .order_by(Prediction.video_id)
    )
    rows = connection.execute(query).all()
    columns = [list(column) for column in zip(*rows, strict=True)] or [[], [], [], []]
    return StoredScores.of(*columns)


# Each prediction as one fixed-size binary record, all of them one bytea value: numpy reads
# it without a Python object per value. A binary COPY gave the same columns, but psycopg
# hands a COPY over a row at a time (0.19 s for a DFDC evaluation's 115,000 predictions,
# against 0.07 s). PostgreSQL's `*send` functions write big-endian.
_RECORD = np.dtype(
    [
        ("video_id", ">i8"),
        ("is_fake", ">i4"),
        ("score", ">f8"),
        ("logit", ">f8"),
        ("is_leaked", ">i4"),
    ]
)
# A stored logit is always finite (`record_evaluation` refuses others): NaN marks none.
# Aggregated unordered and sorted here: ordering inside the aggregate cost a sort as long
# as the read.
_AGGREGATE = """SELECT string_agg(
    int8send(video_id::int8) || int4send(coalesce((label = %(fake)s)::int4, 0))
        || float8send(score) || float8send(coalesce(logit, 'NaN'::float8))
        || int4send(is_leaked::int4),
    ''::bytea
) FROM predictions WHERE evaluation_id = %(evaluation_id)s"""


def _aggregated_scores(connection: Any, evaluation_id: int) -> StoredScores:
    """The columns from one aggregate on `connection` (psycopg's, in the session's
    transaction)."""
    params = {"fake": Label.FAKE.value, "evaluation_id": int(evaluation_id)}
    with connection.cursor(binary=True) as cursor:
        data = cursor.execute(_AGGREGATE, params).fetchone()[0] or b""
    if len(data) % _RECORD.itemsize:
        raise ValueError("unexpected records in PostgreSQL's aggregate of scores")
    records = np.frombuffer(data, _RECORD)
    records = records[np.argsort(records["video_id"], kind="stable")]
    logits = records["logit"].astype(np.float64)
    return StoredScores(
        records["is_fake"].astype(np.int64),
        records["score"].astype(np.float64),
        None if np.isnan(logits).any() else logits,
        records["is_leaked"] != 0,
    )
