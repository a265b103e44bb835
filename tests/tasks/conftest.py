"""Fixtures for job tests: a small real dataset in the catalog, settings for jobs, and a
catalog on PostgreSQL with a Redis broker for real worker processes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from ddm.config import Settings, load_settings
from ddm.services.ingest import ingest_dataset
from tests.conftest import MEDIA
from tests.tasks.synth import make_synth

# Two frames keep a CPU extraction to a few seconds per video; the pipeline is the same.
FRAMES = 2
CLIPS = {
    "real/004.mp4": MEDIA / "ff++/original_sequences/youtube/c23/videos/004.mp4",
    "fake/004_982.mp4": MEDIA / "ff++/manipulated_sequences/NeuralTextures/c23/videos/004_982.mp4",
    "fake/634_660.mp4": MEDIA / "ff++/manipulated_sequences/FaceSwap/c23/videos/634_660.mp4",
}


def make_clips(root: Path, *, corrupt: bool = False) -> Path:
    """A plain-folder dataset of real clips (and a corrupt one on request)."""
    for relative, source in CLIPS.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, root / relative)
    if corrupt:
        data = (root / "real/004.mp4").read_bytes()
        (root / "fake/broken.mp4").write_bytes(data[: len(data) // 3])
    return root


@pytest.fixture
def job_settings(tmp_path: Path, db_url: str) -> Settings:
    return load_settings(
        home=str(tmp_path / "home"),
        database_url=db_url,
        heartbeat_seconds=0.5,
        stale_after_seconds=5,
        batch_size=2,
    )


@pytest.fixture
def factory(job_settings: Settings) -> sessionmaker[Session]:
    from tasks.context import session_factory

    return session_factory(job_settings.db_url)


@pytest.fixture
def clips(tmp_path: Path, factory: sessionmaker[Session]) -> str:
    """The three clips ingested as dataset `clips`."""
    report = ingest_dataset(factory, make_clips(tmp_path / "clips"), format="folder", workers=2)
    assert report.counts.new == 3
    return report.name


@pytest.fixture
def broker_env(tmp_path: Path, pg_server, pg_template):
    """A catalog on PostgreSQL, a Redis broker, and the environment of a worker for both."""
    from tests.redis_server import start_redis

    redis = start_redis()
    url = pg_server.create_database(template=pg_template)
    env = {
        **os.environ,
        "DDM_DATABASE_URL": url,
        "DDM_BROKER_URL": redis.url,
        "DDM_HOME": str(tmp_path / "home"),
        "DDM_JOB_MODULES": "tests.tasks.echo_kind",  # a throwaway kind (test_job_kinds.py)
        "DDM_HEARTBEAT_SECONDS": "0.5",
        "DDM_STALE_AFTER_SECONDS": "30",
        "DDM_SWEEP_SECONDS": "1",
        "DDM_RESEND_AFTER_SECONDS": "3",
    }
    yield env, redis
    redis.stop()


def broker_settings_and_factory(env: dict[str, str]):
    from tasks.context import session_factory

    settings = load_settings(
        database_url=env["DDM_DATABASE_URL"],
        broker_url=env["DDM_BROKER_URL"],
        home=env["DDM_HOME"],
    )
    return settings, session_factory(settings.db_url)


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "cli.main", "worker"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill_worker(worker: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    """Signal the whole group, the worker's main process and its prefork child, and reap it."""
    try:
        os.killpg(worker.pid, sig)
    except ProcessLookupError:
        return
    worker.wait(timeout=30)


def wait_for(condition, timeout: float, what: str, log: Path | None = None):  # noqa: ANN201
    """Poll `condition` until it returns something truthy (returned), or fail with the log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:] if log else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{tail}")


@pytest.fixture
def synth(job_settings: Settings, factory: sessionmaker[Session]) -> str:
    """Dataset `synth`: cached features for train, val and test videos, both classes."""
    return make_synth(job_settings, factory)
