"""`ddm train` refuses a bad option with a usage error (exit 2) before any row is written."""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [
        ("--seed", "-1", "is not in the range 0<=x<=4294967295"),
        ("--seed", str(2**32), "is not in the range"),
        ("--device", "gpu", "'gpu': one of auto, cpu, cuda or cuda:N"),
        ("--device", "cuda:one", "one of auto, cpu, cuda or cuda:N"),
        ("--epochs", "0", "is not in the range x>=1"),
    ],
)
def test_a_bad_option_is_a_usage_error_and_writes_no_run(run_ddm, option, value, said) -> None:
    result = run_ddm("train", "--datasets", "ff", option, value)
    assert result.exit_code == 2, result.stderr
    assert said in result.stderr and "internal error" not in result.stderr
    listed = run_ddm("runs", "list", "--json")
    assert listed.exit_code == 0 and json.loads(listed.stdout) == []
