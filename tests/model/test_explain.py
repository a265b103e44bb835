"""explain_video: the score, style-flow magnitude and attention of one video."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from model.bias import flow_magnitude
from model.detector import DetectorCfg, StyleFlowDetector, build_detector, style_flow
from model.explain import explain_video
from model.metrics import probability

TINY = DetectorCfg(gru_hidden=16, gru_layers=1, dim=32, num_heads=4, mlp_dim=64, head_hidden=16)


def tiny_model() -> StyleFlowDetector:
    torch.manual_seed(0)
    model = build_detector(TINY).eval()
    # The attention's output projection starts at zero; randomise it so style matters.
    nn.init.normal_(model.attention.out.weight, std=0.1)
    return model


def video(clips: int = 3, frames: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    content = torch.randn(clips, 2048, generator=generator)
    style = 3.0 + torch.randn(frames, 1, 512, generator=generator)
    return content, style


def fit_stats(model: StyleFlowDetector) -> None:
    # Non-trivial standardisation, so the weights must come from the standardised inputs.
    generator = torch.Generator().manual_seed(2)
    batch = {
        "content": 2.0 + 5.0 * torch.randn(4, 3, 2048, generator=generator),
        "style": 4.0 * torch.randn(4, 12, 1, 512, generator=generator),
    }
    model.fit_input_stats([batch])


def test_score_equals_the_models_forward() -> None:
    model = tiny_model()
    fit_stats(model)
    content, style = video()
    result = explain_video(model, content, style)
    with torch.no_grad():
        logit = model(content[None], style[None])[0].item()
    assert isinstance(result["score"], float) and result["logit"] == logit
    # The probability in float64 from the logit, as evaluations store it.
    assert result["score"] == float(probability(logit))
    assert result["score"] == pytest.approx(torch.sigmoid(torch.tensor(logit)).item(), rel=1e-6)


def test_attention_is_a_distribution_over_flow_steps() -> None:
    model = tiny_model()
    fit_stats(model)
    content, style = video(clips=3, frames=12)
    attention = explain_video(model, content, style)["attention"]
    assert isinstance(attention, np.ndarray) and attention.shape == (3, 11)
    np.testing.assert_allclose(attention.sum(axis=1), np.ones(3), rtol=1e-5)
    assert (attention >= 0).all()
    # Not uniform: the clips really weigh the steps differently.
    assert attention.std(axis=1).min() > 0


def test_attention_is_what_forward_uses() -> None:
    # Recompute the attended tokens from the returned weights and push them through the
    # rest of the network: the logit must equal forward's.
    model = tiny_model()
    fit_stats(model)
    content, style = video()
    with torch.no_grad():
        weights = model.attention_weights(content[None], style[None])
        standard_content, flow = model.standardize(content[None], style_flow(style[None]))
        keys = model.style_gru(flow)
        layer = model.attention
        tokens = layer.content(standard_content) + layer.out(weights @ layer.value(keys))
        attended = layer(standard_content, keys)
    torch.testing.assert_close(tokens, attended, rtol=0, atol=0)
    np.testing.assert_array_equal(explain_video(model, content, style)["attention"], weights[0])


def test_flow_magnitude_is_taken_from_the_raw_style() -> None:
    model = tiny_model()
    fit_stats(model)
    content, style = video(frames=9)
    magnitude = explain_video(model, content, style)["flow_magnitude"]
    assert magnitude.shape == (8,) and magnitude.dtype == np.float64
    np.testing.assert_array_equal(magnitude, flow_magnitude(style.numpy()))


def test_explaining_leaves_the_model_in_eval_mode_with_unchanged_weights() -> None:
    model = tiny_model()
    fit_stats(model)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    explain_video(model.train(), *video())
    assert not model.training
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[name], after[name]) for name in before)
