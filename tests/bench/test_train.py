"""bench/train.py end to end at a tiny size: the production training job through
`plan_training` and `run_job`, then one sweep row with the StyleGRU kernel and one with
`nn.GRU`; checked are the JSON line's keys and that every epoch was recorded, never the
timings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_training_bench_records_every_epoch_and_both_kernels() -> None:
    command = [sys.executable, str(REPO / "bench" / "train.py"), "--videos", "60"]
    command += ["--epochs", "2", "--sweep", "--sweep-batch-sizes", "16"]
    command += ["--sweep-threads", "1", "--sweep-videos", "32"]
    command += ["--sweep-variants", "fused,fused+native", "--json", "--no-write"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DDM_")}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["run"]["status"] == "succeeded"
    assert [row["epoch"] for row in result["run"]["history"]] == [1, 2]
    assert len(result["run"]["epoch_s"]) == 2
    assert result["minutes_for_60_epochs"] > 0
    assert [row["variant"] for row in result["sweep"]] == ["fused", "fused+native"]
    assert all(row["projected_epoch_s"] > 0 for row in result["sweep"])
