"""Shared fixtures: real SQLite and PostgreSQL catalogs, and a CLI runner.

Every catalog test runs on both dialects (SQLite is the embedded default). Databases are
migrated with Alembic exactly as production does; `create_all` is never used.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ddm.db import create_db_engine, upgrade
from tests.pg import PgServer, start_server

# As `ddm` itself sets it (cli/main.py): tests that train in this process then do not
# stall when a subprocess (a worker, a CLI run) takes the other core.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MEDIA = Path(os.environ.get("DDM_TEST_MEDIA", SHARED / "media"))
REFERENCE = Path(os.environ.get("DDM_TEST_REFERENCE", SHARED / "reference"))

DIALECTS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = start_server()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_template(pg_server: PgServer) -> str:
    """A database migrated to head once; tests copy it, which is faster than migrating."""
    url = pg_server.create_database()
    engine = create_db_engine(url)
    upgrade(engine)
    engine.dispose()
    return url.rsplit("/", 1)[1].split("?")[0]


def _blank_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    return request.getfixturevalue("pg_server").create_database()


@pytest.fixture(params=DIALECTS)
def blank_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database, on each dialect."""
    return _blank_url(request.param, request, tmp_path)


@pytest.fixture(params=DIALECTS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a database migrated to head, on each dialect."""
    if request.param == "postgres":
        server: PgServer = request.getfixturevalue("pg_server")
        return server.create_database(template=request.getfixturevalue("pg_template"))
    url = _blank_url("sqlite", request, tmp_path)
    engine = create_db_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = create_db_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session inside an outer transaction that is rolled back after the test."""
    with engine.connect() as connection:
        transaction = connection.begin()
        with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
            yield session
        transaction.rollback()


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def ddm_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for CLI runs: a private DDM_HOME and no stray ddm.toml or broker."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("DDM_") and not name.startswith("DDM_TEST_"):
            monkeypatch.delenv(name)
    return {"DDM_HOME": str(tmp_path / "home"), "COLUMNS": "200"}


def invoke_ddm(env: dict[str, str | None], *args: str) -> CliResult:
    """Run `ddm ARGS...` in-process through `cli.main.main`, the console script's entry,
    with `env` set (None unsets a variable)."""
    from cli.main import main

    with CliRunner().isolation(env=env) as streams:
        code = main(list(args))
        stdout, stderr = streams[0].getvalue(), streams[1].getvalue()
    return CliResult(code, stdout.decode(), stderr.decode())


def private_ddm_env(home: Path) -> dict[str, str | None]:
    """A DDM_HOME of its own, and every other DDM_ variable of this process unset."""
    stray = {
        name: None
        for name in os.environ
        if name.startswith("DDM_") and not name.startswith("DDM_TEST_")
    }
    return {**stray, "DDM_HOME": str(home), "COLUMNS": "200"}


@pytest.fixture
def run_ddm(ddm_env: dict[str, str]):
    """Run `ddm ARGS...` in-process (see `invoke_ddm`) in the test's private environment."""

    def invoke(*args: str, env: dict[str, str] | None = None) -> CliResult:
        return invoke_ddm({**ddm_env, **(env or {})}, *args)

    return invoke
