"""Send queued jobs to the broker after their rows are committed (jobs layer).

Enqueueing only after commit means a worker never receives an id whose row it cannot see
yet. The task id is written back after sending; a queued job without one was never sent
(the process died in between) and the sweeper sends it again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy.orm import Session, sessionmaker

from ddm.catalog.jobs import get_job, set_task_id
from ddm.catalog.models import JobKind
from ddm.config import Settings
from ddm.db import session_scope
from ddm.errors import SetupError

logger = logging.getLogger(__name__)

TASK_FOR_KIND = {
    JobKind.EXTRACT.value: "ddm.features.extract",
    JobKind.TRAIN.value: "ddm.train.run",
    JobKind.EVALUATE.value: "ddm.eval.run",
}


def send_jobs(settings: Settings, factory: sessionmaker[Session], job_ids: Iterable[int]) -> None:
    """Enqueue each committed job by name (the sender never imports the task modules).

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
                kind = get_job(session, job_id).kind
            result = app.send_task(TASK_FOR_KIND[kind], args=[job_id])
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
