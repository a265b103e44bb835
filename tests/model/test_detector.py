"""The style-flow detector's forward pass and checkpoints that rebuild it."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import ddm
from model import create_model
from model.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from model.detector import DetectorCfg, StyleFlowDetector, build_detector, style_flow
from model.errors import IncompatibleWeights

TINY = DetectorCfg(
    gru_hidden=16, gru_layers=1, dim=32, num_heads=4, mlp_dim=64, head_hidden=16, dropout=0.0
)


def inputs(batch: int = 3, clips: int = 2, frames: int = 8, levels: int = 1, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    content = torch.randn(batch, clips, 2048, generator=generator)
    style = torch.randn(batch, frames, levels, 512, generator=generator)
    return content, style


def tiny_model(cfg: DetectorCfg = TINY) -> StyleFlowDetector:
    torch.manual_seed(0)
    model = build_detector(cfg).eval()
    # The attention's output projection starts at zero; randomise it so style matters.
    nn.init.normal_(model.attention.out.weight, std=0.1)
    return model


def test_forward_shapes_and_probabilities() -> None:
    model = tiny_model()
    content, style = inputs()
    logits = model(content, style)
    assert logits.shape == (3,) and torch.isfinite(logits).all()
    proba = model.predict_proba(content, style)
    assert ((proba > 0) & (proba < 1)).all()
    torch.testing.assert_close(proba, torch.sigmoid(logits))


def test_default_config_forward() -> None:
    model = create_model("style_flow_detector").eval()
    content, style = inputs(batch=2, clips=2, frames=32)
    with torch.no_grad():
        logits = model(content, style)
    assert logits.shape == (2,) and torch.isfinite(logits).all()


def test_several_levels_and_a_unidirectional_gru() -> None:
    cfg = DetectorCfg(**{**asdict(TINY), "style_levels": 3, "bidirectional": False, "depth": 2})
    content, style = inputs(levels=3, clips=4, frames=64)
    assert tiny_model(cfg)(content, style).shape == (3,)


def test_style_flow_is_the_first_difference() -> None:
    style = torch.arange(2 * 4 * 2 * 3, dtype=torch.float32).reshape(2, 4, 2, 3) ** 2
    flow = style_flow(style)
    assert flow.shape == (2, 3, 6)
    torch.testing.assert_close(flow[:, 1], (style[:, 2] - style[:, 1]).flatten(1))


def test_a_constant_style_offset_cancels() -> None:
    model = tiny_model()
    content, style = inputs()
    offset = torch.randn(1, 1, 1, 512)  # like pSp's latent_avg
    torch.testing.assert_close(model(content, style + offset), model(content, style))


def test_the_style_path_reaches_the_output() -> None:
    model = tiny_model()
    content, style = inputs()
    assert not torch.allclose(model(content, style), model(content, style.flip(1)))


def test_style_starts_switched_off() -> None:
    torch.manual_seed(0)
    model = build_detector(TINY).eval()
    content, style = inputs()
    torch.testing.assert_close(model(content, style), model(content, style.flip(1)))


@pytest.mark.parametrize(
    ("content_shape", "style_shape", "match"),
    [
        ((1, 2, 1024), (1, 8, 1, 512), "content must be"),
        ((1, 17, 2048), (1, 8, 1, 512), "max_clips"),
        ((1, 2, 2048), (1, 1, 1, 512), "style must be"),
        ((1, 2, 2048), (1, 8, 2, 512), "style must be"),
    ],
)
def test_bad_shapes_are_named(content_shape, style_shape, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        tiny_model()(torch.zeros(content_shape), torch.zeros(style_shape))


def test_config_checks_head_divisibility() -> None:
    with pytest.raises(ValueError, match="num_heads"):
        DetectorCfg(dim=30, num_heads=4)


def test_checkpoint_rebuilds_its_own_model(tmp_path: Path) -> None:
    model = tiny_model()
    optimizer = torch.optim.AdamW(model.parameters())
    content, style = inputs()
    model(content, style).sum().backward()
    optimizer.step()
    path = tmp_path / "ckpt" / "best.pt"
    metrics = {"val_loss": np.float64(0.25), "confusion_matrix": np.array([[1, 2], [3, 4]])}
    save_checkpoint(
        path,
        model,
        model_name="style_flow_detector",
        model_cfg=TINY,
        optimizer=optimizer,
        step=1,
        epoch=1,
        metrics=metrics,
    )
    assert [p.name for p in path.parent.iterdir()] == ["best.pt"]  # written atomically
    assert set(torch.load(path, weights_only=True)) == {
        "model_name",
        "model_cfg",
        "state_dict",
        "optimizer",
        "step",
        "epoch",
        "metrics",
        "ddm_version",
    }
    checkpoint = load_checkpoint(path)
    assert checkpoint.model_cfg == asdict(TINY)
    assert checkpoint.metrics == {"val_loss": 0.25, "confusion_matrix": [[1, 2], [3, 4]]}
    assert (checkpoint.step, checkpoint.epoch, checkpoint.ddm_version) == (1, 1, ddm.__version__)
    assert checkpoint.optimizer is not None and checkpoint.optimizer["state"]
    rebuilt, _ = model_from_checkpoint(path)
    assert isinstance(rebuilt, StyleFlowDetector) and rebuilt.cfg == TINY
    torch.testing.assert_close(rebuilt(content, style), model.eval()(content, style))


def test_checkpoint_with_a_foreign_state_dict_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    other = DetectorCfg(**{**asdict(TINY), "head_hidden": 8})
    save_checkpoint(path, tiny_model(other), model_name="style_flow_detector", model_cfg=TINY)
    with pytest.raises(IncompatibleWeights, match=r"head\.0\.weight \(module \(16, 32\)"):
        model_from_checkpoint(path)


def test_files_that_are_not_checkpoints_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(IncompatibleWeights, match="lacks model_name, model_cfg"):
        load_checkpoint(path)
    torch.save({"model_name": "x", "model_cfg": {}, "state_dict": {}, "cfg": Path("/")}, path)
    with pytest.raises(IncompatibleWeights, match="pickled objects other than tensors"):
        load_checkpoint(path)
