"""An evaluation's stored scores as numpy columns, on both dialects: PostgreSQL's one
aggregated binary value and SQLite's rows give what the predictions hold, in video id
order."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from ddm.catalog.models import Dataset, Evaluation, Prediction, Run, Video
from ddm.catalog.scores import evaluation_scores


def _evaluation(session: Session, rows: list[tuple[str | None, float, float | None, bool]]) -> int:
    """An evaluation whose predictions are (label, score, logit, is_leaked), stored in reverse
    video order so that the read must sort them."""
    dataset = session.scalars(select(Dataset).where(Dataset.name == "ds")).one_or_none()
    if dataset is None:
        dataset = Dataset(name="ds", format="folder", root_path="/data/ds")
        session.add(dataset)
        session.flush()
    run = Run(name=f"run-{len(rows)}-{id(rows)}", datasets=["ds"])
    session.add(run)
    session.flush()
    evaluation = Evaluation(run_id=run.id, dataset_id=dataset.id)
    session.add(evaluation)
    videos = [Video(dataset_id=dataset.id, path=f"{run.id}-{n}.mp4") for n in range(len(rows))]
    session.add_all(videos)
    session.flush()
    for video, (label, score, logit, is_leaked) in reversed(list(zip(videos, rows, strict=True))):
        predicted = "fake" if score >= 0.5 else "real"
        session.add(
            Prediction(
                evaluation_id=evaluation.id,
                video_id=video.id,
                label=label,
                score=score,
                logit=logit,
                predicted_label=predicted,
                is_leaked=is_leaked,
            )
        )
    session.flush()
    return evaluation.id


def test_scores_come_back_as_stored_in_video_order(session: Session) -> None:
    rows = [
        ("fake", 0.9, 2.1972245773362196, False),
        ("real", 1e-300, -690.7755278982137, True),
        (None, 0.5, 0.0, False),  # an unlabelled video counts as real
        ("fake", 1.0, 40.0, True),
    ]
    stored = evaluation_scores(session, _evaluation(session, rows))
    assert stored.is_fake.tolist() == [1, 0, 0, 1]
    assert stored.scores.tolist() == [0.9, 1e-300, 0.5, 1.0]
    assert stored.logits is not None
    assert stored.logits.tolist() == [2.1972245773362196, -690.7755278982137, 0.0, 40.0]
    assert stored.is_leaked.tolist() == [False, True, False, True]
    assert stored.is_fake.dtype == np.int64 and stored.is_leaked.dtype == bool


def test_one_missing_logit_means_none_and_no_prediction_means_empty(session: Session) -> None:
    stored = evaluation_scores(
        session, _evaluation(session, [("fake", 0.7, None, False), ("real", 0.2, -1.0, False)])
    )
    assert stored.logits is None
    assert stored.scores.tolist() == [0.7, 0.2]

    empty = evaluation_scores(session, _evaluation(session, []))
    assert (len(empty.is_fake), len(empty.scores), len(empty.is_leaked)) == (0, 0, 0)
