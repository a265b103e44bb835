"""Training loop for the detector: BCE, AdamW, warm-restart cosine schedule per epoch,
mixup, early stopping on validation loss (model layer).

A pure function of (model, loaders, cfg, device, callbacks): no argv, no settings, no
printing. Metrics leave through `on_metrics(epoch, dict)` and TensorBoard scalars.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.optim import AdamW
from torch.optim.lr_scheduler import CosineAnnealingWarmRestarts

from model.detector import bce_loss
from model.evaluate import predict_logits

logger = logging.getLogger(__name__)

MetricsCallback = Callable[[int, dict[str, float]], None]
Batch = Mapping[str, Tensor]


@dataclass(frozen=True)
class TrainCfg:
    """Training hyperparameters (stored with the run and the checkpoint).

    Attributes:
        epochs: most epochs to run.
        lr: AdamW learning rate at the start of each cosine cycle.
        weight_decay: AdamW decoupled weight decay.
        mixup_alpha: lambda ~ Beta(alpha, alpha); 0 turns mixup off.
        mixup_prob: fraction of batches that are mixed.
        patience: epochs without a lower validation loss before stopping.
        restart_period: T_0, epochs in the first cosine cycle.
        restart_mult: T_mult, growth of each later cycle.
        min_lr_ratio: eta_min as a fraction of `lr`.
        seed: seeds weight-independent randomness (dropout, mixup, default shuffling).
        max_grad_norm: clip gradients to this norm; None disables clipping.
    """

    epochs: int = 100
    lr: float = 1e-4
    weight_decay: float = 0.01
    mixup_alpha: float = 0.2
    mixup_prob: float = 0.7
    patience: int = 12
    restart_period: int = 10
    restart_mult: int = 2
    min_lr_ratio: float = 0.01
    seed: int = 0
    max_grad_norm: float | None = None

    def __post_init__(self) -> None:
        problems = [
            name
            for name, ok in (
                ("epochs >= 1", self.epochs >= 1),
                ("lr > 0", self.lr > 0),
                ("mixup_alpha >= 0", self.mixup_alpha >= 0),
                ("0 <= mixup_prob <= 1", 0 <= self.mixup_prob <= 1),
                ("patience >= 1", self.patience >= 1),
                ("restart_period >= 1", self.restart_period >= 1),
                ("restart_mult >= 1", self.restart_mult >= 1),
            )
            if not ok
        ]
        if problems:
            raise ValueError(f"invalid TrainCfg: need {', '.join(problems)}")


@dataclass
class TrainResult:
    """Outcome of `train`; the model itself is left holding the best weights.

    Attributes:
        best_epoch: 1-based epoch with the lowest validation loss.
        best_val_loss: that loss.
        epochs_run: epochs completed before stopping.
        stopped_early: True when patience ran out.
        history: one metrics dict per epoch, with its "epoch".
        best_state_dict: CPU copy of the best weights.
        optimizer_state: optimizer state after the last epoch, for resuming.
    """

    best_epoch: int
    best_val_loss: float
    epochs_run: int
    stopped_early: bool
    history: list[dict[str, float]] = field(default_factory=list)
    best_state_dict: dict[str, Tensor] = field(default_factory=dict)
    optimizer_state: dict[str, Any] = field(default_factory=dict)


def mixup(
    content: Tensor, style: Tensor, target: Tensor, lam: float, perm: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Blend each sample with sample `perm[i]` using one lambda for all three inputs.

    Style codes are mixed before the flow is taken; differencing is linear, so the
    flows are mixed by the same lambda.
    """
    return (
        lam * content + (1 - lam) * content[perm],
        lam * style + (1 - lam) * style[perm],
        lam * target + (1 - lam) * target[perm],
    )


class Mixup:
    """Applies `mixup` to a random `prob` share of batches with lambda ~ Beta(a, a).

    Its own generators keep the mixing sequence a function of the seed alone.
    """

    def __init__(self, alpha: float, prob: float, seed: int) -> None:
        self.alpha, self.prob = alpha, prob
        self.rng = np.random.default_rng(seed)
        self.generator = torch.Generator().manual_seed(seed)
        self.batches = self.applied = 0

    def __call__(
        self, content: Tensor, style: Tensor, target: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        self.batches += 1
        if self.alpha <= 0 or len(target) < 2 or self.rng.random() >= self.prob:
            return content, style, target
        self.applied += 1
        lam = float(self.rng.beta(self.alpha, self.alpha))
        perm = torch.randperm(len(target), generator=self.generator).to(target.device)
        return mixup(content, style, target, lam, perm)


class EarlyStopping:
    """Tracks the lowest validation loss and a copy of the weights that reached it."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best_loss = math.inf
        self.best_epoch = 0
        self.best_state: dict[str, Tensor] = {}
        self.bad_epochs = 0

    def update(self, epoch: int, loss: float, model: nn.Module) -> bool:
        """Record an epoch's loss; return True when it is a new best (NaN never is)."""
        if loss < self.best_loss:
            self.best_loss, self.best_epoch, self.bad_epochs = loss, epoch, 0
            self.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        """True once `patience` epochs in a row brought no improvement."""
        return self.bad_epochs >= self.patience


def train(
    model: nn.Module,
    train_loader: Iterable[Batch],
    val_loader: Iterable[Batch],
    cfg: TrainCfg,
    *,
    device: str | torch.device = "cpu",
    on_metrics: MetricsCallback | None = None,
    run_dir: str | os.PathLike[str] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train the detector and leave it holding the weights with the best validation loss.

    Args:
        model: the detector, called as `model(content, style) -> logits`.
        train_loader: batches of {"content", "style", "label"}.
        val_loader: validation batches, used for early stopping.
        cfg: hyperparameters.
        device: where to train.
        on_metrics: called after each epoch with (epoch, {train_loss, train_accuracy,
            val_loss, val_accuracy, lr}); the tasks layer stores them.
        run_dir: write TensorBoard scalars here when given.
        should_stop: polled after each epoch; returning True ends training (job
            cancellation).

    Returns:
        The best epoch, history and weights.
    """
    device = torch.device(device)
    # Seed inside a forked RNG state so the caller's global RNG is left untouched.
    cuda_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(cfg.seed)
        return _fit(model, train_loader, val_loader, cfg, device, on_metrics, run_dir, should_stop)


def _fit(
    model: nn.Module,
    train_loader: Iterable[Batch],
    val_loader: Iterable[Batch],
    cfg: TrainCfg,
    device: torch.device,
    on_metrics: MetricsCallback | None,
    run_dir: str | os.PathLike[str] | None,
    should_stop: Callable[[], bool] | None,
) -> TrainResult:
    model.to(device)
    optimizer = AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = CosineAnnealingWarmRestarts(
        optimizer,
        T_0=cfg.restart_period,
        T_mult=cfg.restart_mult,
        eta_min=cfg.lr * cfg.min_lr_ratio,
    )
    mixer = Mixup(cfg.mixup_alpha, cfg.mixup_prob, cfg.seed)
    stopper = EarlyStopping(cfg.patience)
    writer = _summary_writer(run_dir)
    history: list[dict[str, float]] = []
    try:
        for epoch in range(1, cfg.epochs + 1):
            lr = optimizer.param_groups[0]["lr"]
            train_loss, train_acc = _train_epoch(model, train_loader, optimizer, mixer, device, cfg)
            val_loss, val_acc = _validate(model, val_loader, device)
            scheduler.step()  # once per epoch, as the seed schedules it
            metrics = {
                "train_loss": train_loss,
                "train_accuracy": train_acc,
                "val_loss": val_loss,
                "val_accuracy": val_acc,
                "lr": lr,
            }
            history.append({"epoch": epoch, **metrics})
            _report(epoch, metrics, on_metrics, writer)
            stopper.update(epoch, val_loss, model)
            if stopper.should_stop or (should_stop is not None and should_stop()):
                break
    finally:
        if writer is not None:
            writer.close()
    if stopper.best_state:
        model.load_state_dict(stopper.best_state)
    logger.info("training done epochs=%d best_epoch=%d", len(history), stopper.best_epoch)
    return TrainResult(
        best_epoch=stopper.best_epoch,
        best_val_loss=stopper.best_loss,
        epochs_run=len(history),
        stopped_early=stopper.should_stop,
        history=history,
        best_state_dict=stopper.best_state,
        optimizer_state=optimizer.state_dict(),
    )


def _train_epoch(
    model: nn.Module,
    loader: Iterable[Batch],
    optimizer: torch.optim.Optimizer,
    mixer: Mixup,
    device: torch.device,
    cfg: TrainCfg,
) -> tuple[float, float]:
    model.train()
    total_loss = total_correct = 0.0
    count = 0
    for batch in loader:
        content, style, target = mixer(
            batch["content"].to(device),
            batch["style"].to(device),
            batch["label"].float().to(device),
        )
        logits = model(content, style)  # (B,)
        loss = bce_loss(logits, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        optimizer.step()
        # With mixed targets, a prediction counts as right when it sides with the
        # dominant label (the soft target rounded at 0.5).
        correct = ((logits.detach() >= 0) == (target >= 0.5)).sum().item()
        total_loss += loss.item() * len(target)
        total_correct += correct
        count += len(target)
    return total_loss / max(count, 1), total_correct / max(count, 1)


def _validate(
    model: nn.Module, loader: Iterable[Batch], device: torch.device
) -> tuple[float, float]:
    logits, labels = predict_logits(model, loader, device)
    if len(labels) == 0:
        return math.nan, math.nan
    accuracy = ((logits >= 0) == (labels >= 0.5)).float().mean().item()
    return bce_loss(logits, labels).item(), accuracy


def _summary_writer(run_dir: str | os.PathLike[str] | None) -> Any:
    if run_dir is None:
        return None
    # Imported lazily: TensorBoard pulls in a large dependency tree.
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(run_dir))


def _report(
    epoch: int, metrics: dict[str, float], on_metrics: MetricsCallback | None, writer: Any
) -> None:
    if writer is not None:
        for name, value in metrics.items():
            split, _, metric = name.partition("_")
            tag = f"{metric}/{split}" if metric else name  # loss/train, loss/val, lr
            writer.add_scalar(tag, value, epoch)
        writer.flush()
    if on_metrics is not None:
        on_metrics(epoch, dict(metrics))
    logger.debug("epoch=%d %s", epoch, metrics)
