"""Frozen records returned by catalog functions (catalog layer).

Callers never see ORM rows: a record is a plain snapshot, safe to pass across threads,
processes and the CLI's JSON renderer.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields, is_dataclass
from datetime import datetime
from typing import Any, TypeVar


def to_json(record: Any) -> dict[str, Any]:
    """A record as JSON-able values: nested records become dicts, datetimes ISO-8601 UTC
    strings (what `dataclasses.asdict` gives, without its deep copy of every value, which
    cost seconds over DFDC's videos)."""
    names, values_of = _fields_of(type(record))
    held = getattr(record, "__dict__", None)
    # A record's own dict holds its fields in order (and more once a cached property has
    # been read): copied whole, a flat record is one C call, not one per field.
    if held is not None and tuple(held) == names and _SCALARS.issuperset(map(type, held.values())):
        return dict(held)
    values = values_of(record)
    if _SCALARS.issuperset(map(type, values)):  # a flat record, as every video is
        return dict(zip(names, values, strict=True))
    return {name: _jsonable(value) for name, value in zip(names, values, strict=True)}


R = TypeVar("R")


def from_values(cls: type[R], values: Iterable[Any]) -> R:
    """`cls(*values)` for a frozen dataclass given every field's value (no defaults are
    filled, no `__post_init__` runs), built as one dict: a frozen `__init__` sets each field
    through `object.__setattr__`, 8.7 us for a video's 36 fields against 4.1 us here.

    Raises:
        ValueError: not one value per field.
    """
    record = object.__new__(cls)
    object.__setattr__(record, "__dict__", dict(zip(_fields_of(cls)[0], values, strict=True)))
    return record


_SCALARS = frozenset({str, int, float, bool, type(None)})


@functools.cache
def _fields_of(cls: type) -> tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]:
    """A record class's field names, and a function that reads their values in one call."""
    names = tuple(field.name for field in fields(cls))
    values_of = operator.attrgetter(*names)
    return names, (values_of if len(names) > 1 else lambda record: (values_of(record),))


def _jsonable(value: Any) -> Any:
    if type(value) in _SCALARS:
        return value
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if is_dataclass(value) and not isinstance(value, type):
        return to_json(value)
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    return value


@dataclass(frozen=True)
class DatasetRecord:
    """One dataset; its JSON (`ddm datasets --json`) is a stable interface for scripts.

    Counts are of videos present on disk, except `missing` (known to the catalog, gone
    from disk) and `listed_missing` (listed by the dataset's metadata, never on disk).
    """

    id: int
    name: str
    format: str
    root: str
    videos: int
    real: int
    fake: int
    missing: int
    unreadable: int
    listed_missing: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class VideoRecord:
    """One video as `ddm videos --json` shows it; the first fields are a stable interface."""

    id: int
    dataset: str
    path: str
    label: str | None
    split: str | None
    split_source: str | None
    method: str | None
    compression: str | None
    original_path: str | None
    frame_count: int | None
    fps: float | None
    width: int | None
    height: int | None
    duration_s: float | None
    probe_status: str
    probe_error: str | None
    present: bool
    face_fallback: bool | None
    cache_valid: bool
    fallback_frames: int | None
    interpolated_frames: int | None
    frame_sources: str | None  # one letter per sampled frame: d, i or f
    frames_sampled: int | None
    cache_error: str | None
    fingerprint: str | None
    target_identity: str | None
    source_identity: str | None
    identity_group: str | None
    part: str | None
    raw_label: str | None
    metadata_error: str | None
    content_hash: str | None
    size_bytes: int | None
    latest_score: float | None = None  # by the newest evaluation that scored the video
    latest_evaluation_id: int | None = None


@dataclass(frozen=True)
class DatasetSummary:
    """What `ddm ingest` prints per dataset and `--json` returns."""

    dataset: DatasetRecord
    by_label_split: list[dict[str, Any]]
    by_method_compression: list[dict[str, Any]]
    unreadable: list[dict[str, Any]]
    listed_missing: dict[str, int]
    problems: list[str]
    notes: dict[str, Any]


@dataclass(frozen=True)
class JobRecord:
    id: int
    kind: str
    status: str
    params: dict[str, Any]
    attempts: int
    celery_task_id: str | None
    worker: str | None
    heartbeat_at: datetime | None
    progress_done: int
    progress_total: int
    error: str | None
    result: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class CacheRow:
    id: int
    video_id: int
    fingerprint: str
    path: str | None
    is_valid: bool
    checksum: str | None
    bytes: int | None
    frames_sampled: int | None
    faces_detected: int | None
    fallback_frames: int | None
    interpolated_frames: int | None
    frame_sources: str | None
    face_fallback: bool | None
    seconds: float | None
    error: str | None
    video_hash: str | None
    claimed_by_job_id: int | None
    claimed_at: datetime | None = None


@dataclass(frozen=True)
class VideoToExtract:
    id: int
    abs_path: str
    path: str
    content_hash: str | None
    is_present: bool


@dataclass(frozen=True)
class RunRecord:
    """One training run; `ddm runs list|show --json` prints it."""

    id: int
    name: str
    datasets: list[str]
    config: dict[str, Any]
    fingerprint: str | None
    status: str
    job_id: int | None
    best_epoch: int | None
    checkpoint_path: str | None
    run_dir: str | None
    last_state_path: str | None
    train_videos: int
    val_videos: int
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    checkpoint_sha256: str | None = None


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    train_loss: float | None
    train_accuracy: float | None
    val_loss: float | None
    val_accuracy: float | None
    learning_rate: float | None


@dataclass(frozen=True)
class MemberRecord:
    """One video of a run's frozen membership, with the cache the run read."""

    video_id: int
    role: str  # train or val
    label: str
    cache_path: str  # relative to the cache dir
    cache_checksum: str
    content_hash: str | None


@dataclass(frozen=True)
class MemberCandidate:
    """A video that may join a run: labelled, readable, with a valid cache of one extractor."""

    video_id: int
    dataset: str
    path: str
    label: str
    cache_path: str  # relative to the cache dir
    cache_checksum: str
    content_hash: str | None


@dataclass(frozen=True)
class TrainingSelection:
    """The train and val videos of some datasets that a run may use, and those left out.

    `coverage` counts, per extractor fingerprint, the eligible videos with a valid cache;
    `left_out` counts the train/val videos left out per reason (see `catalog.runs`).
    """

    fingerprint: str
    coverage: dict[str, int]
    train: list[MemberCandidate]
    val: list[MemberCandidate]
    left_out: dict[str, int]
