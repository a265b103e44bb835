"""The Celery application, built from settings (jobs layer).

JSON only, ids only in payloads, results ignored (the jobs table is the source of truth),
acknowledged late with one task reserved at a time, extraction/training/evaluation routed
to the `gpu` queue. The broker is Redis: see README.md, "Jobs and workers", for why and for
how a job whose worker was killed comes back within seconds rather than after Redis's
visibility timeout.
"""

from __future__ import annotations

import logging

from celery import Celery, signals

from ddm.config import Settings, load_settings

GPU_QUEUE = "gpu"
TASK_MODULES = ["tasks.features"]
TASK_ROUTES = {
    "ddm.features.*": {"queue": GPU_QUEUE},
    "ddm.train.*": {"queue": GPU_QUEUE},
    "ddm.eval.*": {"queue": GPU_QUEUE},
}


def make_app(settings: Settings) -> Celery:
    """A Celery app for these settings; with no broker it can still name tasks, not send them."""
    app = Celery("ddm", broker=settings.broker or "memory://", include=TASK_MODULES)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_routes=TASK_ROUTES,
        task_default_queue="default",
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
        worker_send_task_events=False,
    )
    return app


settings = load_settings()
app = make_app(settings)


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
    from tasks.submit import send_jobs
    from tasks.sweeper import Sweeper

    factory = session_factory(settings.db_url)
    Sweeper(settings, factory, lambda ids: send_jobs(settings, factory, ids)).start()
