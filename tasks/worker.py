"""Start a Celery worker for ddm's queues (jobs layer).

One worker per GPU: `ddm worker --gpu N` pins the process to that device through
CUDA_VISIBLE_DEVICES before anything touches CUDA, and CUDA is first initialised in the
pool child that runs a task.
"""

from __future__ import annotations

import os


def start_worker(*, queues: str, concurrency: int, gpu: int | None, loglevel: str) -> None:
    """Run a worker in this process until it is stopped (blocks)."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    from tasks.app import app

    name = f"ddm-gpu{gpu}@%h" if gpu is not None else "ddm@%h"
    app.worker_main(
        argv=[
            "worker",
            "--queues",
            queues,
            "--concurrency",
            str(concurrency),
            "--loglevel",
            loglevel,
            "--hostname",
            name,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--pool",
            "prefork",
        ]
    )
