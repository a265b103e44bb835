"""Resuming exactly, on any machine: a GPU run's saved state reads on a CPU worker, the GPU
random streams are saved and continued, and deterministic kernels are a run's choice."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.serialization as serialization

from model.data import CachedFeatureDataset, make_loader
from model.detector import DetectorCfg, build_detector
from model.determinism import deterministic_algorithms, restore_rng, rng_state
from model.train import TrainCfg, TrainHooks, TrainState, train

TINY = DetectorCfg(
    gru_hidden=16, gru_layers=1, dim=32, num_heads=4, mlp_dim=64, head_hidden=16, dropout=0.1
)
CFG = TrainCfg(epochs=3, lr=3e-3, mixup_alpha=0.4, patience=100, seed=0)


@pytest.fixture
def loaders(make_feature_files):
    train_set = CachedFeatureDataset(make_feature_files(8, seed=1), preload=True)
    val_set = CachedFeatureDataset(make_feature_files(4, seed=2))
    return (
        make_loader(train_set, batch_size=4, shuffle=True),
        make_loader(val_set, batch_size=4, shuffle=False),
    )


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_detector(TINY)


def _save_as_if_on_cuda(monkeypatch: pytest.MonkeyPatch, path: Path, payload: dict) -> None:
    """Save so that every tensor in the file says it lives on cuda:0, as a GPU run's
    `last.pt` does; read without map_location on a CPU machine, it fails."""

    def cuda_tag(storage):
        return "cuda:0" if storage.device.type == "cpu" else None

    registry = [(0, cuda_tag, lambda storage, location: None), *serialization._package_registry]
    with monkeypatch.context() as patched:
        patched.setattr(serialization, "_package_registry", registry)
        torch.save(payload, path)
    with pytest.raises(RuntimeError, match="CUDA"):
        torch.load(path, weights_only=True)


def test_a_gpu_runs_last_state_resumes_on_a_cpu_worker(loaders, monkeypatch, tmp_path) -> None:
    from tasks.training_loop import _resume_state

    whole = train(_model(), *loaders, CFG)
    states: list[TrainState] = []
    train(_model(), *loaders, replace(CFG, epochs=1), hooks=TrainHooks(on_epoch_end=states.append))
    path = tmp_path / "last.pt"
    _save_as_if_on_cuda(monkeypatch, path, states[-1].as_dict())

    state = _resume_state(SimpleNamespace(last_state_path=str(path)))
    assert state is not None and state.epoch == 1
    resumed = train(build_detector(TINY), *loaders, CFG, hooks=TrainHooks(resume=state))
    assert resumed.history == whole.history


def test_the_gpu_random_streams_are_saved_and_continued(monkeypatch) -> None:
    streams = [torch.arange(16, dtype=torch.uint8), torch.arange(16, 32, dtype=torch.uint8)]
    restored: list[list[torch.Tensor]] = []
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: streams)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.append)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)

    state = rng_state(torch.device("cuda"))
    assert [s.tolist() for s in state["cuda"]] == [s.tolist() for s in streams]
    restore_rng(state, torch.device("cuda"))
    assert [s.tolist() for s in restored[0]] == [s.tolist() for s in streams]
    # Saved on a GPU, resumed on a CPU: the CPU stream continues, nothing else is touched.
    restore_rng(state, torch.device("cpu"))
    assert len(restored) == 1
    assert rng_state(torch.device("cpu"))["cuda"] == []


def test_a_state_saved_before_gpu_streams_were_kept_still_loads(loaders) -> None:
    states: list[TrainState] = []
    train(_model(), *loaders, replace(CFG, epochs=1), hooks=TrainHooks(on_epoch_end=states.append))
    old = {k: v for k, v in states[-1].as_dict().items() if k != "cuda_rng"}
    assert TrainState.from_dict(old).cuda_rng == []


def test_deterministic_kernels_are_on_only_while_a_deterministic_run_trains(loaders) -> None:
    seen: list[bool] = []
    hooks = TrainHooks(
        on_epoch_end=lambda _: seen.append(torch.are_deterministic_algorithms_enabled())
    )
    assert not torch.are_deterministic_algorithms_enabled()
    train(_model(), *loaders, replace(CFG, epochs=1, deterministic=True), hooks=hooks)
    train(_model(), *loaders, replace(CFG, epochs=1), hooks=hooks)
    assert seen == [True, False] and not torch.are_deterministic_algorithms_enabled()
    with deterministic_algorithms(True):
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"]
