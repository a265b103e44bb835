"""A run's status follows its job's, whichever path ends the job: a dead inline run
abandoned by the next one, the sweeper, a cancel."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy import update

from ddm.catalog import runs
from ddm.catalog.jobs import cancel_job, claim_job, requeue_stale_jobs
from ddm.catalog.models import Job
from ddm.catalog.types import utcnow
from ddm.db import session_scope
from tasks.lifecycle import abandon_stale_jobs
from tasks.training import plan_training
from tests.tasks.synth import QUICK


def _started_run(settings, factory, dataset: str) -> tuple[int, int]:
    """A run whose training job a worker claimed and started, then went silent."""
    plan = plan_training(settings, factory, [dataset], train_cfg=replace(QUICK), batch_size=4)
    with session_scope(factory) as session:
        assert claim_job(session, plan.job_id, "dead-worker", max_attempts=3)
        runs.start_run(session, plan.run.id, "/tmp/ddm-run")
        session.execute(
            update(Job)
            .where(Job.id == plan.job_id)
            .values(heartbeat_at=utcnow() - timedelta(hours=1))
        )
    return plan.run.id, plan.job_id


def _run_status(factory, run_id: int) -> tuple[str, str | None]:
    with session_scope(factory) as session:
        run = runs.get_run(session, run_id)
    return run.status, run.error


def test_a_killed_inline_run_is_failed_with_its_job_not_left_running(
    job_settings, factory, synth
) -> None:
    run_id, job_id = _started_run(job_settings, factory, synth)
    assert _run_status(factory, run_id)[0] == "running"
    assert abandon_stale_jobs(job_settings, factory) == [job_id]
    status, error = _run_status(factory, run_id)
    assert status == "failed" and error == "worker dead-worker stopped sending heartbeats"


def test_the_sweeper_failing_a_job_fails_its_run(job_settings, factory, synth) -> None:
    run_id, job_id = _started_run(job_settings, factory, synth)
    with session_scope(factory) as session:
        requeued, failed = requeue_stale_jobs(
            session, stale_after=timedelta(seconds=5), max_attempts=1
        )
    assert (requeued, failed) == ([], [job_id])
    assert _run_status(factory, run_id)[0] == "failed"


def test_cancelling_a_queued_training_job_cancels_its_run(job_settings, factory, synth) -> None:
    plan = plan_training(job_settings, factory, [synth], train_cfg=QUICK, batch_size=4)
    with session_scope(factory) as session:
        cancel_job(session, plan.job_id)
    assert _run_status(factory, plan.run.id) == ("cancelled", "cancelled")
