"""The stored scores of one evaluation as numpy columns: what its metrics read, and all a
cross-dataset matrix cell needs (catalog layer).

A matrix over 10 runs reads about a million predictions; as Python rows that took seconds
per DFDC evaluation. On PostgreSQL the columns come as one binary COPY, read by numpy
without a Python object per value; SQLite reads rows.
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
        return _copied_scores(connection.connection.driver_connection, evaluation_id)
    query = (
        select(Prediction.label, Prediction.score, Prediction.logit, Prediction.is_leaked)
        .where(Prediction.evaluation_id == evaluation_id)
        .order_by(Prediction.video_id)
    )
    rows = connection.execute(query).all()
    columns = [list(column) for column in zip(*rows, strict=True)] or [[], [], [], []]
    return StoredScores.of(*columns)


# One row of the COPY below in PostgreSQL's binary format: a field count, then each field's
# length and big-endian value. No field is NULL, so every row has this one layout.
_COPY_ROW = np.dtype(
    [
        ("fields", ">i2"),
        ("is_fake_length", ">i4"),
        ("is_fake", ">i4"),
        ("score_length", ">i4"),
        ("score", ">f8"),
        ("logit_length", ">i4"),
        ("logit", ">f8"),
        ("is_leaked_length", ">i4"),
        ("is_leaked", ">i4"),
    ]
)
# A stored logit is always finite (`record_evaluation` refuses others): NaN marks none.
_COPY = """COPY (
    SELECT coalesce((label = '{fake}')::int4, 0), score, coalesce(logit, 'NaN'::float8),
        is_leaked::int4
    FROM predictions WHERE evaluation_id = {evaluation_id} ORDER BY video_id
) TO STDOUT (FORMAT binary)"""
_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"


def _copied_scores(connection: Any, evaluation_id: int) -> StoredScores:
    """The columns from one binary COPY on `connection` (psycopg's, in the session's
    transaction)."""
    statement = _COPY.format(fake=Label.FAKE.value, evaluation_id=int(evaluation_id))
    with connection.cursor() as cursor, cursor.copy(statement) as copy:
        data = b"".join(bytes(block) for block in copy)
    if not data.startswith(_SIGNATURE):
        raise ValueError("not PostgreSQL's binary COPY format")
    start = len(_SIGNATURE) + 8 + int.from_bytes(data[15:19], "big")  # flags, extension
    count, rest = divmod(len(data) - start - 2, _COPY_ROW.itemsize)  # 2: the trailer
    rows = np.frombuffer(data, _COPY_ROW, offset=start, count=count)
    if rest or not (rows["fields"] == 4).all() or not (rows["score_length"] == 8).all():
        raise ValueError("unexpected rows in PostgreSQL's binary COPY")
    logits = rows["logit"].astype(np.float64)
    return StoredScores(
        rows["is_fake"].astype(np.int64),
        rows["score"].astype(np.float64),
        None if np.isnan(logits).any() else logits,
        rows["is_leaked"] != 0,
    )
