"""The Celery application, built from settings, with one task per job kind (jobs layer).

JSON only, ids only in payloads, results ignored (the jobs table is the source of truth),
acknowledged late with one task reserved at a time, each kind routed to its queue
(tasks/kinds.py). Task events are on, so Flower and `celery events` can follow the work.
The broker is Redis: see README.md, "Jobs and workers", for why and for how a job whose
worker was killed comes back within seconds rather than after Redis's visibility timeout.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from celery import Celery, signals

from ddm.config import Settings, load_settings, quiet_native_logging
from ddm.errors import TransientDbError
from tasks.devices import DeviceFault
from tasks.kinds import DEFAULT_QUEUE, JobKind, all_kinds, load_job_modules

logger = logging.getLogger(__name__)

# Errors worth another delivery of the same task; anything else fails the job.
RETRYABLE = (TransientDbError, ConnectionError, DeviceFault)
MAX_RETRIES = 5
RETRY_BACKOFF_MAX_S = 300


def make_app(settings: Settings) -> Celery:
    """A Celery app for these settings; with no broker it can still name tasks, not send them."""
    load_job_modules(settings.job_module_names)
    app = Celery("ddm", broker=broker_for_kombu(settings.broker or "memory://"))
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_routes={kind.task: {"queue": kind.queue} for kind in all_kinds()},
        task_default_queue=DEFAULT_QUEUE,
        task_acks_late=True,
        # Only idempotent tasks live here, so a task whose worker died may run again.
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_max_tasks_per_child=50,
        task_soft_time_limit=settings.task_soft_time_limit,
        task_time_limit=settings.task_time_limit,
        # Redis re-delivers an unacknowledged task after this long; it must exceed the
        # longest task, or a task still running would be handed to a second worker.
        broker_transport_options={"visibility_timeout": settings.task_time_limit + 600},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        # Events for Flower and `celery events`: received/started/succeeded from workers,
        # and task-sent from `ddm` itself, so a queued task is visible before it starts.
        worker_send_task_events=True,
        task_send_sent_event=True,
    )
    return app


def broker_for_kombu(url: str) -> str:
    """The broker URL with a `?password=` moved into its user-info.

    kombu reads a password from the user-info only: one in the query string breaks its URL
    parser, and Celery's worker banner, which masks a user-info password, would print it.
    """
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    passwords = [value for key, value in query if key.lower() == "password"]
    if not passwords or parts.password:
        return url
    user = quote(parts.username or "", safe="")
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{user}:{quote(passwords[-1], safe='')}@{host}"
    rest = urlencode([(key, value) for key, value in query if key.lower() != "password"])
    return urlunsplit((parts.scheme, netloc, parts.path, rest, parts.fragment))


def define_task(app: Celery, kind: JobKind) -> Any:
    """The Celery task of one job kind: decode the job id, run the shared lifecycle."""

    @app.task(
        name=kind.task,
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        ignore_result=True,
        max_retries=MAX_RETRIES,
    )
    def run_kind(self: Any, job_id: int, resume_from: str | None = None) -> str:
        return _run_task(self, job_id, resume_from)

    return run_kind


def _run_task(task: Any, job_id: int, resume_from: str | None) -> str:
    from celery.exceptions import SoftTimeLimitExceeded

    from tasks.context import session_factory, worker_name
    from tasks.lifecycle import run_job

    logger.info("job_id=%s received (delivery %s)", job_id, task.request.id)
    me = worker_name()
    factory = session_factory(settings.db_url)
    try:
        return run_job(job_id, settings, factory, me, resume_from=resume_from, retryable=RETRYABLE)
    except RETRYABLE as exc:
        # The retry takes this job over where it stands instead of finding it running.
        countdown = min(2**task.request.retries, RETRY_BACKOFF_MAX_S)
        retry = task.retry(exc=exc, countdown=countdown, kwargs={"resume_from": me}, throw=False)
        if isinstance(exc, DeviceFault):
            # This process's CUDA context may be unusable: leave it, with the retry sent,
            # so that the pool starts a fresh child (and context) for the next task.
            logger.error("job_id=%s: %s; this pool child exits", job_id, exc)
            raise SystemExit(1) from exc
        raise retry from exc
    except SoftTimeLimitExceeded:
        logger.error("job_id=%s stopped at the soft time limit", job_id)
        raise


# Before anything imports cv2, also for a worker started with `celery -A tasks.app worker`.
quiet_native_logging()
settings = load_settings()
app = make_app(settings)
TASKS = {kind.name: define_task(app, kind) for kind in all_kinds()}


# Celery holds signal receivers weakly: they must be module-level functions, not closures.
@signals.setup_logging.connect
def _configure_logging(loglevel: object = None, **_: object) -> None:
    from ddm.logging import configure

    level = logging.getLevelName(loglevel) if isinstance(loglevel, str) else loglevel
    configure(level if isinstance(level, int) else logging.INFO)


@signals.worker_process_init.connect
def _forget_inherited_connections(**_: object) -> None:
    from tasks.context import forget_engines

    forget_engines()


@signals.worker_ready.connect
def _start_sweeper(**_: object) -> None:
    """Re-submit jobs of vanished workers now and periodically (see tasks/sweeper.py)."""
    from tasks.context import session_factory
    from tasks.dispatch import queued_messages, send_jobs
    from tasks.sweeper import Sweeper

    factory = session_factory(settings.db_url)
    Sweeper(
        settings,
        factory,
        lambda ids: send_jobs(settings, factory, ids),
        lambda queue: queued_messages(settings, queue),
    ).start()
