"""`evaluate` jobs and `ddm report`: stored predictions, reuse, the leakage guard, and every
reported metric checked against scikit-learn on the stored scores."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as skm
from sqlalchemy import func, select

from ddm.catalog.evaluations import evaluation_predictions, latest_evaluations
from ddm.catalog.models import Evaluation, FeatureCache, Job, Prediction, RunMember, Video
from ddm.db import session_scope
from tasks.evaluation import evaluate_runs
from tasks.lifecycle import run_job
from tasks.report import build_report
from tasks.training import plan_training
from tests.tasks.synth import QUICK, make_synth, with_tiny_detector


def _train(settings, factory, dataset: str, seed: int = 0) -> int:
    from dataclasses import replace

    plan = plan_training(
        settings, factory, [dataset], train_cfg=replace(QUICK, seed=seed), batch_size=4
    )
    with_tiny_detector(factory, plan.run.id)
    assert run_job(plan.job_id, settings, factory, "w1") == "succeeded"
    return plan.run.id


def _report(settings, factory, dataset: str, **options) -> dict:
    plan, dispatched = evaluate_runs(settings, factory, dataset, **options)
    assert set(dispatched.statuses.values()) <= {"succeeded"}
    return build_report(factory, plan)


def _count(factory, table) -> int:
    with session_scope(factory) as session:
        return session.scalar(select(func.count()).select_from(table))


def test_a_report_stores_every_score_and_reuses_an_unchanged_evaluation(
    job_settings, factory, synth
) -> None:
    run_id = _train(job_settings, factory, synth)
    report = _report(job_settings, factory, synth)
    (entry,) = report["runs"]
    assert (report["split"], entry["split"], entry["n_videos"]) == ("test", "test", 4)
    assert entry["held_out"] is True and entry["leaked_videos"] == 0 and not entry["reused"]
    with session_scope(factory) as session:
        tested = set(session.scalars(select(Video.id).where(Video.split == "test")))
        members = set(session.scalars(select(RunMember.video_id).where(RunMember.run_id == run_id)))
    assert {p["video_id"] for p in entry["predictions"]} == tested
    assert not tested & members  # the test split never reached training
    assert _count(factory, Prediction) == 4

    again = _report(job_settings, factory, synth)
    assert (
        again["runs"][0]["reused"] and again["runs"][0]["evaluation_id"] == entry["evaluation_id"]
    )
    assert _count(factory, Evaluation) == 1 and _count(factory, Job) == 2  # train + 1 evaluate
    assert again["runs"][0]["auc"] == entry["auc"]

    # A re-extracted cache changes what would be scored: evaluated again, not reused.
    with session_scope(factory) as session:
        cache = session.scalars(
            select(FeatureCache).join(Video).where(Video.split == "test")
        ).first()
        cache.checksum = _rewrite(job_settings, cache.path)
    third = _report(job_settings, factory, synth)
    assert not third["runs"][0]["reused"] and _count(factory, Evaluation) == 2


def _rewrite(settings, relative: str) -> str:
    import torch

    from ddm.fs import sha256_of
    from model.features import load_features, save_features

    path = settings.cache_dir / relative
    features = load_features(path)
    save_features(
        path, {**features, "style": features["style"] + torch.randn_like(features["style"])}
    )
    return sha256_of(path)


def test_every_reported_metric_equals_scikit_learns_on_the_stored_predictions(
    job_settings, factory, synth
) -> None:
    _train(job_settings, factory, synth)
    report = _report(job_settings, factory, synth, split="all")
    (entry,) = report["runs"]
    with session_scope(factory) as session:
        stored = evaluation_predictions(session, entry["evaluation_id"])
    y = np.array([int(p.label == "fake") for p in stored])
    s = np.array([p.score for p in stored])
    predicted = (s >= 0.5).astype(int)
    assert len(stored) == entry["n_videos"] == 22
    assert entry["accuracy"] == pytest.approx(skm.accuracy_score(y, predicted))
    assert entry["precision"] == pytest.approx(skm.precision_score(y, predicted, zero_division=0))
    assert entry["recall"] == pytest.approx(skm.recall_score(y, predicted, zero_division=0))
    assert entry["f1"] == pytest.approx(skm.f1_score(y, predicted, zero_division=0))
    assert entry["auc"] == pytest.approx(skm.roc_auc_score(y, s))
    assert entry["ap"] == pytest.approx(skm.average_precision_score(y, s))
    (tn, fp), (fn, tp) = skm.confusion_matrix(y, predicted, labels=[0, 1])
    assert entry["confusion"] == {"tn": tn, "fp": fp, "fn": fn, "tp": tp}
    fpr, tpr, _ = skm.roc_curve(y, s)
    fnr = 1 - tpr
    i = int(np.argmax(fpr >= fnr))
    assert min(fpr[i], fnr[i - 1]) - 1e-9 <= entry["eer"] <= max(fpr[i], fnr[i - 1]) + 1e-9
    sk = skm.classification_report(
        y,
        predicted,
        labels=[0, 1],
        target_names=["real", "fake"],
        output_dict=True,
        zero_division=0,
    )
    for name, key in (
        ("real", "real"),
        ("fake", "fake"),
        ("macro_avg", "macro avg"),
        ("weighted_avg", "weighted avg"),
    ):
        for metric in ("precision", "recall", "f1"):
            expected = sk[key]["f1-score" if metric == "f1" else metric]
            assert entry["per_class"][name][metric] == pytest.approx(expected), (name, metric)
        assert entry["per_class"][name]["support"] == sk[key]["support"]
    [row] = report["cross_dataset"]["rows"]
    cell = row["cells"][synth]
    assert cell["auc"] == pytest.approx(skm.roc_auc_score(y, s))
    assert cell["accuracy"] == pytest.approx(skm.accuracy_score(y, predicted))


def test_an_evaluation_on_videos_the_run_trained_on_is_flagged(job_settings, factory, synth):
    _train(job_settings, factory, synth)
    (entry,) = _report(job_settings, factory, synth, split="train")["runs"]
    assert entry["held_out"] is False and entry["leaked_videos"] == entry["n_videos"] == 12
    assert all(p["leaked"] for p in entry["predictions"])

    # The same files under another dataset's name: caught by content hash.
    twin = make_synth(job_settings, factory, name="twin", first_seed=0)
    report = _report(job_settings, factory, twin, split="all")
    (entry,) = report["runs"]
    assert entry["leaked_videos"] == 18 and entry["n_videos"] == 22 and not entry["held_out"]
    assert any("not held out" in sentence for sentence in report["bias"]["sentences"])


def test_the_same_seed_and_data_give_the_same_metrics(job_settings, factory, synth) -> None:
    first, second = (_train(job_settings, factory, synth, seed=7) for _ in range(2))
    report = _report(job_settings, factory, synth, run_spec=f"{first},{second}")
    a, b = report["runs"]
    assert (a["run_id"], b["run_id"]) == (first, second)
    assert [p["score"] for p in a["predictions"]] == [p["score"] for p in b["predictions"]]
    for key in ("accuracy", "auc", "ap", "eer", "confusion"):
        assert a[key] == b[key]
    assert [r["run_id"] for r in report["cross_dataset"]["rows"]] == [first, second]


def test_the_cross_dataset_matrix_holds_every_stored_evaluation(job_settings, factory, synth):
    run_id = _train(job_settings, factory, synth)
    other = make_synth(job_settings, factory, name="other", first_seed=1000)
    _report(job_settings, factory, synth)
    report = _report(job_settings, factory, other)
    assert report["cross_dataset"]["datasets"] == ["other", "synth"]
    cells = report["cross_dataset"]["rows"][0]["cells"]
    assert cells["synth"]["split"] == "test" and cells["other"]["held_out"]
    with session_scope(factory) as session:
        assert {e.dataset for e in latest_evaluations(session, [run_id])} == {"other", "synth"}
    assert set(report["bias"]["catalog"]) == {"other", "synth"}


def test_ddm_report_through_the_cli_writes_json_figures_and_markdown(
    run_ddm, job_settings, factory, synth, tmp_path
) -> None:
    _train(job_settings, factory, synth)
    env = {"DDM_HOME": str(job_settings.home), "DDM_DATABASE_URL": job_settings.db_url}
    out = tmp_path / "report"
    result = run_ddm("report", "--eval", synth, "--out", str(out), "--json", env=env)
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert {"runs", "cross_dataset", "bias"} <= set(document)
    keys = {"run_id", "train_datasets", "eval_dataset", "split", "held_out", "n_videos"}
    keys |= {"accuracy", "precision", "recall", "f1", "auc", "ap", "eer", "confusion"}
    keys |= {"per_class", "predictions"}
    assert keys <= set(document["runs"][0])
    assert set(document["runs"][0]["predictions"][0]) >= {
        "video_id",
        "path",
        "label",
        "score",
        "predicted_label",
    }
    pngs = sorted(path.name for path in out.glob("*.png"))
    assert pngs == ["confusion_run1.png", "roc.png", "style_pattern.png", "training_run1.png"]
    assert all((out / name).read_bytes().startswith(b"\x89PNG") for name in pngs)
    markdown = (out / "report.md").read_text()
    assert all(f"]({name})" in markdown for name in pngs)
    table = run_ddm("report", "--eval", synth, env=env)
    assert table.exit_code == 0, table.stderr
    assert "cross-dataset AUC / accuracy" in table.stdout and "per class" in table.stdout


def test_bad_report_requests_are_one_line_and_exit_1(run_ddm, job_settings, factory, synth):
    env = {"DDM_HOME": str(job_settings.home), "DDM_DATABASE_URL": job_settings.db_url}

    def one_line(*args: str) -> str:
        result = run_ddm("report", *args, env=env)
        assert result.exit_code == 1, (args, result.stdout, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and not result.stdout
        return result.stderr

    assert "no trained run to report on; run `ddm train" in one_line("--eval", synth)
    run_id = _train(job_settings, factory, synth)
    assert "no dataset named 'nope'" in one_line("--eval", "nope")
    assert "no run with id or name 'ghost'" in one_line("--eval", synth, "--runs", "ghost")
    with session_scope(factory) as session:
        session.execute(FeatureCache.__table__.update().values(fingerprint="random-" + "d" * 40))
    assert f"valid cache of run {run_id}'s extractor" in one_line("--eval", synth)
