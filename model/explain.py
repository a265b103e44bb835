"""Why the detector scored one video as it did (model layer): its probability of fake,
how strongly the style changes at each frame step, and which steps each content clip
attends to. The values feed model/figures.py's timeline figure.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor

from model.bias import flow_magnitude
from model.detector import StyleFlowDetector
from model.metrics import probability

logger = logging.getLogger(__name__)


@torch.no_grad()
def explain_video(
    model: StyleFlowDetector,
    content: Tensor,
    style: Tensor,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Score one video and return what the style path saw.

    The model is moved to `device` and put in eval mode (as model/evaluate.py does), so
    the score equals the one an evaluation reports for the same features.

    Args:
        model: a fitted detector.
        content: (N, content_dim) clip vectors of one video.
        style: (T, L, style_dim) raw per-frame style codes, T >= 2.
        device: where the model runs.

    Returns:
        {"score": P(fake) as a float (float64, from the logit), "logit": the raw output,
        "flow_magnitude": (T-1,) float64 norms of the raw
        (unstandardised) style flow, "attention": (N, T-1) float numpy weights of each
        clip on each step, rows summing to 1, as forward computes them}.
    """
    model.to(device).eval()
    batch_content = content.float().unsqueeze(0).to(device)  # (1, N, content_dim)
    batch_style = style.float().unsqueeze(0).to(device)  # (1, T, L, style_dim)
    logit = float(model(batch_content, batch_style)[0])
    attention = model.attention_weights(batch_content, batch_style)[0]
    return {
        "score": float(probability(logit)),
        "logit": logit,
        # From the raw codes: standardised flows hide how far the style really moved.
        "flow_magnitude": flow_magnitude(style.detach().cpu().numpy()),
        "attention": attention.cpu().numpy(),
    }
