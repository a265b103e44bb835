"""Which torch device a job runs on (jobs layer).

A run records the device it was planned with (`ddm train --device`), but the job may run
on any worker listening to its queue: one pinned to a GPU by `ddm worker --gpu N`, which
sees that card alone as `cuda:0`, or a CPU worker that the sweeper handed a dead run to.
Training maps the planned device onto the worker's; scoring (evaluation, predict) always
takes the best device the worker has, since a probability does not depend on the card.
"""

from __future__ import annotations

import logging
import os

from ddm.errors import InvalidInput

logger = logging.getLogger(__name__)

# CUDA's own setting; `ddm worker --gpu N` sets it before anything touches CUDA.
VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"


def resolve_device(device: str, *, visible: str | None = None) -> str:
    """The torch device to run on for a planned `device` ('auto', 'cpu', 'cuda', 'cuda:N').

    'auto' is the first visible GPU, else the CPU. On a worker pinned to one GPU (one
    entry in CUDA_VISIBLE_DEVICES), any 'cuda:N' is that GPU: the worker, not the plan,
    decides which card a job gets. Elsewhere 'cuda:N' must be one of the visible devices.

    Args:
        visible: CUDA_VISIBLE_DEVICES as this process sees it (read when None).

    Raises:
        InvalidInput: a GPU was asked for and this machine has none, or not that one.
    """
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not device.startswith("cuda"):
        return device
    if not torch.cuda.is_available():
        raise InvalidInput(f"--device {device}: this machine has no CUDA device")
    index = _index(device)
    if index is None:
        return device
    pinned = _pinned_gpu(os.environ.get(VISIBLE_DEVICES) if visible is None else visible)
    if pinned is not None:
        if index != 0:
            logger.info("%s asked for; this worker's only GPU is %s: running there", device, pinned)
        return "cuda:0"
    count = torch.cuda.device_count()
    if index >= count:
        raise InvalidInput(
            f"--device {device}: this machine has {count} CUDA device(s), cuda:0 to "
            f"cuda:{count - 1}"
        )
    return device


def scoring_device() -> str:
    """Where a fitted detector scores videos: the first GPU if any, else the CPU."""
    return resolve_device("auto")


def _index(device: str) -> int | None:
    _, _, index = device.partition(":")
    if not index:
        return None
    if not index.isdigit():
        raise InvalidInput(f"--device {device}: expected cuda or cuda:N")
    return int(index)


def _pinned_gpu(visible: str | None) -> str | None:
    entries = [entry.strip() for entry in (visible or "").split(",") if entry.strip()]
    return entries[0] if len(entries) == 1 else None


class DeviceFault(Exception):
    """The accelerator failed, not the video: CUDA ran out of memory, or raised an error
    that may leave its context unusable. A job's task is retried for it (tasks/app.py's
    RETRYABLE): recording the video as failed and going on would fail every later video of
    the pool child too, and the job could still end "succeeded"."""


def as_device_fault(exc: BaseException) -> DeviceFault | None:
    """`exc` as a DeviceFault when the accelerator raised it, else None. Frees the
    allocator's cached blocks after an out-of-memory error, for whatever runs next."""
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        if torch.cuda.is_initialized():
            torch.cuda.empty_cache()
        return DeviceFault(f"out of GPU memory: {_first_line(exc)}")
    accelerator_error = getattr(torch, "AcceleratorError", None)
    if accelerator_error is not None and isinstance(exc, accelerator_error):
        return DeviceFault(f"accelerator error: {_first_line(exc)}")
    return None


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]
