"""Every table reads in an 80-column terminal: no header or cell cut to "accu…"; rows that
do not fit become blocks of `field  value` lines."""

from __future__ import annotations

import pytest

from tests.tasks.test_evaluation import _train

COMMANDS = [
    ("report", "--eval", "synth"),
    ("report", "--eval", "synth", "--split", "all"),
    ("stats",),
    ("datasets",),
    ("runs", "list"),
    ("videos", "--dataset", "synth"),
    ("jobs", "list"),
]


@pytest.mark.parametrize("columns", ["80", "60"])
def test_no_table_cuts_a_word_at_80_columns(run_ddm, job_settings, factory, synth, columns):
    _train(job_settings, factory, synth)
    env = {
        "DDM_HOME": str(job_settings.home),
        "DDM_DATABASE_URL": job_settings.db_url,
        "COLUMNS": columns,
    }
    for command in COMMANDS:
        result = run_ddm(*command, env=env)
        assert result.exit_code == 0, (command, result.stderr)
        assert "…" not in result.stdout, (command, result.stdout)
    report = run_ddm("report", "--eval", "synth", env=env).stdout
    assert "accuracy" in report and "trained on" in report
