"""One video as a page shows it: its feature caches, every stored score of it, and where its
file lies (catalog layer)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ddm.catalog.caches import cache_entry
from ddm.catalog.models import Dataset, Evaluation, FeatureCache, Prediction, Run, Video
from ddm.catalog.records import CacheRow
from ddm.errors import NotFound


@dataclass(frozen=True)
class VideoScore:
    """One stored prediction of a video, with the run and evaluation that made it."""

    evaluation_id: int
    run_id: int
    run_name: str
    eval_dataset: str
    split: str | None
    label: str | None
    score: float
    logit: float | None
    predicted_label: str
    leaked: bool
    leak: str | None


@dataclass(frozen=True)
class VideoLocation:
    """Where a video's file lies: its dataset's root and its path below it, as recorded."""

    video_id: int
    root: str
    path: str
    present: bool
    content_hash: str | None = None  # the file's sha256 when it was ingested


def video_caches(session: Session, video_id: int) -> list[CacheRow]:
    """Every feature cache row of a video, one per extractor fingerprint, newest first."""
    query = (
        select(FeatureCache.fingerprint)
        .where(FeatureCache.video_id == video_id)
        .order_by(FeatureCache.updated_at.desc(), FeatureCache.id.desc())
    )
    rows = (cache_entry(session, video_id, fp) for fp in session.scalars(query))
    return [row for row in rows if row is not None]


def video_scores(session: Session, video_id: int) -> list[VideoScore]:
    """Every stored prediction of a video, oldest evaluation first."""
    query = (
        select(
            Evaluation.id,
            Run.id,
            Run.name,
            Dataset.name,
            Evaluation.split,
            Prediction.label,
            Prediction.score,
            Prediction.logit,
            Prediction.predicted_label,
            Prediction.is_leaked,
            Prediction.leak,
        )
        .join(Evaluation, Evaluation.id == Prediction.evaluation_id)
        .join(Run, Run.id == Evaluation.run_id)
        .join(Dataset, Dataset.id == Evaluation.dataset_id)
        .where(Prediction.video_id == video_id)
        .order_by(Evaluation.id)
    )
    return [VideoScore(*row[:9], bool(row[9]), row[10]) for row in session.execute(query).all()]


def video_location(session: Session, video_id: int) -> VideoLocation:
    """Raises NotFound when the catalog has no such video."""
    row = session.execute(
        select(Dataset.root_path, Video.path, Video.is_present, Video.content_hash)
        .join(Dataset, Dataset.id == Video.dataset_id)
        .where(Video.id == video_id)
    ).one_or_none()
    if row is None:
        raise NotFound(f"no video with id {video_id}")
    return VideoLocation(video_id, row[0], row[1], bool(row[2]), row[3])
