"""`ddm demo` end to end at its small size: it learns, fills every catalog table, writes the
figures and reports, and says how to redo each step by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from ddm.catalog.models import (
    Dataset,
    Evaluation,
    FeatureCache,
    Job,
    Prediction,
    Run,
    RunEpoch,
    RunMember,
    Video,
)

pytestmark = pytest.mark.slow


def test_the_demo_learns_and_fills_every_table(run_ddm, ddm_env) -> None:
    result = run_ddm("demo", "--size", "small", "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    # The fixed seed must learn the in-domain manipulations clearly (held-out test split).
    assert document["held_out"] is True
    assert document["accuracy"] >= 0.85 and document["auc"] >= 0.9, document
    assert set(document["cross_dataset"]) >= {"accuracy", "auc", "n_videos"}
    assert document["fallback_rate"] < 0.05
    assert set(document["steps"]) == {"generate", "ingest", "extract", "train", "report"}

    workspace = Path(document["workspace"])
    assert workspace == Path(ddm_env["DDM_HOME"]) / "demo"
    engine = create_engine(f"sqlite:///{workspace / 'ddm.sqlite3'}")
    with engine.connect() as connection:

        def count(table, *where) -> int:
            return connection.scalar(select(func.count()).select_from(table).where(*where))

        assert count(Dataset) == 2
        videos = count(Video)
        assert videos > 0 and count(FeatureCache, FeatureCache.is_valid.is_(True)) == videos
        assert count(Job, Job.kind == "extract") >= 2 and count(Job, Job.kind == "train") == 1
        assert count(Job, Job.kind == "evaluate") == 2
        assert count(Run) == 1 and count(RunEpoch) > 0 and count(RunMember) > 0
        assert count(Evaluation) == 2
        assert count(Prediction) == document["n_videos"] + document["cross_dataset"]["n_videos"]
    engine.dispose()
    for report in document["reports"].values():
        folder = Path(report).parent
        assert Path(report).is_file()
        assert {"roc.png", "style_pattern.png"} <= {p.name for p in folder.glob("*.png")}

    shown = run_ddm("demo", "--size", "small", "--keep")
    assert shown.exit_code == 0, shown.stderr
    assert "ddm train --datasets demo-ff" in shown.stdout
    assert "DDM_WEIGHTS_DIR" in shown.stdout and "total " in shown.stdout
    last = shown.stdout.strip().splitlines()[-1]
    assert last.startswith(f"open the results in a browser: DDM_HOME={workspace} ddm serve")
