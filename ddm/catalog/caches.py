"""Feature-cache rows: which videos need features, leases, results, verification (catalog layer).

The file lands first and the row second: a row marked valid always points at a complete
file. A row is also a lease: the job named in `claimed_by_job_id` is the only one that may
extract that video for that fingerprint until it finishes or its lease goes stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Select, and_, exists, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ddm.catalog.models import Dataset, FeatureCache, Video
from ddm.catalog.records import CacheRow, VideoToExtract
from ddm.catalog.types import utcnow
from ddm.vocab import ProbeStatus


@dataclass(frozen=True)
class ExtractedFacts:
    """What one extraction produced, as the catalog records it."""

    path: str
    checksum: str
    bytes: int
    frames_sampled: int
    faces_detected: int
    fallback_frames: int
    seconds: float
    interpolated_frames: int = 0
    frame_sources: str | None = None  # one letter per frame (see FeatureCache)


@dataclass(frozen=True)
class LeasedVideo:
    """A video another job is extracting right now: left out of a new plan, and why."""

    video_id: int
    path: str
    job_id: int
    claimed_at: datetime
    lease_expires_at: datetime


def videos_to_extract(
    session: Session,
    dataset: str,
    fingerprint: str,
    *,
    stale_after: timedelta,
    split: str | None = None,
    limit: int | None = None,
    force: bool = False,
) -> list[tuple[int, str]]:
    """(id, content hash) of present, readable videos of `dataset` lacking a valid cache for
    `fingerprint`, leaving out those a live job holds the lease on (see `leased_videos`)."""
    valid = exists().where(
        FeatureCache.video_id == Video.id,
        FeatureCache.fingerprint == fingerprint,
        FeatureCache.is_valid.is_(True),
    )
    leased = exists().where(
        FeatureCache.video_id == Video.id,
        FeatureCache.fingerprint == fingerprint,
        _live_lease(stale_after),
    )
    query = _extractable(select(Video.id, Video.content_hash), dataset, split).where(~leased)
    if not force:
        query = query.where(~valid)
    if limit is not None:
        query = query.limit(limit)
    return [(video_id, content_hash) for video_id, content_hash in session.execute(query)]


def leased_videos(
    session: Session,
    dataset: str,
    fingerprint: str,
    *,
    stale_after: timedelta,
    split: str | None = None,
) -> list[LeasedVideo]:
    """Videos of `dataset` that a live job is extracting for `fingerprint` right now.

    Such a lease lapses `stale_after` after its job's last heartbeat; a job killed
    mid-video therefore blocks its video until then, and no longer.
    """
    query = _extractable(
        select(Video.id, Video.path, FeatureCache.claimed_by_job_id, FeatureCache.claimed_at),
        dataset,
        split,
    ).join(
        FeatureCache,
        and_(FeatureCache.video_id == Video.id, FeatureCache.fingerprint == fingerprint),
    )
    rows = session.execute(query.where(_live_lease(stale_after))).all()
    return [
        LeasedVideo(video_id, path, job_id, claimed_at, claimed_at + stale_after)
        for video_id, path, job_id, claimed_at in rows
    ]


def _extractable(query: Select, dataset: str, split: str | None) -> Select:
    query = (
        query.join(Dataset, Dataset.id == Video.dataset_id)
        .where(
            Dataset.name == dataset,
            Video.is_present.is_(True),
            Video.probe_status == ProbeStatus.OK.value,
            Video.content_hash.is_not(None),
        )
        .order_by(Video.id)
    )
    return query if split is None else query.where(Video.split == split)


def _live_lease(stale_after: timedelta) -> ColumnElement[bool]:
    return and_(
        FeatureCache.claimed_by_job_id.is_not(None),
        FeatureCache.claimed_at >= utcnow() - stale_after,
    )


def valid_twin(
    session: Session, fingerprint: str, content_hash: str, video_id: int | None = None
) -> ExtractedFacts | None:
    """The valid cache of a video with this content (other than `video_id`), if any.

    Identical files (a clip shipped in two datasets, a copy under two names) share one
    content-addressed cache file: the second is recorded, not extracted again, and
    `ddm predict` scores a known file from its cache.
    """
    query = select(FeatureCache).where(
        FeatureCache.fingerprint == fingerprint,
        FeatureCache.video_hash == content_hash,
        FeatureCache.is_valid.is_(True),
    )
    if video_id is not None:
        query = query.where(FeatureCache.video_id != video_id)
    row = session.scalars(query.limit(1)).one_or_none()
    if row is None:
        return None
    return ExtractedFacts(
        path=row.path,
        checksum=row.checksum,
        bytes=row.bytes,
        frames_sampled=row.frames_sampled,
        faces_detected=row.faces_detected,
        fallback_frames=row.fallback_frames,
        seconds=0.0,
        interpolated_frames=row.interpolated_frames or 0,
        frame_sources=row.frame_sources,
    )


def get_video_to_extract(session: Session, video_id: int) -> VideoToExtract | None:
    """Where a video lives and what it holds now, or None when it is gone from the catalog."""
    row = session.execute(
        select(Video.id, Dataset.root_path, Video.path, Video.content_hash, Video.is_present)
        .join(Dataset)
        .where(Video.id == video_id)
    ).one_or_none()
    if row is None:
        return None
    video_id, root, path, content_hash, present = row
    return VideoToExtract(video_id, f"{root}/{path}", path, content_hash, present)


def cache_entry(session: Session, video_id: int, fingerprint: str) -> CacheRow | None:
    row = session.scalars(
        select(FeatureCache).where(
            FeatureCache.video_id == video_id, FeatureCache.fingerprint == fingerprint
        )
    ).one_or_none()
    return _to_row(row) if row is not None else None


def claim_video(
    session: Session,
    video_id: int,
    fingerprint: str,
    job_id: int,
    *,
    stale_after: timedelta,
    force: bool = False,
) -> bool:
    """Take the lease on (video, fingerprint) for `job_id`.

    False when the cache is already valid (unless `force`) or another live job holds it.
    """
    now = utcnow()
    free = or_(
        FeatureCache.claimed_by_job_id.is_(None),
        FeatureCache.claimed_by_job_id == job_id,
        FeatureCache.claimed_at < now - stale_after,
    )
    wanted = free if force else and_(free, FeatureCache.is_valid.is_(False))
    result = session.execute(
        update(FeatureCache)
        .where(FeatureCache.video_id == video_id, FeatureCache.fingerprint == fingerprint, wanted)
        .values(claimed_by_job_id=job_id, claimed_at=now)
    )
    if result.rowcount == 1:
        return True
    if cache_entry(session, video_id, fingerprint) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(
                FeatureCache(
                    video_id=video_id,
                    fingerprint=fingerprint,
                    claimed_by_job_id=job_id,
                    claimed_at=now,
                )
            )
    except IntegrityError:
        return False  # another job inserted the row first, and with it the lease
    return True


def renew_claims(session: Session, job_id: int) -> None:
    """Keep a running job's leases fresh (called with its heartbeat)."""
    session.execute(
        update(FeatureCache)
        .where(FeatureCache.claimed_by_job_id == job_id)
        .values(claimed_at=utcnow())
    )


def record_features(
    session: Session,
    video_id: int,
    fingerprint: str,
    job_id: int,
    video_hash: str | None,
    facts: ExtractedFacts,
) -> None:
    """Mark the cache valid and release the lease.

    What extraction learned stays on the cache row; the video's own columns are ingest's.
    """
    session.execute(
        update(FeatureCache)
        .where(FeatureCache.video_id == video_id, FeatureCache.fingerprint == fingerprint)
        .values(
            path=facts.path,
            checksum=facts.checksum,
            bytes=facts.bytes,
            frames_sampled=facts.frames_sampled,
            faces_detected=facts.faces_detected,
            fallback_frames=facts.fallback_frames,
            interpolated_frames=facts.interpolated_frames,
            frame_sources=facts.frame_sources,
            face_fallback=facts.fallback_frames > 0,
            seconds=facts.seconds,
            video_hash=video_hash,
            is_valid=True,
            error=None,
            claimed_by_job_id=None,
            claimed_at=None,
            updated_at=utcnow(),
        )
    )


def record_failure(
    session: Session, video_id: int, fingerprint: str, job_id: int, error: str, seconds: float
) -> None:
    """Record why a video could not be extracted, and release the lease."""
    session.execute(
        update(FeatureCache)
        .where(
            FeatureCache.video_id == video_id,
            FeatureCache.fingerprint == fingerprint,
            FeatureCache.claimed_by_job_id == job_id,
        )
        .values(
            is_valid=False,
            error=error,
            seconds=seconds,
            claimed_by_job_id=None,
            claimed_at=None,
            updated_at=utcnow(),
        )
    )


def release_claims(session: Session, job_id: int) -> None:
    session.execute(
        update(FeatureCache)
        .where(FeatureCache.claimed_by_job_id == job_id)
        .values(claimed_by_job_id=None, claimed_at=None)
    )


def cache_rows(session: Session, *, dataset: str | None = None) -> list[CacheRow]:
    """Every cache row that points at a file, optionally of one dataset."""
    query = select(FeatureCache).where(FeatureCache.path.is_not(None)).order_by(FeatureCache.id)
    if dataset is not None:
        query = (
            query.join(Video, FeatureCache.video_id == Video.id)
            .join(Dataset)
            .where(Dataset.name == dataset)
        )
    return [_to_row(row) for row in session.scalars(query)]


def latest_fingerprint(session: Session, dataset: str | None = None) -> str | None:
    """The fingerprint of the most recent valid cache (of a dataset), or None."""
    valid = FeatureCache.is_valid.is_(True)
    query = (
        select(FeatureCache.fingerprint)
        .join(Video, FeatureCache.video_id == Video.id)
        .where(valid)
        .order_by(FeatureCache.updated_at.desc(), FeatureCache.id.desc())
        .limit(1)
    )
    newest = session.scalars(query).first()
    if dataset is None or newest is None:
        return newest
    # Walking the newest caches until one of the dataset's cost 45 ms (PostgreSQL) to
    # 120 ms (SQLite) on every page of DFDC's videos, past FF++'s 15,000 newer caches. When
    # every valid cache is of one extractor, whether the dataset has one says it all.
    other = FeatureCache.fingerprint < newest, FeatureCache.fingerprint > newest
    if session.scalar(select(FeatureCache.id).where(valid, or_(*other)).limit(1)) is None:
        found = select(FeatureCache.id).join(Video).join(Dataset)
        found = found.where(valid, Dataset.name == dataset).limit(1)
        return newest if session.scalar(found) is not None else None
    return session.scalars(query.join(Dataset).where(Dataset.name == dataset)).first()


def _to_row(row: FeatureCache) -> CacheRow:
    return CacheRow(
        id=row.id,
        video_id=row.video_id,
        fingerprint=row.fingerprint,
        path=row.path,
        is_valid=row.is_valid,
        checksum=row.checksum,
        bytes=row.bytes,
        frames_sampled=row.frames_sampled,
        faces_detected=row.faces_detected,
        fallback_frames=row.fallback_frames,
        interpolated_frames=row.interpolated_frames,
        frame_sources=row.frame_sources,
        face_fallback=row.face_fallback,
        seconds=row.seconds,
        error=row.error,
        video_hash=row.video_hash,
        claimed_by_job_id=row.claimed_by_job_id,
        claimed_at=row.claimed_at,
    )
