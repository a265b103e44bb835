"""Start a Celery worker for ddm's queues (jobs layer).

One worker per GPU: `ddm worker --gpu N` pins the process to that device through
CUDA_VISIBLE_DEVICES before anything touches CUDA, and CUDA is first initialised in the
pool child that runs a task.
"""

from __future__ import annotations

import os

# Thread pools of the libraries that run the networks and decode the video; each pool
# child gets its share of the cores, or N children oversubscribe them N times over.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
# model.determinism.CUBLAS_WORKSPACE, kept here so that the worker's parent imports no torch.
CUBLAS_WORKSPACE = ":4096:8"


def threads_per_child(concurrency: int, cores: int | None = None) -> int:
    """The cores each of `concurrency` pool children may use (at least one)."""
    return max(1, (cores or os.cpu_count() or 1) // concurrency)


def start_worker(*, queues: str, concurrency: int, gpu: int | None, loglevel: str) -> None:
    """Run a worker in this process until it is stopped (blocks).

    Sets the thread count of every pool child to its share of the cores before anything
    imports torch, unless OMP_NUM_THREADS is set already (the user's choice wins).
    """
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    # cuBLAS reads it when a child first uses it: a run that asks for deterministic
    # kernels (`ddm train --deterministic`) needs it set before then.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    if "OMP_NUM_THREADS" not in os.environ:
        for variable in THREAD_VARIABLES:
            os.environ[variable] = str(threads_per_child(concurrency))
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
