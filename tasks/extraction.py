"""Feature extraction jobs: plan them from the catalog, run one batch (jobs layer).

`extract_dataset` is `ddm extract`: `plan_extraction` turns it into job rows, one per batch
of videos, and `dispatch` runs them here or sends them to the workers. `run_extraction` is
the `extract` kind's run function (tasks/kinds.py), called by the shared job lifecycle:
it takes a lease on each video, writes each cache file atomically and only then marks its
row valid.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from ddm.catalog import caches
from ddm.catalog.datasets import get_dataset
from ddm.catalog.jobs import create_job
from ddm.config import Settings
from ddm.db import session_scope
from ddm.errors import DdmError, InvalidInput, SetupError
from ddm.fs import cache_path, check_writable_dir, remove_temporaries, sha256_of
from ddm.vocab import JobStatus
from ddm.vocab import VideoOutcomeStatus as Outcome
from tasks.devices import as_device_fault
from tasks.dispatch import Dispatched, dispatch
from tasks.kinds import EXTRACT
from tasks.lifecycle import JobContext, JobOutcome, abandon_stale_jobs

logger = logging.getLogger(__name__)

# Random weights (tests, demos) must be the same in every process, or two workers would
# write different features under one fingerprint.
RANDOM_WEIGHTS_SEED = 0
MAX_REPORTED_FAILURES = 50
CPU_BATCH, GPU_BATCH = 8, 64  # frames (style) or clips (content) per forward pass


@dataclass(frozen=True)
class ExtractionPlan:
    """What `ddm extract` submitted."""

    dataset: str
    fingerprint: str
    random_weights: bool
    job_ids: list[int]
    videos: int
    # Videos left out because another live job holds their lease (caches.LeasedVideo).
    leased: list[caches.LeasedVideo] = field(default_factory=list)


@dataclass
class VideoOutcome:
    """One video's result, reported to the caller's progress hook."""

    video_id: int
    path: str
    status: str  # a VideoOutcomeStatus
    seconds: float = 0.0
    fallback_frames: int | None = None
    error: str | None = None
    reason: str | None = None  # why a video was skipped or reused


@dataclass
class BatchResult:
    extracted: int = 0
    reused: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)

    def add(self, outcome: VideoOutcome) -> None:
        setattr(self, outcome.status, getattr(self, outcome.status) + 1)
        if outcome.status == Outcome.FAILED and len(self.failures) < MAX_REPORTED_FAILURES:
            self.failures.append(
                {"video_id": outcome.video_id, "path": outcome.path, "error": outcome.error}
            )

    @property
    def final_status(self) -> str:
        # A batch fails only when nothing in it could be extracted; otherwise the
        # failures are counted on the job and recorded on each video's cache row.
        done = self.extracted + self.reused + self.skipped
        every_one_failed = self.failed > 0 and done == 0
        return JobStatus.FAILED.value if every_one_failed else JobStatus.SUCCEEDED.value


# --------------------------------------------------------------------------- planning


# `ddm extract --backbones`: the published networks, or CPU-sized variants of both (no
# published weights; `ddm demo` runs them with random weights, at smaller input sizes).
BACKBONES: dict[str, dict[str, Any]] = {
    "full": {},
    "small": {
        "style_model": "psp_encoder_small",
        "content_model": "slow_r50_small",
        "face_size": 128,
        "content_size": 56,
    },
}


def extractor_cfg(frames: int | None = None, backbones: str = "full", **overrides: Any) -> Any:
    """The extractor configuration for a job (the seed's defaults, optionally overridden).

    Raises:
        InvalidInput: an unknown `backbones` preset.
    """
    from model.features import ExtractorCfg

    if backbones not in BACKBONES:
        raise InvalidInput(f"no backbones {backbones!r}: one of {', '.join(BACKBONES)}")
    values = {"num_frames": frames, **BACKBONES[backbones], **overrides}
    try:
        return ExtractorCfg(**{k: v for k, v in values.items() if v is not None})
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


def fingerprint_for(cfg: Any, weights_dir: Path, allow_random: bool) -> str:
    """The fingerprint the extractor will have, without building the networks.

    Raises:
        SetupError: weights are missing and random weights were not allowed.
    """
    from model.errors import WeightsNotFound
    from model.features import extractor_fingerprint
    from model.registry import get_cfg, resolve_weights
    from model.weights import sha256_file

    shas: dict[str, str | None] = {}
    missing = []
    for name in (cfg.style_model, cfg.content_model):
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
    stale_after = _lease_timeout(settings)
    with session_scope(factory) as session:
        get_dataset(session, dataset)
        videos = caches.videos_to_extract(
            session,
            dataset,
            fingerprint,
            stale_after=stale_after,
            split=split,
            limit=limit,
            force=force,
        )
        leased = caches.leased_videos(
            session, dataset, fingerprint, stale_after=stale_after, split=split
        )
        base = {
            "dataset": dataset,
            "fingerprint": fingerprint,
            "extractor": dataclasses.asdict(cfg),
            "allow_random_weights": allow_random,
            "force": force,
        }
        job_ids = [
            create_job(session, EXTRACT.name, {**base, "video_ids": batch}, total=len(batch)).id
            for batch in _batches(videos, settings.batch_size)
        ]
    random_weights = fingerprint.startswith("random-")
    return ExtractionPlan(dataset, fingerprint, random_weights, job_ids, len(videos), leased)


def _batches(videos: list[tuple[int, str]], size: int) -> list[list[int]]:
    """Batches of about `size` video ids; videos of identical content share a batch, so the
    first is extracted and the others recorded against its file (never two at once)."""
    twins: dict[str, list[int]] = {}
    for video_id, content_hash in videos:
        twins.setdefault(content_hash, []).append(video_id)
    batches: list[list[int]] = [[]]
    for group in twins.values():
        if batches[-1] and len(batches[-1]) + len(group) > size:
            batches.append([])
        batches[-1].extend(group)
    return [batch for batch in batches if batch]


# --------------------------------------------------------------------------- `ddm extract`


@dataclass(frozen=True)
class ExtractionRun:
    """What `ddm extract` did: the plan, and the jobs run here or sent to the workers."""

    plan: ExtractionPlan
    dispatched: Dispatched


def extract_dataset(
    settings: Settings,
    factory: sessionmaker[Session],
    dataset: str,
    *,
    frames: int | None = None,
    backbones: str = "full",
    precision: str | None = None,
    split: str | None = None,
    limit: int | None = None,
    force: bool = False,
    weights_dir: Path | None = None,
    allow_random: bool = False,
    on_plan: Callable[[ExtractionPlan], None] | None = None,
    on_video: Callable[[VideoOutcome], None] | None = None,
) -> ExtractionRun:
    """Plan the extraction of every video of `dataset` lacking a valid cache, and run it.

    Without a broker the jobs run here (`on_video` hears of each video); with one they are
    sent to the workers, each of which reads the weights from its own `DDM_WEIGHTS_DIR`.
    `on_plan` hears of the plan before any job runs.

    Raises:
        NotFound: no such dataset.
        SetupError: weights are missing and random weights were not allowed, or the
            broker cannot be reached (the jobs stay queued).
    """
    if weights_dir is not None:
        settings = settings.model_copy(update={"weights_dir": weights_dir})
    plan = plan_extraction(
        factory,
        settings,
        dataset,
        cfg=extractor_cfg(frames, backbones, precision=precision),
        weights_dir=settings.weights_dir,
        allow_random=allow_random,
        split=split,
        limit=limit,
        force=force,
    )
    if not settings.broker:
        # After planning, not before: a process killed in between must not leave a failed
        # job whose videos no plan covers (a worker's sweeper would have handed it on).
        abandon_stale_jobs(settings, factory)
    if on_plan is not None:
        on_plan(plan)
    return ExtractionRun(plan, dispatch(settings, factory, plan.job_ids, on_video))


# --------------------------------------------------------------------------- running


def run_extraction(context: JobContext) -> JobOutcome:
    """The `extract` kind: extract every video of the job's batch into the cache."""
    params, result = context.params, BatchResult()
    # Fail in a second, not after the first video's extraction, when nothing can be written.
    check_writable_dir(context.settings.cache_dir, "DDM_CACHE_DIR")
    extractor = extractor_for(params, context.settings.weights_dir)
    # Kept compiled by the process's extractor for its later jobs.
    compile_as_set(extractor, context.settings.compile, videos=len(params["video_ids"]))
    with _prefetcher(context, extractor) as prefetcher:
        for video_id in params["video_ids"]:
            context.check()
            outcome = _one_video(context, extractor, video_id, prefetcher)
            result.add(outcome)
            context.advance(outcome)
    status = result.final_status
    error = f"all {result.failed} videos failed" if status == JobStatus.FAILED else None
    return JobOutcome(status, dataclasses.asdict(result), error)


# DDM_COMPILE=auto compiles the full-size style network in bf16 on a CPU for jobs of at
# least this many videos. Measured on a 2-core CPU with AMX (bench/compile_style.py), the
# style stage of a video: bf16 1.2x to 1.36x faster compiled, fp32 no faster (0.92x to
# 1.07x), the CPU-sized network no faster either; the first batch pays about 6 to 60 s of
# compilation. No GPU has measured it yet, so a GPU compiles only with DDM_COMPILE=on.
COMPILE_MIN_VIDEOS = 8


def compile_as_set(extractor: Any, mode: str, videos: int) -> None:
    """Compile `extractor`'s style network if DDM_COMPILE (`mode`) says so for `videos`."""
    if compiles_style(mode, extractor.cfg, extractor.device, videos) and extractor.compile_style():
        logger.info("style network compiled (DDM_COMPILE=%s) from its next batch", mode)


def compiles_style(mode: str, cfg: Any, device: Any, videos: int) -> bool:
    """Whether a job of `videos` videos compiles the style network of extractor `cfg` on
    `device`, per DDM_COMPILE: "on", "off", or "auto": the full-size network in bf16 on a
    CPU, in jobs of at least COMPILE_MIN_VIDEOS videos, where a C++ compiler is found."""
    from model.compiled import compile_backend_available
    from model.features import STYLE_MODEL
    from model.precision import BF16

    if mode != "auto":
        return mode == "on"
    measured = device.type == "cpu" and cfg.style_model == STYLE_MODEL and cfg.precision == BF16
    return measured and videos >= COMPILE_MIN_VIDEOS and compile_backend_available(device)


def _prefetcher(context: JobContext, extractor: Any) -> Any:
    """Decodes the batch's videos ahead of the networks (model.prefetch), in job order."""
    from model.prefetch import FramePrefetcher

    workers = decode_workers(context.settings, extractor.device.type == "cuda")
    prefetcher = FramePrefetcher(extractor.cfg.num_frames, workers=workers, ahead=workers)
    if workers:  # without threads each video is decoded when taken: nothing to look up
        with session_scope(context.factory) as session:
            ids = context.params["video_ids"]
            videos = [caches.get_video_to_extract(session, i) for i in ids]
        prefetcher.schedule(video.abs_path for video in videos if video and video.is_present)
    return prefetcher


def decode_workers(settings: Settings, is_gpu: bool) -> int:
    """Decoding threads per extraction job: DDM_DECODE_WORKERS, else none beside a CPU
    extractor and up to 8 beside a GPU, whose networks are faster than one core decodes.

    A CPU extractor keeps every core busy itself: on 2 cores a decoding thread beside it
    took 2.2 s of waiting off each video and added as much to face detection, which
    shares the cores (bench/README.md)."""
    if settings.decode_workers is not None:
        return settings.decode_workers
    cores = os.cpu_count() or 1
    return max(1, min(8, cores - 1)) if is_gpu else 0


def _one_video(context: JobContext, extractor: Any, video_id: int, prefetcher: Any) -> VideoOutcome:
    factory, params, job_id = context.factory, context.params, context.job_id
    fingerprint = params["fingerprint"]
    stale = _lease_timeout(context.settings)
    with session_scope(factory) as session:
        video = caches.get_video_to_extract(session, video_id)
        if video is None:
            return VideoOutcome(video_id, "?", Outcome.SKIPPED, reason="gone from the catalog")
        if not caches.claim_video(
            session, video_id, fingerprint, job_id, stale_after=stale, force=params["force"]
        ):
            reason = _why_not_claimed(session, video_id, fingerprint, stale)
            return VideoOutcome(video_id, video.path, Outcome.SKIPPED, reason=reason)
        twin = None if params["force"] else _twin(session, context, video, fingerprint)
        if twin is not None:
            caches.record_features(session, video_id, fingerprint, job_id, video.content_hash, twin)
            return VideoOutcome(
                video_id,
                video.path,
                Outcome.REUSED,
                0.0,
                twin.fallback_frames,
                reason="identical content already cached",
            )
    start = time.perf_counter()
    _audit(context, video_id, "started")
    try:
        facts = _extract_to_cache(
            extractor, video, fingerprint, context.settings.cache_dir, prefetcher
        )
    except (DdmError, OSError, RuntimeError, ValueError) as exc:
        _audit(context, video_id, "ended")
        fault = as_device_fault(exc)
        if fault is not None:  # the device broke, not the video: the task is retried
            raise fault from exc
        seconds = time.perf_counter() - start
        error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        with session_scope(factory) as session:
            caches.record_failure(session, video_id, fingerprint, job_id, error, seconds)
        logger.warning("job_id=%s video_id=%s failed: %s", job_id, video_id, error)
        return VideoOutcome(video_id, video.path, Outcome.FAILED, seconds, error=error)
    _audit(context, video_id, "ended")
    with session_scope(factory) as session:
        caches.record_features(session, video_id, fingerprint, job_id, video.content_hash, facts)
    return VideoOutcome(
        video_id, video.path, Outcome.EXTRACTED, facts.seconds, facts.fallback_frames
    )


def _audit(context: JobContext, video_id: int, event: str) -> None:
    # Wall-clock times in the message itself, so that the logs of several processes (workers
    # and inline runs, whatever their log format) show whether two extractions ever overlap.
    logger.debug(
        "job_id=%s video_id=%s extraction %s worker=%s at=%.3f",
        context.job_id,
        video_id,
        event,
        context.worker,
        time.time(),
    )


def _why_not_claimed(session: Session, video_id: int, fingerprint: str, stale: timedelta) -> str:
    row = caches.cache_entry(session, video_id, fingerprint)
    if row is not None and row.claimed_by_job_id is not None:
        expires = row.claimed_at + stale if row.claimed_at else None
        when = f"; retried after {expires:%Y-%m-%d %H:%M:%S} UTC if it" if expires else "; if it"
        return f"being extracted by job {row.claimed_by_job_id}{when} has not finished it"
    return "already extracted by another job"


def _twin(
    session: Session, context: JobContext, video: Any, fingerprint: str
) -> caches.ExtractedFacts | None:
    """A valid cache of identical content whose file is in place, to record for this video."""
    if video.content_hash is None:
        return None
    twin = caches.valid_twin(session, fingerprint, video.content_hash, video.id)
    cache_dir = context.settings.cache_dir
    if twin is None or cache_dir is None or not (cache_dir / twin.path).is_file():
        return None
    return twin


def _lease_timeout(settings: Settings) -> timedelta:
    # A lease outlives its holder's heartbeats by the same margin as the job itself.
    return timedelta(seconds=settings.stale_after_seconds)


def _extract_to_cache(
    extractor: Any, video: Any, fingerprint: str, cache_dir: Path | None, prefetcher: Any
) -> caches.ExtractedFacts:
    from model.features import save_features

    assert cache_dir is not None  # filled in by Settings
    if not video.is_present:
        raise InvalidInput(f"{video.abs_path} is missing on disk; run `ddm ingest` again")
    target = cache_path(cache_dir, fingerprint, video.content_hash)
    remove_temporaries(target)  # leftovers of a worker killed mid-write; we hold the lease
    start = time.perf_counter()
    features = extractor.extract(video.abs_path, prefetcher.take(video.abs_path))
    features["video_hash"] = video.content_hash
    save_features(target, features)
    frames = int(features["frame_indices"].numel())
    fallback = int(features["num_fallback"])
    sources = frame_source_letters(features)
    return caches.ExtractedFacts(
        path=target.relative_to(cache_dir).as_posix(),
        checksum=sha256_of(target),
        bytes=target.stat().st_size,
        frames_sampled=frames,
        faces_detected=frames - fallback,
        fallback_frames=fallback,
        seconds=time.perf_counter() - start,
        interpolated_frames=int(features["num_interpolated"]),
        frame_sources=sources,
    )


def frame_source_letters(features: dict[str, Any]) -> str | None:
    """Each sampled frame's box source as one letter: d(etected), i(nterpolated), f(allback);
    None for features saved before the sources were recorded."""
    names, codes = features.get("frame_source_names"), features.get("frame_source")
    if names is None or codes is None:
        return None
    return source_letters(codes, names)


def source_letters(codes: Any, names: Any = None) -> str:
    """Box source codes as letters (see `frame_source_letters`); `names` default to the
    face pipeline's `model.tracking.FRAME_SOURCES`."""
    if names is None:
        from model.tracking import FRAME_SOURCES

        names = FRAME_SOURCES
    return "".join(names[int(code)][0] for code in codes)


def extractor_for(params: dict[str, Any], weights_dir: Path | None) -> Any:
    """The job's extractor, from this machine's weights; they must give the job's fingerprint."""
    cfg = extractor_cfg(**params["extractor"])
    extractor = _build_extractor(cfg, str(weights_dir), params["allow_random_weights"])
    if extractor.fingerprint != params["fingerprint"]:
        raise SetupError(
            f"the weights in {weights_dir} give extractor {extractor.fingerprint[:19]}, but "
            f"the job was planned for {params['fingerprint'][:19]}: give every worker the "
            "same weights files (DDM_WEIGHTS_DIR), or submit the job again"
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
            cfg,
            weights_dir=weights_dir,
            allow_random_weights=allow_random,
            device=device,
            # A GPU takes a whole video's frames in one pass; a CPU gains nothing past 8.
            batch_size=GPU_BATCH if device == "cuda" else CPU_BATCH,
        )
