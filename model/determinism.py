"""Random streams and deterministic kernels for training that resumes exactly (model layer).

A resumed run replays nothing and skips nothing only if every random stream it draws
from continues where it stopped: torch's CPU generator (mixup, shuffling) and, on a GPU,
the CUDA generators (dropout draws its masks there). Without the CUDA states a resumed
run would draw epoch one's dropout masks again.

Bit-exact GPU training needs deterministic kernels as well: `deterministic_algorithms`
turns them on (cuBLAS then needs CUBLAS_WORKSPACE_CONFIG, set before its first use, which
`ddm worker` does for every pool child). They are slower, so they are a run's choice.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

logger = logging.getLogger(__name__)

# cuBLAS's reproducible workspace setting (PyTorch's "Reproducibility" notes).
CUBLAS_WORKSPACE = ":4096:8"


def rng_state(device: torch.device) -> dict[str, Any]:
    """The random streams a training step on `device` draws from, as CPU tensors."""
    state: dict[str, Any] = {"cpu": torch.get_rng_state(), "cuda": []}
    if device.type == "cuda":
        state["cuda"] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng(state: dict[str, Any], device: torch.device) -> None:
    """Continue the streams of `rng_state`. A run saved on a GPU and resumed on a CPU (or
    on fewer GPUs) continues the CPU stream and says that the GPU streams are not used."""
    torch.set_rng_state(_as_cpu_bytes(state["cpu"]))
    saved = state.get("cuda") or []
    if device.type != "cuda":
        if saved:
            logger.info("resumed on %s: the saved GPU random streams are not used", device)
        return
    if len(saved) != torch.cuda.device_count():
        logger.warning(
            "the run saved %d GPU random streams and this machine has %d GPUs: the GPU "
            "streams start afresh, so dropout masks differ from an uninterrupted run",
            len(saved),
            torch.cuda.device_count(),
        )
        return
    torch.cuda.set_rng_state_all([_as_cpu_bytes(s) for s in saved])


@contextlib.contextmanager
def deterministic_algorithms(enabled: bool) -> Iterator[None]:
    """Deterministic kernels while the block runs (if `enabled`), then the caller's setting."""
    if not enabled:
        yield
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    before = torch.are_deterministic_algorithms_enabled()
    cudnn_before = torch.backends.cudnn.benchmark
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)
        torch.backends.cudnn.benchmark = cudnn_before


def _as_cpu_bytes(tensor: Tensor) -> Tensor:
    # torch.set_rng_state wants a CPU ByteTensor, whatever device the file was read to.
    return tensor.detach().to(device="cpu", dtype=torch.uint8)
