"""A SQLite catalog that cannot be written can still be read by the read-only commands.

Tests run as root, whom file permissions do not stop, so the catalog (or its folder) is
made read-only with a read-only bind mount inside a private mount namespace
(`unshare -m`): the mount is invisible outside the one command and gone when it ends.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ddm.db import create_db_engine, upgrade

ROOT = Path(__file__).resolve().parents[2]
EXIT_SETUP = 3
READ_ONLY_COMMANDS = [
    ["datasets", "--json"],
    ["videos", "--json"],
    ["jobs", "list"],
    ["db", "current"],
]


def _can_mount_privately() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount --bind -o ro / / 2>/dev/null"], capture_output=True
    )
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(
    not _can_mount_privately(), reason="needs `unshare -m` and bind mounts (root)"
)


@pytest.fixture
def catalog() -> Iterator[Path]:
    # Not under tmp_path: a bind mount of a folder inside pytest's tree is fine, but a
    # private folder keeps the mount target obvious.
    folder = Path(tempfile.mkdtemp(prefix="ddm-ro-"))
    path = folder / "ddm.sqlite3"
    engine = create_db_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    yield path
    shutil.rmtree(folder, ignore_errors=True)


def _run_read_only(mounted: Path, catalog: Path, *args: str) -> subprocess.CompletedProcess[str]:
    ddm = shlex.join([sys.executable, "-m", "cli.main", *args])
    script = f"mount --bind -o ro {shlex.quote(str(mounted))} {shlex.quote(str(mounted))} && {ddm}"
    env = {
        "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
        "DDM_DATABASE_URL": f"sqlite:///{catalog}",
        "DDM_HOME": str(catalog.parent / "home"),
    }
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )


@pytest.mark.parametrize("what", ["folder", "file"])
@pytest.mark.parametrize("command", READ_ONLY_COMMANDS, ids=" ".join)
def test_read_only_commands_work_on_a_read_only_catalog(
    catalog: Path, what: str, command: list[str]
) -> None:
    mounted = catalog.parent if what == "folder" else catalog
    result = _run_read_only(mounted, catalog, *command)
    assert result.returncode == 0, result.stderr
    if "--json" in command:
        assert json.loads(result.stdout) == []


def test_a_write_to_a_read_only_catalog_fails_in_one_line(catalog: Path, tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "fake").mkdir()
    (tmp_path / "real" / "a.mp4").write_bytes(b"not a video")
    (tmp_path / "fake" / "b.mp4").write_bytes(b"not a video either")
    result = _run_read_only(catalog.parent, catalog, "ingest", str(tmp_path), "--format", "folder")
    assert result.returncode == EXIT_SETUP, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "read-only" in lines[0], result.stderr
