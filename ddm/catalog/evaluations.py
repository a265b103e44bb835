"""Evaluations and their per-video predictions: which videos a run is scored on, the
leakage guard, reuse, and the stored scores every reported number comes from (catalog
layer).

An evaluation scores one run on one dataset split with the run's own extractor. Its
`caches_digest` hashes every scored video's id, cache checksum and leak, so an evaluation
is reused exactly when run, dataset, split, caches and what the run saw are unchanged.
Each prediction keeps the detector's logit: metrics rank by it (`model.metrics`).
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from ddm.catalog.datasets import get_dataset
from ddm.catalog.latest_scores import keep_latest_scores
from ddm.catalog.leakage import MemberKeys, VideoKeys, keys_query
from ddm.catalog.models import Dataset, Evaluation, FeatureCache, Prediction, Video
from ddm.catalog.runs import SHORT_FINGERPRINT, get_run
from ddm.errors import InvalidInput, NotFound
from ddm.fs import sha256_of
from ddm.vocab import Label, Leak, ProbeStatus, Split

ALL_SPLITS = "all"
SPLIT_CHOICES = (*(split.value for split in Split), ALL_SPLITS)


# Not frozen, as `PredictionRecord` below: one is built per video of a selection, and a
# frozen one sets each field through object.__setattr__ (1.8 us against 0.4 us a record:
# 0.2 s of a DFDC selection's 115,000).
@dataclass(slots=True)
class EvalCandidate:
    """A video to score: labelled, readable, with a valid cache of the run's extractor."""

    video_id: int
    path: str
    label: str
    cache_path: str  # relative to the cache dir
    cache_checksum: str
    leak: Leak | None  # how the run saw the video (`catalog.leakage`); None: held out

    @property
    def is_leaked(self) -> bool:
        return self.leak is not None


@dataclass(frozen=True)
class EvaluationSelection:
    """What an evaluation of one run on one dataset split scores, and what it leaves out.

    `split` is the stored split (None: every video); `note` says why it differs from the
    one asked for, if it does.
    """

    run_id: int
    dataset: str
    dataset_id: int
    split: str | None
    fingerprint: str
    videos: list[EvalCandidate]
    left_out: dict[str, int]
    note: str | None
    checkpoint_sha256: str | None = None  # of the file that will score; part of the reuse key

    @functools.cached_property
    def caches_digest(self) -> str:
        lines = sorted(f"{v.video_id}:{v.cache_checksum}:{v.leak or ''}" for v in self.videos)
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()

    @property
    def leaked_videos(self) -> int:
        return sum(video.is_leaked for video in self.videos)

    @property
    def leaks(self) -> dict[str, int]:
        """Leaked videos per `Leak`, strongest first; absent kinds left out."""
        counts = {leak.value: 0 for leak in Leak}
        for video in self.videos:
            if video.leak is not None:
                counts[video.leak.value] += 1
        return {leak: n for leak, n in counts.items() if n}


@dataclass(frozen=True)
class EvaluationRecord:
    id: int
    run_id: int
    dataset: str
    split: str | None
    job_id: int | None
    fingerprint: str | None
    n_videos: int
    leaked_videos: int
    is_held_out: bool
    threshold: float | None
    left_out: dict[str, int] | None
    metrics: dict[str, Any]
    created_at: Any


# Not frozen: a frozen dataclass sets each field through object.__setattr__, and these
# are built by the 100,000 (a DFDC evaluation): 0.31 s against 0.03 s per 130,000.
@dataclass(slots=True)
class PredictionRecord:
    """One stored score, with the facts of its video the bias statistics break it down by."""

    evaluation_id: int
    video_id: int
    path: str
    label: str | None
    score: float
    logit: float | None  # None for predictions stored before logits were kept
    predicted_label: str
    is_leaked: bool
    leak: str | None
    method: str | None
    compression: str | None
    frame_count: int | None
    width: int | None
    height: int | None
    fallback_frames: int | None  # of the scored cache
    frame_sources: str | None
    cache_path: str | None


# --------------------------------------------------------------------------- selection


def resolve_split(session: Session, dataset: int, split: str | None) -> tuple[str | None, str]:
    """The stored split to evaluate and its name: `test` by default, or every video when
    the dataset has no test split (DFDC's training parts, for instance).

    Raises:
        InvalidInput: an unknown split, or an explicit one without videos.
    """
    if split is not None and split not in SPLIT_CHOICES:
        raise InvalidInput(f"no split {split!r}: one of {', '.join(SPLIT_CHOICES)}")
    if split == ALL_SPLITS:
        return None, ALL_SPLITS
    wanted = split or Split.TEST.value
    count = session.scalar(
        select(func.count(Video.id)).where(Video.dataset_id == dataset, Video.split == wanted)
    )
    if count:
        return wanted, wanted
    if split is None:
        return None, ALL_SPLITS
    raise InvalidInput(f"the dataset has no video in split {wanted!r}; try --split all")


def evaluation_selection(
    session: Session,
    run: int | str,
    dataset: str,
    split: str | None = None,
    *,
    member_keys: MemberKeys | None = None,
) -> EvaluationSelection:
    """The videos of `dataset` (one split, see `resolve_split`) that `run` can be scored on.

    `member_keys` shares the run members' keys between the selections of one plan.

    Raises:
        NotFound: an unknown run or dataset.
        InvalidInput: an unknown or empty split, or no valid cache of the run's extractor.
    """
    record = get_run(session, run)
    if not record.fingerprint:
        raise InvalidInput(f"run {record.id} has no extractor fingerprint; it cannot be scored")
    checkpoint = _checkpoint_sha256(record)
    ds_id = get_dataset(session, dataset).id
    stored, name = resolve_split(session, ds_id, split)
    note = None
    if split is None and stored is None:
        note = f"{dataset} has no test split: every video is evaluated"
    seen = (member_keys or MemberKeys(session)).seen_by_run(record.id, record.datasets)
    videos: list[EvalCandidate] = []
    left_out = dict.fromkeys(("missing", "unreadable", "unlabelled", "no valid cache"), 0)
    # Core rows read by position: by name, or through the ORM, DFDC's 128k cost seconds.
    query = _videos_with_cache(ds_id, stored, record.fingerprint)
    rows = session.connection().execute(query)
    for *keys, label, is_present, probe_status, cache_path, checksum in rows:
        reason = _left_out_reason(label, is_present, probe_status, cache_path, checksum)
        if reason is not None:
            left_out[reason] += 1
            continue
        video = VideoKeys(*keys)
        leak = seen.leak_of(video)
        videos.append(EvalCandidate(video.video_id, video.path, label, cache_path, checksum, leak))
    if not videos:
        raise InvalidInput(
            f"no video of {dataset} (split {name}) has a valid cache of run {record.id}'s "
            f"extractor {record.fingerprint[:SHORT_FINGERPRINT]}; run "
            f"`ddm extract --dataset {dataset}` with the same weights first"
        )
    return EvaluationSelection(
        record.id, dataset, ds_id, stored, record.fingerprint, videos, left_out, note, checkpoint
    )


def _checkpoint_sha256(run: Any) -> str | None:
    """The sha256 of the run's checkpoint as it is now (None when it is missing: the job
    says so when it would load it).

    Raises:
        InvalidInput: the file differs from the one training wrote, so it is not the run.
    """
    path = Path(run.checkpoint_path) if run.checkpoint_path else None
    if path is None or not path.is_file():
        return None
    now = sha256_of(path)
    if run.checkpoint_sha256 and now != run.checkpoint_sha256:
        raise InvalidInput(
            f"run {run.id}'s checkpoint {path} has changed since training (sha256 "
            f"{run.checkpoint_sha256[:12]}..., now {now[:12]}...): it is not the run's model; "
            "put the original back, or train a new run"
        )
    return now


def _videos_with_cache(dataset: int, split: str | None, fingerprint: str) -> Any:
    cache = (
        select(FeatureCache.video_id, FeatureCache.path, FeatureCache.checksum)
        .where(FeatureCache.fingerprint == fingerprint, FeatureCache.is_valid.is_(True))
        .subquery()
    )
    query = (
        keys_query()
        .add_columns(
            Video.label,
            Video.is_present,
            Video.probe_status,
            cache.c.path.label("cache_path"),
            cache.c.checksum,
        )
        .outerjoin(cache, cache.c.video_id == Video.id)
        .where(Video.dataset_id == dataset)
        .order_by(Video.id)
    )
    return query if split is None else query.where(Video.split == split)


def _left_out_reason(
    label: str | None,
    is_present: bool,
    probe_status: str,
    cache_path: str | None,
    checksum: str | None,
) -> str | None:
    if not is_present:
        return "missing"
    if probe_status != ProbeStatus.OK.value:
        return "unreadable"
    if label is None:
        return "unlabelled"
    if cache_path is None or checksum is None:
        return "no valid cache"
    return None


# --------------------------------------------------------------------------- storing


def find_evaluation(session: Session, selection: EvaluationSelection) -> EvaluationRecord | None:
    """The stored evaluation of the same run, dataset, split and caches, if any."""
    query = (
        select(Evaluation)
        .where(
            Evaluation.run_id == selection.run_id,
            Evaluation.dataset_id == selection.dataset_id,
            _split_is(selection.split),
            Evaluation.caches_digest == selection.caches_digest,
            _is(Evaluation.checkpoint_sha256, selection.checkpoint_sha256),
        )
        .order_by(Evaluation.id.desc())
    )
    row = session.scalars(query).first()
    return None if row is None else _to_record(row, selection.dataset)


def _split_is(split: str | None) -> Any:
    return _is(Evaluation.split, split)


def _is(column: Any, value: str | None) -> Any:
    return column.is_(None) if value is None else column == value


def record_evaluation(
    session: Session,
    selection: EvaluationSelection,
    logits: Sequence[float],
    scores: Sequence[float],
    *,
    threshold: float,
    metrics: dict[str, Any],
    job_id: int | None = None,
) -> EvaluationRecord:
    """Store one evaluation and a prediction per selected video (logits and the
    probabilities computed from them, in selection order), and make them the videos' latest
    scores unless a newer evaluation scored them (`keep_latest_scores`); the caller commits.

    A video is predicted fake when its logit >= logit(threshold), which is its score >=
    threshold wherever the score has not rounded.

    Raises:
        InvalidInput: not one logit and score per video, a logit that is not finite, or a
            score outside [0, 1].
    """
    if not len(logits) == len(scores) == len(selection.videos):
        raise InvalidInput(
            f"{len(logits)} logits and {len(scores)} scores for {len(selection.videos)} videos"
        )
    if not all(math.isfinite(float(logit)) for logit in logits):
        raise InvalidInput("a logit is not a finite number")
    if any(not 0.0 <= float(score) <= 1.0 for score in scores):
        raise InvalidInput("a score is not a probability in [0, 1]")
    cut = _logit_threshold(threshold)
    leaked = selection.leaked_videos
    row = Evaluation(
        run_id=selection.run_id,
        dataset_id=selection.dataset_id,
        split=selection.split,
        job_id=job_id,
        metrics=metrics,
        fingerprint=selection.fingerprint,
        caches_digest=selection.caches_digest,
        checkpoint_sha256=selection.checkpoint_sha256,
        n_videos=len(selection.videos),
        leaked_videos=leaked,
        is_held_out=leaked == 0,
        threshold=threshold,
        left_out=selection.left_out,
    )
    session.add(row)
    session.flush()
    session.execute(
        insert(Prediction),
        [
            {
                "evaluation_id": row.id,
                "video_id": video.video_id,
                "score": float(score),
                "logit": float(logit),
                "predicted_label": Label.FAKE.value if logit >= cut else Label.REAL.value,
                "label": video.label,
                "is_leaked": video.is_leaked,
                "leak": None if video.leak is None else video.leak.value,
            }
            for video, logit, score in zip(selection.videos, logits, scores, strict=True)
        ],
    )
    keep_latest_scores(session, row.id)
    return _to_record(row, selection.dataset)


def _logit_threshold(threshold: float) -> float:
    # The catalog never imports the model layer; this is model.metrics.logit_of.
    if threshold <= 0.0:
        return -math.inf
    if threshold >= 1.0:
        return math.inf
    return math.log(threshold) - math.log1p(-threshold)


# --------------------------------------------------------------------------- reading


def get_evaluation(session: Session, evaluation_id: int) -> EvaluationRecord:
    """Raises NotFound when there is no such evaluation."""
    row = session.get(Evaluation, evaluation_id)
    if row is None:
        raise NotFound(f"no evaluation {evaluation_id}")
    name = session.scalars(select(Dataset.name).where(Dataset.id == row.dataset_id)).one()
    return _to_record(row, name)


def latest_evaluations(
    session: Session, run_ids: Sequence[int] | None = None
) -> list[EvaluationRecord]:
    """The newest evaluation per (run, dataset, split), oldest run first."""
    query = (
        select(Evaluation, Dataset.name)
        .join(Dataset, Dataset.id == Evaluation.dataset_id)
        .order_by(Evaluation.id.desc())
    )
    if run_ids is not None:
        query = query.where(Evaluation.run_id.in_(list(run_ids)))
    newest: dict[tuple[int, str, str | None], EvaluationRecord] = {}
    for row, name in session.execute(query):
        newest.setdefault((row.run_id, name, row.split), _to_record(row, name))
    return sorted(newest.values(), key=lambda e: (e.run_id, e.dataset, e.split or ""))


def evaluation_predictions(session: Session, evaluation_id: int) -> list[PredictionRecord]:
    """The evaluation's stored scores, joined with the facts of each video and the cache
    that was scored, in video id order."""
    evaluation = session.get(Evaluation, evaluation_id)
    if evaluation is None:
        raise NotFound(f"no evaluation {evaluation_id}")
    cache = (
        select(
            FeatureCache.video_id,
            FeatureCache.fallback_frames,
            FeatureCache.frame_sources,
            FeatureCache.path,
        )
        .where(FeatureCache.fingerprint == (evaluation.fingerprint or ""))
        .subquery()
    )
    # Plain columns, not ORM objects: a DFDC evaluation has 128k rows. They are the
    # record's fields in its order, read by position through Core (by name, or through
    # the ORM's row handling, they cost more than the query).
    query = (
        select(
            Prediction.video_id,
            Video.path,
            Prediction.label,
            Prediction.score,
            Prediction.logit,
            Prediction.predicted_label,
            Prediction.is_leaked,
            Prediction.leak,
            Video.method,
            Video.compression,
            Video.frame_count,
            Video.width,
            Video.height,
            cache.c.fallback_frames,
            cache.c.frame_sources,
            cache.c.path.label("cache_path"),
        )
        .join(Video, Video.id == Prediction.video_id)
        .outerjoin(cache, cache.c.video_id == Prediction.video_id)
        .where(Prediction.evaluation_id == evaluation_id)
        .order_by(Prediction.video_id)
    )
    rows = session.connection().execute(query)
    return [PredictionRecord(evaluation_id, *row) for row in rows]


def _to_record(row: Evaluation, dataset: str) -> EvaluationRecord:
    return EvaluationRecord(
        id=row.id,
        run_id=row.run_id,
        dataset=dataset,
        split=row.split,
        job_id=row.job_id,
        fingerprint=row.fingerprint,
        n_videos=row.n_videos,
        leaked_videos=row.leaked_videos,
        is_held_out=bool(row.is_held_out),
        threshold=row.threshold,
        left_out=row.left_out,
        metrics=row.metrics or {},
        created_at=row.created_at,
    )
