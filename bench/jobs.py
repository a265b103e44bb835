"""Benchmark `ddm extract` (issue 5): videos per minute inline versus through one Celery worker.

Setup (untimed): a throwaway PostgreSQL cluster (tests/pg.py; `--db sqlite` for a SQLite
file instead), a throwaway `redis-server` (tests/redis_server.py), and the FaceForensics++
clips of ../shared/media ingested into a fresh catalog as dataset `ff`. Both modes use the
same catalog, the same clips, the same settings (T frames, random weights, batch size) and
`force`, so every run re-extracts every clip and overwrites its cache file.

* inline: what `ddm extract` runs without a broker, in this process: `plan_extraction`
  then `run_inline` (job rows, claims, leases, heartbeats, atomic cache files, catalog rows).
* worker: one `ddm worker` subprocess (prefork, concurrency 1) on the same catalog:
  `plan_extraction` then `send_jobs` (what `ddm extract` does with a broker), timed from
  submission until the last job's `finished_at`.

Fairness: both modes build the networks once per process and pay a slow first forward pass
(kernel selection, allocation). Each mode is warmed first with one untimed single-video
job: inline in this process, and in the worker's pool child. The timed runs alternate
(inline, worker, inline, worker, ...) so that load drifting on this shared machine hits both.
A "cold" pair is also reported (`--cold`, on by default in full mode): `ddm extract` as a
fresh CLI process without a broker, versus a fresh `ddm worker` started at the same moment
as a `ddm extract` submission (process start, imports, network build and warm-up included).

Per-stage seconds are read back from the cache files' own `timings` (written by the
extractor). Job-system overhead = (worker wall - inline wall) / inline wall, target < 5%.
Because extraction time itself is noisy here, the time outside extraction (wall minus the
sum of the per-video `total` timings) is reported for both modes as well.

    .venv/bin/python bench/jobs.py            # 7 ff++ clips, T=8, 2 pairs + cold pair
    .venv/bin/python bench/jobs.py --quick    # 2 clips, T=2, 1 pair, no cold pair
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (puts the repository root on sys.path)
import torch
from _common import MEDIA, REPO, machine, median, print_table, write_results

from ddm.catalog.caches import cache_rows
from ddm.catalog.jobs import FINISHED, get_job
from ddm.config import load_settings
from ddm.db import session_scope
from ddm.services.ingest import ingest_dataset
from tasks.context import session_factory
from tasks.dispatch import run_inline, send_jobs
from tasks.extraction import extractor_cfg, plan_extraction

DATASET = "ff"
STAGES = ("decode", "detect", "style", "content", "total")
OVERHEAD_TARGET = 0.05
POLL_S = 0.1


class Bench:
    """The catalog, broker and settings shared by every run."""

    def __init__(self, work: Path, db_url: str, broker_url: str, args: argparse.Namespace):
        self.work = work
        self.args = args
        common = {
            "home": str(work / "home"),
            "database_url": db_url,
            "batch_size": args.batch_size,
        }
        self.inline_settings = load_settings(**common)
        self.broker_settings = load_settings(**common, broker_url=broker_url)
        self.factory = session_factory(self.inline_settings.db_url)  # migrates the new catalog
        self.env = {
            **os.environ,
            "DDM_HOME": common["home"],
            "DDM_DATABASE_URL": db_url,
            "DDM_BATCH_SIZE": str(args.batch_size),
        }
        self.worker_env = {**self.env, "DDM_BROKER_URL": broker_url}
        self.env.pop("DDM_BROKER_URL", None)
        self.worker_log = work / "worker.log"

    def plan(self, settings, limit: int | None):
        return plan_extraction(
            self.factory,
            settings,
            DATASET,
            cfg=extractor_cfg(self.args.frames),
            weights_dir=settings.weights_dir,
            allow_random=True,
            limit=limit,
            force=True,
        )

    # ------------------------------------------------------------------ the two modes

    def inline(self, limit: int | None) -> dict[str, Any]:
        start = time.perf_counter()
        plan = self.plan(self.inline_settings, limit)
        statuses = run_inline(self.inline_settings, self.factory, plan.job_ids)
        wall = time.perf_counter() - start
        return self._result("inline", plan, wall, statuses)

    def worker(self, limit: int | None) -> dict[str, Any]:
        started = datetime.now(UTC)
        start = time.perf_counter()
        plan = self.plan(self.broker_settings, limit)
        send_jobs(self.broker_settings, self.factory, plan.job_ids)
        jobs = self.wait_for(plan.job_ids)
        polled = time.perf_counter() - start
        wall = (max(job.finished_at for job in jobs) - started).total_seconds()
        result = self._result("worker", plan, wall, {j.id: j.status for j in jobs})
        result["wall_polled_s"] = polled
        return result

    def wait_for(self, job_ids: list[int], timeout: float = 1800.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with session_scope(self.factory) as session:
                jobs = [get_job(session, job_id) for job_id in job_ids]
            if all(job.status in FINISHED for job in jobs):
                return jobs
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the worker exited early:\n{self.log_tail()}")
            time.sleep(POLL_S)
        raise RuntimeError(f"jobs {job_ids} did not finish in {timeout:.0f} s\n{self.log_tail()}")

    # ------------------------------------------------------------------ the worker process

    process: subprocess.Popen[bytes] | None = None

    def start_worker(self, concurrency: int = 1) -> None:
        with open(self.worker_log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "worker", "--concurrency", str(concurrency)],
                cwd=REPO,
                env=self.worker_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop_worker(self) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=60)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self.process = None

    def log_tail(self) -> str:
        try:
            return self.worker_log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    # ------------------------------------------------------------------ cold runs

    def cold_inline(self, limit: int | None) -> dict[str, Any]:
        start = time.perf_counter()
        completed = subprocess.run(
            self._extract_argv(limit), cwd=REPO, env=self.env, capture_output=True, text=True
        )
        wall = time.perf_counter() - start
        if completed.returncode != 0:
            raise RuntimeError(f"ddm extract failed:\n{completed.stderr[-3000:]}")
        return {"mode": "inline-cold", "wall_s": wall}

    def cold_worker(self, limit: int | None) -> dict[str, Any]:
        started = datetime.now(UTC)
        start = time.perf_counter()
        self.start_worker()
        completed = subprocess.run(
            [*self._extract_argv(limit), "--json"],
            cwd=REPO,
            env=self.worker_env,
            capture_output=True,
            text=True,
        )
        if completed.returncode != 0:
            raise RuntimeError(f"ddm extract failed:\n{completed.stderr[-3000:]}")
        jobs = self.wait_for(json.loads(completed.stdout)["job_ids"])
        polled = time.perf_counter() - start
        wall = (max(job.finished_at for job in jobs) - started).total_seconds()
        return {"mode": "worker-cold", "wall_s": wall, "wall_polled_s": polled}

    def _extract_argv(self, limit: int | None) -> list[str]:
        argv = [sys.executable, "-m", "cli.main", "--quiet", "extract", "--dataset", DATASET]
        argv += ["--frames", str(self.args.frames), "--allow-random-weights", "--force"]
        return argv + (["--limit", str(limit)] if limit else [])

    # ------------------------------------------------------------------ results

    def _result(self, mode: str, plan: Any, wall: float, statuses: dict) -> dict[str, Any]:
        stages = self.stage_seconds(plan.fingerprint)
        videos = plan.videos
        return {
            "mode": mode,
            "videos": videos,
            "jobs": len(plan.job_ids),
            "statuses": sorted(set(statuses.values())),
            "wall_s": wall,
            "videos_per_min": videos / wall * 60,
            "stage_s_sum": stages["sum"],
            "row_seconds_sum": stages["row_seconds"],
            "outside_extraction_s": wall - stages["sum"]["total"],
            "per_video": stages["per_video"],
        }

    def stage_seconds(self, fingerprint: str) -> dict[str, Any]:
        """Sum the per-stage `timings` stored in this extractor's cache files."""
        cache_dir = self.inline_settings.cache_dir
        with session_scope(self.factory) as session:
            rows = [
                row
                for row in cache_rows(session, dataset=DATASET)
                if row.fingerprint == fingerprint and row.is_valid
            ]
        per_video = []
        for row in rows:
            features = torch.load(cache_dir / row.path, weights_only=True)
            per_video.append({"video_id": row.video_id, **features["timings"]})
        return {
            "sum": {s: sum(v[s] for v in per_video) for s in STAGES},
            "row_seconds": sum(row.seconds or 0.0 for row in rows),
            "per_video": per_video,
        }


@contextlib.contextmanager
def running_bench(args: argparse.Namespace, prefix: str) -> Iterator[Bench]:
    """A Bench over a new catalog (throwaway PostgreSQL, or SQLite with `--db sqlite`) and
    a throwaway Redis, all stopped and removed on exit, worker included."""
    from tests.pg import start_server
    from tests.redis_server import start_redis

    work = Path(tempfile.mkdtemp(prefix=prefix))
    pg = redis = bench = None
    try:
        pg = start_server() if args.db == "postgres" else None
        db_url = pg.create_database() if pg else f"sqlite:///{work / 'catalog.sqlite3'}"
        redis = start_redis()
        bench = Bench(work, db_url, redis.url, args)
        yield bench
    finally:
        if bench is not None:
            bench.stop_worker()
        if redis is not None:
            redis.stop()
        if pg is not None:
            pg.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 clips, T=2, one pair, no cold")
    parser.add_argument("--frames", type=int, help="T per video (default 8, quick 2)")
    parser.add_argument("--limit", type=int, help="videos per run (default all 7, quick 2)")
    parser.add_argument("--pairs", type=int, help="inline/worker pairs (default 2, quick 1)")
    parser.add_argument("--batch-size", type=int, default=4, help="videos per job (default 4)")
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--cold", action=argparse.BooleanOptionalAction, default=None)
    args = parser.parse_args()
    args.frames = args.frames or (2 if args.quick else 8)
    limit = args.limit or (2 if args.quick else None)
    pairs = args.pairs or (1 if args.quick else 2)
    cold = (not args.quick) if args.cold is None else args.cold

    info = machine()
    info["torch"] = torch.__version__
    info["torch_threads_bench_process"] = torch.get_num_threads()
    runs: list[dict[str, Any]] = []
    warm: dict[str, float] = {}
    cold_runs: list[dict[str, Any]] = []
    with running_bench(args, "ddm-bench-jobs-") as bench:
        report = ingest_dataset(bench.factory, MEDIA / "ff++", format="ffpp", name=DATASET)
        print(f"ingested {report.counts.new} ff++ clips; catalog {args.db}", flush=True)

        start = time.perf_counter()
        bench.inline(limit=1)
        warm["inline_build_and_first_video_s"] = time.perf_counter() - start
        start = time.perf_counter()
        bench.start_worker()
        bench.worker(limit=1)
        warm["worker_start_build_and_first_video_s"] = time.perf_counter() - start
        print(f"warmed up: {warm}", flush=True)

        for index in range(pairs):
            for mode in ("inline", "worker"):
                result = getattr(bench, mode)(limit)
                result["order"] = 2 * index + (mode == "worker")
                result["loadavg"] = _common.loadavg()
                runs.append(result)
                print(
                    f"  {mode}: {result['wall_s']:.2f} s, "
                    f"{result['videos_per_min']:.2f} videos/min, "
                    f"outside extraction {result['outside_extraction_s']:.2f} s",
                    flush=True,
                )
        if cold:
            bench.stop_worker()
            cold_runs.append(bench.cold_inline(limit))
            cold_runs.append(bench.cold_worker(limit))
            for r in cold_runs:
                print(f"  {r['mode']}: {r['wall_s']:.2f} s", flush=True)

    summary = summarize(runs, cold_runs)
    show(args, runs, warm, cold_runs, summary)
    write_results(
        "jobs.quick" if args.quick else "jobs",
        {
            "benchmark": "jobs",
            "quick": args.quick,
            "machine": info,
            "settings": {
                "dataset": "../shared/media/ff++ (ffpp layout)",
                "frames": args.frames,
                "limit": limit,
                "batch_size": args.batch_size,
                "catalog": args.db,
                "broker": "redis-server (throwaway)",
                "weights": "random (no weights files here)",
                "worker": "ddm worker --concurrency 1 (prefork)",
            },
            "warm_up": warm,
            "runs": runs,
            "cold": cold_runs,
            "summary": summary,
        },
    )


def summarize(runs: list[dict[str, Any]], cold_runs: list[dict[str, Any]]) -> dict[str, Any]:
    by_mode = {m: [r for r in runs if r["mode"] == m] for m in ("inline", "worker")}
    inline_wall = median([r["wall_s"] for r in by_mode["inline"]])
    worker_wall = median([r["wall_s"] for r in by_mode["worker"]])
    pairs = [
        (w["wall_s"] - i["wall_s"]) / i["wall_s"]
        for i, w in zip(by_mode["inline"], by_mode["worker"], strict=True)
    ]
    overhead = (worker_wall - inline_wall) / inline_wall
    summary: dict[str, Any] = {
        "median_wall_s": {"inline": inline_wall, "worker": worker_wall},
        "median_videos_per_min": {
            m: median([r["videos_per_min"] for r in rs]) for m, rs in by_mode.items()
        },
        "median_outside_extraction_s": {
            m: median([r["outside_extraction_s"] for r in rs]) for m, rs in by_mode.items()
        },
        "median_stage_s_per_video": {
            m: {s: median([r["stage_s_sum"][s] / r["videos"] for r in rs]) for s in STAGES}
            for m, rs in by_mode.items()
        },
        "overhead_of_medians": overhead,
        "overhead_per_pair": pairs,
        "overhead_target": OVERHEAD_TARGET,
        "passes": overhead < OVERHEAD_TARGET,
    }
    if cold_runs:
        walls = {r["mode"]: r["wall_s"] for r in cold_runs}
        summary["cold_overhead"] = (walls["worker-cold"] - walls["inline-cold"]) / walls[
            "inline-cold"
        ]
    return summary


def show(args, runs, warm, cold_runs, summary) -> None:
    rows = [
        [
            r["order"] + 1,
            r["mode"],
            r["videos"],
            r["jobs"],
            r["wall_s"],
            r["videos_per_min"],
            *(r["stage_s_sum"][s] for s in STAGES),
            r["outside_extraction_s"],
            " ".join(f"{x:.2f}" for x in r["loadavg"]),
        ]
        for r in runs
    ]
    print_table(
        f"ddm extract on ff++ clips (T={args.frames}, random weights, batch {args.batch_size}, "
        f"{args.db}); stage columns are sums over the videos, seconds",
        ["#", "mode", "videos", "jobs", "wall s", "videos/min", *STAGES, "outside", "load"],
        rows,
    )
    print(f"warm-up (untimed above): {warm}")
    for r in cold_runs:
        print(f"cold {r['mode']}: {r['wall_s']:.2f} s")
    pct = ", ".join(f"{p * 100:+.1f}%" for p in summary["overhead_per_pair"])
    verdict = "pass" if summary["passes"] else "FAIL"
    print(
        f"job-system overhead (worker - inline) / inline: median walls "
        f"{summary['overhead_of_medians'] * 100:+.1f}% ({verdict}, target < 5%); "
        f"per pair {pct}"
    )
    if "cold_overhead" in summary:
        print(f"cold pair overhead: {summary['cold_overhead'] * 100:+.1f}%")


if __name__ == "__main__":
    main()
