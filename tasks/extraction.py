"""Feature extraction jobs: plan them from the catalog, run one batch (jobs layer).

`plan_extraction` turns `ddm extract --dataset NAME` into job rows, one per batch of
videos. `run_extraction_job` is the plain function a Celery worker (or the CLI, inline)
calls with a job id: it claims the job, takes a lease on each video, writes each cache file
atomically and only then marks its row valid.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from ddm.catalog import caches
from ddm.catalog.datasets import get_dataset
from ddm.catalog.jobs import claim_job, create_job, finish_job, get_job
from ddm.catalog.models import JobKind, JobStatus
from ddm.config import Settings
from ddm.db import session_scope
from ddm.errors import DdmError, InvalidInput, SetupError
from ddm.fs import cache_path, remove_temporaries, sha256_of
from tasks.heartbeat import Heartbeat

logger = logging.getLogger(__name__)

# Random weights (tests, demos) must be the same in every process, or two workers would
# write different features under one fingerprint.
RANDOM_WEIGHTS_SEED = 0
MAX_REPORTED_FAILURES = 50


@dataclass(frozen=True)
class ExtractionPlan:
    """What `ddm extract` submitted."""

    dataset: str
    fingerprint: str
    random_weights: bool
    job_ids: list[int]
    videos: int


@dataclass
class VideoOutcome:
    """One video's result, reported to the caller's progress hook."""

    video_id: int
    path: str
    status: str  # extracted | failed | skipped
    seconds: float = 0.0
    fallback_frames: int | None = None
    error: str | None = None


@dataclass
class BatchResult:
    extracted: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)

    def add(self, outcome: VideoOutcome) -> None:
        setattr(self, outcome.status, getattr(self, outcome.status) + 1)
        if outcome.status == "failed" and len(self.failures) < MAX_REPORTED_FAILURES:
            self.failures.append(
                {"video_id": outcome.video_id, "path": outcome.path, "error": outcome.error}
            )

    @property
    def final_status(self) -> str:
        # A batch fails only when nothing in it could be extracted; otherwise the
        # failures are counted on the job and recorded on each video's cache row.
        every_one_failed = self.failed > 0 and self.extracted == 0 and self.skipped == 0
        return JobStatus.FAILED.value if every_one_failed else JobStatus.SUCCEEDED.value


# --------------------------------------------------------------------------- planning


def extractor_cfg(frames: int | None = None, **overrides: Any) -> Any:
    """The extractor configuration for a job (the seed's defaults, optionally overridden)."""
    from model.features import ExtractorCfg

    values = {"num_frames": frames, **overrides}
    return ExtractorCfg(**{k: v for k, v in values.items() if v is not None})


def fingerprint_for(cfg: Any, weights_dir: Path, allow_random: bool) -> str:
    """The fingerprint the extractor will have, without building the networks.

    Raises:
        SetupError: weights are missing and random weights were not allowed.
    """
    from model.errors import WeightsNotFound
    from model.features import CONTENT_MODEL, STYLE_MODEL, extractor_fingerprint
    from model.registry import get_cfg, resolve_weights
    from model.weights import sha256_file

    shas: dict[str, str | None] = {}
    missing = []
    for name in (STYLE_MODEL, CONTENT_MODEL):
        try:
            shas[name] = sha256_file(resolve_weights(name, weights_dir=weights_dir))
        except WeightsNotFound:
            shas[name] = None
            missing.append(get_cfg(name).weights_file)
    if missing and not allow_random:
        raise SetupError(
            f"missing pretrained weights {', '.join(missing)}: put them in {weights_dir} "
            "(DDM_WEIGHTS_DIR or --weights-dir), or pass --allow-random-weights for a test run"
        )
    return extractor_fingerprint(cfg, shas)


def plan_extraction(
    factory: sessionmaker[Session],
    settings: Settings,
    dataset: str,
    *,
    cfg: Any,
    weights_dir: Path,
    allow_random: bool = False,
    split: str | None = None,
    limit: int | None = None,
    force: bool = False,
) -> ExtractionPlan:
    """Create one queued job per batch of videos that lack a valid cache; commit them."""
    fingerprint = fingerprint_for(cfg, weights_dir, allow_random)
    with session_scope(factory) as session:
        get_dataset(session, dataset)
        video_ids = caches.videos_to_extract(
            session, dataset, fingerprint, split=split, limit=limit, force=force
        )
        base = {
            "dataset": dataset,
            "fingerprint": fingerprint,
            "extractor": dataclasses.asdict(cfg),
            "weights_dir": str(weights_dir),
            "allow_random_weights": allow_random,
            "force": force,
        }
        job_ids = [
            create_job(
                session, JobKind.EXTRACT.value, {**base, "video_ids": batch}, total=len(batch)
            ).id
            for batch in _batches(video_ids, settings.batch_size)
        ]
    return ExtractionPlan(
        dataset, fingerprint, fingerprint.startswith("random-"), job_ids, len(video_ids)
    )


def _batches(items: list[int], size: int) -> list[list[int]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


# --------------------------------------------------------------------------- running


def run_extraction_job(
    job_id: int,
    settings: Settings,
    factory: sessionmaker[Session],
    worker: str,
    on_video: Callable[[VideoOutcome], None] | None = None,
) -> str:
    """Run one extraction job to the end; safe to call twice or concurrently for one job.

    Returns:
        The job's status afterwards as seen by this call ("skipped" when another worker
        holds it or it had already finished).
    """
    with session_scope(factory) as session:
        job = get_job(session, job_id)
        if job.status != JobStatus.QUEUED.value:
            logger.info("job_id=%s is %s; nothing to do", job_id, job.status)
            return "skipped"
        if not claim_job(session, job_id, worker, settings.max_attempts):
            return "skipped"
    logger.info("job_id=%s running on %s", job_id, worker)
    params = job.params
    result = BatchResult()
    # The heartbeat starts before the networks are built: building them takes long
    # enough that a silent job would look dead to the sweeper.
    with Heartbeat(
        factory,
        job_id,
        worker,
        settings.heartbeat_seconds,
        lambda: result.extracted + result.failed + result.skipped,
    ) as beat:
        try:
            extractor = _extractor(params)
        except (DdmError, OSError, RuntimeError) as exc:
            finish(factory, job_id, worker, JobStatus.FAILED.value, error=str(exc))
            raise
        for video_id in params["video_ids"]:
            if beat.lost.is_set():
                return _stop_lost(factory, job_id)
            outcome = _one_video(factory, settings, extractor, params, job_id, video_id)
            result.add(outcome)
            if on_video:
                on_video(outcome)
        beat.beat()
    status = result.final_status
    error = f"all {result.failed} videos failed" if status == JobStatus.FAILED.value else None
    finish(factory, job_id, worker, status, error=error, result=dataclasses.asdict(result))
    return status


def _stop_lost(factory: sessionmaker[Session], job_id: int) -> str:
    """Stop a job that is no longer ours; a cancelled one gives its video leases back.

    A job handed to another worker keeps them: its leases belong to the job, which that
    worker is now running.
    """
    with session_scope(factory) as session:
        status = get_job(session, job_id).status
        if status == JobStatus.CANCELLED.value:
            caches.release_claims(session, job_id)
    logger.info("job_id=%s stopped here: it is %s", job_id, status)
    return status


def finish(
    factory: sessionmaker[Session], job_id: int, worker: str, status: str, **details: Any
) -> None:
    """End a job held by `worker` and release every video lease it still holds.

    A job that is no longer this worker's (handed on after it was presumed dead) is left
    alone, leases included: they now serve the worker running it.
    """
    with session_scope(factory) as session:
        if not finish_job(session, job_id, worker, status, **details):
            logger.info(
                "job_id=%s is no longer held by %s; not marking it %s", job_id, worker, status
            )
            return
        caches.release_claims(session, job_id)
    logger.info("job_id=%s %s", job_id, status)


def _one_video(
    factory: sessionmaker[Session],
    settings: Settings,
    extractor: Any,
    params: dict[str, Any],
    job_id: int,
    video_id: int,
) -> VideoOutcome:
    fingerprint = params["fingerprint"]
    stale = _lease_timeout(settings)
    with session_scope(factory) as session:
        video = caches.get_video_to_extract(session, video_id)
        if video is None or not caches.claim_video(
            session, video_id, fingerprint, job_id, stale_after=stale, force=params["force"]
        ):
            return VideoOutcome(video_id, video.path if video else "?", "skipped")
    start = time.perf_counter()
    try:
        facts = _extract_to_cache(extractor, video, fingerprint, settings.cache_dir)
    except (DdmError, OSError, RuntimeError, ValueError) as exc:
        seconds = time.perf_counter() - start
        error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        with session_scope(factory) as session:
            caches.record_failure(session, video_id, fingerprint, job_id, error, seconds)
        logger.warning("job_id=%s video_id=%s failed: %s", job_id, video_id, error)
        return VideoOutcome(video_id, video.path, "failed", seconds, error=error)
    with session_scope(factory) as session:
        caches.record_features(session, video_id, fingerprint, job_id, video.content_hash, facts)
    return VideoOutcome(video_id, video.path, "extracted", facts.seconds, facts.fallback_frames)


def _lease_timeout(settings: Settings) -> timedelta:
    # A lease outlives its holder's heartbeats by the same margin as the job itself.
    return timedelta(seconds=settings.stale_after_seconds)


def _extract_to_cache(
    extractor: Any, video: Any, fingerprint: str, cache_dir: Path | None
) -> caches.ExtractedFacts:
    from model.features import save_features

    assert cache_dir is not None  # filled in by Settings
    if not video.is_present:
        raise InvalidInput(f"{video.abs_path} is missing on disk; run `ddm ingest` again")
    target = cache_path(cache_dir, fingerprint, video.content_hash)
    remove_temporaries(target)  # leftovers of a worker killed mid-write; we hold the lease
    start = time.perf_counter()
    features = extractor.extract(video.abs_path)
    features["video_hash"] = video.content_hash
    save_features(target, features)
    frames = int(features["frame_indices"].numel())
    fallback = int(features["num_fallback"])
    return caches.ExtractedFacts(
        path=target.relative_to(cache_dir).as_posix(),
        checksum=sha256_of(target),
        bytes=target.stat().st_size,
        frames_sampled=frames,
        faces_detected=frames - fallback,
        fallback_frames=fallback,
        seconds=time.perf_counter() - start,
        video_frame_count=int(features["num_video_frames"]) or None,
    )


def _extractor(params: dict[str, Any]) -> Any:
    cfg = extractor_cfg(**params["extractor"])
    extractor = _build_extractor(cfg, params["weights_dir"], params["allow_random_weights"])
    if extractor.fingerprint != params["fingerprint"]:
        raise SetupError(
            f"the weights in {params['weights_dir']} changed since the job was submitted "
            f"(fingerprint {extractor.fingerprint[:12]}, job wants "
            f"{params['fingerprint'][:12]}); submit it again"
        )
    return extractor


@functools.lru_cache(maxsize=2)
def _build_extractor(cfg: Any, weights_dir: str, allow_random: bool) -> Any:
    import torch

    from model.features import build_extractor

    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_WEIGHTS_SEED)
        return build_extractor(
            cfg, weights_dir=weights_dir, allow_random_weights=allow_random, device=device
        )
