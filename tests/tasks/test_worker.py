"""The real thing: a Redis broker, `ddm worker` processes and PostgreSQL, including SIGKILL.

These tests start `ddm worker` as a separate process group, submit with `ddm extract`
and read the outcome from the catalog, exactly as a user would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from sqlalchemy import select

from ddm.catalog.models import FeatureCache, Job
from ddm.db import create_db_engine, make_session_factory, session_scope
from ddm.fs import TEMP_PREFIX, sha256_of
from model.compiled import compile_backend_available
from tests.redis_server import RedisServer, start_redis
from tests.tasks.conftest import FRAMES, kill_worker, make_clips, start_worker, wait_for

pytestmark = pytest.mark.postgres

# Heartbeats every half second; a job silent for 6 s is presumed dead (leaving room for a
# loaded machine); sweeps every second.
JOB_ENV = {
    "DDM_HEARTBEAT_SECONDS": "0.5",
    "DDM_STALE_AFTER_SECONDS": "6",
    "DDM_SWEEP_SECONDS": "1",
    "DDM_BATCH_SIZE": "4",
}
# Bound on recovery after SIGKILL: staleness (6 s) + a sweep (1 s) + worker start-up and
# the remaining extractions, generously, on a loaded 2-core machine.
RECOVERY_BOUND_S = 120


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture
def env(tmp_path: Path, pg_server, pg_template, redis: RedisServer) -> dict[str, str]:
    url = pg_server.create_database(template=pg_template)
    return {
        **os.environ,
        **JOB_ENV,
        "DDM_DATABASE_URL": url,
        "DDM_BROKER_URL": redis.url,
        "DDM_HOME": str(tmp_path / "home"),
        "OMP_NUM_THREADS": "1",
    }


def _ddm(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _factory(env: dict[str, str]):
    return make_session_factory(create_db_engine(env["DDM_DATABASE_URL"]))


def _jobs(factory) -> list[Job]:
    with session_scope(factory) as session:
        return list(session.scalars(select(Job).order_by(Job.id)))


def _ingest_and_submit(env: dict[str, str], root: Path) -> list[int]:
    ingest = _ddm(env, "ingest", str(make_clips(root)), "--format", "folder")
    assert ingest.returncode == 0, ingest.stderr
    submit = _ddm(
        env,
        "extract",
        "--dataset",
        root.name,
        "--frames",
        str(FRAMES),
        "--allow-random-weights",
        "--json",
    )
    assert submit.returncode == 0, submit.stderr
    return json.loads(submit.stdout)["job_ids"]


def test_extract_wait_follows_a_worker_to_the_end(env, tmp_path: Path) -> None:
    root = make_clips(tmp_path / "clips")
    assert _ddm(env, "ingest", str(root), "--format", "folder").returncode == 0
    worker = start_worker(env, tmp_path / "worker.log")
    try:
        result = _ddm(
            env,
            "extract",
            "--dataset",
            "clips",
            "--frames",
            str(FRAMES),
            "--allow-random-weights",
            "--wait",
            "--json",
        )
    finally:
        kill_worker(worker, signal.SIGTERM)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["extracted"], report["failed"]) == (3, 0)
    assert set(report["jobs"].values()) == {"succeeded"}
    [job] = _jobs(_factory(env))
    assert job.celery_task_id and job.worker and job.attempts == 1
    listed = json.loads(_ddm(env, "videos", "--json").stdout)
    assert all(video["cache_valid"] for video in listed)


def test_a_worker_killed_mid_batch_is_replaced_and_the_job_finishes(env, tmp_path: Path) -> None:
    _ingest_and_submit(env, tmp_path / "clips")
    factory = _factory(env)
    log = tmp_path / "worker.log"
    first = start_worker(env, log)
    try:
        wait_for(
            lambda: any(j.status == "running" and j.progress_done >= 1 for j in _jobs(factory)),
            300,
            "the first video of the batch",
        )
    finally:
        kill_worker(first)
    killed_at = time.monotonic()
    [job] = _jobs(factory)
    assert job.status == "running" and job.progress_done < 3, "killed too late to test anything"

    second = start_worker(env, log)
    try:
        wait_for(
            lambda: _jobs(factory)[0].status == "succeeded",
            RECOVERY_BOUND_S,
            "the restarted worker to finish the job",
            log,
        )
        recovered_in = time.monotonic() - killed_at
    finally:
        kill_worker(second, signal.SIGTERM)
    [job] = _jobs(factory)
    assert job.attempts == 2 and recovered_in < RECOVERY_BOUND_S
    with session_scope(factory) as session:
        rows = session.scalars(select(FeatureCache)).all()
    assert len(rows) == 3 and all(row.is_valid and row.claimed_by_job_id is None for row in rows)
    cache_dir = Path(env["DDM_HOME"]) / "cache"
    files = [p for p in cache_dir.rglob("*") if p.is_file()]
    assert sorted(p.relative_to(cache_dir).as_posix() for p in files) == sorted(
        row.path for row in rows
    )
    assert not [p for p in files if p.name.startswith(TEMP_PREFIX)]
    assert all(sha256_of(cache_dir / row.path) == row.checksum for row in rows)


@pytest.mark.skipif(
    not compile_backend_available(torch.device("cpu")), reason="no C++ compiler for inductor"
)
def test_a_pool_child_compiles_its_style_network(env, tmp_path: Path) -> None:
    # A prefork child is a daemon process: inductor must compile there all the same.
    root = make_clips(tmp_path / "clips")
    assert _ddm(env, "ingest", str(root), "--format", "folder").returncode == 0
    log = tmp_path / "worker.log"
    worker = start_worker({**env, "DDM_COMPILE": "on"}, log)
    try:
        extract = ("extract", "--dataset", "clips", "--backbones", "small", "--frames", "8")
        result = _ddm(env, *extract, "--allow-random-weights", "--wait", "--json")
    finally:
        kill_worker(worker, signal.SIGTERM)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["extracted"] == 3
    text = log.read_text()
    assert "style network compiled (DDM_COMPILE=on)" in text
    assert "torch.compile failed" not in text, text[-2000:]


def test_each_pool_child_gets_its_share_of_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks import worker as worker_module
    from tasks.app import app

    assert worker_module.threads_per_child(2, cores=16) == 8
    assert worker_module.threads_per_child(3, cores=2) == 1
    seen: dict[str, str] = {}
    monkeypatch.setattr(app, "worker_main", lambda argv: seen.update(os.environ))
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    for variable in worker_module.THREAD_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    worker_module.start_worker(queues="gpu", concurrency=4, gpu=None, loglevel="INFO")
    assert seen["OMP_NUM_THREADS"] == seen["MKL_NUM_THREADS"] == "2"
    # A thread count the user chose is kept.
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    worker_module.start_worker(queues="gpu", concurrency=4, gpu=None, loglevel="INFO")
    assert seen["OMP_NUM_THREADS"] == "3"
