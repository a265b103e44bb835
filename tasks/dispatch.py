"""Run a list of committed jobs: inline in this process, or sent to the broker (jobs layer).

Jobs are always committed before they are dispatched, so a worker never receives an id
whose row it cannot see yet. With a broker, each job is sent by its kind's task name and
the task id written back; a queued job without one was never sent (the process died in
between) and the sweeper sends it again. Without one (the embedded default) the very
lifecycle a worker runs runs here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from ddm.catalog.jobs import cancel_job, get_job, set_task_id
from ddm.config import Settings
from ddm.db import session_scope
from ddm.errors import SetupError
from tasks.context import worker_name
from tasks.kinds import get_kind
from tasks.lifecycle import EventHook, run_job

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dispatched:
    """What `dispatch` did: sent the jobs to workers, or ran them here to these statuses."""

    job_ids: list[int]
    sent: bool
    statuses: dict[int, str] = field(default_factory=dict)


def dispatch(
    settings: Settings,
    factory: sessionmaker[Session],
    job_ids: list[int],
    on_event: EventHook | None = None,
) -> Dispatched:
    """Send the jobs to the broker when one is configured, else run them here in order."""
    if settings.broker:
        send_jobs(settings, factory, job_ids)
        return Dispatched(job_ids, sent=True)
    return Dispatched(
        job_ids, sent=False, statuses=run_inline(settings, factory, job_ids, on_event)
    )


def send_jobs(settings: Settings, factory: sessionmaker[Session], job_ids: Iterable[int]) -> None:
    """Enqueue each committed job by its kind's task name (the sender imports no task).

    Raises:
        SetupError: the broker cannot be reached; the jobs stay queued and the worker's
            sweeper sends them once it can.
    """
    from kombu.exceptions import OperationalError as BrokerError

    from tasks.app import make_app

    app = make_app(settings)
    try:
        for job_id in job_ids:
            with session_scope(factory) as session:
                task = get_kind(get_job(session, job_id).kind).task
            result = app.send_task(task, args=[job_id])
            with session_scope(factory) as session:
                set_task_id(session, job_id, result.id)
            logger.info("job_id=%s sent as task %s", job_id, result.id)
    except BrokerError as exc:
        raise SetupError(
            f"cannot reach the broker {settings.masked()['broker_url']}: {exc}; the jobs stay "
            "queued and are sent when a worker starts (`ddm worker`)"
        ) from None
    finally:
        app.close()


def queued_messages(settings: Settings, queue: str) -> int:
    """How many messages wait in the broker's `queue` (0 when it does not exist).

    Raises:
        SetupError: the broker cannot be reached.
    """
    from kombu.exceptions import ChannelError
    from kombu.exceptions import OperationalError as BrokerError

    from tasks.app import make_app

    app = make_app(settings)
    try:
        with app.connection_for_write() as connection:
            channel = connection.default_channel
            try:
                return int(channel.queue_declare(queue, passive=True).message_count)
            except ChannelError:
                return 0  # never declared, or wiped with the broker's data
    except BrokerError as exc:
        raise SetupError(f"cannot reach the broker: {exc}") from None
    finally:
        app.close()


def run_inline(
    settings: Settings,
    factory: sessionmaker[Session],
    job_ids: list[int],
    on_event: EventHook | None = None,
) -> dict[int, str]:
    """Run each job here, in order; Ctrl-C cancels the job in progress."""
    worker = worker_name()
    statuses: dict[int, str] = {}
    for position, job_id in enumerate(job_ids):
        try:
            statuses[job_id] = run_job(job_id, settings, factory, worker, on_event=on_event)
        except BaseException as exc:
            # Nothing would ever run the rest without a broker: say so on their rows.
            _cancel(factory, job_ids[position + 1 :], f"not run: {type(exc).__name__}")
            raise
    return statuses


def _cancel(factory: sessionmaker[Session], job_ids: list[int], reason: str) -> None:
    with session_scope(factory) as session:
        for job_id in job_ids:
            cancel_job(session, job_id, reason=reason)
