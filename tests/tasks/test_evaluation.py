"""`evaluate` jobs and `ddm report`: stored predictions, reuse, the leakage guard, and every
reported metric checked against scikit-learn on the stored scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm
from sqlalchemy import delete, func, select

from ddm.catalog.evaluations import evaluation_predictions, latest_evaluations
from ddm.catalog.models import Evaluation, FeatureCache, Job, Prediction, Run, RunMember, Video
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
    z = np.array([p.logit for p in stored])
    held = np.array([not p.is_leaked for p in stored])
    assert len(stored) == entry["n_videos"] == 22
    # Every split: the 18 train/val videos were seen, so the headline is the 4 test ones.
    assert entry["scope"] == "held_out" and entry["n_held_out"] == held.sum() == 4
    _assert_sklearn(entry, y[held], z[held])
    _assert_sklearn(entry["pooled"], y, z)
    [row] = report["cross_dataset"]["rows"]
    cell = row["cells"][synth]
    assert cell["auc"] == pytest.approx(skm.roc_auc_score(y[held], z[held]))
    assert cell["accuracy"] == pytest.approx(skm.accuracy_score(y[held], z[held] >= 0))
    assert cell["pooled_auc"] == pytest.approx(skm.roc_auc_score(y, z))


def _assert_sklearn(metrics: dict, y: np.ndarray, s: np.ndarray) -> None:
    """Every metric of a report entry (or its pooled part) against scikit-learn's, for
    labels `y` and logits `s` (predicted fake at logit >= 0, the 0.5 threshold)."""
    predicted = (s >= 0).astype(int)
    assert metrics["accuracy"] == pytest.approx(skm.accuracy_score(y, predicted))
    assert metrics["precision"] == pytest.approx(skm.precision_score(y, predicted, zero_division=0))
    assert metrics["recall"] == pytest.approx(skm.recall_score(y, predicted, zero_division=0))
    assert metrics["f1"] == pytest.approx(skm.f1_score(y, predicted, zero_division=0))
    assert metrics["auc"] == pytest.approx(skm.roc_auc_score(y, s))
    assert metrics["ap"] == pytest.approx(skm.average_precision_score(y, s))
    (tn, fp), (fn, tp) = skm.confusion_matrix(y, predicted, labels=[0, 1])
    assert metrics["confusion"] == {"tn": tn, "fp": fp, "fn": fn, "tp": tp}
    fpr, tpr, _ = skm.roc_curve(y, s)
    fnr = 1 - tpr
    i = int(np.argmax(fpr >= fnr))
    assert min(fpr[i], fnr[i - 1]) - 1e-9 <= metrics["eer"] <= max(fpr[i], fnr[i - 1]) + 1e-9
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
            assert metrics["per_class"][name][metric] == pytest.approx(expected), (name, metric)
        assert metrics["per_class"][name]["support"] == sk[key]["support"]


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
    assert document["runs"][0]["predictions"][0]["logit"] is not None


def test_a_report_on_seen_videos_labels_its_pooled_numbers(
    run_ddm, job_settings, factory, synth, tmp_path
) -> None:
    _train(job_settings, factory, synth)
    env = {"DDM_HOME": str(job_settings.home), "DDM_DATABASE_URL": job_settings.db_url}
    everything = run_ddm("report", "--eval", synth, "--split", "all", env=env)
    assert everything.exit_code == 0, everything.stderr
    assert "held-out only" in everything.stdout and "pooled" in everything.stdout
    assert "the 4 held-out videos" in everything.stdout
    # Every video seen: no headline number exists, and the files still say what there is.
    out = tmp_path / "seen"
    seen = run_ddm("report", "--eval", synth, "--split", "train", "--out", str(out), env=env)
    assert seen.exit_code == 0, seen.stderr
    assert "pooled: no video held out" in seen.stdout and "only pooled numbers" in seen.stdout
    markdown = (out / "report.md").read_text()
    assert "(held-out only) | - |" in markdown and "not a held-out result" in markdown
    # A folder nobody may write to: exit 3, named, not an internal error.
    refused = run_ddm("report", "--eval", synth, "--out", "/sys/ddm-report", env=env)
    assert refused.exit_code == 3
    assert refused.stderr.strip().endswith(
        "cannot write to /sys/ddm-report: operation not permitted"
    )


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


def test_confident_scores_keep_their_order_through_the_stored_logits(
    job_settings, factory, synth
) -> None:
    import torch

    from ddm.fs import sha256_of

    run_id = _train(job_settings, factory, synth)
    before = _report(job_settings, factory, synth, split="all")["runs"][0]
    # The same detector with its last layer scaled: every logit x1000, the order unchanged.
    # Its confident fakes' probabilities round to exactly 1.0, even in float64.
    with session_scope(factory) as session:
        checkpoint = session.get(Run, run_id).checkpoint_path
        session.execute(delete(Evaluation))
    payload = torch.load(checkpoint, weights_only=True)
    last = sorted(k for k in payload["state_dict"] if k.startswith("head."))[-2:]
    for key in last:  # the last Linear's bias and weight
        payload["state_dict"][key] = payload["state_dict"][key] * 1000.0
    torch.save(payload, checkpoint)
    with session_scope(factory) as session:  # as if training had written this one
        session.get(Run, run_id).checkpoint_sha256 = sha256_of(checkpoint)

    after = _report(job_settings, factory, synth, split="all")["runs"][0]
    scores = [p["score"] for p in after["predictions"]]
    logits = [p["logit"] for p in after["predictions"]]
    assert scores.count(1.0) >= 3 and len(set(logits)) == len(logits)
    assert after["ranked_by"] == "logit"
    assert after["pooled"]["auc"] == pytest.approx(before["pooled"]["auc"])
    assert after["auc"] == pytest.approx(before["auc"])
    assert after["pooled"]["ap"] == pytest.approx(before["pooled"]["ap"])
    old = {p["video_id"]: p["logit"] for p in before["predictions"]}
    for p in after["predictions"]:
        assert p["logit"] == pytest.approx(1000.0 * old[p["video_id"]], rel=1e-3, abs=1e-2)


def test_the_leakage_guard_catches_sequences_splits_and_identities(
    job_settings, factory, synth
) -> None:
    # FF++-like: every video stored under a compression folder; test v0 is train v1's person.
    with session_scope(factory) as session:
        for video in session.scalars(select(Video)):
            video.path, video.compression = f"c23/{video.path}", "c23"
            video.identity_group = f"person-{video.split}-{video.path}"
        train_v1 = session.scalars(select(Video).where(Video.path == "c23/train/v1.mp4")).one()
        test_v0 = session.scalars(select(Video).where(Video.path == "c23/test/v0.mp4")).one()
        test_v0.identity_group = train_v1.identity_group
    run_id = _train(job_settings, factory, synth)

    report = _report(job_settings, factory, synth)
    (entry,) = report["runs"]
    assert entry["held_out"] is False and entry["leaks"] == {"identity": 1}
    assert (entry["n_videos"], entry["n_held_out"], entry["scope"]) == (4, 3, "held_out")
    by_path = {p["path"]: p for p in entry["predictions"]}
    assert by_path["c23/test/v0.mp4"]["leak"] == "identity"
    held = [p for p in entry["predictions"] if not p["leaked"]]
    y = np.array([int(p["label"] == "fake") for p in held])
    z = np.array([p["logit"] for p in held])
    assert entry["accuracy"] == pytest.approx(skm.accuracy_score(y, z >= 0))
    assert entry["pooled"]["confusion"] != entry["confusion"]
    assert any("headline numbers cover the 3 held-out" in s for s in report["bias"]["sentences"])

    # The same sequences at c40 in another dataset (other files), and a train video of the
    # run's own dataset that was no member (its cache came after the run started).
    other = make_synth(job_settings, factory, name="ff_c40", first_seed=5000)
    with session_scope(factory) as session:
        dataset_id = session.scalars(select(Video.dataset_id).where(Video.path == "train/v0.mp4"))
        for video in session.scalars(select(Video).where(Video.dataset_id.in_(dataset_id))):
            video.path, video.compression = f"c40/{video.path}", "c40"
        late = _late_train_video(job_settings, session, train_v1.dataset_id)
    (entry,) = _report(job_settings, factory, other, split="all")["runs"]
    assert entry["leaks"] == {"sequence": 18} and entry["n_held_out"] == 4
    (entry,) = _report(job_settings, factory, synth, split="train")["runs"]
    assert {p["video_id"]: p["leak"] for p in entry["predictions"]}[late] == "split"
    assert entry["leaks"] == {"file": 12, "split": 1} and entry["auc"] is None
    assert entry["pooled"]["auc"] is not None
    with session_scope(factory) as session:
        assert not session.scalars(
            select(RunMember).where(RunMember.run_id == run_id, RunMember.video_id == late)
        ).first()


def _late_train_video(settings, session, dataset_id: int) -> int:
    from ddm.catalog.models import Dataset
    from tests.tasks.synth import add_video

    dataset = session.get(Dataset, dataset_id)
    add_video(session, settings, dataset, "late", "train", "fake", seed=9999)
    session.flush()
    return session.scalars(select(Video.id).where(Video.path == "train/late.mp4")).one()


def test_a_run_trained_on_a_gpu_is_scored_on_a_machine_without_one(
    job_settings, factory, synth
) -> None:
    import torch

    from tasks.predict import load_predictor

    run_id = _train(job_settings, factory, synth)
    with session_scope(factory) as session:
        run = session.get(Run, run_id)
        run.config = {**run.config, "device": "cuda:1"}
    assert not torch.cuda.is_available()
    (entry,) = _report(job_settings, factory, synth)["runs"]
    assert entry["n_videos"] == 4 and entry["auc"] is not None
    predictor = load_predictor(job_settings, factory, str(run_id))
    assert next(predictor.model.parameters()).device.type == "cpu"


def test_a_replaced_checkpoint_is_refused_not_silently_reused(job_settings, factory, synth):
    import torch

    from ddm.errors import InvalidInput
    from ddm.fs import sha256_of

    run_id = _train(job_settings, factory, synth)
    first = _report(job_settings, factory, synth)["runs"][0]
    with session_scope(factory) as session:
        run = session.get(Run, run_id)
        checkpoint, recorded = Path(run.checkpoint_path), run.checkpoint_sha256
    assert recorded == sha256_of(checkpoint)
    original = checkpoint.read_bytes()
    payload = torch.load(checkpoint, weights_only=True)
    key = sorted(k for k in payload["state_dict"] if k.startswith("head."))[-1]
    payload["state_dict"][key] = payload["state_dict"][key] + 1.0
    torch.save(payload, checkpoint)
    with pytest.raises(InvalidInput, match="has changed since training"):
        evaluate_runs(job_settings, factory, synth)

    # The original back: the stored evaluation is the one reused.
    checkpoint.write_bytes(original)
    again = _report(job_settings, factory, synth)["runs"][0]
    assert again["reused"] and again["evaluation_id"] == first["evaluation_id"]


def test_a_fake_whose_swapped_in_face_was_trained_on_is_seen(job_settings, factory, synth):
    # Celeb-DF-like: a test fake's source (the face swapped in) is a person of a train real.
    with session_scope(factory) as session:
        train_v0 = session.scalars(select(Video).where(Video.path == "train/v0.mp4")).one()
        test_v1 = session.scalars(select(Video).where(Video.path == "test/v1.mp4")).one()
        train_v0.target_identity, train_v0.identity_group = "id7", "id7"
        test_v1.target_identity, test_v1.identity_group = "id2", "id2"
        test_v1.source_identity = "id7"
    _train(job_settings, factory, synth)
    (entry,) = _report(job_settings, factory, synth)["runs"]
    assert entry["leaks"] == {"identity": 1} and entry["n_held_out"] == 3
    assert {p["path"]: p["leak"] for p in entry["predictions"]}["test/v1.mp4"] == "identity"
