"""Celery task wrappers for feature extraction (jobs layer).

Each task only decodes the job id and calls the plain function that tests and the inline
executor call too; retries cover transient database and broker errors only.
"""

from __future__ import annotations

from celery.exceptions import SoftTimeLimitExceeded
from celery.utils.log import get_task_logger

from ddm.errors import TransientDbError
from tasks.app import app, settings
from tasks.context import session_factory, worker_name
from tasks.extraction import finish, run_extraction_job

logger = get_task_logger(__name__)


@app.task(
    name="ddm.features.extract",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    autoretry_for=(TransientDbError, ConnectionError),
    retry_backoff=True,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=5,
)
def extract_features(self, job_id: int) -> str:  # noqa: ANN001  (Celery's bound task)
    """Extract the features of every video of one job."""
    logger.info("job_id=%s received (delivery %s)", job_id, self.request.id)
    factory = session_factory(settings.db_url)
    try:
        return run_extraction_job(job_id, settings, factory, worker_name())
    except SoftTimeLimitExceeded:
        error = f"stopped at the soft time limit of {settings.task_soft_time_limit} s"
        logger.error("job_id=%s %s", job_id, error)
        finish(factory, job_id, worker_name(), "failed", error=error)
        raise
