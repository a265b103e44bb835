"""`ddm` makes OpenMP threads wait passively (cli/main.py), before torch loads OpenMP: with
spinning threads a training epoch ran 4 to 12 times slower whenever another process shared
the cores."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = "import sys, os, cli.main; print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)"


def _policy(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip()


def test_ddm_waits_passively_before_torch_is_loaded() -> None:
    assert _policy() == "PASSIVE False"


def test_a_user_s_own_policy_wins() -> None:
    assert _policy(OMP_WAIT_POLICY="ACTIVE") == "ACTIVE False"
