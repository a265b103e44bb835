"""Fixtures for job tests: a small real dataset in the catalog and settings for jobs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from ddm.config import Settings, load_settings
from ddm.services.ingest import ingest_dataset
from tests.conftest import MEDIA

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
