"""`ddm jobs list|show|cancel|watch` through the CLI, on both dialects."""

from __future__ import annotations

import threading
import time

from ddm.catalog.jobs import claim_job, create_job, finish_job, heartbeat
from ddm.catalog.models import Job
from ddm.db import session_scope
from ddm.vocab import JobStatus
from tests.cli.conftest import ok_json, one_error_line


def _last_line_is_error(result, text: str) -> None:
    assert result.exit_code == 1, result.stderr
    assert text in result.stderr.strip().splitlines()[-1]


# --------------------------------------------------------------------------- jobs


def _job(factory, status: str, *, kind: str = "extract", videos: int = 3, error=None) -> int:
    """A job driven to `status` through the catalog functions a worker uses."""
    with session_scope(factory) as session:
        job_id = create_job(
            session, kind, {"dataset": "ff", "video_ids": list(range(videos))}, total=videos
        ).id
    if status == JobStatus.QUEUED:
        return job_id
    with session_scope(factory) as session:
        assert claim_job(session, job_id, "w1", max_attempts=3)
        if status == JobStatus.SUCCEEDED:
            heartbeat(session, job_id, "w1", done=videos)
        if status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
            finish_job(session, job_id, "w1", status, error=error)
    return job_id


def test_jobs_list_filters_and_json(run_ddm, env, factory) -> None:
    done = _job(factory, JobStatus.SUCCEEDED, videos=100)
    queued = _job(factory, JobStatus.QUEUED)
    failed = _job(factory, JobStatus.FAILED, kind="train", error="CUDA out of memory")

    jobs = ok_json(run_ddm("jobs", "list", "--json", env=env))
    assert [job["id"] for job in jobs] == [failed, queued, done]
    assert jobs[2]["status"] == "succeeded" and jobs[2]["progress_done"] == 100
    assert jobs[2]["finished_at"].endswith("Z")
    assert [
        j["id"] for j in ok_json(run_ddm("jobs", "list", "--status", "queued", "--json", env=env))
    ] == [queued]
    assert [
        j["id"] for j in ok_json(run_ddm("jobs", "list", "--kind", "train", "--json", env=env))
    ] == [failed]
    assert len(ok_json(run_ddm("jobs", "list", "--limit", "1", "--json", env=env))) == 1

    listing = run_ddm("jobs", "list", env=env)
    assert listing.exit_code == 0, listing.stderr
    assert "100/100" in listing.stdout and "CUDA out of memory" in listing.stdout
    assert "no jobs match" in run_ddm("jobs", "list", "--status", "running", env=env).stdout
    assert run_ddm("jobs", "list", "--status", "bogus", env=env).exit_code == 2


def test_jobs_show_summarises_video_ids_except_in_json(run_ddm, env, factory) -> None:
    job_id = _job(factory, JobStatus.RUNNING, videos=40)
    shown = run_ddm("jobs", "show", str(job_id), env=env)
    assert shown.exit_code == 0, shown.stderr
    assert "params.video_ids" in shown.stdout and "40 items" in shown.stdout
    assert "37, 38" not in shown.stdout
    assert "running" in shown.stdout and "0/40" in shown.stdout

    data = ok_json(run_ddm("jobs", "show", str(job_id), "--json", env=env))
    assert data["params"]["video_ids"] == list(range(40))
    assert (data["id"], data["status"], data["worker"]) == (job_id, "running", "w1")


def test_jobs_show_and_cancel_errors(run_ddm, env, factory) -> None:
    one_error_line(run_ddm("jobs", "show", "999", env=env), 1, "no job with id 999")
    one_error_line(run_ddm("jobs", "cancel", "999", env=env), 1, "no job with id 999")
    assert run_ddm("jobs", "show", "abc", env=env).exit_code == 2
    assert run_ddm("jobs", "cancel", env=env).exit_code == 2
    assert run_ddm("jobs", "frobnicate", env=env).exit_code == 2


def test_jobs_cancel(run_ddm, env, factory) -> None:
    job_id = _job(factory, JobStatus.QUEUED)
    result = run_ddm("jobs", "cancel", str(job_id), env=env)
    assert result.exit_code == 0, result.stderr
    assert f"job {job_id} (extract) cancelled" in result.stderr
    with session_scope(factory) as session:
        assert session.get(Job, job_id).status == "cancelled"
    again = run_ddm("jobs", "cancel", str(job_id), env=env)
    one_error_line(again, 1, f"job {job_id} has already finished (cancelled)")
    done = _job(factory, JobStatus.SUCCEEDED)
    one_error_line(run_ddm("jobs", "cancel", str(done), env=env), 1, "already finished")


def test_watch_finished_jobs(run_ddm, env, factory) -> None:
    ok = [_job(factory, JobStatus.SUCCEEDED) for _ in range(2)]
    result = run_ddm("jobs", "watch", *map(str, ok), "--interval", "0.1", env=env)
    assert result.exit_code == 0, result.stderr
    assert "2 job(s) succeeded" in result.stderr
    assert f"job {ok[0]} (extract) succeeded 3/3" in result.stderr

    failed = _job(factory, JobStatus.FAILED, error="all 3 videos failed")
    bad = run_ddm("jobs", "watch", str(ok[0]), str(failed), "--interval", "0.1", env=env)
    assert bad.exit_code == 1
    last = bad.stderr.strip().splitlines()[-1]
    assert last.startswith("error: 1 of 2 job(s) did not succeed")
    assert f"job {failed} (extract) failed 0/3: all 3 videos failed" in last


def test_watch_with_nothing_to_watch_and_bad_arguments(run_ddm, env, factory) -> None:
    _job(factory, JobStatus.SUCCEEDED)
    nothing = run_ddm("jobs", "watch", env=env)
    assert nothing.exit_code == 0, nothing.stderr
    assert "no queued or running jobs" in nothing.stderr
    one_error_line(run_ddm("jobs", "watch", "999", env=env), 1, "no job with id 999")
    assert run_ddm("jobs", "watch", "--interval", "0", env=env).exit_code == 2


def _finish_later(factory, job_id: int, status: str, delay: float = 0.5) -> threading.Thread:
    def work() -> None:
        time.sleep(delay)
        with session_scope(factory) as session:
            claim_job(session, job_id, "w2", max_attempts=3)
        time.sleep(0.2)
        with session_scope(factory) as session:
            heartbeat(session, job_id, "w2", done=2)
            finish_job(
                session,
                job_id,
                "w2",
                status,
                error="worker crashed" if status == "failed" else None,
            )

    thread = threading.Thread(target=work)
    thread.start()
    return thread


def test_watch_follows_a_job_until_it_finishes(run_ddm, env, factory) -> None:
    job_id = _job(factory, JobStatus.QUEUED)
    # A second of margin, so that even a slow start sees the job unfinished first.
    thread = _finish_later(factory, job_id, JobStatus.SUCCEEDED, delay=1.0)
    start = time.monotonic()
    # No ids: every queued or running job at the start.
    result = run_ddm("jobs", "watch", "--interval", "0.1", "--timeout", "20", env=env)
    thread.join()
    assert result.exit_code == 0, result.stderr
    assert 1.0 < time.monotonic() - start < 15
    lines = result.stderr.strip().splitlines()
    assert lines[0] == f"job {job_id} (extract) queued 0/3"
    assert f"job {job_id} (extract) succeeded 2/3" in lines
    assert lines[-1] == "1 job(s) succeeded"


def test_watch_reports_a_job_failing_meanwhile(run_ddm, env, factory) -> None:
    job_id = _job(factory, JobStatus.QUEUED)
    thread = _finish_later(factory, job_id, JobStatus.FAILED, delay=0.2)
    result = run_ddm("jobs", "watch", str(job_id), "--interval", "0.1", "--timeout", "20", env=env)
    thread.join()
    _last_line_is_error(result, f"job {job_id} (extract) failed 2/3: worker crashed")


def test_watch_timeout(run_ddm, env, factory) -> None:
    job_id = _job(factory, JobStatus.QUEUED)
    result = run_ddm("jobs", "watch", str(job_id), "--interval", "0.1", "--timeout", "0.3", env=env)
    _last_line_is_error(result, f"timed out; still unfinished: job {job_id} (extract) queued")
