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
from model.metrics import binary_metrics, probability

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalResult:
    """Scores and metrics of one evaluation.

    Attributes:
        logits: (V,) the detector's logit per video, in loader order.
        scores: (V,) probability of fake per video, computed in float64 from the logits.
        labels: (V,) 0 (real) or 1 (fake) per video.
        loss: mean binary cross-entropy over all videos.
        metrics: `model.metrics.binary_metrics` of the logits.
    """

    logits: np.ndarray
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
    # The probability in float64 from the logit: a float32 sigmoid rounds confident
    # logits to 1.0, and ranking metrics use the logits' order besides.
    logit_array = logits.double().numpy()
    scores = probability(logit_array)
    label_array = labels.numpy().astype(np.int64)
    return EvalResult(
        logits=logit_array,
        scores=scores,
        labels=label_array,
        loss=float(bce_loss(logits, labels)),
        metrics=binary_metrics(label_array, scores, threshold=threshold, logits=logit_array),
    )


@torch.no_grad()
def score_video(
    model: nn.Module, features: Mapping[str, Any], *, device: str | torch.device = "cpu"
) -> float:
    """Probability of fake (float64, from the logit) for one video's features (an
    `extract` result or cache file)."""
    model.to(device).eval()
    content = features["content"].float().unsqueeze(0).to(device)  # (1, N, 2048)
    style = features["style"].float().unsqueeze(0).to(device)  # (1, T, L, 512)
    return float(probability(float(model(content, style)[0])))
