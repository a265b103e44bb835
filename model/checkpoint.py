"""Detector checkpoints that carry their own model configuration (model layer).

A checkpoint is a plain dict {model_name, model_cfg, state_dict, optimizer, step, epoch,
metrics, ddm_version}, written atomically and read back with `weights_only=True`; the
stored config is what rebuilds the model (nanoGPT's `model_args`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

import ddm
from ddm.fs import atomic_write
from model.errors import IncompatibleWeights
from model.registry import create_model
from model.weights import load_state_dict_checked, read_weights_file

logger = logging.getLogger(__name__)

_REQUIRED = ("model_name", "model_cfg", "state_dict")


@dataclass(frozen=True)
class Checkpoint:
    """The contents of a checkpoint file."""

    model_name: str
    model_cfg: dict[str, Any]
    state_dict: dict[str, Tensor]
    optimizer: dict[str, Any] | None
    step: int
    epoch: int | None
    metrics: dict[str, Any]
    ddm_version: str


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    *,
    model_name: str,
    model_cfg: Any,
    optimizer: torch.optim.Optimizer | Mapping[str, Any] | None = None,
    step: int = 0,
    epoch: int | None = None,
    metrics: Mapping[str, Any] | None = None,
) -> None:
    """Write a checkpoint atomically (temporary file, fsync, rename).

    Args:
        path: final file location.
        model: the module whose state dict is stored.
        model_name: the registry name that rebuilds it.
        model_cfg: a config dataclass or a mapping of builder keyword arguments.
        optimizer: an optimizer or its state dict, to resume training.
        step: optimisation steps taken.
        epoch: epochs completed.
        metrics: plain metric values (numpy scalars are converted).
    """
    if isinstance(optimizer, torch.optim.Optimizer):
        optimizer = optimizer.state_dict()
    payload = {
        "model_name": model_name,
        "model_cfg": _cfg_dict(model_cfg),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": dict(optimizer) if optimizer is not None else None,
        "step": int(step),
        "epoch": None if epoch is None else int(epoch),
        "metrics": _plain(dict(metrics or {})),
        "ddm_version": ddm.__version__,
    }
    with atomic_write(path) as handle:
        torch.save(payload, handle)
    logger.info("saved checkpoint path=%s model=%s step=%d", path, model_name, step)


def _cfg_dict(cfg: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return _plain(dataclasses.asdict(cfg))
    return _plain(dict(cfg))


def _plain(value: Any) -> Any:
    # weights_only loading accepts only builtin containers, scalars and tensors.
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read a checkpoint written by `save_checkpoint` (refusing pickled objects).

    Raises:
        WeightsNotFound: the file does not exist.
        IncompatibleWeights: the file is refused or is not a ddm checkpoint.
    """
    payload = read_weights_file(path)
    absent = [key for key in _REQUIRED if key not in payload]
    if absent:
        raise IncompatibleWeights(
            f"{str(path)!r} is not a ddm checkpoint: it lacks {', '.join(absent)}"
        )
    return Checkpoint(
        model_name=str(payload["model_name"]),
        model_cfg=dict(payload["model_cfg"]),
        state_dict=dict(payload["state_dict"]),
        optimizer=payload.get("optimizer"),
        step=int(payload.get("step", 0)),
        epoch=payload.get("epoch"),
        metrics=dict(payload.get("metrics") or {}),
        ddm_version=str(payload.get("ddm_version", "")),
    )


def model_from_checkpoint(
    path: str | os.PathLike[str], *, device: str | torch.device = "cpu"
) -> tuple[nn.Module, Checkpoint]:
    """Rebuild the model a checkpoint describes and load its weights strictly.

    Returns:
        (model in eval mode on `device`, the checkpoint).

    Raises:
        UnknownModel: the stored model name is not registered.
        IncompatibleWeights: the weights do not fit the rebuilt model.
    """
    checkpoint = load_checkpoint(path)
    model = create_model(checkpoint.model_name, **checkpoint.model_cfg)
    load_state_dict_checked(model, checkpoint.state_dict, str(path))
    return model.to(device).eval(), checkpoint
