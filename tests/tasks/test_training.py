"""`train` jobs end to end: a catalog of cached features, the frozen membership, epochs,
checkpoints, resuming after a dead worker, and the `ddm train` / `ddm runs` commands."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import signal
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import torch
from sqlalchemy import select, update

from ddm.catalog.jobs import get_job
from ddm.catalog.models import Job, Video
from ddm.catalog.runs import get_run, run_epochs, run_members
from ddm.catalog.types import utcnow
from ddm.config import load_settings
from ddm.db import session_scope
from ddm.errors import InvalidInput
from model.checkpoint import model_from_checkpoint
from model.precision import resolve_precision
from model.train import TrainCfg
from tasks.evaluation import evaluate_runs
from tasks.lifecycle import run_job, sweep_once
from tasks.report import build_report
from tasks.training import plan_training
from tests.tasks.synth import (
    FINGERPRINT,
    QUICK,
    make_synth,
    with_tiny_detector,
)


def _plan(job_settings, factory, dataset: str, cfg: TrainCfg = QUICK):
    return plan_training(job_settings, factory, [dataset], train_cfg=cfg, batch_size=4)


def test_a_run_trains_on_its_frozen_train_and_val_videos(job_settings, factory, synth) -> None:
    plan = _plan(job_settings, factory, synth)
    assert plan.class_counts == {"train": {"real": 4, "fake": 8}, "val": {"real": 2, "fake": 4}}
    with_tiny_detector(factory, plan.run.id)
    seen: list[dict] = []
    assert run_job(plan.job_id, job_settings, factory, "w1", on_event=seen.append) == "succeeded"

    with session_scope(factory) as session:
        run = get_run(session, plan.run.id)
        members = run_members(session, run.id)
        epochs = run_epochs(session, run.id)
        job = get_job(session, plan.job_id)
    assert run.status == "succeeded" and job.status == "succeeded"
    assert {m.role for m in members} == {"train", "val"} and len(members) == 18  # never test
    ends = [event["epoch"] for event in seen if "batch" not in event]  # epochs, not batches
    assert [e.epoch for e in epochs] == [1, 2, 3, 4] == ends
    assert {event["batch"] for event in seen if "batch" in event} == {1, 2, 3}
    assert run.config["train"]["pos_weight"] == pytest.approx(4 / 8)  # n_real / n_fake
    assert run.config["class_balance"].startswith("weighted")
    # What the worker chose for "auto" is recorded beside what was planned.
    expected = resolve_precision(QUICK.precision, torch.device("cpu"))
    assert run.config["resolved"] == {"device": "cpu", "precision": expected}
    assert run.config["train"]["precision"] == QUICK.precision
    model, checkpoint = model_from_checkpoint(run.checkpoint_path)
    assert checkpoint.epoch == run.best_epoch and bool(model.standardize.fitted)
    assert Path(run.last_state_path).is_file() and job.progress_done == 4


def _train_then_die(settings_kwargs: dict, job_id: int, epochs_before_death: int) -> None:
    """A worker process that SIGKILLs itself after some epochs, as a lost GPU node would."""
    from tasks.context import session_factory

    settings = load_settings(**settings_kwargs)

    def die_after(event: dict) -> None:
        if "batch" not in event and event["epoch"] >= epochs_before_death:
            os.kill(os.getpid(), signal.SIGKILL)

    run_job(job_id, settings, session_factory(settings.db_url), "doomed", on_event=die_after)


def test_a_run_whose_worker_died_resumes_from_its_last_epoch(job_settings, factory, synth) -> None:
    plan = _plan(job_settings, factory, synth)
    with_tiny_detector(factory, plan.run.id)
    kwargs = {
        "home": str(job_settings.home),
        "database_url": job_settings.db_url,
        "heartbeat_seconds": job_settings.heartbeat_seconds,
        "stale_after_seconds": job_settings.stale_after_seconds,
    }
    child = multiprocessing.get_context("spawn").Process(
        target=_train_then_die, args=(kwargs, plan.job_id, 2)
    )
    child.start()
    child.join(300)
    assert child.exitcode == -signal.SIGKILL
    with session_scope(factory) as session:
        old = utcnow() - timedelta(seconds=job_settings.stale_after_seconds * 2)
        session.execute(update(Job).where(Job.id == plan.job_id).values(heartbeat_at=old))
    assert sweep_once(job_settings, factory, lambda ids: None, lambda queue: 0) == [plan.job_id]

    seen: list[dict] = []
    assert run_job(plan.job_id, job_settings, factory, "w2", on_event=seen.append) == "succeeded"
    # It died as epoch 2 was being recorded, before that epoch's state was saved: the run
    # goes on from the state after epoch 1, not from the start.
    assert [event["epoch"] for event in seen if "batch" not in event] == [2, 3, 4]
    with session_scope(factory) as session:
        assert [e.epoch for e in run_epochs(session, plan.run.id)] == [1, 2, 3, 4]
        assert get_run(session, plan.run.id).status == "succeeded"
        assert get_job(session, plan.job_id).attempts == 2


def test_a_cancelled_run_keeps_its_best_checkpoint(job_settings, factory, synth) -> None:
    from ddm.catalog.jobs import cancel_job

    plan = _plan(job_settings, factory, synth, replace(QUICK, epochs=50))
    with_tiny_detector(factory, plan.run.id)

    def cancel_after_two(event: dict) -> None:
        if event["epoch"] == 2 and "batch" not in event:  # the end of epoch 2
            with session_scope(factory) as session:
                cancel_job(session, plan.job_id)
            time.sleep(job_settings.heartbeat_seconds * 3)  # a heartbeat notices

    assert run_job(plan.job_id, job_settings, factory, "w1", on_event=cancel_after_two) == (
        "cancelled"
    )
    with session_scope(factory) as session:
        run = get_run(session, plan.run.id)
        epochs = run_epochs(session, run.id)
    assert run.status == "cancelled" and Path(run.checkpoint_path).is_file()
    assert 2 <= len(epochs) < 50


# --------------------------------------------------------------------------- the commands


def _cli_env(job_settings) -> dict[str, str]:
    return {"DDM_HOME": str(job_settings.home), "DDM_DATABASE_URL": job_settings.db_url}


def test_ddm_train_and_runs_through_the_cli(run_ddm, job_settings, synth) -> None:
    env = _cli_env(job_settings)
    result = run_ddm(
        "train", "--datasets", synth, "--epochs", "2", "--batch-size", "4", "--json", env=env
    )
    assert result.exit_code == 0, result.stderr
    run = json.loads(result.stdout)
    assert run["status"] == "succeeded" and [e["epoch"] for e in run["epochs"]] == [1, 2]
    assert (run["train_videos"], run["val_videos"]) == (12, 6)
    assert f"extractor {FINGERPRINT[:19]}" in result.stderr
    assert "train: 4 real, 8 fake" in result.stderr and "epoch 2:" in result.stderr
    listed = json.loads(run_ddm("runs", "list", "--json", env=env).stdout)
    assert [r["id"] for r in listed] == [run["id"]]
    shown = run_ddm("runs", "show", run["name"], env=env)
    assert shown.exit_code == 0 and "training curve" in shown.stdout
    precision = resolve_precision("auto", torch.device("cpu"))
    assert re.search(rf"precision\s+│?\s*{precision}", shown.stdout), shown.stdout


def test_bad_training_requests_are_one_line_and_exit_1(run_ddm, job_settings, synth, factory):
    env = _cli_env(job_settings)
    unknown = run_ddm("train", "--datasets", "nope", env=env)
    assert unknown.exit_code == 1 and unknown.stderr.startswith("error: ")
    assert len(unknown.stderr.strip().splitlines()) == 1
    with session_scope(factory) as session:
        session.execute(update(Video).where(Video.split == "val").values(label="fake"))
    one_class = run_ddm("train", "--datasets", synth, env=env)
    assert one_class.exit_code == 1
    assert "the val split of synth has only fake videos" in one_class.stderr


@pytest.mark.postgres
@pytest.mark.slow
def test_a_training_worker_killed_mid_run_is_resumed_by_the_next(broker_env, tmp_path) -> None:
    from tasks.dispatch import dispatch
    from tests.tasks.conftest import (
        broker_settings_and_factory,
        kill_worker,
        start_worker,
        wait_for,
    )

    env, _ = broker_env
    env = {**env, "DDM_STALE_AFTER_SECONDS": "6"}
    settings, factory = broker_settings_and_factory(env)
    plan = _plan(settings, factory, make_synth(settings, factory), replace(QUICK, epochs=30))
    with_tiny_detector(factory, plan.run.id)
    assert dispatch(settings, factory, [plan.job_id]).sent
    log = tmp_path / "worker.log"

    def epochs_done() -> int:
        with session_scope(factory) as session:
            return len(run_epochs(session, plan.run.id))

    first = start_worker(env, log)
    try:
        wait_for(lambda: epochs_done() >= 2, 300, "two epochs", log)
    finally:
        kill_worker(first)
    killed_after = epochs_done()
    assert killed_after < 30, "killed too late to test anything"
    second = start_worker(env, log)
    try:
        wait_for(lambda: _finished(factory, plan.job_id), 300, "the resumed job to finish", log)
        # The resumed run is then scored on its test split by an `evaluate` job there.
        evaluation, dispatched = evaluate_runs(settings, factory, "synth")
        assert dispatched.sent
        (evaluate_job,) = evaluation.job_ids
        wait_for(lambda: _finished(factory, evaluate_job), 120, "the evaluation", log)
    finally:
        kill_worker(second, signal.SIGTERM)
    with session_scope(factory) as session:
        job = get_job(session, plan.job_id)
        run = get_run(session, plan.run.id)
        epochs = [e.epoch for e in run_epochs(session, run.id)]
        evaluated = get_job(session, evaluate_job)
    assert (job.status, run.status, job.attempts) == ("succeeded", "succeeded", 2)
    assert epochs == list(range(1, 31))
    assert "resumes after epoch" in log.read_text()
    assert evaluated.status == "succeeded" and evaluated.worker not in (None, "")
    (entry,) = build_report(factory, evaluation)["runs"]
    assert (entry["run_id"], entry["n_videos"], entry["held_out"]) == (run.id, 4, True)


def _finished(factory, job_id: int) -> bool:
    with session_scope(factory) as session:
        return get_job(session, job_id).status in ("succeeded", "failed", "cancelled")


# --------------------------------------------------------------------------- runs that cannot


def _poison_one_train_video(job_settings, factory, dataset: str) -> tuple[int, Path]:
    """Overwrite one train video's cache file with NaN style codes (as a broken extractor
    of an older version could have written it) and record its new checksum."""
    import torch

    from ddm.catalog.models import Dataset, FeatureCache
    from ddm.fs import sha256_of

    with session_scope(factory) as session:
        cache = session.scalars(
            select(FeatureCache)
            .join(Video, Video.id == FeatureCache.video_id)
            .join(Dataset, Dataset.id == Video.dataset_id)
            .where(Dataset.name == dataset, Video.split == "train")
            .order_by(Video.id)
        ).first()
        path = Path(job_settings.cache_dir) / cache.path
        features = torch.load(path, weights_only=True)
        features["style"][2:4] = float("nan")
        torch.save(features, path)  # not save_features: it refuses such files
        cache.checksum = sha256_of(path)
        return cache.video_id, path


def test_a_run_fed_a_nan_feature_file_fails_naming_the_video(job_settings, factory, synth):
    video_id, path = _poison_one_train_video(job_settings, factory, synth)
    plan = _plan(job_settings, factory, synth)
    with_tiny_detector(factory, plan.run.id)
    with pytest.raises(InvalidInput):
        run_job(plan.job_id, job_settings, factory, "w1")
    with session_scope(factory) as session:
        run = get_run(session, plan.run.id)
        job = get_job(session, plan.job_id)
        epochs = run_epochs(session, run.id)
    assert (run.status, job.status, epochs) == ("failed", "failed", [])  # nothing was fitted
    assert f"video {video_id}" in run.error and str(path) in run.error
    assert "NaN or inf" in run.error and run.error == job.error
    assert run.checkpoint_path is None


def test_a_run_whose_validation_loss_is_never_finite_fails(run_ddm, job_settings, synth) -> None:
    # A learning rate this large blows the weights up in the first step: every later
    # output, and so every validation loss, is NaN.
    env = _cli_env(job_settings)
    options = ["--epochs", "2", "--batch-size", "4", "--lr", "1e30"]
    result = run_ddm("train", "--datasets", synth, *options, env=env)
    assert result.exit_code == 1, result.stdout + result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: ") and "no epoch of 2 had a finite validation loss" in error
    [run] = json.loads(run_ddm("runs", "list", "--json", env=env).stdout)
    assert run["status"] == "failed" and "finite validation loss" in run["error"]
    assert run["checkpoint_path"] is None


def _add_dataset(job_settings, factory, name: str, fingerprint: str, frames: int) -> None:
    """A dataset like `synth` whose caches were extracted with `frames` frames per video
    under another extractor."""
    import torch

    from ddm.catalog.models import Dataset, FeatureCache
    from tests.tasks.synth import SPLITS, add_valid_cache

    with session_scope(factory) as session:
        dataset = Dataset(name=name, format="folder", root_path=f"/data/{name}")
        session.add(dataset)
        session.flush()
        for split, count in SPLITS.items():
            for index in range(count):
                video = Video(
                    dataset_id=dataset.id,
                    path=f"{split}/{name}-{index}.mp4",
                    content_hash=f"{name}-{split}-{index}".ljust(64, "0"),
                    split=split,
                    label="fake" if index % 3 else "real",
                    probe_status="ok",
                    is_present=True,
                )
                session.add(video)
                session.flush()
                features = {
                    "content": torch.randn(1, 2048),
                    "style": torch.randn(frames, 1, 512),
                }
                add_valid_cache(session, job_settings, video, features, fingerprint)
        session.flush()
        session.execute(
            update(FeatureCache)
            .where(FeatureCache.fingerprint == fingerprint)
            .values(frames_sampled=frames)
        )


def test_a_combined_run_stops_when_a_dataset_lacks_the_run_s_extractor(
    run_ddm, job_settings, factory
) -> None:
    from ddm.catalog.models import FeatureCache

    make_synth(job_settings, factory, "a")
    with session_scope(factory) as session:
        session.execute(update(FeatureCache).values(frames_sampled=8))
    other = "random-" + "d" * 40
    _add_dataset(job_settings, factory, "b", other, frames=16)
    env = _cli_env(job_settings)

    result = run_ddm("train", "--datasets", "a,b", "--epochs", "1", env=env)

    assert result.exit_code == 1, result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: dataset 'b' has no train videos cached with extractor")
    assert f"{FINGERPRINT[:19]} (T=8)" in line and f"{other[:19]} (T=16" in line
    assert "`ddm extract --dataset b --frames 8 --allow-random-weights`" in line
    assert json.loads(run_ddm("runs", "list", "--json", env=env).stdout) == []


def test_the_default_extractor_is_one_every_dataset_can_train_with(job_settings, factory) -> None:
    import torch

    from ddm.catalog.models import Dataset, FeatureCache
    from ddm.catalog.runs import training_selection
    from tests.tasks.synth import add_valid_cache

    make_synth(job_settings, factory, "a")  # all 18 train/val videos with FINGERPRINT
    other = "random-" + "d" * 40
    _add_dataset(job_settings, factory, "b", other, frames=8)
    with session_scope(factory) as session:
        # `other` also covers one train and one val video of a, and only 8 of b's 18.
        for split in ("train", "val"):
            video = session.scalars(
                select(Video)
                .join(Dataset, Dataset.id == Video.dataset_id)
                .where(Dataset.name == "a", Video.split == split)
            ).first()
            features = {"content": torch.randn(1, 2048), "style": torch.randn(8, 1, 512)}
            add_valid_cache(session, job_settings, video, features, other)
        b_train = select(Video.id).join(Dataset).where(Dataset.name == "b", Video.split == "train")
        dropped = list(session.scalars(b_train.order_by(Video.id).limit(10)))
        session.execute(
            update(FeatureCache).where(FeatureCache.video_id.in_(dropped)).values(is_valid=False)
        )
    with session_scope(factory) as session:
        selection = training_selection(session, ["a", "b"])
    assert selection.coverage == {FINGERPRINT: 18, other: 10}
    assert selection.fingerprint == other  # the widest, FINGERPRINT, has nothing of b
    assert {m.dataset for m in selection.train} == {m.dataset for m in selection.val} == {"a", "b"}
