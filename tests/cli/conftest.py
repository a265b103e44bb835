"""Fixtures and checks shared by the CLI tests of the jobs and cache commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from ddm.db import make_session_factory


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> dict[str, str]:
    return {"DDM_DATABASE_URL": db_url, "DDM_CACHE_DIR": str(tmp_path / "cache")}


def ok_json(result):  # noqa: ANN201
    """The JSON document a command that succeeded printed."""
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def one_error_line(result, code: int, text: str) -> None:
    """The command exited `code` with exactly one line on stderr, containing `text`."""
    assert result.exit_code == code, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert text in result.stderr
