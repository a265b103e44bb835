"""OpenCV's own log lines (`[ WARN:0@...]`) never reach a ddm command's stderr.

A real process: OpenCV reads its log level from the environment once, when it loads,
so only a fresh interpreter shows whether the entry point set it in time.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ingesting_a_corrupt_video_prints_no_opencv_warnings(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "real").mkdir(parents=True)
    (tree / "fake").mkdir()
    (tree / "real" / "noise.mp4").write_bytes(os.urandom(20_000))
    (tree / "fake" / "stub.mp4").write_bytes(b"ftypisom")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DDM_", "OPENCV_")) or key.startswith("DDM_TEST_")
    }
    env["DDM_HOME"] = str(tmp_path / "home")
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "-q", "ingest", str(tree), "--format", "folder"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "[ WARN" not in result.stderr, result.stderr
    assert "VIDEOIO" not in result.stderr, result.stderr
