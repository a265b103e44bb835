"""Fixtures shared by the catalog tests that ingest: a writable FF++ tree, sessions."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ddm.db import make_session_factory
from tests.conftest import MEDIA

FF_REAL = "original_sequences/youtube/c23/videos"


@pytest.fixture
def ff_copy(tmp_path: Path) -> Path:
    """A writable copy of the real FF++ sample tree."""
    target = tmp_path / "FaceForensics"
    shutil.copytree(MEDIA / "ff++", target)
    return target


@pytest.fixture
def factory(engine):
    return make_session_factory(engine)
