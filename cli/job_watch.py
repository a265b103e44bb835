"""Follow jobs in the catalog until they end (CLI layer)."""

from __future__ import annotations

import time

from cli.app import App
from cli.progress import progress_bar

FINISHED = ("succeeded", "failed", "cancelled")


def watch_jobs(
    app: App, job_ids: list[int], *, interval: float = 1.0, timeout: float | None = None
) -> dict[int, str]:
    """Poll the jobs table until every job has finished; return each job's final status."""
    from ddm.catalog.jobs import get_job

    deadline = None if timeout is None else time.monotonic() + timeout
    with progress_bar(app, "jobs") as bar:
        total_started = False
        while True:
            with app.session() as session:
                jobs = [get_job(session, job_id) for job_id in job_ids]
            if not total_started:
                bar.start(sum(job.progress_total for job in jobs))
                total_started, shown = True, 0
            done = sum(job.progress_done for job in jobs)
            bar.advance(done - shown)
            shown = done
            if all(job.status in FINISHED for job in jobs):
                return {job.id: job.status for job in jobs}
            if deadline is not None and time.monotonic() > deadline:
                return {job.id: job.status for job in jobs}
            time.sleep(interval)
