"""Devices a job runs on: a worker pinned to one GPU runs any planned `cuda:N` there, a
device that does not exist is one clear line, and scoring never needs the training GPU."""

from __future__ import annotations

import pytest
import torch

from ddm.errors import InvalidInput
from tasks.devices import resolve_device, scoring_device


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_a_worker_pinned_to_one_gpu_runs_every_planned_gpu_there(two_gpus) -> None:
    # `ddm worker --gpu 3` leaves physical GPU 3 visible as cuda:0 only.
    assert resolve_device("cuda:1", visible="3") == "cuda:0"
    assert resolve_device("cuda:0", visible="3") == "cuda:0"
    assert resolve_device("cuda", visible="3") == "cuda"


def test_an_unpinned_machine_checks_the_index(two_gpus) -> None:
    assert resolve_device("cuda:1", visible="") == "cuda:1"
    with pytest.raises(InvalidInput, match=r"has 2 CUDA device\(s\), cuda:0 to cuda:1"):
        resolve_device("cuda:2", visible="0,1")
    with pytest.raises(InvalidInput, match="expected cuda or cuda:N"):
        resolve_device("cuda:x", visible="")


def test_without_a_gpu_auto_is_the_cpu_and_a_gpu_is_refused(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu" and scoring_device() == "cpu"
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(InvalidInput, match="this machine has no CUDA device"):
        resolve_device("cuda:0")
