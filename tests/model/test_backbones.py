"""pSp encoder and Slow R50: state dicts equal the reference manifests, forward passes,
and strict loading through the official checkpoint layouts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from model import create_model
from model.errors import IncompatibleWeights
from model.psp import GradualStyleBlock, GradualStyleEncoder
from model.registry import load_model_weights
from model.weights import sha256_file
from tests.model.helpers import REFERENCE, perturbed_state


def manifest(name: str) -> dict[str, list[int]]:
    path = REFERENCE / name
    if not path.is_file():
        pytest.skip(f"reference manifest {path} not available")
    return json.loads(path.read_text())


def shapes(model: nn.Module) -> dict[str, list[int]]:
    return {key: list(value.shape) for key, value in model.state_dict().items()}


def test_psp_state_dict_equals_manifest() -> None:
    reference = manifest("psp_encoder_state_dict.json")
    assert all(key.startswith("encoder.") for key in reference)
    expected = {key.removeprefix("encoder."): shape for key, shape in reference.items()}
    with torch.device("meta"):  # shapes only: no 1 GB allocation
        model = create_model("psp_encoder")
    assert shapes(model) == expected
    assert len(expected) == 621
    assert sum(p.numel() for p in model.parameters()) == 267_136_704


def test_psp_levels_do_not_change_the_state_dict() -> None:
    with torch.device("meta"):
        default, coarse = create_model("psp_encoder"), create_model("psp_encoder", levels=[0, 1])
    assert shapes(default) == shapes(coarse)
    assert default.levels == (9,)


def test_slow_r50_state_dict_equals_manifest() -> None:
    reference = manifest("slow_r50_state_dict.json")
    with torch.device("meta"):
        model = create_model("slow_r50")
    assert shapes(model) == reference
    assert len(reference) == 320
    assert sum(p.numel() for p in model.parameters()) == 32_454_096


def test_psp_forward_all_levels(psp_model: GradualStyleEncoder) -> None:
    # The encoder is fully convolutional up to its heads; 64 px keeps the test fast.
    with torch.no_grad():
        codes = psp_model(torch.randn(2, 3, 64, 64), levels=range(18))
    assert codes.shape == (2, 18, 512)
    assert torch.isfinite(codes).all()


def test_psp_requested_levels_equal_the_full_pass(psp_model: GradualStyleEncoder) -> None:
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        full = psp_model(x, levels=range(18))
        level9 = psp_model(x)
        mixed = psp_model(x, levels=[9, 0, 4])
    assert level9.shape == (1, 1, 512)
    torch.testing.assert_close(level9[:, 0], full[:, 9], rtol=0, atol=1e-6)
    torch.testing.assert_close(mixed, full[:, [9, 0, 4]], rtol=0, atol=1e-6)


def test_psp_runs_only_the_requested_heads(psp_model: GradualStyleEncoder) -> None:
    called: list[str] = []
    modules = {f"styles.{i}": head for i, head in enumerate(psp_model.styles)}
    modules.update(latlayer1=psp_model.latlayer1, latlayer2=psp_model.latlayer2)
    handles = [
        module.register_forward_hook(lambda *_, name=name: called.append(name))
        for name, module in modules.items()
    ]
    try:
        with torch.no_grad():
            psp_model(torch.randn(1, 3, 32, 32))
            level9 = sorted(called)
            called.clear()
            psp_model(torch.randn(1, 3, 32, 32), levels=[1])
    finally:
        for handle in handles:
            handle.remove()
    assert level9 == ["latlayer1", "latlayer2", "styles.9"]
    assert called == ["styles.1"]  # a coarse level needs neither lateral


def test_psp_full_resolution_forward(psp_model: GradualStyleEncoder) -> None:
    with torch.no_grad():
        codes = psp_model(torch.rand(1, 3, 256, 256) * 2 - 1)
    assert codes.shape == (1, 1, 512)
    assert torch.isfinite(codes).all()


@pytest.mark.parametrize("levels", [[18], [-1], []])
def test_psp_rejects_bad_levels(psp_model: GradualStyleEncoder, levels: list[int]) -> None:
    with pytest.raises(ValueError, match="levels"):
        GradualStyleEncoder(levels=levels)
    with pytest.raises(ValueError, match="levels"):
        psp_model(torch.randn(1, 3, 32, 32), levels=levels)


def test_style_head_rejects_maps_it_cannot_reduce() -> None:
    head = GradualStyleBlock(8, 8, spatial=16)  # four stride-2 convs: 32 px -> 2x2
    with pytest.raises(ValueError, match="at most 256"):
        head(torch.randn(1, 8, 32, 32))


def test_slow_r50_forward(slow_model: nn.Module) -> None:
    with torch.no_grad():
        clip = torch.randn(1, 3, 16, 112, 112)
        features = slow_model(clip)
        logits = slow_model.logits(clip)
        small = slow_model(torch.randn(2, 3, 8, 32, 32))
    assert features.shape == (1, 2048)
    assert logits.shape == (1, 400)
    assert small.shape == (2, 2048)
    assert torch.isfinite(features).all() and torch.isfinite(logits).all()


def test_psp_loads_the_official_layout_strictly(psp_official) -> None:
    path, encoder, latent_avg = psp_official
    with torch.device("meta"):
        model = create_model("psp_encoder")
    model.to_empty(device="cpu")  # uninitialised memory: every value must come from the file
    report = load_model_weights(model, "psp_encoder", path)
    assert report.is_exact
    assert report.sha256 == sha256_file(path)
    loaded = model.state_dict()
    assert loaded.keys() == encoder.keys()
    assert all(torch.equal(loaded[key], value) for key, value in encoder.items())
    assert torch.equal(model.latent_avg, latent_avg)


def test_psp_latent_avg_of_one_level_is_broadcast() -> None:
    with torch.device("meta"):
        model = GradualStyleEncoder()
    model.to_empty(device="cpu")
    vector = torch.randn(512)
    model.set_latent_avg(vector)
    assert torch.equal(model.latent_avg, vector.expand(18, 512))
    with pytest.raises(ValueError, match="latent_avg"):
        model.set_latent_avg(torch.zeros(9, 512))


@pytest.fixture(scope="module")
def slow_state(slow_model: nn.Module) -> dict[str, torch.Tensor]:
    return perturbed_state(slow_model)


def test_slow_r50_loads_the_official_layout_strictly(tmp_path: Path, slow_state) -> None:
    path = tmp_path / "SLOW_8x8_R50.pyth"
    torch.save({"model_state": slow_state, "epoch": 196}, path)
    model = create_model("slow_r50", weights=path)
    assert not model.training
    assert all(torch.equal(model.state_dict()[key], value) for key, value in slow_state.items())


def test_slow_r50_loads_a_safetensors_export(tmp_path: Path, slow_state) -> None:
    path = tmp_path / "slow_r50.safetensors"
    save_file(slow_state, str(path))
    model = create_model("slow_r50", weights=path)
    assert torch.equal(model.blocks[5].proj.weight, slow_state["blocks.5.proj.weight"])


def test_slow_r50_without_the_head_is_refused_by_name(tmp_path: Path, slow_state) -> None:
    trunk = {k: v for k, v in slow_state.items() if not k.startswith("blocks.5.")}
    path = tmp_path / "trunk.pyth"
    torch.save({"model_state": trunk}, path)
    with pytest.raises(IncompatibleWeights, match="missing keys: blocks.5.proj.weight"):
        create_model("slow_r50", weights=path)


def test_the_small_variants_keep_the_outputs_with_a_fraction_of_the_body() -> None:
    style = create_model("psp_encoder_small", levels=(9,)).eval()
    content = create_model("slow_r50_small").eval()
    with torch.no_grad():
        codes = style(torch.randn(2, 3, 128, 128))
        clips = content(torch.randn(2, 3, 16, 56, 56))
    assert codes.shape == (2, 1, 512) and clips.shape == (2, 2048)
    assert torch.isfinite(codes).all() and torch.isfinite(clips).all()
    full_body = sum(p.numel() for p in GradualStyleEncoder().body.parameters())
    assert sum(p.numel() for p in style.body.parameters()) < full_body / 5
    full = sum(p.numel() for p in create_model("slow_r50").parameters())
    assert sum(p.numel() for p in content.parameters()) < full / 2
