"""Training loop for the detector: BCE, AdamW, warm-restart cosine schedule per epoch,
mixup, early stopping on validation loss (model layer).

A pure function of (model, loaders, cfg, device, callbacks): no argv, no settings, no
printing. Metrics leave through `on_metrics(epoch, dict)` and TensorBoard scalars.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sized
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.optim import AdamW
from torch.optim.lr_scheduler import CosineAnnealingWarmRestarts

from ddm.errors import DdmError
from model.detector import bce_loss
from model.determinism import deterministic_algorithms, restore_rng, rng_state
from model.evaluate import predict_logits
from model.precision import AUTO, PRECISIONS, autocast_for, resolve_precision

logger = logging.getLogger(__name__)

MetricsCallback = Callable[[int, dict[str, float]], None]
Batch = Mapping[str, Tensor]


class NoFiniteValidationLoss(DdmError):
    """Every epoch of a run ended with a NaN or infinite validation loss: the detector
    learned nothing usable, and there are no best weights to keep."""


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
        pos_weight: weight of the fake (positive) term of the loss; n_real / n_fake of
            the training set balances the classes. None weighs both alike.
        fit_input_stats: fit the detector's input standardisation on the training
            loader before the first epoch (model/standardize.py).
        deterministic: deterministic kernels (model/determinism.py): a GPU run then
            repeats bit for bit, slower; a CPU run repeats either way.
        precision: "fp32", or "bf16" to run forward and backward passes (training and
            validation) under bf16 autocast, the weights and optimiser staying fp32;
            "auto" is bf16 where the device has bf16 units (model/precision.py) and fp32
            elsewhere, resolved by `train` for its device.
    """

    epochs: int = 60
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
    pos_weight: float | None = None
    fit_input_stats: bool = True
    deterministic: bool = False
    precision: str = AUTO

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
                ("pos_weight > 0", self.pos_weight is None or self.pos_weight > 0),
                ("precision in auto, fp32, bf16", self.precision in (AUTO, *PRECISIONS)),
            )
            if not ok
        ]
        if problems:
            raise ValueError(f"invalid TrainCfg: need {', '.join(problems)}")


@dataclass
class TrainResult:
    """Outcome of `train`; the model itself is left holding the best weights.

    Attributes:
        best_epoch: 1-based epoch with the lowest validation loss; 0 when no epoch had a
            finite one, which only a run stopped by its caller returns (`has_best`).
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

    @property
    def has_best(self) -> bool:
        """True when some epoch had a finite validation loss, so best weights exist."""
        return self.best_epoch > 0


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

    def state(self) -> dict[str, Any]:
        return {
            "rng": self.rng.bit_generator.state,
            "generator": self.generator.get_state(),
            "batches": self.batches,
            "applied": self.applied,
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.generator.set_state(state["generator"])
        self.batches, self.applied = state["batches"], state["applied"]


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

    def state(self) -> dict[str, Any]:
        return {
            "best_loss": self.best_loss,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "best_state": self.best_state,
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        self.best_loss, self.best_epoch = state["best_loss"], state["best_epoch"]
        self.bad_epochs, self.best_state = state["bad_epochs"], dict(state["best_state"])


@dataclass
class TrainHooks:
    """How a caller follows and steers a run; every field is optional.

    Attributes:
        on_metrics: called after each epoch with (epoch, {train_loss, train_accuracy,
            val_loss, val_accuracy, lr}); the tasks layer stores them.
        on_epoch_end: called after each epoch with the full `TrainState`, to be saved
            for resuming.
        should_stop: polled after each epoch; returning True ends training (job
            cancellation).
        run_dir: write TensorBoard scalars here.
        resume: continue from this state (saved by `on_epoch_end`) instead of epoch 1.
        on_batch: called after each training batch with (epoch, batch, batches, loss);
            `batches` is None for a loader without a length. For progress bars.
    """

    on_metrics: MetricsCallback | None = None
    on_epoch_end: Callable[[TrainState], None] | None = None
    should_stop: Callable[[], bool] | None = None
    run_dir: str | os.PathLike[str] | None = None
    resume: TrainState | None = None
    on_batch: Callable[[int, int, int | None, float], None] | None = None


@dataclass
class TrainState:
    """Everything needed to continue a run after its last finished epoch, exactly as if it
    had never stopped: weights, optimiser, schedule, early stopping, mixup's and torch's
    random streams, and the history. `as_dict` holds only tensors and builtins, so it
    saves and loads with `torch.load(weights_only=True)`."""

    epoch: int
    model: dict[str, Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    stopper: dict[str, Any]
    mixer: dict[str, Any]
    torch_rng: Tensor
    history: list[dict[str, float]]
    # One per GPU when trained on GPUs (dropout draws there); absent from older files.
    cuda_rng: list[Tensor] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainState:
        fields = dataclasses.fields(cls)
        return cls(**{f.name: values[f.name] for f in fields if f.name in values})


def train(
    model: nn.Module,
    train_loader: Iterable[Batch],
    val_loader: Iterable[Batch],
    cfg: TrainCfg,
    *,
    device: str | torch.device = "cpu",
    hooks: TrainHooks | None = None,
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
        hooks: callbacks, cancellation, TensorBoard folder and a state to resume from.
        on_metrics, run_dir, should_stop: shorthands for the `hooks` fields of those names.

    Returns:
        The best epoch, history and weights.

    Raises:
        NoFiniteValidationLoss: the run ended (not stopped by `should_stop`) without any
            epoch whose validation loss was finite.
    """
    hooks = hooks or TrainHooks()
    hooks = dataclasses.replace(
        hooks,
        on_metrics=on_metrics or hooks.on_metrics,
        run_dir=run_dir or hooks.run_dir,
        should_stop=should_stop or hooks.should_stop,
    )
    device = torch.device(device)
    cfg = dataclasses.replace(cfg, precision=resolve_precision(cfg.precision, device))
    # Seed inside a forked RNG state so the caller's global RNG is left untouched.
    cuda_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices), deterministic_algorithms(cfg.deterministic):
        torch.manual_seed(cfg.seed)
        trainer = _Trainer(model, cfg, device)
        if hooks.resume is not None:
            trainer.restore(hooks.resume)
        elif cfg.fit_input_stats and hasattr(model, "fit_input_stats"):
            model.fit_input_stats(train_loader)
        return trainer.fit(train_loader, val_loader, hooks)


class _Trainer:
    """The optimiser, schedule, mixup and early stopping of one run, and their state."""

    def __init__(self, model: nn.Module, cfg: TrainCfg, device: torch.device) -> None:
        self.model, self.cfg, self.device = model.to(device), cfg, device
        self.optimizer = AdamW(
            model.parameters(),
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
            # One kernel for the whole update instead of a dozen passes over 13.5 M
            # parameters: a step took 32 ms with the default, 8 ms fused (bench/README.md).
            fused=device.type in _FUSED_ADAMW_DEVICES,
        )
        self.scheduler = CosineAnnealingWarmRestarts(
            self.optimizer,
            T_0=cfg.restart_period,
            T_mult=cfg.restart_mult,
            eta_min=cfg.lr * cfg.min_lr_ratio,
        )
        self.mixer = Mixup(cfg.mixup_alpha, cfg.mixup_prob, cfg.seed)
        self.stopper = EarlyStopping(cfg.patience)
        self.history: list[dict[str, float]] = []

    def fit(
        self, train_loader: Iterable[Batch], val_loader: Iterable[Batch], hooks: TrainHooks
    ) -> TrainResult:
        writer = _summary_writer(hooks.run_dir)
        stopped_by_caller = False
        try:
            for epoch in range(len(self.history) + 1, self.cfg.epochs + 1):
                if self.stopper.should_stop:
                    break  # a resumed run whose patience had already run out
                metrics = self._epoch(train_loader, val_loader, epoch, hooks.on_batch)
                self.history.append({"epoch": epoch, **metrics})
                _report(epoch, metrics, hooks.on_metrics, writer)
                self.stopper.update(epoch, metrics["val_loss"], self.model)
                if hooks.on_epoch_end is not None:
                    hooks.on_epoch_end(self.state())
                stopped_by_caller = bool(hooks.should_stop and hooks.should_stop())
                if self.stopper.should_stop or stopped_by_caller:
                    break
        finally:
            if writer is not None:
                writer.close()
        if not self.stopper.best_state and not stopped_by_caller:
            raise NoFiniteValidationLoss(self._why_nothing_was_learned())
        return self._result()

    def _why_nothing_was_learned(self) -> str:
        last = self.history[-1] if self.history else {}
        losses = ", ".join(
            f"{name} {last[key]:.4g}"
            for name, key in (("train loss", "train_loss"), ("val loss", "val_loss"))
            if key in last
        )
        return (
            f"no epoch of {len(self.history)} had a finite validation loss (last epoch: "
            f"{losses or 'none run'}): the detector learned nothing; look for NaN or inf in "
            "its features, or lower the learning rate"
        )

    def _epoch(
        self,
        train_loader: Iterable[Batch],
        val_loader: Iterable[Batch],
        epoch: int,
        on_batch: Callable[[int, int, int | None, float], None] | None,
    ) -> dict:
        model, cfg = self.model, self.cfg
        lr = self.optimizer.param_groups[0]["lr"]
        batches = len(train_loader) if isinstance(train_loader, Sized) else None

        def batch_done(index: int, loss: float) -> None:
            if on_batch is not None:
                on_batch(epoch, index, batches, loss)

        train_loss, train_acc = _train_epoch(
            model, train_loader, self.optimizer, self.mixer, self.device, cfg, batch_done
        )
        with autocast_for(cfg.precision, self.device):
            val_loss, val_acc = _validate(model, val_loader, self.device, cfg.pos_weight)
        self.scheduler.step()  # once per epoch, as the seed schedules it
        return {
            "train_loss": train_loss,
            "train_accuracy": train_acc,
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "lr": lr,
        }

    def _result(self) -> TrainResult:
        stopper = self.stopper
        if stopper.best_state:
            self.model.load_state_dict(stopper.best_state)
        logger.info("training done epochs=%d best_epoch=%d", len(self.history), stopper.best_epoch)
        return TrainResult(
            best_epoch=stopper.best_epoch,
            best_val_loss=stopper.best_loss,
            epochs_run=len(self.history),
            stopped_early=stopper.should_stop,
            history=list(self.history),
            best_state_dict=stopper.best_state,
            optimizer_state=self.optimizer.state_dict(),
        )

    def state(self) -> TrainState:
        return TrainState(
            epoch=len(self.history),
            model=_cpu(self.model.state_dict()),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            stopper=self.stopper.state(),
            mixer=self.mixer.state(),
            torch_rng=torch.get_rng_state(),
            history=[dict(row) for row in self.history],
            cuda_rng=rng_state(self.device)["cuda"],
        )

    def restore(self, state: TrainState) -> None:
        self.model.load_state_dict(state.model)
        self.optimizer.load_state_dict(state.optimizer)
        self.scheduler.load_state_dict(state.scheduler)
        self.stopper.restore(state.stopper)
        self.mixer.restore(state.mixer)
        restore_rng({"cpu": state.torch_rng, "cuda": state.cuda_rng}, self.device)
        self.history = [dict(row) for row in state.history]


_FUSED_ADAMW_DEVICES = ("cpu", "cuda")


def _cpu(tensors: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {key: value.detach().cpu().clone() for key, value in tensors.items()}


def _train_epoch(
    model: nn.Module,
    loader: Iterable[Batch],
    optimizer: torch.optim.Optimizer,
    mixer: Mixup,
    device: torch.device,
    cfg: TrainCfg,
    on_batch: Callable[[int, float], None],
) -> tuple[float, float]:
    model.train()
    total_loss = total_correct = 0.0
    count = 0
    for index, batch in enumerate(loader, start=1):
        content, style, target = mixer(
            batch["content"].to(device),
            batch["style"].to(device),
            batch["label"].float().to(device),
        )
        with autocast_for(cfg.precision, device):
            logits = model(content, style).float()  # (B,)
        loss = bce_loss(logits, target, cfg.pos_weight)
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
        on_batch(index, loss.item())
    return total_loss / max(count, 1), total_correct / max(count, 1)


def _validate(
    model: nn.Module, loader: Iterable[Batch], device: torch.device, pos_weight: float | None
) -> tuple[float, float]:
    logits, labels = predict_logits(model, loader, device)
    logits = logits.float()
    if len(labels) == 0:
        return math.nan, math.nan
    accuracy = ((logits >= 0) == (labels >= 0.5)).float().mean().item()
    return bce_loss(logits, labels, pos_weight).item(), accuracy


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
