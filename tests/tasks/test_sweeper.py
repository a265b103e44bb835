"""Stale-job detection and re-submission, with the clock as the only thing faked."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from ddm.catalog.jobs import claim_job, create_job, get_job, requeue_stale_jobs, set_task_id
from ddm.catalog.models import Job
from ddm.catalog.types import utcnow
from ddm.db import session_scope
from tasks.lifecycle import sweep_once

STALE = timedelta(seconds=30)


def _running(session, worker: str = "w1", attempts_left: bool = True) -> int:
    job = create_job(session, "extract", {"video_ids": [1]})
    set_task_id(session, job.id, "task-1")
    assert claim_job(session, job.id, worker, max_attempts=3 if attempts_left else 1)
    return job.id


def empty_broker(queue: str) -> int:
    return 0


def test_only_jobs_silent_for_longer_than_the_threshold_are_requeued(session) -> None:
    job_id = _running(session)
    requeued, failed = requeue_stale_jobs(session, stale_after=STALE, max_attempts=3)
    assert (requeued, failed) == ([], [])
    later = utcnow() + STALE + timedelta(seconds=1)
    requeued, failed = requeue_stale_jobs(session, stale_after=STALE, max_attempts=3, now=later)
    assert (requeued, failed) == ([job_id], [])
    job = get_job(session, job_id)
    assert (job.status, job.worker) == ("queued", None)
    assert "stopped sending heartbeats" in job.error
    # The next delivery claims it again; the old worker's heartbeat no longer counts.
    assert claim_job(session, job_id, "w2", max_attempts=3)
    assert get_job(session, job_id).attempts == 2


def test_a_job_out_of_attempts_fails_instead_of_looping(session) -> None:
    job_id = _running(session, attempts_left=False)
    later = utcnow() + STALE * 2
    requeued, failed = requeue_stale_jobs(session, stale_after=STALE, max_attempts=1, now=later)
    assert (requeued, failed) == ([], [job_id])
    assert get_job(session, job_id).status == "failed"


def test_sweep_sends_stale_and_never_sent_jobs(engine, tmp_path) -> None:
    from ddm.config import load_settings
    from ddm.db import make_session_factory

    settings = load_settings(home=str(tmp_path), stale_after_seconds=30, heartbeat_seconds=1)
    factory = make_session_factory(engine)
    with session_scope(factory) as session:
        stale = _running(session)
        fresh = _running(session, worker="w9")
        unsent = create_job(session, "extract", {"video_ids": [2]}).id
        old = utcnow() - timedelta(minutes=5)
        session.execute(
            update(Job).where(Job.id.in_([stale, unsent])).values(heartbeat_at=old, created_at=old)
        )
    sent: list[list[int]] = []
    assert sweep_once(settings, factory, sent.append, empty_broker) == sorted([stale, unsent])
    assert sent == [sorted([stale, unsent])]
    with session_scope(factory) as session:
        assert get_job(session, fresh).status == "running"
        assert get_job(session, stale).status == "queued"


def test_a_sent_job_no_worker_claimed_is_sent_again_after_the_bound(engine, tmp_path) -> None:
    from ddm.config import load_settings
    from ddm.db import make_session_factory

    settings = load_settings(
        home=str(tmp_path), stale_after_seconds=30, heartbeat_seconds=1, resend_after_seconds=60
    )
    factory = make_session_factory(engine)
    with session_scope(factory) as session:
        lost, waiting = (create_job(session, "extract", {}).id for _ in range(2))
        set_task_id(session, lost, "task-the-broker-lost")
        set_task_id(session, waiting, "task-still-in-the-queue")
        old = utcnow() - timedelta(minutes=2)
        session.execute(update(Job).where(Job.id == lost).values(created_at=old, updated_at=old))
    sent: list[list[int]] = []
    # While messages wait in its queue, the job may be one of them: not sent again.
    assert sweep_once(settings, factory, sent.append, lambda queue: 3) == []
    assert sweep_once(settings, factory, sent.append, empty_broker) == [lost]
    with session_scope(factory) as session:
        set_task_id(session, lost, "task-sent-again")  # what sending does
    assert sweep_once(settings, factory, sent.append, empty_broker) == []  # not before the bound


def test_a_presumed_dead_worker_that_finishes_late_changes_nothing(engine, tmp_path) -> None:
    from ddm.catalog.caches import claim_video
    from ddm.catalog.models import Dataset, FeatureCache, Video
    from ddm.db import make_session_factory
    from tasks.lifecycle import finish

    factory = make_session_factory(engine)
    with session_scope(factory) as session:
        dataset = Dataset(name="d", format="folder", root_path="/d")
        session.add(dataset)
        session.flush()
        video = Video(dataset_id=dataset.id, path="a.mp4")
        session.add(video)
        session.flush()
        job_id = _running(session, worker="old")
        later = utcnow() + STALE * 2
        requeue_stale_jobs(session, stale_after=STALE, max_attempts=3, now=later)
        assert claim_job(session, job_id, "new", max_attempts=3)
        assert claim_video(session, video.id, "f" * 64, job_id, stale_after=STALE)
    finish(factory, job_id, "old", "failed", error="late")
    with session_scope(factory) as session:
        job = get_job(session, job_id)
        lease = session.scalars(select(FeatureCache.claimed_by_job_id)).one()
    assert (job.status, job.worker, job.error) == ("running", "new", None)
    assert lease == job_id  # the new worker's lease is untouched
