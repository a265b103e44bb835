"""A throwaway PostgreSQL cluster for the test session, started with initdb/pg_ctl.

The cluster listens on a unix socket only, in a private folder, with fsync off: it is
fast to start (about a second) and invisible to anything else on the machine.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


def pg_bin_dir() -> Path | None:
    """The newest installed PostgreSQL server's bin folder, or None."""
    override = os.environ.get("DDM_TEST_PG_BIN")
    if override:
        return Path(override)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_major)
    return Path(found[-1]).parent if found else None


def _major(path: str) -> int:
    return int(Path(path).parent.parent.name.split(".")[0])


@dataclass
class PgServer:
    """A running server; `admin_url` reaches its `postgres` database."""

    admin_url: str
    directory: Path | None = None
    bin_dir: Path | None = None

    def create_database(self, template: str | None = None) -> str:
        """Create an empty database (optionally a copy of `template`) and return its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        clause = f" TEMPLATE {template}" if template else ""
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"{clause}'))
        engine.dispose()
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def stop(self) -> None:
        if self.directory is None or self.bin_dir is None:
            return
        _as_postgres(
            [
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.directory / "data"),
                "-m",
                "immediate",
                "stop",
            ],
            check=False,
        )
        shutil.rmtree(self.directory, ignore_errors=True)


def start_server() -> PgServer:
    """Start a private cluster (or use DDM_TEST_DATABASE_URL's server when set)."""
    external = os.environ.get("DDM_TEST_DATABASE_URL")
    if external:
        return PgServer(admin_url=external)
    bin_dir = pg_bin_dir()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL server binaries not found; `make test` installs them")
    # Not under pytest's tmp_path: that is private to root, and the server runs as postgres.
    directory = Path(tempfile.mkdtemp(prefix="ddm-pg-"))
    directory.chmod(0o777)
    data, sockets = directory / "data", directory / "sock"
    sockets.mkdir()
    sockets.chmod(0o777)
    _as_postgres(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--locale=C",
        ]
    )
    options = f"-k {sockets} -c listen_addresses='' -p 5432 -F -c max_connections=200"
    _as_postgres(
        [
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-w",
            "-l",
            str(directory / "server.log"),
            "start",
        ]
    )
    url = f"postgresql+psycopg://postgres@/postgres?host={sockets}&port=5432"
    return PgServer(admin_url=url, directory=directory, bin_dir=bin_dir)


def _as_postgres(command: list[str], *, check: bool = True) -> None:
    # initdb refuses to run as root; switch to the postgres user when we are root.
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    subprocess.run(command, check=check, capture_output=True, text=True, cwd="/")
