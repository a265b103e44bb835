"""The training and evaluation loops: mixup, schedule, early stopping, determinism,
callbacks and TensorBoard output, on cached feature files."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from model.data import CachedFeatureDataset, collate_features, make_loader
from model.detector import DetectorCfg, build_detector
from model.errors import IncompatibleFeatures
from model.evaluate import evaluate, score_video
from model.features import load_features
from model.train import EarlyStopping, Mixup, TrainCfg, mixup, train

TINY = DetectorCfg(
    gru_hidden=16, gru_layers=1, dim=32, num_heads=4, mlp_dim=64, head_hidden=16, dropout=0.0
)
FAST = TrainCfg(epochs=6, lr=3e-3, mixup_alpha=0.4, patience=100, seed=0)


def fresh_model(cfg: DetectorCfg = TINY) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_detector(cfg)


@pytest.fixture
def loaders(make_feature_files):
    train_set = CachedFeatureDataset(make_feature_files(16, seed=1), preload=True)
    val_set = CachedFeatureDataset(make_feature_files(8, seed=2))
    return (
        make_loader(train_set, batch_size=4, shuffle=True),
        make_loader(val_set, batch_size=4, shuffle=False),
    )


def test_dataset_and_collate(make_feature_files) -> None:
    dataset = CachedFeatureDataset(make_feature_files(3, frames=8, clips=2))
    sample = dataset[1]
    assert sample["content"].shape == (2, 2048) and sample["style"].shape == (8, 1, 512)
    assert sample["label"].item() == 1.0
    batch = collate_features([dataset[0], dataset[1]])
    assert batch["style"].shape == (2, 8, 1, 512) and batch["label"].tolist() == [0.0, 1.0]


def test_batches_of_different_extractors_are_refused(make_feature_files) -> None:
    short = CachedFeatureDataset(make_feature_files(1, frames=8, seed=1))[0]
    long = CachedFeatureDataset(make_feature_files(1, frames=16, seed=2))[0]
    with pytest.raises(IncompatibleFeatures, match="'style'"):
        collate_features([short, long])


def test_labels_must_be_binary(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="labels"):
        CachedFeatureDataset([(tmp_path / "a.pt", 2)])


def test_mixup_uses_one_lambda_for_everything() -> None:
    content, style = torch.randn(4, 2, 2048), torch.randn(4, 8, 1, 512)
    target = torch.tensor([0.0, 1.0, 1.0, 0.0])
    perm = torch.tensor([1, 0, 3, 2])
    mixed_content, mixed_style, mixed_target = mixup(content, style, target, 0.3, perm)
    torch.testing.assert_close(mixed_content, 0.3 * content + 0.7 * content[perm])
    torch.testing.assert_close(mixed_style, 0.3 * style + 0.7 * style[perm])
    torch.testing.assert_close(mixed_target, torch.tensor([0.7, 0.3, 0.3, 0.7]))


def test_mixup_applies_to_seventy_percent_of_batches() -> None:
    mixer = Mixup(alpha=0.4, prob=0.7, seed=0)
    target = torch.tensor([0.0, 1.0, 0.0, 1.0])
    for _ in range(2000):
        # Inputs that equal their own label reveal the lambda used for each part.
        content = target[:, None, None].expand(4, 2, 8).clone()
        style = target[:, None, None, None].expand(4, 3, 1, 8).clone()
        mixed_content, mixed_style, mixed_target = mixer(content, style, target)
        torch.testing.assert_close(mixed_content[:, 0, 0], mixed_target)
        torch.testing.assert_close(mixed_style[:, 0, 0, 0], mixed_target)
    assert mixer.batches == 2000
    assert mixer.applied / mixer.batches == pytest.approx(0.7, abs=0.03)


def test_mixup_off_when_alpha_is_zero() -> None:
    mixer = Mixup(alpha=0.0, prob=1.0, seed=0)
    target = torch.tensor([0.0, 1.0])
    assert mixer(torch.zeros(2, 1, 4), torch.zeros(2, 2, 1, 4), target)[2] is target
    assert mixer.applied == 0


def expected_lr(epoch: int, lr: float, eta_min: float) -> float:
    """CosineAnnealingWarmRestarts(T_0=10, T_mult=2) value during 1-based `epoch`."""
    t, period = epoch - 1, 10
    while t >= period:
        t, period = t - period, period * 2
    return eta_min + (lr - eta_min) * (1 + math.cos(math.pi * t / period)) / 2


def test_scheduler_restarts_per_epoch(make_feature_files) -> None:
    # One small batch per epoch: the test is about the per-epoch schedule, not learning.
    loader = make_loader(
        CachedFeatureDataset(make_feature_files(2), preload=True), batch_size=2, shuffle=False
    )
    cfg = replace(FAST, epochs=31, mixup_alpha=0.0)
    result = train(fresh_model(), loader, loader, cfg)
    lrs = [row["lr"] for row in result.history]
    assert lrs == pytest.approx([expected_lr(e, 3e-3, 3e-5) for e in range(1, 32)])
    assert lrs[10] == pytest.approx(3e-3) and lrs[30] == pytest.approx(3e-3)  # restarts
    assert lrs[9] < lrs[0] / 10


def test_early_stopping_counts_epochs_without_improvement() -> None:
    stopper, model = EarlyStopping(patience=3), torch.nn.Linear(1, 1)
    for epoch, loss in enumerate([1.0, 0.8, 0.9, float("nan"), 0.85], start=1):
        stopper.update(epoch, loss, model)
    assert stopper.should_stop and stopper.best_epoch == 2 and stopper.best_loss == 0.8


def test_training_stops_early_and_keeps_the_best_model(make_feature_files) -> None:
    items = make_feature_files(8, seed=3)
    flipped = [(path, 1.0 - label) for path, label in items]  # validation disagrees
    train_loader = make_loader(CachedFeatureDataset(items), batch_size=4, shuffle=True)
    val_loader = make_loader(CachedFeatureDataset(flipped), batch_size=8, shuffle=False)
    # fp32: the test compares the stored best loss with an fp32 evaluation to 1e-5.
    cfg = replace(FAST, epochs=60, patience=3, mixup_alpha=0.0, precision="fp32")
    model = fresh_model()
    result = train(model, train_loader, val_loader, cfg)
    assert result.stopped_early
    assert result.epochs_run == result.best_epoch + 3 < 60
    assert evaluate(model, val_loader).loss == pytest.approx(result.best_val_loss, rel=1e-5)
    best = min(row["val_loss"] for row in result.history)
    assert result.best_val_loss == best


def test_training_is_deterministic_on_cpu(loaders) -> None:
    first = train(fresh_model(), *loaders, FAST)
    second = train(fresh_model(), *loaders, FAST)
    assert first.history == second.history
    for key, value in first.best_state_dict.items():
        assert torch.equal(value, second.best_state_dict[key]), key
    other = train(fresh_model(), *loaders, replace(FAST, seed=1))
    assert other.history != first.history


def test_training_leaves_the_global_rng_alone(loaders) -> None:
    model = fresh_model()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train(model, *loaders, replace(FAST, epochs=1))
    assert torch.equal(torch.rand(3), expected)


def test_metrics_callback_and_tensorboard(loaders, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    seen: list[tuple[int, dict[str, float]]] = []
    run_dir = tmp_path / "run"
    cfg = replace(FAST, epochs=3)
    train(fresh_model(), *loaders, cfg, on_metrics=lambda *args: seen.append(args), run_dir=run_dir)
    assert [epoch for epoch, _ in seen] == [1, 2, 3]
    keys = {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"}
    assert all(set(metrics) == keys for _, metrics in seen)
    events = EventAccumulator(str(run_dir))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert tags == {"loss/train", "loss/val", "accuracy/train", "accuracy/val", "lr"}
    assert [e.value for e in events.Scalars("loss/val")] == pytest.approx(
        [m["val_loss"] for _, m in seen]
    )


def test_should_stop_ends_training(loaders) -> None:
    calls = []
    result = train(
        fresh_model(), *loaders, FAST, should_stop=lambda: len(calls.append(1) or calls) >= 2
    )
    assert result.epochs_run == 2 and not result.stopped_early


def test_the_detector_overfits_a_small_fixed_batch(make_feature_files) -> None:
    items = make_feature_files(8, seed=4)
    loader = make_loader(CachedFeatureDataset(items, preload=True), batch_size=8, shuffle=False)
    model = fresh_model()
    cfg = replace(FAST, epochs=40, lr=3e-3, mixup_alpha=0.0, weight_decay=0.0)
    train(model, loader, loader, cfg)
    result = evaluate(model, loader)
    assert result.metrics["accuracy"] == 1.0, result.scores
    assert result.loss < 0.1


def test_evaluate_scores_videos_in_order(loaders, make_feature_files) -> None:
    items = make_feature_files(6, seed=5)
    loader = make_loader(CachedFeatureDataset(items), batch_size=4, shuffle=False)
    model = fresh_model().eval()
    result = evaluate(model, loader)
    assert result.scores.shape == (6,) and result.labels.tolist() == [0, 1, 0, 1, 0, 1]
    assert ((result.scores > 0) & (result.scores < 1)).all()
    assert result.metrics["num_videos"] == 6
    for (path, _), score in zip(items, result.scores, strict=True):
        assert score_video(model, load_features(path)) == pytest.approx(score, rel=1e-5)
    assert np.isfinite(result.loss)


@pytest.mark.parametrize("field", ["epochs", "patience", "lr"])
def test_train_cfg_rejects_nonsense(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        replace(FAST, **{field: 0})
    with pytest.raises(ValueError, match="mixup_prob"):
        replace(FAST, mixup_prob=1.5)


def test_train_cfg_refuses_an_unknown_precision() -> None:
    with pytest.raises(ValueError, match="precision in auto, fp32, bf16"):
        replace(FAST, precision="fp16")


@pytest.mark.parametrize(("amx", "expected"), [(True, "bf16"), (False, "fp32")])
def test_auto_precision_is_bf16_only_where_the_cpu_has_bf16_units(monkeypatch, amx, expected):
    from model.precision import resolve_precision

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert resolve_precision("auto", torch.device("cpu")) == expected
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"  # asked for, kept
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"


def test_bf16_training_runs_under_autocast_with_fp32_weights(loaders) -> None:
    def head_dtypes(precision: str) -> set[torch.dtype]:
        seen: set[torch.dtype] = set()
        model = fresh_model()
        model.head.register_forward_hook(lambda module, args, out: seen.add(out.dtype))
        result = train(model, *loaders, replace(FAST, epochs=1, precision=precision))
        assert result.epochs_run == 1 and np.isfinite(result.history[0]["val_loss"])
        assert {p.dtype for p in model.parameters()} == {torch.float32}
        return seen

    assert head_dtypes("bf16") == {torch.bfloat16}  # training and validation batches
    assert head_dtypes("fp32") == {torch.float32}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_training_and_evaluation_on_cuda(loaders) -> None:
    model = fresh_model()
    result = train(model, *loaders, replace(FAST, epochs=2), device="cuda")
    assert result.epochs_run == 2 and next(model.parameters()).is_cuda
    evaluation = evaluate(model, loaders[1], device="cuda")
    assert evaluation.scores.shape == (8,) and np.isfinite(evaluation.loss)


def test_a_resumed_run_ends_exactly_as_an_uninterrupted_one(loaders, tmp_path: Path) -> None:
    from model.train import TrainHooks, TrainState

    cfg = replace(FAST, epochs=4)
    whole = train(fresh_model(), *loaders, cfg)

    saved = tmp_path / "last.pt"

    def save(state: TrainState) -> None:
        torch.save(state.as_dict(), saved)

    def stop_after_two_epochs() -> bool:
        return len(torch.load(saved, weights_only=True)["history"]) >= 2

    interrupted = train(
        fresh_model(),
        *loaders,
        cfg,
        hooks=TrainHooks(on_epoch_end=save, should_stop=stop_after_two_epochs),
    )
    assert interrupted.epochs_run == 2
    state = TrainState.from_dict(torch.load(saved, weights_only=True))  # a new process
    resumed = train(build_detector(TINY), *loaders, cfg, hooks=TrainHooks(resume=state))
    assert resumed.history == whole.history
    assert resumed.best_epoch == whole.best_epoch
    for key, value in whole.best_state_dict.items():
        assert torch.equal(value, resumed.best_state_dict[key]), key


def test_class_weights_scale_the_fake_term_of_the_loss() -> None:
    from model.detector import bce_loss

    logits, fake, real = torch.zeros(1), torch.ones(1), torch.zeros(1)
    assert bce_loss(logits, fake, pos_weight=0.25).item() == pytest.approx(0.25 * math.log(2))
    assert bce_loss(logits, real, pos_weight=0.25).item() == pytest.approx(math.log(2))


class _Diverged(torch.nn.Module):
    """A detector whose every output is NaN, as one is after its weights blew up."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.weight * content.new_full((len(content),), float("nan"))


def test_a_run_without_a_finite_validation_loss_fails_saying_why(loaders) -> None:
    from model.train import NoFiniteValidationLoss

    with pytest.raises(NoFiniteValidationLoss) as caught:
        train(_Diverged(), *loaders, replace(FAST, epochs=3))
    message = str(caught.value)
    assert "no epoch of 3 had a finite validation loss" in message and "\n" not in message


def test_a_stopped_run_without_a_finite_epoch_is_the_caller_s_to_judge(loaders) -> None:
    # Cancelled after epoch 1: no best weights, but nothing failed either.
    result = train(_Diverged(), *loaders, replace(FAST, epochs=3), should_stop=lambda: True)
    assert (result.epochs_run, result.best_epoch, result.has_best) == (1, 0, False)
