"""`ddm extract` and `ddm worker` (CLI layer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cli.app import App
from cli.output import output_options, table, write_json
from cli.progress import progress_bar
from ddm.errors import DdmError
from ddm.vocab import JobStatus, Split, VideoOutcomeStatus, values

MAX_LEASES_SHOWN = 10


@click.command("extract")
@click.option("--dataset", required=True, help="Dataset name, as `ddm datasets` lists it.")
@click.option("--split", type=click.Choice(values(Split)), help="Only this split.")
@click.option("--limit", type=click.IntRange(1), help="At most this many videos.")
@click.option(
    "--frames",
    type=click.IntRange(1, 1024),
    default=32,
    show_default=True,
    help="Frames sampled per video (the seed uses 32 for FF++, 64 for Celeb-DF).",
)
@click.option(
    "--backbones",
    type=click.Choice(["full", "small"]),
    default="full",
    show_default=True,
    help="full: pSp and Slow R50 as published; small: CPU-sized variants (demo, random weights).",
)
@click.option(
    "--precision",
    type=click.Choice(["fp32", "bf16"]),
    default="fp32",
    show_default=True,
    help="bf16: autocast both backbones (2x faster per video with AMX; own fingerprint).",
)
@click.option("--force", is_flag=True, help="Extract again even where a valid cache exists.")
@click.option(
    "--weights-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder with psp_ffhq_encode.pt and SLOW_8x8_R50.pyth (DDM_WEIGHTS_DIR).",
)
@click.option(
    "--allow-random-weights",
    is_flag=True,
    help="Use random weights where files are missing (tests and demos only).",
)
@click.option("--wait", is_flag=True, help="With a broker: follow the jobs until they end.")
@output_options
@click.pass_obj
def extract(
    app: App,
    dataset: str,
    split: str | None,
    limit: int | None,
    frames: int,
    backbones: str,
    precision: str,
    force: bool,
    weights_dir: Path | None,
    allow_random_weights: bool,
    wait: bool,
    as_json: bool,
) -> None:
    """Fill the feature cache of every present video that lacks a valid one.

    Without DDM_BROKER_URL the jobs run here, with a progress bar; with a broker they are
    submitted to the workers' `gpu` queue and their ids printed.

    \b
    Examples:
      ddm extract --dataset celebdf --frames 64
      ddm extract --dataset dfdc --precision bf16
      ddm extract --dataset ff --split test --limit 10 --allow-random-weights
      DDM_BROKER_URL=redis://localhost:6379/0 ddm extract --dataset dfdc --wait
    """
    from tasks.extraction import extract_dataset

    outcomes: list[Any] = []
    with progress_bar(app, f"extracting {dataset}") as bar:

        def on_plan(plan: Any) -> None:
            if plan.random_weights:
                app.err.print(
                    "[yellow]warning:[/] random weights: these features are for tests only"
                )
            bar.start(plan.videos)

        def on_video(outcome: Any) -> None:
            outcomes.append(outcome)
            bar.advance(1)

        run = extract_dataset(
            app.settings,
            app.session_factory,
            dataset,
            frames=frames,
            backbones=backbones,
            precision=precision,
            split=split,
            limit=limit,
            force=force,
            weights_dir=weights_dir,
            allow_random=allow_random_weights,
            on_plan=on_plan,
            on_video=on_video,
        )
    plan, dispatched = run.plan, run.dispatched
    if dispatched.sent and plan.job_ids:
        _submitted(app, plan, wait, as_json)
    else:
        _done(app, plan, dispatched.statuses, outcomes, as_json)


def _submitted(app: App, plan: Any, wait: bool, as_json: bool) -> None:
    app.err.print(f"submitted {len(plan.job_ids)} jobs for {plan.videos} videos")
    if not wait:
        if as_json:
            write_json(
                {
                    "dataset": plan.dataset,
                    "fingerprint": plan.fingerprint,
                    "videos": plan.videos,
                    "job_ids": plan.job_ids,
                }
            )
        else:
            click.echo(" ".join(str(job_id) for job_id in plan.job_ids))
        return
    from cli.job_cmds import follow_jobs

    jobs = follow_jobs(app, plan.job_ids, interval=1.0)
    counts = {
        key: sum((job.result or {}).get(key, 0) for job in jobs.values())
        for key in values(VideoOutcomeStatus)
    }
    _done(app, plan, {job_id: job.status for job_id, job in jobs.items()}, [], as_json, counts)


class ExtractionIncomplete(DdmError):
    """Some videos of `ddm extract` failed, or one of its jobs did not succeed."""


def _done(
    app: App,
    plan: Any,
    statuses: dict[int, str],
    outcomes: list[Any],
    as_json: bool,
    counts: dict[str, int] | None = None,
) -> None:
    """Print what the jobs did; exit 1 with the count when any of it did not succeed."""
    from dataclasses import asdict

    from ddm.catalog.records import to_json

    counts = counts or {
        status: sum(o.status == status for o in outcomes) for status in values(VideoOutcomeStatus)
    }
    if as_json:
        write_json(
            {
                "dataset": plan.dataset,
                "fingerprint": plan.fingerprint,
                "videos": plan.videos,
                "jobs": {str(k): v for k, v in statuses.items()},
                **counts,
                "leased": [to_json(video) for video in plan.leased],
                "results": [asdict(o) for o in outcomes],
            }
        )
    elif not plan.job_ids and not plan.leased:
        app.out.print(
            f"nothing to extract: every video of {plan.dataset} has a valid cache "
            f"for extractor {plan.fingerprint[:19]}"
        )
    else:
        _print_results(app, plan, outcomes, counts)
    _warn_leased(app, plan.leased)
    _fail_unless_done(plan, statuses, counts)


def _print_results(app: App, plan: Any, outcomes: list[Any], counts: dict[str, int]) -> None:
    from dataclasses import asdict

    rows = [{**asdict(o), "seconds": round(o.seconds, 2)} for o in outcomes]
    for row in rows:
        row["error"] = row["error"] or row["reason"]
    if rows:
        table(
            app.out,
            rows,
            ["video_id", "path", "status", "seconds", "fallback_frames", "error"],
            title=f"{plan.dataset}: extractor {plan.fingerprint[:19]}",
        )
    app.out.print(", ".join(f"{v} {k}" for k, v in counts.items()))


def _warn_leased(app: App, leased: list[Any]) -> None:
    """Say which videos another live job holds, and when they are retried if it died."""
    for video in leased[:MAX_LEASES_SHOWN]:
        app.err.print(
            f"not planned: {video.path} is being extracted by job {video.job_id}; if that job "
            f"has died, its lease lapses at {video.lease_expires_at:%Y-%m-%d %H:%M:%S} UTC "
            "and the next `ddm extract` takes the video",
            markup=False,
            highlight=False,
        )
    if len(leased) > MAX_LEASES_SHOWN:
        app.err.print(f"... and {len(leased) - MAX_LEASES_SHOWN} more videos held by other jobs")


def _fail_unless_done(plan: Any, statuses: dict[int, str], counts: dict[str, int]) -> None:
    unfinished = {
        job_id: status for job_id, status in statuses.items() if status != JobStatus.SUCCEEDED
    }
    failed = counts.get(VideoOutcomeStatus.FAILED, 0)
    if not failed and not unfinished:
        return
    parts = [f"{failed} of {plan.videos} videos failed"] if failed else []
    parts += [f"job {job_id} {status}" for job_id, status in sorted(unfinished.items())]
    example = min(unfinished) if unfinished else None
    hint = f"`ddm jobs show {example}`" if example else "`ddm videos --json` (cache_error)"
    raise ExtractionIncomplete(f"extraction incomplete: {', '.join(parts)}; see {hint}")


@click.command("worker")
@click.option("--gpu", type=click.IntRange(0), help="Pin this worker to one GPU.")
@click.option("--queues", default="gpu,default", show_default=True)
@click.option(
    "--concurrency",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Pool processes; each gets cores / N threads (unless OMP_NUM_THREADS is set).",
)
@click.option("--loglevel", default="INFO", show_default=True)
@click.pass_obj
def worker(app: App, gpu: int | None, queues: str, concurrency: int, loglevel: str) -> None:
    """Start a Celery worker (one per GPU) that runs extraction, training and evaluation.

    \b
    Examples:
      DDM_BROKER_URL=redis://localhost:6379/0 ddm worker --gpu 0
    """
    import os

    from ddm.errors import SetupError
    from tasks.worker import start_worker

    settings = app.settings
    if not settings.broker:
        raise SetupError("no broker configured: set DDM_BROKER_URL (e.g. redis://localhost:6379/0)")
    _ = app.session_factory  # refuse a stale schema before starting
    # The worker builds its own settings from the environment; hand it the same catalog.
    os.environ["DDM_DATABASE_URL"] = settings.db_url
    os.environ["DDM_HOME"] = str(settings.home)
    start_worker(queues=queues, concurrency=concurrency, gpu=gpu, loglevel=loglevel)


COMMANDS = (extract, worker)
