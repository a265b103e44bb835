"""Training runs: which videos a run may use, its frozen membership, lifecycle and per-epoch
metrics (catalog layer).

A run reads only the `train` and `val` splits; the `test` split is never selected, not even
to be counted. Its members are copied into `run_members` with the cache each one read, so
what a run says it trained on never changes afterwards.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import Select, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ddm.catalog.models import MEMBER_ROLES, Dataset, FeatureCache, Run, RunEpoch, RunMember, Video
from ddm.catalog.records import (
    EpochRecord,
    MemberCandidate,
    MemberRecord,
    RunRecord,
    TrainingSelection,
)
from ddm.catalog.types import utcnow
from ddm.errors import AlreadyExists, InvalidInput, NotFound
from ddm.fs import sha256_of
from ddm.vocab import FINISHED_JOB_STATUSES, JobStatus, ProbeStatus

ROLES = tuple(role.value for role in MEMBER_ROLES)
FINISHED = tuple(status.value for status in FINISHED_JOB_STATUSES)
SHORT_FINGERPRINT = 19  # as many characters of a fingerprint as messages show
NAME_LENGTH = 128  # runs.name


class LeftOut(StrEnum):
    """Why a train/val video is not in a selection; checked in this order."""

    MISSING = "missing"  # not present on disk
    UNREADABLE = "unreadable"  # probe_status not ok
    UNLABELLED = "unlabelled"
    # No cache row of the chosen extractor and no valid one of another: nothing to fix but
    # extracting it (an invalid row of another extractor counts here too).
    NO_CACHE = "no cache"
    INVALID_CACHE = "invalid cache"  # a row of the chosen extractor, not valid
    OTHER_FINGERPRINT = "other fingerprint"  # valid only for other extractors


@dataclass(frozen=True)
class ExtractorShare:
    """How many eligible videos of one dataset's split have a valid cache of one extractor.

    Attributes:
        frames: frames sampled per video (T) by that extractor, as its caches record it;
            None when they do not.
    """

    dataset: str
    role: str
    fingerprint: str
    videos: int
    frames: int | None


@dataclass(frozen=True)
class _Cache:
    path: str | None
    checksum: str | None
    is_valid: bool
    frames: int | None = None

    @property
    def is_usable(self) -> bool:
        return self.is_valid and self.path is not None and self.checksum is not None


# --------------------------------------------------------------------------- selection


def training_selection(
    session: Session, datasets: Sequence[str], fingerprint: str | None = None
) -> TrainingSelection:
    """The train and val videos of `datasets` usable with one extractor, and those left out.

    Args:
        datasets: dataset names; only their `train` and `val` splits are read.
        fingerprint: the extractor to use (a unique prefix is enough); by default the one
            whose valid caches cover most eligible videos (ties: the smallest), among
            those that cover both splits of every dataset when any does.

    Raises:
        NotFound: a dataset is unknown (all unknown ones are named).
        InvalidInput: no valid cache at all, or none of the given fingerprint.
    """
    names, ids = _dataset_ids(session, datasets)
    videos = session.execute(
        _in_training_splits(
            select(
                Video.id,
                Dataset.name,
                Video.path,
                Video.label,
                Video.split,
                Video.is_present,
                Video.probe_status,
                Video.content_hash,
            ).join(Dataset, Dataset.id == Video.dataset_id),
            ids,
        ).order_by(Video.id)
    ).all()
    caches = _caches_by_video(session, ids)
    coverage = _coverage(videos, caches)
    if not coverage:
        raise InvalidInput(
            f"no valid feature cache in the train or val splits of {', '.join(names)}; "
            f"run `ddm extract --dataset {names[0]}` first"
        )
    complete = _complete_fingerprints(videos, caches, names)
    chosen = _choose_fingerprint(coverage, fingerprint, names, complete)
    picked: dict[str, list[MemberCandidate]] = {role: [] for role in ROLES}
    left_out = dict.fromkeys((reason.value for reason in LeftOut), 0)
    for video in videos:
        video_caches = caches.get(video.id, {})
        reason = _left_out_reason(video, video_caches, chosen)
        if reason is not None:
            left_out[reason.value] += 1
            continue
        cache = video_caches[chosen]
        assert cache.path is not None and cache.checksum is not None  # usable
        picked[video.split].append(
            MemberCandidate(
                video_id=video.id,
                dataset=video.name,
                path=video.path,
                label=video.label,
                cache_path=cache.path,
                cache_checksum=cache.checksum,
                content_hash=video.content_hash,
            )
        )
    return TrainingSelection(
        fingerprint=chosen,
        coverage=coverage,
        train=picked["train"],
        val=picked["val"],
        left_out=left_out,
    )


def _dataset_ids(session: Session, datasets: Sequence[str]) -> tuple[list[str], list[int]]:
    names = list(dict.fromkeys(datasets))
    if not names:
        raise InvalidInput("name at least one dataset to train on, e.g. --datasets ff")
    query = select(Dataset.name, Dataset.id).where(Dataset.name.in_(names))
    found = {name: dataset_id for name, dataset_id in session.execute(query)}
    unknown = [name for name in names if name not in found]
    if unknown:
        known = ", ".join(session.scalars(select(Dataset.name).order_by(Dataset.name)))
        raise NotFound(
            f"no dataset named {', '.join(repr(name) for name in unknown)} "
            f"(known: {known or 'none yet'}); run `ddm ingest PATH` first"
        )
    return names, [found[name] for name in names]


def _in_training_splits(query: Select[Any], dataset_ids: list[int]) -> Select[Any]:
    # The filter is in the query itself: test rows never leave the database.
    return query.where(Video.dataset_id.in_(dataset_ids), Video.split.in_(ROLES))


def _caches_by_video(session: Session, dataset_ids: list[int]) -> dict[int, dict[str, _Cache]]:
    query = _in_training_splits(
        select(
            FeatureCache.video_id,
            FeatureCache.fingerprint,
            FeatureCache.path,
            FeatureCache.checksum,
            FeatureCache.is_valid,
            FeatureCache.frames_sampled,
        ).join(Video, Video.id == FeatureCache.video_id),
        dataset_ids,
    )
    caches: dict[int, dict[str, _Cache]] = {}
    for video_id, fingerprint, path, checksum, is_valid, frames in session.execute(query):
        cache = _Cache(path, checksum, bool(is_valid), frames)
        caches.setdefault(video_id, {})[fingerprint] = cache
    return caches


def _is_eligible(video: Any) -> bool:
    return bool(
        video.is_present and video.probe_status == ProbeStatus.OK.value and video.label is not None
    )


def _coverage(videos: Sequence[Any], caches: dict[int, dict[str, _Cache]]) -> dict[str, int]:
    """Eligible videos with a valid cache, per fingerprint, the widest first."""
    counts = Counter(
        fingerprint
        for video in videos
        if _is_eligible(video)
        for fingerprint, cache in caches.get(video.id, {}).items()
        if cache.is_usable
    )
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _complete_fingerprints(
    videos: Sequence[Any], caches: dict[int, dict[str, _Cache]], names: list[str]
) -> set[str]:
    """The extractors with a valid cache in both the train and val split of every dataset."""
    covered: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for video in videos:
        if _is_eligible(video):
            for fingerprint, cache in caches.get(video.id, {}).items():
                if cache.is_usable:
                    covered[fingerprint].add((video.name, video.split))
    needed = {(name, role) for name in names for role in ROLES}
    return {fingerprint for fingerprint, parts in covered.items() if parts >= needed}


def _choose_fingerprint(
    coverage: dict[str, int], given: str | None, names: list[str], complete: set[str]
) -> str:
    if given is None:
        # The widest (ties: the smallest), preferring one that every dataset can train with.
        return next((fp for fp in coverage if fp in complete), next(iter(coverage)))
    if given in coverage:
        return given
    matches = [fingerprint for fingerprint in coverage if fingerprint.startswith(given)]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(fingerprint[:SHORT_FINGERPRINT] for fingerprint in sorted(coverage))
    problem = (
        f"fingerprint {given!r} is ambiguous"
        if matches
        else f"no valid feature cache of fingerprint {given!r} in the train or val splits "
        f"of {', '.join(names)}"
    )
    raise InvalidInput(f"{problem}; known fingerprints: {known}")


def _left_out_reason(video: Any, caches: dict[str, _Cache], chosen: str) -> LeftOut | None:
    if not video.is_present:
        return LeftOut.MISSING
    if video.probe_status != ProbeStatus.OK.value:
        return LeftOut.UNREADABLE
    if video.label is None:
        return LeftOut.UNLABELLED
    own = caches.get(chosen)
    if own is not None:
        return None if own.is_usable else LeftOut.INVALID_CACHE
    if any(cache.is_usable for cache in caches.values()):
        return LeftOut.OTHER_FINGERPRINT
    return LeftOut.NO_CACHE


def extractor_shares(session: Session, datasets: Sequence[str]) -> list[ExtractorShare]:
    """Per dataset, split and extractor: the eligible videos with a valid cache, and the
    frames per video that extractor samples. Sorted by dataset, split, then most videos.

    Raises:
        NotFound: a dataset is unknown.
    """
    _, ids = _dataset_ids(session, datasets)
    videos = session.execute(
        _in_training_splits(
            select(
                Video.id,
                Dataset.name,
                Video.split,
                Video.label,
                Video.is_present,
                Video.probe_status,
            ).join(Dataset, Dataset.id == Video.dataset_id),
            ids,
        )
    ).all()
    caches = _caches_by_video(session, ids)
    counts: Counter[tuple[str, str, str]] = Counter()
    frames: dict[str, Counter[int]] = defaultdict(Counter)
    for video in videos:
        if not _is_eligible(video):
            continue
        for fingerprint, cache in caches.get(video.id, {}).items():
            if cache.is_usable:
                counts[(video.name, video.split, fingerprint)] += 1
                if cache.frames is not None:
                    frames[fingerprint][cache.frames] += 1
    ordered = sorted(counts.items(), key=lambda item: (item[0][:2], -item[1], item[0][2]))
    return [
        ExtractorShare(name, role, fingerprint, count, _most_common(frames[fingerprint]))
        for (name, role, fingerprint), count in ordered
    ]


def _most_common(values: Counter[int]) -> int | None:
    return values.most_common(1)[0][0] if values else None


# --------------------------------------------------------------------------- runs


def to_record(row: Run) -> RunRecord:
    return RunRecord(
        id=row.id,
        name=row.name,
        datasets=list(row.datasets),
        config=row.config,
        fingerprint=row.fingerprint,
        status=row.status,
        job_id=row.job_id,
        best_epoch=row.best_epoch,
        checkpoint_path=row.checkpoint_path,
        run_dir=row.run_dir,
        last_state_path=row.last_state_path,
        train_videos=row.train_videos,
        val_videos=row.val_videos,
        error=row.error,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        checkpoint_sha256=row.checkpoint_sha256,
    )


def create_run(
    session: Session,
    *,
    name: str,
    datasets: Sequence[str],
    config: dict[str, Any],
    fingerprint: str,
    train: Sequence[MemberCandidate],
    val: Sequence[MemberCandidate],
) -> RunRecord:
    """Add a queued run and its frozen membership; the caller commits.

    Raises:
        AlreadyExists: a run already has that name.
        InvalidInput: the name is empty or too long, or a video is in both train and val.
    """
    if not name or len(name) > NAME_LENGTH:
        raise InvalidInput(f"a run name has 1 to {NAME_LENGTH} characters, not {len(name)}")
    both = {member.video_id for member in train} & {member.video_id for member in val}
    if both:
        raise InvalidInput(f"{len(both)} videos are in both train and val, e.g. {min(both)}")
    if session.scalars(select(Run.id).where(Run.name == name)).first() is not None:
        raise AlreadyExists(_name_taken(name))
    row = Run(
        name=name,
        datasets=list(datasets),
        config=config,
        fingerprint=fingerprint,
        status=JobStatus.QUEUED.value,
        train_videos=len(train),
        val_videos=len(val),
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        raise AlreadyExists(_name_taken(name)) from None  # created meanwhile by another
    members = [
        _member_row(row.id, role, member)
        for role, group in zip(ROLES, (train, val), strict=True)
        for member in group
    ]
    if members:
        session.execute(insert(RunMember), members)
    return to_record(row)


def _name_taken(name: str) -> str:
    return f"a run named {name!r} already exists; choose another --name or leave it out"


def _member_row(run_id: int, role: str, member: MemberCandidate) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "video_id": member.video_id,
        "role": role,
        "label": member.label,
        "cache_path": member.cache_path,
        "cache_checksum": member.cache_checksum,
        "content_hash": member.content_hash,
    }


def next_run_name(session: Session, datasets: Sequence[str]) -> str:
    """The first unused name `<a>+<b>-N`, N from 1: e.g. "ff+celebdf-1", then "-2"."""
    base = "+".join(dict.fromkeys(datasets))[: NAME_LENGTH - 8]
    taken = set(
        session.scalars(select(Run.name).where(Run.name.startswith(f"{base}-", autoescape=True)))
    )
    number = 1
    while f"{base}-{number}" in taken:
        number += 1
    return f"{base}-{number}"


def get_run(session: Session, run: int | str) -> RunRecord:
    """One run by id or by name (a name made of digits wins over the id it spells).

    Raises:
        NotFound: no run has that id or name.
    """
    return to_record(_find(session, run))


def list_runs(session: Session, *, limit: int = 50, status: str | None = None) -> list[RunRecord]:
    """The most recent runs first."""
    query = select(Run).order_by(Run.id.desc()).limit(limit)
    if status is not None:
        query = query.where(Run.status == status)
    return [to_record(row) for row in session.scalars(query)]


def set_run_job(session: Session, run_id: int, job_id: int) -> RunRecord:
    row = _find(session, run_id)
    row.job_id = job_id
    session.flush()
    return to_record(row)


def start_run(session: Session, run_id: int, run_dir: str) -> RunRecord:
    """Mark the run running in `run_dir`; a resumed run keeps its first start time."""
    row = _find(session, run_id)
    row.status = JobStatus.RUNNING.value
    row.run_dir = run_dir
    row.started_at = row.started_at or utcnow()
    session.flush()
    return to_record(row)


def record_resolved(session: Session, run_id: int, **resolved: str) -> RunRecord:
    """Record what the worker chose for the run's 'auto' settings (device, precision)
    under the config's "resolved" key: the plan says what was asked, this what ran."""
    row = _find(session, run_id)
    config = dict(row.config or {})
    config["resolved"] = {**config.get("resolved", {}), **resolved}
    row.config = config  # a new dict: the JSON column sees the change
    session.flush()
    return to_record(row)


def set_last_state(session: Session, run_id: int, path: str) -> RunRecord:
    """Where the full state of the last finished epoch is, to resume from."""
    row = _find(session, run_id)
    row.last_state_path = path
    session.flush()
    return to_record(row)


def finish_run(
    session: Session,
    run_id: int,
    status: str,
    *,
    best_epoch: int | None = None,
    checkpoint_path: str | None = None,
    error: str | None = None,
) -> RunRecord:
    """End the run with a final status; a best epoch or checkpoint not given is kept.

    A checkpoint given is recorded with its sha256, so that a file replaced later is
    recognised as not the run's (evaluations refuse it).

    Raises:
        NotFound: no such run.
        InvalidInput: `status` is not a final one.
    """
    if status not in FINISHED:
        raise InvalidInput(f"not a final status: {status!r} (one of {', '.join(FINISHED)})")
    row = _find(session, run_id)
    row.status, row.error, row.finished_at = status, error, utcnow()
    if best_epoch is not None:
        row.best_epoch = best_epoch
    if checkpoint_path is not None:
        row.checkpoint_path = checkpoint_path
        is_file = Path(checkpoint_path).is_file()
        row.checkpoint_sha256 = sha256_of(checkpoint_path) if is_file else None
    session.flush()
    return to_record(row)


def _find(session: Session, run: int | str) -> Run:
    row: Run | None = None
    if isinstance(run, str):
        row = session.scalars(select(Run).where(Run.name == run)).one_or_none()
        if row is None and run.isdigit():
            row = session.get(Run, int(run))
    else:
        row = session.get(Run, run)
    if row is None:
        raise NotFound(f"no run with id or name {run!r}; `ddm runs list` shows the known ones")
    return row


# --------------------------------------------------------------------------- epochs, members


def record_epoch(
    session: Session,
    run_id: int,
    epoch: int,
    *,
    train_loss: float | None,
    train_accuracy: float | None,
    val_loss: float | None,
    val_accuracy: float | None,
    learning_rate: float | None,
) -> EpochRecord:
    """Insert the epoch's metrics, or replace them: a resumed run may redo an epoch."""
    row = session.scalars(
        select(RunEpoch).where(RunEpoch.run_id == run_id, RunEpoch.epoch == epoch)
    ).one_or_none()
    if row is None:
        _find(session, run_id)
        row = RunEpoch(run_id=run_id, epoch=epoch)
        session.add(row)
    # float(): callers hand numpy or torch scalars, which database drivers may refuse.
    row.train_loss = _number(train_loss)
    row.train_accuracy = _number(train_accuracy)
    row.val_loss = _number(val_loss)
    row.val_accuracy = _number(val_accuracy)
    row.learning_rate = _number(learning_rate)
    session.flush()
    return _epoch_record(row)


def _number(value: float | None) -> float | None:
    return None if value is None else float(value)


def run_epochs(session: Session, run_id: int) -> list[EpochRecord]:
    """The run's per-epoch metrics in epoch order.

    Raises:
        NotFound: no such run.
    """
    _find(session, run_id)
    rows = session.scalars(
        select(RunEpoch).where(RunEpoch.run_id == run_id).order_by(RunEpoch.epoch)
    )
    return [_epoch_record(row) for row in rows]


def _epoch_record(row: RunEpoch) -> EpochRecord:
    return EpochRecord(
        epoch=row.epoch,
        train_loss=row.train_loss,
        train_accuracy=row.train_accuracy,
        val_loss=row.val_loss,
        val_accuracy=row.val_accuracy,
        learning_rate=row.learning_rate,
    )


def run_members(session: Session, run_id: int, role: str | None = None) -> list[MemberRecord]:
    """The run's frozen membership (of one role), in video id order.

    Raises:
        NotFound: no such run.
        InvalidInput: `role` is neither train nor val.
    """
    if role is not None and role not in ROLES:
        raise InvalidInput(f"no member role {role!r}: one of {', '.join(ROLES)}")
    _find(session, run_id)
    query = select(RunMember).where(RunMember.run_id == run_id).order_by(RunMember.video_id)
    if role is not None:
        query = query.where(RunMember.role == role)
    return [
        MemberRecord(
            video_id=row.video_id,
            role=row.role,
            label=row.label,
            cache_path=row.cache_path,
            cache_checksum=row.cache_checksum,
            content_hash=row.content_hash,
        )
        for row in session.scalars(query)
    ]


def membership_counts(session: Session, run_id: int) -> list[dict[str, Any]]:
    """How many videos a run trained (`train`) and validated (`val`) on, per dataset,
    role and label, from its frozen membership; by dataset, role and label.

    Raises:
        NotFound: no such run.
    """
    _find(session, run_id)
    query = (
        select(Dataset.name, RunMember.role, RunMember.label, func.count())
        .join(Video, Video.id == RunMember.video_id)
        .join(Dataset, Dataset.id == Video.dataset_id)
        .where(RunMember.run_id == run_id)
        .group_by(Dataset.name, RunMember.role, RunMember.label)
        .order_by(Dataset.name, RunMember.role, RunMember.label)
    )
    return [
        {"dataset": dataset, "role": role, "label": label, "videos": count}
        for dataset, role, label, count in session.execute(query)
    ]
