"""`ddm jobs list|show|cancel|watch`: the jobs table, read from the catalog (CLI layer)."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import click

from cli.app import App
from cli.output import output_options, table, write_json
from cli.progress import Bar, progress_bar
from ddm.errors import DdmError
from ddm.vocab import FINISHED_JOB_STATUSES, JobStatus, values

if TYPE_CHECKING:
    from ddm.catalog.records import JobRecord

FINISHED = tuple(FINISHED_JOB_STATUSES)
LIST_COLUMNS = [
    "id",
    "kind",
    "status",
    "progress",
    "attempts",
    "worker",
    "created_at",
    "finished_at",
    "error",
]
SHOW_FIELDS = [
    "id",
    "kind",
    "status",
    "progress",
    "attempts",
    "worker",
    "celery_task_id",
    "heartbeat_at",
    "created_at",
    "started_at",
    "finished_at",
    "error",
    "result",
]
# Lists longer than this are shown by their length in tables (a batch's video ids).
LONG_LIST = 10
MAX_NAMED = 10


class JobsDidNotSucceed(DdmError):
    """`ddm jobs watch` saw a job fail or get cancelled, or gave up waiting."""


@click.group("jobs")
def jobs_group() -> None:
    """List, show, cancel or watch jobs (feature extraction, training, evaluation).

    \b
    Examples:
      ddm jobs list --status running
      ddm jobs watch
    """


@jobs_group.command("list")
@click.option("--status", type=click.Choice(values(JobStatus)), help="Only jobs in this state.")
# A free word: workers may run kinds registered by modules this process never loads.
@click.option("--kind", metavar="KIND", help="Only jobs of this kind (extract, ...).")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@output_options
@click.pass_obj
def jobs_list(app: App, status: str | None, kind: str | None, limit: int, as_json: bool) -> None:
    """List the most recent jobs first.

    \b
    Examples:
      ddm jobs list --kind extract --status failed
      ddm jobs list --json | jq '.[] | select(.status == "running") | .id'
    """
    from ddm.services.listings import job_rows

    with app.session() as session:
        rows = job_rows(session, status=status, kind=kind, limit=limit)
    if as_json:
        write_json(rows)
        return
    for row in rows:
        row["progress"] = f"{row['progress_done']}/{row['progress_total']}"
    table(app.out, rows, LIST_COLUMNS, empty="no jobs match")


@jobs_group.command("show")
@click.argument("job_id", type=int)
@output_options
@click.pass_obj
def jobs_show(app: App, job_id: int, as_json: bool) -> None:
    """Show one job: its state, parameters and result (`--json` has every parameter).

    \b
    Examples:
      ddm jobs show 12
      ddm jobs show 12 --json | jq '.params.video_ids | length'
    """
    from ddm.catalog.jobs import get_job
    from ddm.catalog.records import to_json

    with app.session() as session:
        data = to_json(get_job(session, job_id))
    if as_json:
        write_json(data)
        return
    data["progress"] = f"{data['progress_done']}/{data['progress_total']}"
    rows = [{"field": key, "value": _compact(key, data[key])} for key in SHOW_FIELDS]
    rows += [
        {"field": f"params.{key}", "value": _compact(key, value)}
        for key, value in data["params"].items()
    ]
    table(app.out, rows, ["field", "value"], title=f"job {job_id}")


def _compact(key: str, value: Any) -> Any:
    if isinstance(value, list) and (key == "video_ids" or len(value) > LONG_LIST):
        return f"{len(value)} items (see --json)"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return value


@jobs_group.command("cancel")
@click.argument("job_id", type=int)
@click.pass_obj
def jobs_cancel(app: App, job_id: int) -> None:
    """Cancel a queued or running job; a running one stops at its next heartbeat.

    \b
    Examples:
      ddm jobs cancel 12
    """
    from ddm.catalog.jobs import cancel_job

    with app.session() as session:
        job = cancel_job(session, job_id)
    app.err.print(f"job {job.id} ({job.kind}) cancelled", markup=False, highlight=False)


@jobs_group.command("watch")
@click.argument("job_ids", nargs=-1, type=int)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.01),
    default=2.0,
    show_default=True,
    help="Seconds between polls of the jobs table.",
)
@click.option("--timeout", type=click.FloatRange(min=0), help="Give up after this many seconds.")
@click.pass_obj
def jobs_watch(app: App, job_ids: tuple[int, ...], interval: float, timeout: float | None) -> None:
    """Follow jobs until they finish: the given ones, or every queued or running job.

    Exits 0 when all succeeded, 1 when one failed or was cancelled or the timeout passed.

    \b
    Examples:
      ddm jobs watch
      ddm jobs watch 12 13 --interval 5 --timeout 3600
    """
    jobs = follow_jobs(app, list(job_ids) or None, interval=interval, timeout=timeout)
    if not jobs:
        app.err.print("no queued or running jobs to watch")
        return
    _conclude(app, jobs)


def follow_jobs(
    app: App, job_ids: list[int] | None, *, interval: float = 2.0, timeout: float | None = None
) -> dict[int, JobRecord]:
    """Poll the jobs table, with a progress bar on stderr, until the jobs have finished.

    Args:
        job_ids: the jobs to follow; None means every queued or running job.

    Raises:
        JobsDidNotSucceed: the timeout passed first.
    """
    jobs = _poll(app, job_ids)
    if not jobs:
        return jobs
    deadline = None if timeout is None else time.monotonic() + timeout
    with progress_bar(app, "jobs") as bar:
        return _follow(app, bar, jobs, interval, deadline)


def _poll(app: App, job_ids: tuple[int, ...] | list[int] | None) -> dict[int, JobRecord]:
    """The given jobs now (a fresh transaction, so commits of workers are seen)."""
    from ddm.catalog.jobs import get_job, list_jobs

    with app.session() as session:
        if job_ids is None:
            active = [
                job
                for status in (JobStatus.RUNNING, JobStatus.QUEUED)
                for job in list_jobs(session, status=status, limit=1_000_000)
            ]
            return {job.id: job for job in sorted(active, key=lambda job: job.id)}
        return {job_id: get_job(session, job_id) for job_id in job_ids}


def _follow(
    app: App, bar: Bar, jobs: dict[int, JobRecord], interval: float, deadline: float | None
) -> dict[int, JobRecord]:
    lines = not app.err.is_terminal
    bar.start(sum(_units(job)[1] for job in jobs.values()))
    shown: dict[int, tuple[str, int]] = {}
    done_before = 0
    while True:
        done = sum(_units(job)[0] for job in jobs.values())
        bar.advance(done - done_before)
        done_before = done
        for job in jobs.values():
            state = (job.status, job.progress_done)
            if lines and shown.get(job.id) != state:
                app.err.print(_describe(job), markup=False, highlight=False)
            shown[job.id] = state
        pending = [job_id for job_id, job in jobs.items() if job.status not in FINISHED]
        if not pending:
            return jobs
        wait = interval if deadline is None else min(interval, deadline - time.monotonic())
        if wait <= 0:
            still = _named([jobs[job_id] for job_id in pending])
            raise JobsDidNotSucceed(f"timed out; still unfinished: {still}")
        time.sleep(wait)
        jobs.update(_poll(app, pending))


def _units(job: JobRecord) -> tuple[int, int]:
    """(done, total) of a job in bar units; a job without a known size counts as one."""
    total = max(job.progress_total, 1)
    if job.status in FINISHED:
        return total, total
    return min(job.progress_done, total) if job.progress_total else 0, total


def _describe(job: JobRecord) -> str:
    text = f"job {job.id} ({job.kind}) {job.status} {job.progress_done}/{job.progress_total}"
    stopped = (JobStatus.FAILED, JobStatus.CANCELLED)
    if job.status in stopped and job.error and job.error != JobStatus.CANCELLED:
        text += f": {job.error.splitlines()[0]}"
    return text


def _conclude(app: App, jobs: dict[int, JobRecord]) -> None:
    bad = [job for job in jobs.values() if job.status != JobStatus.SUCCEEDED]
    if not bad:
        app.err.print(f"{len(jobs)} job(s) succeeded", markup=False, highlight=False)
        return
    raise JobsDidNotSucceed(f"{len(bad)} of {len(jobs)} job(s) did not succeed: {_named(bad)}")


def _named(jobs: list[JobRecord]) -> str:
    named = ", ".join(_describe(job) for job in jobs[:MAX_NAMED])
    return named + (f" and {len(jobs) - MAX_NAMED} more" if len(jobs) > MAX_NAMED else "")


COMMANDS = (jobs_group,)
