"""A kind registered outside ddm gets the whole lifecycle: inline, cancel, sweeper, worker."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import update

from ddm.catalog.jobs import cancel_job, claim_job, create_job, get_job
from ddm.catalog.models import Job
from ddm.catalog.types import utcnow
from ddm.db import session_scope
from ddm.errors import InvalidInput
from tasks.dispatch import dispatch
from tasks.lifecycle import run_job, sweep_once
from tests.tasks.conftest import (
    broker_settings_and_factory,
    kill_worker,
    start_worker,
    wait_for,
)
from tests.tasks.echo_kind import ECHO


def _echo_job(factory, steps: int = 3, **params) -> int:
    with session_scope(factory) as session:
        params = {"steps": steps, "message": "hello", **params}
        return create_job(session, ECHO.name, params, total=steps).id


def _job(factory, job_id: int):
    with session_scope(factory) as session:
        return get_job(session, job_id)


def test_a_new_kind_runs_inline_through_dispatch(factory, job_settings) -> None:
    job_id = _echo_job(factory)
    seen: list[int] = []
    dispatched = dispatch(job_settings, factory, [job_id], on_event=seen.append)
    assert not dispatched.sent and dispatched.statuses == {job_id: "succeeded"}
    job = _job(factory, job_id)
    assert (job.status, job.attempts, job.progress_done) == ("succeeded", 1, 3)
    assert job.result["echo"] == "hello" and seen == [0, 1, 2]
    assert run_job(job_id, job_settings, factory, "again") == "skipped"


def test_a_cancelled_job_of_a_new_kind_stops_at_its_next_heartbeat(factory, job_settings) -> None:
    job_id = _echo_job(factory, steps=200, pause=0.05)

    def cancel_after_the_first_step(step: int) -> None:
        if step == 0:
            with session_scope(factory) as session:
                cancel_job(session, job_id)

    status = run_job(job_id, job_settings, factory, "w1", on_event=cancel_after_the_first_step)
    job = _job(factory, job_id)
    assert status == job.status == "cancelled"
    assert job.progress_done < 200 and job.result is None


def test_the_sweeper_hands_back_a_silent_job_of_a_new_kind(factory, job_settings) -> None:
    job_id = _echo_job(factory)
    with session_scope(factory) as session:
        assert claim_job(session, job_id, "vanished", job_settings.max_attempts)
        old = utcnow() - timedelta(seconds=job_settings.stale_after_seconds * 2)
        session.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=old))
    sent: list[list[int]] = []
    assert sweep_once(job_settings, factory, sent.append, lambda queue: 0) == [job_id]
    assert sent == [[job_id]] and _job(factory, job_id).status == "queued"
    assert run_job(job_id, job_settings, factory, "w2") == "succeeded"
    assert _job(factory, job_id).attempts == 2


def test_a_retry_of_the_same_task_resumes_its_running_job(factory, job_settings) -> None:
    job_id = _echo_job(factory)
    with session_scope(factory) as session:
        assert claim_job(session, job_id, "before-retry", job_settings.max_attempts)
    # Without the hand-over the retry would find the job running and skip it.
    assert run_job(job_id, job_settings, factory, "after-retry") == "skipped"
    status = run_job(job_id, job_settings, factory, "after-retry", resume_from="before-retry")
    job = _job(factory, job_id)
    assert status == job.status == "succeeded"
    assert (job.worker, job.attempts) == ("after-retry", 1)


def test_a_job_of_an_unknown_kind_fails_with_one_line(factory, job_settings) -> None:
    with session_scope(factory) as session:
        job_id = create_job(session, "vanished-kind", {}).id
    with pytest.raises(InvalidInput, match="unknown job kind 'vanished-kind'"):
        dispatch(job_settings, factory, [job_id])
    job = _job(factory, job_id)
    assert job.status == "failed" and job.error.startswith("unknown job kind")


# --------------------------------------------------------------------------- a real worker


@pytest.mark.postgres
@pytest.mark.slow
def test_a_real_worker_runs_a_new_kind_with_retry_and_task_events(broker_env, tmp_path) -> None:
    from celery import Celery

    env, redis = broker_env
    settings, factory = broker_settings_and_factory(env)
    events: list[dict] = []
    stop_listening = _listen_for_task_events(Celery(broker=redis.url), events)
    log = tmp_path / "worker.log"
    worker = start_worker(env, log)
    try:
        job_id = _echo_job(factory, flaky_marker=str(tmp_path / "failed-once"))
        assert dispatch(settings, factory, [job_id]).sent
        job = wait_for(lambda: _finished(factory, job_id), 120, "the job to finish", log)
    finally:
        kill_worker(worker, signal.SIGTERM)
        stop_listening()
    assert job.status == "succeeded", log.read_text()[-3000:]
    # The first delivery failed after its claim; the retry resumed the job, not skipped it.
    assert (tmp_path / "failed-once").exists()
    assert job.attempts == 1 and job.result["echo"] == "hello"
    seen = {event["type"] for event in events if event.get("uuid") == job.celery_task_id}
    assert {"task-sent", "task-received", "task-started", "task-retried"} <= seen, seen
    assert any(event["type"] == "task-succeeded" for event in events), events[-5:]


@pytest.mark.postgres
@pytest.mark.slow
def test_a_queued_job_the_broker_lost_is_sent_again_and_runs(broker_env, tmp_path) -> None:
    import redis as redis_client

    env, redis = broker_env
    settings, factory = broker_settings_and_factory(env)
    job_id = _echo_job(factory)
    assert dispatch(settings, factory, [job_id]).sent  # no worker yet: it waits in Redis
    first_task = _job(factory, job_id).celery_task_id
    redis_client.Redis.from_url(redis.url).flushall()  # a restart without persistence
    log = tmp_path / "worker.log"
    worker = start_worker(env, log)
    try:
        job = wait_for(lambda: _finished(factory, job_id), 120, "the job to finish", log)
    finally:
        kill_worker(worker, signal.SIGTERM)
    assert job.status == "succeeded" and job.attempts == 1
    assert job.celery_task_id != first_task  # it ran from the message sent again


def _finished(factory, job_id: int):
    job = _job(factory, job_id)
    return job if job.status in ("succeeded", "failed", "cancelled") else None


def _listen_for_task_events(app, events: list[dict]) -> Callable[[], None]:
    """Collect task events as Flower would; returns the function that stops listening."""
    stop, ready = threading.Event(), threading.Event()

    def listen() -> None:
        with app.connection() as connection:
            receiver = app.events.Receiver(connection, handlers={"*": events.append})
            consume_ready = receiver.on_consume_ready

            def on_consume_ready(*args, **kwargs) -> None:
                consume_ready(*args, **kwargs)
                ready.set()

            def on_iteration() -> None:  # at least once a second
                receiver.should_stop = stop.is_set()

            receiver.on_consume_ready, receiver.on_iteration = on_consume_ready, on_iteration
            receiver.capture(limit=None, timeout=None, wakeup=False)

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert ready.wait(10), "the event receiver did not start"

    def stop_listening() -> None:
        stop.set()
        thread.join(10)

    return stop_listening
