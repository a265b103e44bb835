"""The life of every job, whatever its kind: claim, heartbeat, cancel check, finish (jobs layer).

`run_job` is what a Celery task and the inline executor call with a job id. It claims the
job with a conditional UPDATE (a second delivery is a no-op), beats while the kind's run
function works, stops it when the row says the job is no longer ours (cancelled, or handed
on after this worker was presumed dead), and records the outcome. The sweeper's side of
the same lifecycle, handing back jobs whose worker went silent, is `sweep_once`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from ddm.catalog import caches
from ddm.catalog.jobs import (
    claim_job,
    finish_job,
    get_job,
    requeue_stale_jobs,
    resume_job,
    unclaimed_jobs,
    unsent_jobs,
)
from ddm.config import Settings
from ddm.db import session_scope
from ddm.errors import DdmError
from ddm.vocab import JobStatus
from tasks.heartbeat import Heartbeat
from tasks.kinds import get_kind

logger = logging.getLogger(__name__)

SKIPPED = "skipped"
EventHook = Callable[[Any], None]


class JobLost(Exception):
    """Raised inside a run function when its job is no longer this worker's."""


@dataclass(frozen=True)
class JobOutcome:
    """What a run function returns: the final status, its result and an error line."""

    status: str
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass
class JobContext:
    """What a run function gets: its job's parameters, the catalog, and the lifecycle's hooks."""

    job_id: int
    params: dict[str, Any]
    settings: Settings
    factory: sessionmaker[Session]
    worker: str
    lost: threading.Event
    on_event: EventHook | None = None
    done: int = 0

    def check(self) -> None:
        """Stop here if the job was cancelled or handed to another worker.

        Raises:
            JobLost: the job is no longer ours; the lifecycle stops it cleanly.
        """
        if self.lost.is_set():
            raise JobLost

    def advance(self, event: Any = None, units: int = 1) -> None:
        """Count progress (reported by the next heartbeat) and tell the caller's hook."""
        self.done += units
        if self.on_event is not None and event is not None:
            self.on_event(event)


def run_job(
    job_id: int,
    settings: Settings,
    factory: sessionmaker[Session],
    worker: str,
    *,
    on_event: EventHook | None = None,
    resume_from: str | None = None,
    retryable: tuple[type[BaseException], ...] = (),
) -> str:
    """Run one job to the end; safe to call twice or concurrently for one job.

    Args:
        worker: who runs it, as the jobs table records it.
        on_event: called with each event the run function reports (inline progress).
        resume_from: the worker that held the job before a retry of this same task; the
            retry takes the job over instead of finding it running and skipping it.
        retryable: errors left to the caller's retry: the job stays running and is
            resumed by the retry (or handed back by the sweeper if no retry comes).

    Returns:
        The job's final status, or "skipped" when another worker holds it or it had
        already finished.
    """
    job = _claim(factory, job_id, worker, settings.max_attempts, resume_from)
    if job is None:
        return SKIPPED
    beat = Heartbeat(factory, job_id, worker, settings.heartbeat_seconds)
    context = JobContext(job_id, job.params, settings, factory, worker, beat.lost, on_event)
    beat.progress = lambda: context.done
    # The heartbeat starts before the run function builds anything heavy (networks take
    # long enough to build that a silent job would look dead to the sweeper).
    with beat:
        try:
            outcome = get_kind(job.kind).run_function()(context)
            context.check()
        except JobLost:
            return stop_lost(factory, job_id)
        except retryable:
            logger.warning("job_id=%s left running for a retry of its task", job_id)
            raise
        except BaseException as exc:
            _end_after(factory, job_id, worker, exc)
            raise
        beat.beat()
    finish(factory, job_id, worker, outcome.status, error=outcome.error, result=outcome.result)
    return outcome.status


def _claim(
    factory: sessionmaker[Session],
    job_id: int,
    worker: str,
    max_attempts: int,
    resume_from: str | None,
) -> Any:
    with session_scope(factory) as session:
        job = get_job(session, job_id)
        if resume_from and resume_job(session, job_id, resume_from, worker):
            logger.info("job_id=%s resumed on %s after a retry", job_id, worker)
            return job
        if job.status != JobStatus.QUEUED or not claim_job(session, job_id, worker, max_attempts):
            logger.info("job_id=%s is %s; nothing to do", job_id, job.status)
            return None
    logger.info("job_id=%s (%s) running on %s", job_id, job.kind, worker)
    return job


def _end_after(
    factory: sessionmaker[Session], job_id: int, worker: str, exc: BaseException
) -> None:
    """Record why a run function stopped with an error; never hides that error."""
    if isinstance(exc, KeyboardInterrupt):
        status, error = JobStatus.CANCELLED.value, "interrupted"
    else:
        status, error = JobStatus.FAILED.value, error_line(exc)
    try:
        finish(factory, job_id, worker, status, error=error)
    except DdmError as db_error:
        # The database is what failed, most likely: the sweeper will hand the job back.
        logger.warning("job_id=%s could not be marked %s: %s", job_id, status, db_error)


def error_line(exc: BaseException) -> str:
    """The one line a job (or its run) records for an error that stopped it."""
    # ddm's own errors are written for users; anything else is named by its type.
    text = str(exc) if isinstance(exc, DdmError) else f"{type(exc).__name__}: {exc}"
    return (text.strip() or type(exc).__name__).splitlines()[0]


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


def stop_lost(factory: sessionmaker[Session], job_id: int) -> str:
    """Stop a job that is no longer ours; a cancelled one gives its video leases back.

    A job handed to another worker keeps them: its leases belong to the job, which that
    worker is now running.
    """
    with session_scope(factory) as session:
        status = get_job(session, job_id).status
        if status == JobStatus.CANCELLED:
            caches.release_claims(session, job_id)
    logger.info("job_id=%s stopped here: it is %s", job_id, status)
    return status


# --------------------------------------------------------------------------- the sweeper's view


def sweep_once(
    settings: Settings,
    factory: sessionmaker[Session],
    send: Callable[[list[int]], None],
    queued_messages: Callable[[str], int],
) -> list[int]:
    """Send again every job nobody would otherwise ever run; return the ids sent.

    Those are running jobs whose worker went silent (handed back first), queued jobs that
    never reached the broker, and queued jobs the broker lost. A job sent long ago and
    still unclaimed is lost only when its queue is empty (`queued_messages(queue)` is 0):
    while messages wait there, it may be one of them, and sending it again at every sweep
    would pile copies up behind a long backlog.
    """
    stale_after = timedelta(seconds=settings.stale_after_seconds)
    with session_scope(factory) as session:
        requeued, failed = requeue_stale_jobs(
            session, stale_after=stale_after, max_attempts=settings.max_attempts
        )
        unsent = unsent_jobs(session, older_than=stale_after)
        unclaimed = unclaimed_jobs(
            session, sent_before=timedelta(seconds=settings.resend_after_seconds)
        )
    for job_id in failed:
        logger.warning(
            "job_id=%s failed: its worker was lost %d times", job_id, settings.max_attempts
        )
    lost = _lost_by_the_broker(unclaimed, queued_messages)
    to_send = sorted(set(requeued) | set(unsent) | set(lost))
    if to_send:
        logger.info("re-submitting jobs %s (worker lost, or message never sent or lost)", to_send)
        send(to_send)
    return to_send


def _lost_by_the_broker(
    unclaimed: list[tuple[int, str]], queued_messages: Callable[[str], int]
) -> list[int]:
    empty: dict[str, bool] = {}
    lost = []
    for job_id, kind_name in unclaimed:
        try:
            queue = get_kind(kind_name).queue
        except DdmError:
            continue  # a kind this process cannot route; a worker that knows it will
        if queue not in empty:
            empty[queue] = queued_messages(queue) == 0
        if empty[queue]:
            lost.append(job_id)
    return lost


def abandon_stale_jobs(settings: Settings, factory: sessionmaker[Session]) -> list[int]:
    """Fail jobs whose process stopped heartbeating (an earlier inline run that crashed).

    Without a broker nothing would ever run them again; their work is planned afresh.
    """
    with session_scope(factory) as session:
        _, failed = requeue_stale_jobs(
            session, stale_after=timedelta(seconds=settings.stale_after_seconds), max_attempts=0
        )
    return failed
