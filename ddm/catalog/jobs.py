"""Jobs: the source of truth for every extraction, training and evaluation (catalog layer).

State changes are conditional UPDATEs, so that two workers handed the same job (a task
delivered twice, a job re-submitted after its worker vanished) cannot both run it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ddm.catalog.models import Job, Run
from ddm.catalog.records import JobRecord
from ddm.catalog.types import utcnow
from ddm.errors import InvalidInput, NotFound
from ddm.vocab import ACTIVE_JOB_STATUSES, FINISHED_JOB_STATUSES, JobStatus

ACTIVE = tuple(status.value for status in ACTIVE_JOB_STATUSES)
FINISHED = tuple(status.value for status in FINISHED_JOB_STATUSES)


def to_record(row: Job) -> JobRecord:
    return JobRecord(
        id=row.id,
        kind=row.kind,
        status=row.status,
        params=row.params,
        attempts=row.attempts,
        celery_task_id=row.celery_task_id,
        worker=row.worker,
        heartbeat_at=row.heartbeat_at,
        progress_done=row.progress_done,
        progress_total=row.progress_total,
        error=row.error,
        result=row.result,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


def create_job(session: Session, kind: str, params: dict[str, Any], total: int = 0) -> JobRecord:
    """Add a queued job; the caller commits before enqueueing it."""
    row = Job(kind=kind, params=params, status=JobStatus.QUEUED.value, progress_total=total)
    session.add(row)
    session.flush()
    return to_record(row)


def get_job(session: Session, job_id: int) -> JobRecord:
    """One job by id.

    Raises:
        NotFound: no job has that id.
    """
    row = session.get(Job, job_id)
    if row is None:
        raise NotFound(f"no job with id {job_id}; `ddm jobs list` shows the known ones")
    return to_record(row)


def list_jobs(
    session: Session, *, status: str | None = None, kind: str | None = None, limit: int = 50
) -> list[JobRecord]:
    """The most recent jobs first."""
    query = select(Job).order_by(Job.id.desc()).limit(limit)
    if status is not None:
        query = query.where(Job.status == status)
    if kind is not None:
        query = query.where(Job.kind == kind)
    return [to_record(row) for row in session.scalars(query)]


def latest_job_params(session: Session, kind: str, **match: Any) -> dict[str, Any] | None:
    """The parameters of the newest job of `kind` whose parameters contain `match`, e.g.
    the extract job that defined an extractor fingerprint."""
    query = select(Job.params).where(Job.kind == kind).order_by(Job.id.desc())
    for params in session.scalars(query):
        if all(params.get(key) == value for key, value in match.items()):
            return dict(params)
    return None


def set_task_id(session: Session, job_id: int, task_id: str) -> None:
    session.execute(update(Job).where(Job.id == job_id).values(celery_task_id=task_id))


def claim_job(session: Session, job_id: int, worker: str, max_attempts: int) -> bool:
    """Move a queued job to running for `worker`; False when someone else has it or it is done.

    The WHERE clause is the lock: of two concurrent claims, exactly one updates a row.
    """
    now = utcnow()
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.QUEUED.value, Job.attempts < max_attempts)
        .values(
            status=JobStatus.RUNNING.value,
            worker=worker,
            attempts=Job.attempts + 1,
            heartbeat_at=now,
            started_at=now,
            error=None,
        )
    )
    return result.rowcount == 1


def resume_job(session: Session, job_id: int, previous: str, worker: str) -> bool:
    """Hand a job still running under `previous` to `worker`: a retry of the same task.

    A task retried after a transient error finds its own job running; without this it
    would skip the job and leave it to the sweeper. Attempts count lost workers, not
    retries, so they stay as they are.
    """
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.RUNNING.value, Job.worker == previous)
        .values(worker=worker, heartbeat_at=utcnow())
    )
    return result.rowcount == 1


def heartbeat(session: Session, job_id: int, worker: str, done: int | None = None) -> bool:
    """Record that `worker` is alive on the job; False when the job is no longer its own
    (cancelled, or handed to another worker after this one was presumed dead)."""
    values: dict[str, Any] = {"heartbeat_at": utcnow()}
    if done is not None:
        values["progress_done"] = done
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.worker == worker, Job.status == JobStatus.RUNNING.value)
        .values(**values)
    )
    return result.rowcount == 1


def finish_job(
    session: Session,
    job_id: int,
    worker: str,
    status: str,
    *,
    error: str | None = None,
    result: dict[str, Any] | None = None,
) -> bool:
    """End a running job held by `worker`; False when it was not (cancelled meanwhile)."""
    if status not in FINISHED:
        raise ValueError(f"not a final status: {status}")
    outcome = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.worker == worker, Job.status == JobStatus.RUNNING.value)
        .values(status=status, error=error, result=result or {}, finished_at=utcnow())
    )
    if outcome.rowcount != 1:
        return False
    _end_runs_of(session, [job_id], status, error)
    return True


def cancel_job(
    session: Session, job_id: int, *, reason: str = JobStatus.CANCELLED.value
) -> JobRecord:
    """Cancel a queued or running job; a running one stops at its next heartbeat.

    Raises:
        NotFound: no such job.
        InvalidInput: the job has already finished.
    """
    job = get_job(session, job_id)
    if job.status in FINISHED:
        raise InvalidInput(f"job {job_id} has already finished ({job.status})")
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(ACTIVE))
        .values(status=JobStatus.CANCELLED.value, finished_at=utcnow(), error=reason)
    )
    _end_runs_of(session, [job_id], JobStatus.CANCELLED.value, reason)
    return get_job(session, job_id)


def requeue_stale_jobs(
    session: Session, *, stale_after: timedelta, max_attempts: int, now: datetime | None = None
) -> tuple[list[int], list[int]]:
    """Hand back running jobs whose worker stopped sending heartbeats.

    Returns:
        (requeued ids, failed ids): a job that has used up its attempts fails instead,
        so a video that kills its worker every time cannot loop forever.
    """
    cutoff = (now or utcnow()) - stale_after
    stale = session.scalars(
        select(Job)
        .where(Job.status == JobStatus.RUNNING.value, Job.heartbeat_at < cutoff)
        .with_for_update(skip_locked=True)
    ).all()
    requeued, failed = [], []
    for job in stale:
        lost = f"worker {job.worker} stopped sending heartbeats"
        if job.attempts >= max_attempts:
            job.status, job.error, job.finished_at = JobStatus.FAILED.value, lost, utcnow()
            failed.append(job.id)
            _end_runs_of(session, [job.id], JobStatus.FAILED.value, lost)
        else:
            job.status, job.worker, job.error = JobStatus.QUEUED.value, None, lost
            requeued.append(job.id)
    session.flush()
    return requeued, failed


def _end_runs_of(session: Session, job_ids: list[int], status: str, error: str | None) -> None:
    """A run's status follows its job's: every path that ends a job (its own run function,
    a cancel, the sweeper, an inline run abandoning a dead one) ends the job's unfinished
    run here with it. A run its job already finished (with its best epoch) is left alone."""
    session.execute(
        update(Run)
        .where(Run.job_id.in_(job_ids), Run.status.not_in(FINISHED))
        .values(status=status, error=error, finished_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def unsent_jobs(session: Session, *, older_than: timedelta) -> list[int]:
    """Queued jobs that never reached the broker (the process died between commit and send)."""
    cutoff = utcnow() - older_than
    query = select(Job.id).where(
        Job.status == JobStatus.QUEUED.value,
        Job.celery_task_id.is_(None),
        Job.created_at < cutoff,
    )
    return list(session.scalars(query.order_by(Job.id)))


def unclaimed_jobs(session: Session, *, sent_before: timedelta) -> list[tuple[int, str]]:
    """(id, kind) of queued jobs sent longer than `sent_before` ago that nobody claimed.

    Either they wait their turn behind others, or the broker lost them (a Redis restart
    without persistence, a flushed or purged queue); only the broker can tell which. A
    queued job's row changes only when it is sent or handed back, so `updated_at` is
    when that last happened.
    """
    cutoff = utcnow() - sent_before
    query = select(Job.id, Job.kind).where(
        Job.status == JobStatus.QUEUED.value,
        Job.celery_task_id.is_not(None),
        Job.updated_at < cutoff,
    )
    return [(job_id, kind) for job_id, kind in session.execute(query.order_by(Job.id))]
