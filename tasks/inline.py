"""Run jobs in the calling process when no broker is configured (jobs layer).

The embedded default (SQLite, no broker) runs the very functions a Celery worker runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from ddm.catalog.jobs import cancel_job, requeue_stale_jobs
from ddm.config import Settings
from ddm.db import session_scope
from tasks.context import worker_name
from tasks.extraction import VideoOutcome, finish, run_extraction_job

logger = logging.getLogger(__name__)


def abandon_stale_jobs(settings: Settings, factory: sessionmaker[Session]) -> list[int]:
    """Fail jobs whose process stopped heartbeating (an earlier inline run that crashed).

    Without a broker nothing would ever run them again; their videos are planned afresh.
    """
    with session_scope(factory) as session:
        _, failed = requeue_stale_jobs(
            session, stale_after=timedelta(seconds=settings.stale_after_seconds), max_attempts=0
        )
    return failed


def run_inline(
    settings: Settings,
    factory: sessionmaker[Session],
    job_ids: list[int],
    on_video: Callable[[VideoOutcome], None] | None = None,
) -> dict[int, str]:
    """Run each extraction job here, in order; Ctrl-C cancels the job in progress."""
    worker = worker_name()
    statuses: dict[int, str] = {}
    for position, job_id in enumerate(job_ids):
        try:
            statuses[job_id] = run_extraction_job(job_id, settings, factory, worker, on_video)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                finish(factory, job_id, worker, "cancelled", error="interrupted")
            # Nothing would ever run the rest without a broker: say so on their rows.
            _cancel(factory, job_ids[position + 1 :], f"not run: {type(exc).__name__}")
            raise
    return statuses


def _cancel(factory: sessionmaker[Session], job_ids: list[int], reason: str) -> None:
    with session_scope(factory) as session:
        for job_id in job_ids:
            cancel_job(session, job_id, reason=reason)
