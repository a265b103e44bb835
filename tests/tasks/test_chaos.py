"""The short chaos run (issue 9): bench/chaos.py for a minute and a half, every fault kind.

Two `ddm worker` processes extract real clips on a throwaway PostgreSQL and Redis while
workers, pool children, Redis (with and without persistence) and inline runs are killed;
afterwards every invariant must hold and every fault must have been followed by progress.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pg import pg_bin_dir

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.skipif(
        pg_bin_dir() is None or shutil.which("redis-server") is None,
        reason="needs PostgreSQL and redis-server (`make test` installs them)",
    ),
]

# About 1.5 min of faults, one every 4 to 12 s, inline runs killed after 3 to 10 s: each of
# the five kinds comes up at least once (they are drawn in shuffled rounds of five).
ARGV = [
    "--minutes",
    "1.5",
    "--videos",
    "16",
    "--interval",
    "8",
    "--inline-delay",
    "3",
    "10",
    "--drain-minutes",
    "6",
    "--seed",
    "9",
    "--json",
    "--no-write",
]


def test_every_invariant_holds_and_every_fault_is_recovered(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, str(REPO / "bench" / "chaos.py"), *ARGV, "--logs", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=540,
    )
    report = completed.stderr[-4000:]
    assert completed.stdout.strip(), report
    result = json.loads(completed.stdout)
    assert result["invariants"] == dict.fromkeys(result["invariants"], True), report
    assert completed.returncode == 0, report
    injected = {kind: f["injected"] for kind, f in result["faults"].items()}
    assert all(injected.values()), (injected, report)
    unrecovered = [f for f in result["fault_log"] if f["recovery_s"] is None]
    assert not unrecovered, (unrecovered, report)
    assert result["extracted"] == result["videos"] >= 16
    assert result["audit"]["audit_lines"] >= 2 * result["videos"]
