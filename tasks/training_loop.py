"""The torch side of a `train` job: loaders from the frozen membership, the detector, and
the hooks that store epochs and checkpoints as they happen (jobs layer).

Kept apart from tasks/training.py so that planning a run imports no torch.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from ddm.catalog import runs
from ddm.db import session_scope
from ddm.fs import atomic_write
from model.checkpoint import save_checkpoint
from model.data import CachedFeatureDataset, make_loader
from model.detector import DetectorCfg, build_detector
from model.errors import IncompatibleFeatures
from model.precision import FP32, resolve_precision
from model.train import TrainCfg, TrainHooks, TrainResult, TrainState, train
from tasks.devices import resolve_device
from tasks.lifecycle import JobContext
from tasks.training import BEST, DETECTOR, LAST

logger = logging.getLogger(__name__)

VAL_BATCH = 512


def train_run(
    context: JobContext,
    run: Any,
    items: dict[str, list[tuple[Path, float]]],
    run_dir: Path,
    video_ids: dict[Path, int] | None = None,
) -> TrainResult:
    """Train the run's detector; resume from its last saved epoch when there is one.

    Args:
        video_ids: the video of each cache file, to name it in errors.

    Raises:
        IncompatibleFeatures: a member's features hold NaN or inf values.
    """
    config = run.config
    device = resolve_device(config.get("device", "auto"))
    train_cfg = _train_cfg(config["train"], device)
    with session_scope(context.factory) as session:
        runs.record_resolved(session, run.id, device=device, precision=train_cfg.precision)
    train_set = CachedFeatureDataset(items["train"], preload=True)
    val_set = CachedFeatureDataset(items["val"], preload=True)
    for role, dataset in (("train", train_set), ("val", val_set)):
        _require_finite(dataset, role, video_ids or {})
    detector_cfg = _detector_cfg(train_set, config.get("detector", {}))
    # The run's seed fixes the initial weights too: one seed, one run (`ddm train --seed`).
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(train_cfg.seed)
        model = build_detector(detector_cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    hooks = TrainHooks(
        on_metrics=lambda epoch, metrics: _record_epoch(context, run.id, epoch, metrics),
        on_epoch_end=lambda state: _save(context, run.id, run_dir, model, detector_cfg, state),
        should_stop=context.lost.is_set,
        run_dir=run_dir / "tensorboard",
        resume=_resume_state(run),
        # Progress only, no unit of work: the job's units are epochs.
        on_batch=lambda epoch, batch, batches, loss: context.advance(
            event={
                "run_id": run.id,
                "epoch": epoch,
                "batch": batch,
                "batches": batches,
                "loss": loss,
            },
            units=0,
        ),
    )
    if hooks.resume is not None:
        logger.info("run_id=%s resumes after epoch %d", run.id, hooks.resume.epoch)
        context.advance(units=hooks.resume.epoch)
    return train(
        model,
        make_loader(train_set, batch_size=config["batch_size"], shuffle=True),
        # Validation runs in eval mode without gradients: its batch size changes nothing
        # but its speed (0.6 s at 512 against 4 s at 16 for 685 videos here).
        make_loader(val_set, batch_size=max(config["batch_size"], VAL_BATCH), shuffle=False),
        train_cfg,
        device=device,
        hooks=hooks,
    )


def _train_cfg(values: dict[str, Any], device: str) -> TrainCfg:
    """The run's TrainCfg with 'auto' precision resolved for the device it trains on; a
    run planned before precision was a setting trained in fp32, and resumes in fp32."""
    precision = values.get("precision", FP32)
    return TrainCfg(**{**values, "precision": resolve_precision(precision, torch.device(device))})


def _require_finite(dataset: CachedFeatureDataset, role: str, video_ids: dict[Path, int]) -> None:
    """Refuse a member whose features hold NaN or inf before anything is fitted on them: one
    such file makes the input standardisation, and so every output, NaN. The run fails
    rather than leaving the video out, since its frozen membership says it trained on it."""
    problems = dataset.non_finite()
    if not problems:
        return
    index, problem = problems[0]
    path = Path(dataset.items[index][0])
    video = video_ids.get(path)
    which = f"video {video} ({path})" if video is not None else str(path)
    more = f" (and {len(problems) - 1} more {role} videos)" if len(problems) > 1 else ""
    raise IncompatibleFeatures(
        f"the features of {role} {which}{more} are not finite: {problem}; extract its "
        "dataset again (`ddm extract --dataset NAME --force`, which refuses such features "
        "and marks the cache invalid) and plan a new run"
    )


def _detector_cfg(dataset: CachedFeatureDataset, overrides: dict[str, Any]) -> DetectorCfg:
    """The detector's sizes, fitted to the features: style levels, and room for the clips."""
    sample = dataset[0]
    levels = int(sample["style"].shape[1])
    clips = int(sample["content"].shape[0])
    values = {"style_levels": levels, "max_clips": max(clips, DetectorCfg.max_clips)}
    return DetectorCfg(**{**values, **overrides})


def _resume_state(run: Any) -> TrainState | None:
    path = run.last_state_path
    if not path or not Path(path).is_file():
        return None
    # To the CPU: a GPU run's file names cuda devices, and the sweeper may hand the run to
    # a CPU worker; the optimiser moves its state to its parameters' device itself.
    return TrainState.from_dict(torch.load(path, map_location="cpu", weights_only=True))


def _record_epoch(context: JobContext, run_id: int, epoch: int, metrics: dict) -> None:
    with session_scope(context.factory) as session:
        runs.record_epoch(
            session,
            run_id,
            epoch,
            train_loss=metrics["train_loss"],
            train_accuracy=metrics["train_accuracy"],
            val_loss=metrics["val_loss"],
            val_accuracy=metrics["val_accuracy"],
            learning_rate=metrics["lr"],
        )
    context.advance(event={"run_id": run_id, "epoch": epoch, **metrics})


def _save(
    context: JobContext,
    run_id: int,
    run_dir: Path,
    model: torch.nn.Module,
    detector_cfg: DetectorCfg,
    state: TrainState,
) -> None:
    """After each epoch: the best checkpoint when this epoch is the best so far (the model
    holds its weights right now), then the full state to resume from."""
    if state.stopper["best_epoch"] == state.epoch:
        best = state.history[-1]
        save_checkpoint(
            run_dir / BEST,
            model,
            model_name=DETECTOR,
            model_cfg=detector_cfg,
            epoch=state.epoch,
            metrics={key: value for key, value in best.items() if key != "epoch"},
        )
    with atomic_write(run_dir / LAST) as handle:
        torch.save(state.as_dict(), handle)
    with session_scope(context.factory) as session:
        runs.set_last_state(session, run_id, str(run_dir / LAST))
