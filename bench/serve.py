"""`ddm serve` at DFDC size: p50 and p95 latency of every page over 130,000 videos and
1,000,000 stored predictions, and the server's peak memory.

The catalog is the one `bench/scale.py` fills and keeps (a real first ingest of generated
DFDC-like and FF++-like trees, a valid cache per video, 10 runs, each run's evaluation on
every DFDC video and on FF++'s test split); this script adds what the pages show and that
fill leaves out: each run's training curve (60 epochs) and a job history (2,000 finished
jobs and a few queued and running ones), through the catalog's own functions, once.

Then `ddm serve --port 0` runs in a child process with the code under test, as a user
starts it, and each page is requested over one keep-alive connection: a warm-up, then N
timed requests (fewer when a page's time budget runs out first), each answer read in
full. The server's peak resident memory is its own `VmHWM`. With `--baseline DIR` (a
checkout of an older commit) the same pages are measured first with that code, on the
same catalog migrated down to its head: before and after, side by side in one run.

    .venv/bin/python bench/serve.py [--db postgresql|sqlite] [--quick | --tiny] [--json]
        [--requests N] [--warmup N] [--budget S] [--baseline DIR] [--work DIR]
        [--url URL] [--refill]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _common
import scale
from _common import REPO, machine, print_table, write_results

GOAL_MS = 200.0  # issue 23: every page under this at the 95th percentile, on PostgreSQL
EPOCHS = 60
FINISHED_JOBS = 2000


@dataclass(frozen=True)
class Page:
    """One measured address: its name in the results, and its path."""

    name: str
    path: str


def pages(ids: dict[str, int]) -> list[Page]:
    """Every page and its JSON twin, on the catalog's ids (`catalog_ids`)."""
    video, run, evaluation = ids["video"], ids["run"], ids["evaluation"]
    filtered = "?dataset=dfdc&label=fake&split=train&sort=size&order=desc&cache=valid"
    twins = [
        ("datasets", "/datasets"),
        ("videos", "/videos"),
        ("videos_filtered_sorted", "/videos" + filtered),
        ("videos_deep_page", "/videos?offset=100000"),
        ("videos_by_latest_score", "/videos?sort=latest_score&order=desc"),
        ("video", f"/videos/{video}"),
        ("runs", "/runs"),
        ("run", f"/runs/{run}"),
        ("evaluation", f"/evaluations/{evaluation}"),
        ("jobs", "/jobs"),
    ]
    found = [Page("index", "/")]
    for name, path in twins:
        found += [Page(name, path), Page(f"api_{name}", "/api" + path)]
    found += [
        Page("api_stats", "/api/stats"),
        Page("video_file", f"/videos/{video}/file"),
        # The figures the run and evaluation pages show (drawn from catalog rows; the
        # video page's face strip, crop and timeline read feature files this catalog lacks).
        Page("run_curves_png", f"/runs/{run}/curves.png"),
        Page("evaluation_roc_png", f"/evaluations/{evaluation}/roc.png"),
        Page("evaluation_confusion_png", f"/evaluations/{evaluation}/confusion.png"),
    ]
    return found


# --------------------------------------------------------------------------- the catalog


def add_history(url: str) -> None:
    """Each run's training curve and a job history, unless the catalog has them already."""
    from sqlalchemy import func, select

    from ddm.catalog.models import Job, Run
    from ddm.db import create_db_engine, make_session_factory, session_scope

    engine = create_db_engine(url)
    factory = make_session_factory(engine)
    with session_scope(factory) as session:
        if session.scalar(select(func.count()).select_from(Job)):
            engine.dispose()
            return
        run_ids = list(session.scalars(select(Run.id).order_by(Run.id)))
        for run_id in run_ids:
            _add_epochs(session, run_id)
        _add_jobs(session)
    engine.dispose()


def _add_epochs(session: Any, run_id: int) -> None:
    from ddm.catalog.runs import record_epoch

    for epoch in range(1, EPOCHS + 1):
        loss = 0.7 / epoch**0.5
        record_epoch(
            session,
            run_id,
            epoch,
            train_loss=loss,
            train_accuracy=1.0 - loss / 2,
            val_loss=loss * 1.2,
            val_accuracy=1.0 - loss / 1.6,
            learning_rate=1e-3,
        )


def _add_jobs(session: Any) -> None:
    """FINISHED_JOBS finished jobs (one in ten failed), then 3 running and 3 queued."""
    from ddm.catalog.jobs import claim_job, create_job, finish_job, heartbeat

    kinds = ("extract", "train", "eval")
    for number in range(FINISHED_JOBS + 6):
        kind = kinds[number % 3]
        job = create_job(session, kind, {"bench": number}, total=100)
        if number >= FINISHED_JOBS + 3:
            continue  # queued
        claim_job(session, job.id, "bench-worker", 3)
        heartbeat(session, job.id, "bench-worker", done=100 if number < FINISHED_JOBS else 40)
        if number < FINISHED_JOBS:
            failed = number % 10 == 9
            status, error = ("failed", "bench: a failure") if failed else ("succeeded", None)
            finish_job(session, job.id, "bench-worker", status, error=error)


def catalog_ids(url: str) -> dict[str, int]:
    """The ids the pages are measured on: the newest run, its largest evaluation (every
    DFDC video), and a DFDC video in the middle of the catalog (scored by every run)."""
    from sqlalchemy import func, select

    from ddm.catalog.models import Evaluation, Run, Video
    from ddm.db import create_db_engine

    engine = create_db_engine(url)
    with engine.connect() as connection:
        run = connection.scalar(select(func.max(Run.id)))
        evaluation = connection.scalar(
            select(Evaluation.id)
            .where(Evaluation.run_id == run)
            .order_by(Evaluation.n_videos.desc(), Evaluation.id)
            .limit(1)
        )
        videos = connection.scalar(select(func.count()).select_from(Video))
        video = connection.scalar(select(Video.id).order_by(Video.id).offset(videos // 2).limit(1))
    engine.dispose()
    return {"run": int(run), "evaluation": int(evaluation), "video": int(video)}


# --------------------------------------------------------------------------- the server


class Server:
    """`ddm serve --port 0` with the code at `code`, in a child process of its own."""

    def __init__(self, code: Path, url: str, home: Path) -> None:
        from tests.conftest import private_ddm_env

        env = {k: v for k, v in os.environ.items() if not k.startswith("DDM_")}
        env.update({k: v for k, v in private_ddm_env(home).items() if v is not None})
        env.update({"DDM_DATABASE_URL": url, "PYTHONPATH": str(code)})
        home.mkdir(parents=True, exist_ok=True)
        self.log = (home / "serve.err").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve", "--port", "0"],
            cwd=code,
            env=env,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        self.port = self._port_from_banner(home / "serve.err")

    def _port_from_banner(self, log: Path) -> int:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # "ddm serve: http://127.0.0.1:N/ (read-only)"
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if found is None:
            self.stop()
            raise SystemExit(f"ddm serve did not start: {line!r} {log.read_text()[-2000:]}")
        return int(found.group(1))

    def peak_rss_mib(self) -> float:
        """The server's peak resident memory so far (its own VmHWM)."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # Ctrl-C: uvicorn stops cleanly
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


# --------------------------------------------------------------------------- measuring


def percentile(sorted_values: list[float], share: float) -> float:
    """The nearest-rank percentile of sorted values (p95 of 20 values: the 19th)."""
    rank = max(1, -(-len(sorted_values) * share // 1))
    return sorted_values[int(rank) - 1]


def measure_page(
    connection: http.client.HTTPConnection, page: Page, requests: int, warmup: int, budget: float
) -> dict[str, Any]:
    """Warm-up (its first request timed alone), then up to `requests` timed GETs (at least
    5 when `budget` seconds are spent first): latencies from sending to the last byte
    read, and every status seen."""
    statuses: dict[str, int] = {}
    start = time.perf_counter()
    _get(connection, page.path)  # the first request: what the first visitor waits
    first = time.perf_counter() - start
    for _ in range(warmup - 1):
        _get(connection, page.path)
    latencies = []
    spent, size = 0.0, 0
    while len(latencies) < requests and (spent < budget or len(latencies) < 5):
        start = time.perf_counter()
        status, size = _get(connection, page.path)
        latencies.append(time.perf_counter() - start)
        spent += latencies[-1]
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    ordered = sorted(latencies)
    return {
        "path": page.path,
        "requests": len(ordered),
        "statuses": statuses,
        "bytes": size,
        "first_ms": first * 1000,
        "p50_ms": percentile(ordered, 0.50) * 1000,
        "p95_ms": percentile(ordered, 0.95) * 1000,
        "max_ms": ordered[-1] * 1000,
    }


def _get(connection: http.client.HTTPConnection, path: str) -> tuple[int, int]:
    connection.request("GET", path, headers={"host": "127.0.0.1"})
    response = connection.getresponse()
    return response.status, len(response.read())


def measure(
    code: Path, url: str, home: Path, ids: dict[str, int], args: argparse.Namespace
) -> dict[str, Any]:
    """Every page served by the code at `code`, and the server's peak memory."""
    server = Server(code, url, home)
    results: dict[str, Any] = {}
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
        for page in pages(ids):
            result = measure_page(connection, page, args.requests, args.warmup, args.budget)
            results[page.name] = result
            print(
                f"  {page.name}: p50 {result['p50_ms']:.0f} ms, p95 {result['p95_ms']:.0f} ms "
                f"({result['requests']} requests, {result['statuses']})",
                file=sys.stderr,
                flush=True,
            )
        connection.close()
        peak = server.peak_rss_mib()
    finally:
        server.stop()
    return {"pages": results, "server_peak_rss_mib": peak}


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--quick", action="store_true", help="10,000 videos")
    sizes.add_argument("--tiny", action="store_true", help="320 videos (the tests' size)")
    parser.add_argument("--json", action="store_true", help="print one JSON line on stdout")
    parser.add_argument("--requests", type=int, default=50, help="timed requests per page")
    parser.add_argument(
        "--warmup", type=int, default=3, help="requests before the timed ones (at least 1)"
    )
    parser.add_argument("--budget", type=float, default=30.0, help="seconds per page at most")
    parser.add_argument("--baseline", type=Path, help="an older checkout to measure first")
    parser.add_argument("--work", type=Path, help="where trees and catalogs are kept")
    parser.add_argument("--url", help="a catalog of one's own, filled first when empty")
    parser.add_argument("--refill", action="store_true", help="fill the catalog afresh")
    args = parser.parse_args()
    size = scale.TINY if args.tiny else scale.QUICK if args.quick else scale.FULL
    work = scale.work_dir(size, args.work)
    info = machine()
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else print
    runs: dict[str, Any] = {}
    opened = scale.filled_catalog(args.db, size, work, refill=args.refill, url=args.url, say=say)
    with opened as filled:
        add_history(filled.url)
        ids = catalog_ids(filled.url)
        if args.baseline is not None:
            revision = scale.baseline_head(args.baseline)
            say(f"baseline {args.baseline} (migrated down to {revision}):")
            runs["migrate_down_s"] = scale.migrate(filled.url, revision)
            runs["baseline"] = measure(args.baseline, filled.url, work / "serve-base", ids, args)
        runs["migrate_up_s"] = scale.migrate(filled.url, "head")
        say("this checkout:")
        runs["current"] = measure(REPO, filled.url, work / "serve-home", ids, args)
    _report(args, size, info, filled.counts, ids, runs)


def _report(
    args: argparse.Namespace,
    size: Any,
    info: dict[str, Any],
    counts: dict[str, int],
    ids: dict[str, int],
    runs: dict[str, Any],
) -> None:
    current = runs["current"]["pages"]
    over = [name for name, page in current.items() if page["p95_ms"] > GOAL_MS]
    results = {
        "machine": info,
        "db": args.db,
        "size": size.name,
        **counts,
        "ids": ids,
        "requests": args.requests,
        "warmup": args.warmup,
        **runs,
        "over_goal": over,
        "loadavg": _common.loadavg(),
    }
    name = f"serve-{args.db}" + ("" if size is scale.FULL else f".{size.name}")
    keep = size is not scale.TINY  # a tiny run checks the script; it measures nothing
    if args.json:
        if keep:
            write_results(name, results, quiet=True)
        line = {
            **counts,
            "db": args.db,
            "pages": current,
            "server_peak_rss_mib": runs["current"]["server_peak_rss_mib"],
            "over_goal": over,
        }
        if "baseline" in runs:
            line["baseline"] = runs["baseline"]
        print(json.dumps(line))
        return
    title = f"{args.db}: {counts['videos']} videos, {counts['predictions']} predictions"
    print_table(title, *_table(runs))
    print(f"server peak RSS: {runs['current']['server_peak_rss_mib']:.0f} MiB")
    print(f"over {GOAL_MS:.0f} ms at p95: {', '.join(over) or 'none'}")
    if keep:
        write_results(name, results)


def _table(runs: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    current = runs["current"]["pages"]
    before = runs.get("baseline", {}).get("pages")
    if before is None:
        header = ["page", "p50 ms", "p95 ms", "requests"]
        rows = [[n, p["p50_ms"], p["p95_ms"], p["requests"]] for n, p in current.items()]
        return header, rows
    header = ["page", "before p50", "before p95", "after p50", "after p95"]
    rows = [
        [n, before[n]["p50_ms"], before[n]["p95_ms"], p["p50_ms"], p["p95_ms"]]
        for n, p in current.items()
    ]
    return header, rows


if __name__ == "__main__":
    main()
