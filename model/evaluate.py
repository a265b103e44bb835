"""Evaluation loop: per-video scores and the reported metrics (model layer).

Pure functions: model and loader in, plain values out; no printing, no settings.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from model.detector import bce_loss
from model.metrics import binary_metrics

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalResult:
    """Scores and metrics of one evaluation.

    Attributes:
        scores: (V,) probability of fake per video, in loader order.
        labels: (V,) 0 (real) or 1 (fake) per video.
        loss: mean binary cross-entropy over all videos.
        metrics: `model.metrics.binary_metrics` of the scores.
    """

    scores: np.ndarray
    labels: np.ndarray
    loss: float
    metrics: dict[str, Any]


@torch.no_grad()
def predict_logits(
    model: nn.Module, loader: Iterable[Mapping[str, Tensor]], device: torch.device
) -> tuple[Tensor, Tensor]:
    """Run the model in eval mode over a loader.

    Returns:
        (logits (V,), labels (V,)) on the CPU, in loader order.
    """
    model.eval()
    logits, labels = [], []
    for batch in loader:
        logits.append(model(batch["content"].to(device), batch["style"].to(device)).cpu())
        labels.append(batch["label"].float())
    return torch.cat(logits), torch.cat(labels)


def evaluate(
    model: nn.Module,
    loader: Iterable[Mapping[str, Tensor]],
    *,
    device: str | torch.device = "cpu",
    threshold: float = 0.5,
) -> EvalResult:
    """Score every video of an (unshuffled) loader and compute the metrics.

    Args:
        model: the detector.
        loader: batches of {"content", "style", "label"} as `make_loader` yields them.
        device: where the model runs.
        threshold: probability at or above which a video is labelled fake.
    """
    model.to(device)
    logits, labels = predict_logits(model, loader, torch.device(device))
    scores = torch.sigmoid(logits).numpy().astype(np.float64)
    label_array = labels.numpy().astype(np.int64)
    return EvalResult(
        scores=scores,
        labels=label_array,
        loss=float(bce_loss(logits, labels)),
        metrics=binary_metrics(label_array, scores, threshold=threshold),
    )


@torch.no_grad()
def score_video(
    model: nn.Module, features: Mapping[str, Any], *, device: str | torch.device = "cpu"
) -> float:
    """Probability of fake for one video's features (an `extract` result or cache file)."""
    model.to(device).eval()
    content = features["content"].float().unsqueeze(0).to(device)  # (1, N, 2048)
    style = features["style"].float().unsqueeze(0).to(device)  # (1, T, L, 512)
    return float(torch.sigmoid(model(content, style))[0])
