"""Whole-dataset extraction throughput on one machine (issue 13, part 3): videos per
minute of `ddm extract` for 1, 2 and N processes, each with the threads it gets.

Setups, each over the same catalog (the FF++ clips of ../shared/media, `--force`, random
weights) on a throwaway PostgreSQL and Redis:

* inline: `ddm extract` without a broker, one process, torch's default threads (all cores);
* worker cN: one `ddm worker --concurrency N`: N pool children, each given cores / N
  threads by `tasks.worker.start_worker`;
* worker cN oversubscribed: the same with OMP_NUM_THREADS = cores in every child (what a
  worker did before it sized its children), for comparison.

Each worker setup starts a fresh worker and first runs one untimed job per child (network
build, first passes). Jobs hold `--batch-size` videos (default 1, so that N children share
the last videos evenly, as they do over a real dataset's thousands of batches).

    .venv/bin/python bench/throughput.py [--frames 8] [--concurrency 1,2] [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import _common  # noqa: F401  (puts the repository root on sys.path)
from _common import MEDIA, machine, print_table, write_results
from jobs import DATASET, Bench, running_bench

from ddm.services.ingest import ingest_dataset
from tasks.worker import threads_per_child


class Setup:
    """One way of running the extraction: inline, or a worker of some concurrency."""

    def __init__(self, concurrency: int | None, oversubscribed: bool = False) -> None:
        self.concurrency = concurrency
        self.oversubscribed = oversubscribed

    @property
    def name(self) -> str:
        if self.concurrency is None:
            return "inline"
        return f"worker c{self.concurrency}" + (" oversubscribed" if self.oversubscribed else "")

    def threads(self) -> int:
        cores = os.cpu_count() or 1
        if self.concurrency is None or self.oversubscribed:
            return cores
        return threads_per_child(self.concurrency)


def start(bench: Bench, setup: Setup) -> None:
    """Start a worker for `setup` and warm each of its children with one job."""
    env = dict(bench.worker_env)
    env.pop("OMP_NUM_THREADS", None)
    if setup.oversubscribed:
        env["OMP_NUM_THREADS"] = str(os.cpu_count() or 1)
    bench.worker_env = env
    bench.start_worker(concurrency=setup.concurrency)
    bench.worker(limit=setup.concurrency)


def run(bench: Bench, setup: Setup) -> dict[str, Any]:
    result = bench.inline(None) if setup.concurrency is None else bench.worker(None)
    per_video = result.pop("per_video")
    return {
        "setup": setup.name,
        "processes": setup.concurrency or 1,
        "threads_each": setup.threads(),
        **result,
        "mean_stage_s": {
            stage: sum(v[stage] for v in per_video) / len(per_video) for stage in per_video[0]
        },
        "loadavg": _common.loadavg(),
    }


def setups(concurrencies: list[int]) -> list[Setup]:
    chosen = [Setup(None)] + [Setup(c) for c in concurrencies]
    return chosen + [Setup(c, oversubscribed=True) for c in concurrencies if c > 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8, help="T per video (default 8)")
    parser.add_argument("--concurrency", default=f"1,{os.cpu_count() or 1}")
    parser.add_argument("--batch-size", type=int, default=1, help="videos per job (default 1)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per setup")
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    args = parser.parse_args()
    concurrencies = sorted({int(c) for c in args.concurrency.split(",")})

    info = machine()  # before the runs: its load averages are the starting ones
    runs: list[dict[str, Any]] = []
    with running_bench(args, "ddm-bench-throughput-") as bench:
        ingest_dataset(bench.factory, MEDIA / "ff++", format="ffpp", name=DATASET)
        bench.inline(limit=1)  # warm the inline networks
        for setup in setups(concurrencies):
            if setup.concurrency is not None:
                start(bench, setup)
            for _ in range(args.repeats):
                runs.append(run(bench, setup))
                print(f"  {setup.name}: {runs[-1]['videos_per_min']:.2f} videos/min", flush=True)
            bench.stop_worker()
            time.sleep(1)
    show(runs, args)
    best = max(runs, key=lambda r: r["videos_per_min"])
    write_results(
        "throughput",
        {
            "benchmark": "throughput",
            "machine": info,
            "settings": {
                "frames": args.frames,
                "batch_size": args.batch_size,
                "catalog": args.db,
                "dataset": "../shared/media/ff++ (ffpp layout), --force, random weights",
            },
            "runs": runs,
            "fastest": best["setup"],
        },
    )


def show(runs: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print_table(
        f"ddm extract over the FF++ clips, T = {args.frames}, batch {args.batch_size}",
        ["setup", "processes", "threads each", "videos", "wall s", "videos/min", "detect", "style"],
        [
            [
                r["setup"],
                r["processes"],
                r["threads_each"],
                r["videos"],
                r["wall_s"],
                r["videos_per_min"],
                r["mean_stage_s"].get("detect"),
                r["mean_stage_s"].get("style"),
            ]
            for r in runs
        ],
    )


if __name__ == "__main__":
    main()
