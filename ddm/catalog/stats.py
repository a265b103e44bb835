"""Per-video facts for the catalog's bias statistics: what a detector could learn instead of
the manipulation (catalog layer). No run is needed; the statistics themselves are computed
by the jobs layer (tasks/bias.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from ddm.catalog.datasets import get_dataset
from ddm.catalog.models import Dataset, FeatureCache, Video
from ddm.vocab import ProbeStatus


# Not frozen: a frozen dataclass sets each field through object.__setattr__, and these
# are built by the 100,000 (a DFDC evaluation): 0.31 s against 0.03 s per 130,000.
@dataclass(slots=True)
class VideoFacts:
    """One labelled, readable video as the bias statistics see it.

    `fallback_frames` and `frames_sampled` come from the video's valid feature cache of
    `cache_fingerprint`, the one extractor its dataset's statistics read (all None
    without such a cache).
    """

    video_id: int
    dataset: str
    label: str
    split: str | None
    method: str | None
    compression: str | None
    frame_count: int | None
    width: int | None
    height: int | None
    fps: float | None
    duration_s: float | None
    size_bytes: int | None
    fallback_frames: int | None
    frames_sampled: int | None
    cache_fingerprint: str | None = None


def video_facts(
    session: Session, datasets: Sequence[str] | None = None, *, fingerprint: str | None = None
) -> list[VideoFacts]:
    """Facts of every present, readable, labelled video of `datasets` (default: all).

    Cache facts come from one extractor per dataset, never the newest cache of any: two
    extractors (T = 32 and T = 64, say) sample different frames, and a statistic mixing
    them would measure the mix. That extractor is `fingerprint` when given, else the one
    with valid caches of the most videos of the dataset (the newest on a tie).

    Raises:
        NotFound: an unknown dataset name.
    """
    ids = None if not datasets else [get_dataset(session, name).id for name in datasets]
    chosen = _fingerprint_per_dataset(session, fingerprint)
    names = session.execute(select(Dataset.id, Dataset.name).order_by(Dataset.name)).all()
    facts = []
    # One query per dataset, by name then video id: each joins its own extractor's caches,
    # and reads plain columns (ORM objects cost more than the query at DFDC's 128k videos).
    connection = session.connection()  # Core: the ORM's handling of plain rows costs more
    for dataset_id, name in names:
        if ids is None or dataset_id in ids:
            rows = connection.execute(_facts_query(dataset_id, chosen.get(dataset_id)))
            facts.extend(_to_facts(rows, name, chosen.get(dataset_id)))
    return facts


def _facts_query(dataset_id: int, fingerprint: str | None) -> Any:
    on_cache = and_(
        FeatureCache.video_id == Video.id,
        FeatureCache.fingerprint == (fingerprint or ""),
        FeatureCache.is_valid.is_(True),
    )
    return (
        select(
            *(getattr(Video, column) for column in _VIDEO_COLUMNS),
            FeatureCache.fallback_frames,
            FeatureCache.frames_sampled,
        )
        .outerjoin(FeatureCache, on_cache)
        .where(
            Video.dataset_id == dataset_id,
            Video.is_present.is_(True),
            Video.probe_status == ProbeStatus.OK.value,
            Video.label.is_not(None),
        )
        .order_by(Video.id)
    )


# The video's own columns of `VideoFacts`, by the same names and in its order.
_VIDEO_COLUMNS = (
    "id",
    "label",
    "split",
    "method",
    "compression",
    "frame_count",
    "width",
    "height",
    "fps",
    "duration_s",
    "size_bytes",
)


def _to_facts(rows: Iterable[Any], dataset: str, fingerprint: str | None) -> Iterator[VideoFacts]:
    # By position (the query's columns are the record's fields but `dataset` and the
    # fingerprint): reading each column by name cost more than the query.
    for video_id, *columns in rows:
        yield VideoFacts(video_id, dataset, *columns, cache_fingerprint=fingerprint)


def _fingerprint_per_dataset(session: Session, fingerprint: str | None) -> dict[int, str]:
    """Dataset id -> the extractor whose caches its statistics read."""
    query = (
        select(
            Video.dataset_id,
            FeatureCache.fingerprint,
            func.count(FeatureCache.id).label("videos"),
            func.max(FeatureCache.updated_at).label("newest"),
        )
        .join(Video, Video.id == FeatureCache.video_id)
        .where(FeatureCache.is_valid.is_(True))
        .group_by(Video.dataset_id, FeatureCache.fingerprint)
    )
    if fingerprint is not None:
        query = query.where(FeatureCache.fingerprint == fingerprint)
    best: dict[int, tuple[int, object, str]] = {}
    for row in session.execute(query):
        candidate = (row.videos, row.newest, row.fingerprint)
        if row.dataset_id not in best or candidate > best[row.dataset_id]:
            best[row.dataset_id] = candidate
    return {dataset_id: choice[2] for dataset_id, choice in best.items()}


def fallback_frame_rate(session: Session, datasets: Sequence[str]) -> float | None:
    """The share of sampled frames that fell back to a centre crop, over the valid caches
    of `datasets` (None without any)."""
    ids = [get_dataset(session, name).id for name in datasets]
    fallback, sampled = session.execute(
        select(func.sum(FeatureCache.fallback_frames), func.sum(FeatureCache.frames_sampled))
        .join(Video, Video.id == FeatureCache.video_id)
        .where(Video.dataset_id.in_(ids), FeatureCache.is_valid.is_(True))
    ).one()
    return None if not sampled else float(fallback or 0) / float(sampled)
