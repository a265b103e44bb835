"""ORM tables of the catalog (catalog layer).

Every constraint gets a stable name through one naming convention, so that migrations
name the same objects on PostgreSQL and SQLite. Status-like columns are short strings
guarded by CHECK constraints rather than native enums, which keeps SQLite parity and makes
adding a value a one-line migration.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ddm.catalog.types import UTCDateTime, utcnow
from ddm.vocab import Compression, JobStatus, Label, Leak, ProbeStatus, Split, SplitSource

# The splits a training run reads, and so the roles of its members; never `test`.
MEMBER_ROLES = (Split.TRAIN, Split.VAL)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _one_of(column: str, enum: Iterable[StrEnum], *, nullable: bool = False) -> CheckConstraint:
    values = ", ".join(f"'{member.value}'" for member in enum)
    condition = f"{column} IN ({values})"
    if nullable:
        condition = f"{column} IS NULL OR {condition}"
    return CheckConstraint(condition, name=f"{column}_valid")


def _created() -> Mapped[datetime]:
    return mapped_column(UTCDateTime, default=utcnow, server_default=func.now())


def _updated() -> Mapped[datetime]:
    return mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow, server_default=func.now())


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: UTCDateTime}


class Dataset(Base):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(32))
    root_path: Mapped[str] = mapped_column(Text)
    video_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    real_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    fake_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    missing_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    unreadable_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    listed_missing_count: Mapped[int] = mapped_column(
        Integer, default=0, server_default="0", doc="videos the metadata lists but the disk lacks"
    )
    notes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    ingest_version: Mapped[int] = mapped_column(
        Integer,
        default=0,
        server_default="0",
        doc="ingests recorded so far; an ingest records only if no other did since it read "
        "the catalog, else it scans again (see catalog.videos.record_ingest)",
    )
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class Video(Base):
    __tablename__ = "videos"
    __table_args__ = (
        UniqueConstraint("dataset_id", "path"),
        _one_of("label", Label, nullable=True),
        _one_of("split", Split, nullable=True),
        _one_of("split_source", SplitSource, nullable=True),
        _one_of("compression", Compression, nullable=True),
        # `ddm videos --dataset --label --split`, and training-set selection.
        Index(None, "dataset_id", "label", "split"),
        # Re-ingest recognises a moved or re-encoded file by its content hash.
        Index(None, "content_hash"),
        Index(None, "original_video_id"),
        # The video table by latest score, ascending, ties by id (a page reads the scored
        # videos from it, then the unscored by id); `ix_videos_latest_score_desc_id` below
        # serves the descending order.
        Index(None, "latest_score", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(Text, doc="relative to the dataset root, '/'-separated")
    content_hash: Mapped[str | None] = mapped_column(String(80))
    hash_method: Mapped[str | None] = mapped_column(String(16))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    mtime: Mapped[float | None] = mapped_column(Float)
    label: Mapped[str | None] = mapped_column(String(8))
    raw_label: Mapped[str | None] = mapped_column(String(32), doc="the label as the source gave it")
    split: Mapped[str | None] = mapped_column(String(8))
    split_source: Mapped[str | None] = mapped_column(String(16))
    method: Mapped[str | None] = mapped_column(String(64), doc="manipulation method of a fake")
    compression: Mapped[str | None] = mapped_column(String(8))
    target_identity: Mapped[str | None] = mapped_column(String(128))
    source_identity: Mapped[str | None] = mapped_column(String(128))
    identity_group: Mapped[str | None] = mapped_column(String(128))
    part: Mapped[str | None] = mapped_column(
        Text, doc="e.g. dfdc_train_part_3, or the folder of a labelled set (any length)"
    )
    original_video_id: Mapped[int | None] = mapped_column(
        ForeignKey("videos.id", ondelete="SET NULL")
    )
    frame_count: Mapped[int | None] = mapped_column(Integer)
    fps: Mapped[float | None] = mapped_column(Float)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    duration_s: Mapped[float | None] = mapped_column(Float)
    probe_status: Mapped[str] = mapped_column(String(16), default=ProbeStatus.PENDING.value)
    probe_error: Mapped[str | None] = mapped_column(Text)
    metadata_error: Mapped[str | None] = mapped_column(
        Text, doc="why the file that labels this video could not be read"
    )
    is_present: Mapped[bool] = mapped_column(Boolean, default=True, server_default="1")
    # Kept by `record_evaluation` (catalog.evaluations), so that the video table sorts and
    # filters by a column. Not a foreign key: SQLite adds a column with one only by copying
    # the table, and dropping the old copy would fire the cascades of every table that
    # references videos. Nothing deletes evaluations; whatever does must call
    # `catalog.latest_scores.refresh_latest_scores` for the videos they scored.
    latest_score: Mapped[float | None] = mapped_column(
        Float, doc="the video's prediction by the newest evaluation (highest id) that scored it"
    )
    latest_evaluation_id: Mapped[int | None] = mapped_column(
        Integer, doc="that evaluation; NULL: never scored"
    )
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


# The video table by latest score, descending: scores from high to low, ties by id
# ascending, which a backward walk of the index above would not give. The unscored videos
# come last, read apart (`catalog.videos`), so neither index needs NULLS LAST (SQLite's
# indexes cannot say it).
Index("ix_videos_latest_score_desc_id", Video.latest_score.desc(), Video.id)


class FeatureCache(Base):
    __tablename__ = "feature_caches"
    __table_args__ = (
        UniqueConstraint("video_id", "fingerprint"),
        # "which videos of this extractor still need work"
        Index(None, "fingerprint", "is_valid"),
        # Every heartbeat renews the leases of its job; release clears them.
        Index(None, "claimed_by_job_id"),
        # `latest_fingerprint`: the newest valid cache, without sorting all of them.
        Index(None, "updated_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"))
    fingerprint: Mapped[str] = mapped_column(
        String(80), doc="hash of extractor config, weights sha256 and extractor version"
    )
    path: Mapped[str | None] = mapped_column(Text)
    is_valid: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    frames_sampled: Mapped[int | None] = mapped_column(Integer)
    faces_detected: Mapped[int | None] = mapped_column(Integer)
    fallback_frames: Mapped[int | None] = mapped_column(Integer)
    interpolated_frames: Mapped[int | None] = mapped_column(Integer)
    frame_sources: Mapped[str | None] = mapped_column(
        Text, doc="one letter per sampled frame: d detected, i interpolated, f fallback"
    )
    face_fallback: Mapped[bool | None] = mapped_column(Boolean)
    bytes: Mapped[int | None] = mapped_column(BigInteger)
    checksum: Mapped[str | None] = mapped_column(String(64))
    seconds: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    video_hash: Mapped[str | None] = mapped_column(
        String(80), doc="the video's content hash when the features were extracted"
    )
    claimed_by_job_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"),
        doc="the job extracting this video right now; a lease, so no video is done twice at once",
    )
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        _one_of("status", JobStatus),
        # `ddm jobs list --status` and the stale-heartbeat sweep.
        Index(None, "status", "heartbeat_at"),
        Index(None, "kind", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Kinds are the job registry's (tasks/kinds.py): adding one needs no migration.
    kind: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    celery_task_id: Mapped[str | None] = mapped_column(String(64))
    worker: Mapped[str | None] = mapped_column(String(255))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    progress_done: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    progress_total: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(
        JSON, doc="what the job produced: counts of videos done, failed, skipped"
    )
    created_at: Mapped[datetime] = _created()
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = _updated()


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (UniqueConstraint("name"), _one_of("status", JobStatus))

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    datasets: Mapped[list[Any]] = mapped_column(default=list)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED.value)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    best_epoch: Mapped[int | None] = mapped_column(Integer)
    checkpoint_path: Mapped[str | None] = mapped_column(Text)
    checkpoint_sha256: Mapped[str | None] = mapped_column(
        String(64), doc="the best checkpoint as training wrote it; a changed file is not the run"
    )
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fingerprint: Mapped[str | None] = mapped_column(
        String(80), doc="the extractor fingerprint of every member's feature cache"
    )
    train_videos: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    val_videos: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    run_dir: Mapped[str | None] = mapped_column(Text, doc="checkpoints and TensorBoard files")
    last_state_path: Mapped[str | None] = mapped_column(
        Text, doc="the full state of the last finished epoch, to resume from"
    )


class RunMember(Base):
    """One video a run trained or validated on, with the cache it read: the run's frozen
    dataset version, which later ingests and re-extractions leave as it is."""

    __tablename__ = "run_members"
    __table_args__ = (
        UniqueConstraint("run_id", "video_id"),
        _one_of("role", MEMBER_ROLES),
        _one_of("label", Label),
        # `ddm runs show` and the training loader: one role of one run.
        Index(None, "run_id", "role"),
        # The leakage guard: was this evaluated file (in any dataset) in a run's membership?
        Index(None, "content_hash"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(8))
    label: Mapped[str] = mapped_column(String(8))
    cache_path: Mapped[str] = mapped_column(Text, doc="relative to the cache dir")
    cache_checksum: Mapped[str] = mapped_column(String(64))
    content_hash: Mapped[str | None] = mapped_column(
        String(80), doc="the video's content hash when the run was created"
    )


class RunEpoch(Base):
    __tablename__ = "run_epochs"
    __table_args__ = (UniqueConstraint("run_id", "epoch"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer)
    train_loss: Mapped[float | None] = mapped_column(Float)
    train_accuracy: Mapped[float | None] = mapped_column(Float)
    val_loss: Mapped[float | None] = mapped_column(Float)
    val_accuracy: Mapped[float | None] = mapped_column(Float)
    learning_rate: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = _created()


class Evaluation(Base):
    __tablename__ = "evaluations"
    __table_args__ = (
        _one_of("split", Split, nullable=True),
        # `ddm report --eval NAME`: every evaluation of one dataset.
        Index(None, "dataset_id", "split"),
        Index(None, "run_id"),
        # Reuse: the stored evaluation of one run on one dataset split.
        Index(None, "run_id", "dataset_id", "split"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    split: Mapped[str | None] = mapped_column(String(8), doc="None means every split")
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = _created()
    fingerprint: Mapped[str | None] = mapped_column(
        String(80), doc="the extractor of every scored feature cache (the run's)"
    )
    caches_digest: Mapped[str | None] = mapped_column(
        String(64), doc="sha256 of the evaluated videos' ids and cache checksums: reuse key"
    )
    checkpoint_sha256: Mapped[str | None] = mapped_column(
        String(64), doc="the checkpoint that scored: part of the reuse key"
    )
    n_videos: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    leaked_videos: Mapped[int] = mapped_column(
        Integer, default=0, server_default="0", doc="evaluated videos the run trained on"
    )
    is_held_out: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    threshold: Mapped[float | None] = mapped_column(Float)
    left_out: Mapped[dict[str, Any] | None] = mapped_column(
        JSON, doc="videos of the split not scored, per reason"
    )


class Prediction(Base):
    __tablename__ = "predictions"
    __table_args__ = (
        UniqueConstraint("evaluation_id", "video_id"),
        _one_of("predicted_label", Label),
        _one_of("label", Label, nullable=True),
        _one_of("leak", Leak, nullable=True),
        # Bias statistics join predictions back to videos; a video's latest score (the
        # video table's order) is read from the index alone (migration 0013).
        Index(None, "video_id", "evaluation_id", "score"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    evaluation_id: Mapped[int] = mapped_column(ForeignKey("evaluations.id", ondelete="CASCADE"))
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"))
    score: Mapped[float] = mapped_column(
        Float, doc="probability that the video is fake, computed in float64 from the logit"
    )
    logit: Mapped[float | None] = mapped_column(
        Float,
        doc="the detector's raw output; ranks where probabilities round to 1.0 and tie "
        "(NULL for evaluations stored before it was kept)",
    )
    predicted_label: Mapped[str] = mapped_column(String(8))
    label: Mapped[str | None] = mapped_column(String(8), doc="the true label when scored")
    is_leaked: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false(), doc="the run trained on this file"
    )
    leak: Mapped[str | None] = mapped_column(
        String(16), doc="how the run saw this video (a `Leak`), NULL when held out"
    )


class PredictionWindow(Base):
    """One window's score of a long-video evaluation (`ddm report --segments`): which part
    of a video the detector flagged."""

    __tablename__ = "prediction_windows"
    __table_args__ = (
        # Named here: the convention's name (all five columns) passes PostgreSQL's 63 bytes.
        UniqueConstraint(
            "evaluation_id",
            "window_seconds",
            "stride_seconds",
            "video_id",
            "index",
            name="uq_prediction_windows_key",
        ),
        # The catalog's video views list a video's windows.
        Index(None, "video_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    evaluation_id: Mapped[int] = mapped_column(ForeignKey("evaluations.id", ondelete="CASCADE"))
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"))
    window_seconds: Mapped[float] = mapped_column(Float, doc="the windows' length, as asked")
    stride_seconds: Mapped[float] = mapped_column(Float, doc="the step between their starts")
    index: Mapped[int] = mapped_column(Integer, doc="the window's place in its video, from 0")
    start_frame: Mapped[int] = mapped_column(Integer)
    end_frame: Mapped[int] = mapped_column(Integer, doc="exclusive")
    start_seconds: Mapped[float] = mapped_column(Float)
    end_seconds: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float, doc="P(fake) of the window, from its logit")
    logit: Mapped[float] = mapped_column(Float)
    frames_sampled: Mapped[int] = mapped_column(Integer)
    fallback_frames: Mapped[int] = mapped_column(Integer, doc="sampled frames centre-cropped")
