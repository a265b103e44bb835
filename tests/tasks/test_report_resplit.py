"""`ddm report` marks an evaluation whose scored videos changed split since it was made
(a re-split); the run's frozen members stay as they were."""

from __future__ import annotations

from sqlalchemy import select, update

from ddm.catalog.models import Video
from ddm.catalog.runs import run_members
from ddm.db import session_scope
from tasks.evaluation import evaluate_runs
from tasks.lifecycle import run_job
from tasks.report import build_report
from tasks.training import plan_training
from tests.tasks.synth import QUICK, with_tiny_detector


def test_an_evaluation_whose_videos_changed_split_is_marked(job_settings, factory, synth) -> None:
    plan = plan_training(job_settings, factory, [synth], train_cfg=QUICK, batch_size=4)
    with_tiny_detector(factory, plan.run.id)
    assert run_job(plan.job_id, job_settings, factory, "w1") == "succeeded"
    evaluation, _ = evaluate_runs(job_settings, factory, synth)
    (fresh,) = build_report(factory, evaluation)["runs"]
    assert fresh["split_changed"] == 0
    with session_scope(factory) as session:
        members_before = {(m.video_id, m.role) for m in run_members(session, plan.run.id)}
        moved = session.scalars(select(Video.id).where(Video.split == "test").limit(1)).one()
        session.execute(update(Video).where(Video.id == moved).values(split="train"))

    report = build_report(factory, evaluation)

    (entry,) = report["runs"]
    assert entry["split_changed"] == 1
    (row,) = report["cross_dataset"]["rows"]
    assert row["cells"][synth]["split_changed"] == 1
    assert any("1 of its" in note and "changed split" in note for note in report["notes"])
    with session_scope(factory) as session:
        assert {(m.video_id, m.role) for m in run_members(session, plan.run.id)} == members_before
