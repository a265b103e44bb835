"""First use of a new catalog by several processes at once: every one ends at head.

Real separate processes, released together, on each dialect: the race is between
connections of different processes, which threads of one process would not show.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from ddm.db import create_db_engine, schema_state

PROCESSES = 4
ROOT = Path(__file__).resolve().parents[2]

# Each process imports everything first, then waits for the go file, so that all of them
# reach the schema check within milliseconds of each other.
RACER = """
import sys, time
from pathlib import Path
import alembic.command, sqlalchemy, pydantic_settings, rich.logging
from cli.main import main
ready, go = Path(sys.argv[1]), Path(sys.argv[2])
ready.touch()
while not go.exists():
    time.sleep(0.005)
sys.exit(main(["datasets", "--json"]))
"""


def _race(url: str, tmp_path: Path) -> list[subprocess.CompletedProcess[str]]:
    go = tmp_path / "go"
    env = {**os.environ, "DDM_DATABASE_URL": url, "DDM_HOME": str(tmp_path / "home")}
    ready = [tmp_path / f"ready-{n}" for n in range(PROCESSES)]
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(ready[n]), str(go)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(PROCESSES)
    ]
    deadline = time.monotonic() + 60
    while not all(path.exists() for path in ready) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    results = []
    for racer in racers:
        stdout, stderr = racer.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(racer.args, racer.returncode, stdout, stderr))
    return results


def test_concurrent_first_use_migrates_once_and_all_succeed(
    blank_db_url: str, tmp_path: Path
) -> None:
    results = _race(blank_db_url, tmp_path)
    assert [r.returncode for r in results] == [0] * PROCESSES, [r.stderr for r in results]
    assert all(r.stdout.strip() == "[]" for r in results)
    engine = create_db_engine(blank_db_url)
    assert schema_state(engine).is_current
    engine.dispose()
