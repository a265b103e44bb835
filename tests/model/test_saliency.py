"""Saliency maps on the face crops: the logit they explain is the video's score from its
extracted features (same networks, crops and standardisation), their gradients are the
true ones through both backbones and the content path's resize, and they are written as
a contact sheet and an .npz."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from model import create_model
from model.detector import DetectorCfg, build_detector
from model.faces import FaceDetector
from model.features import ExtractorCfg, FeatureExtractor
from model.figures import saliency_sheet
from model.saliency import (
    METHODS,
    CropScorer,
    SaliencyCfg,
    integrated_attribution,
    pointing_share,
    saliency_maps,
    save_saliency,
)

# Small backbones on small crops: 6 frames make a short last clip (circular padding).
CFG = ExtractorCfg(
    num_frames=6,
    face_size=32,
    content_size=16,
    clip_len=4,
    style_model="psp_encoder_small",
    content_model="slow_r50_small",
)
TINY = DetectorCfg(gru_hidden=16, gru_layers=1, dim=32, num_heads=4, mlp_dim=64, head_hidden=16)


@pytest.fixture(scope="module")
def extractor() -> FeatureExtractor:
    torch.manual_seed(0)
    style = create_model("psp_encoder_small").eval()
    content = create_model("slow_r50_small").eval()
    return FeatureExtractor(
        CFG, style, content, FaceDetector(CFG.face_cfg()), {"a": None, "b": None}, batch_size=4
    )


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    generator = np.random.default_rng(3)
    base = generator.uniform(40, 215, (1, 32, 32, 3))
    frames = base + generator.normal(0, 20, (CFG.num_frames, 32, 32, 3))
    return np.clip(frames, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def detector(extractor, crops) -> nn.Module:
    torch.manual_seed(1)
    model = build_detector(TINY).eval()
    nn.init.normal_(model.attention.out.weight, std=0.1)  # starts at zero: let style matter
    # Fitted standardisation, so a path that skipped it would give another logit.
    style, content = extractor.encode_style(crops), extractor.encode_content(crops)
    model.fit_input_stats(
        [{"content": content[None] * 1.5 + 0.3, "style": style[None] * 2.0}] * 2
        + [{"content": content[None], "style": style[None].flip(1)}]
    )
    return model


def test_the_explained_logit_is_the_score_of_the_extracted_features(
    detector, extractor, crops
) -> None:
    with torch.no_grad():
        expected = float(
            detector(extractor.encode_content(crops)[None], extractor.encode_style(crops)[None])[0]
        )
    scorer = CropScorer(detector, extractor)
    prepared = scorer.prepare(crops)
    assert scorer.logit(prepared, prepared.pixels) == pytest.approx(expected, abs=1e-5)
    for method in METHODS:
        result = saliency_maps(detector, extractor, crops, SaliencyCfg(method, samples=2))
        assert result.logit == pytest.approx(expected, abs=1e-5), method
        assert result.maps.shape == crops.shape[:3] and result.maps.dtype == np.float32
        assert np.isfinite(result.maps).all() and (result.maps >= 0).all(), method
        assert result.maps.sum() > 0, method


def test_the_gradient_is_the_derivative_through_both_backbones(detector, extractor, crops) -> None:
    scorer = CropScorer(detector, extractor)
    prepared = scorer.prepare(crops)
    _, grad = scorer.gradient(prepared, prepared.pixels)
    generator = torch.Generator().manual_seed(5)
    for _ in range(2):
        # Half along the gradient, half a random direction of the same length, scaled so
        # the logit should move by 0.002: far above float32 rounding, small enough to be
        # nearly linear (a central difference cancels the second order).
        noise = torch.randn(grad.shape, generator=generator)
        direction = grad / grad.norm() + noise / noise.norm()
        step = direction * (0.002 / float((grad * direction).sum()))
        ahead = scorer.logit(prepared, prepared.pixels + step)
        behind = scorer.logit(prepared, prepared.pixels - step)
        assert (ahead - behind) / 2 == pytest.approx(0.002, rel=0.03)


def test_the_content_path_alone_reaches_the_pixels_through_the_resize(
    detector, extractor, crops
) -> None:
    # Only the content vectors matter when the style path's output is cut: the gradient
    # must then come through Slow R50 and the resize's adjoint, and still be the derivative.
    scorer = CropScorer(detector, extractor)
    prepared = scorer.prepare(crops)
    _, _, content_grad = scorer._code_gradients(prepared, prepared.pixels)
    grad = scorer._content_pixel_gradient(prepared, prepared.pixels, content_grad)
    step = grad * (0.002 / float((grad * grad).sum()))  # should move the product by 0.002
    with torch.no_grad():
        ahead = _content_dot(scorer, prepared, prepared.pixels + step, content_grad)
        behind = _content_dot(scorer, prepared, prepared.pixels - step, content_grad)
    assert (ahead - behind) / 2 == pytest.approx(0.002, rel=0.03)


def _content_dot(scorer, prepared, pixels, weights) -> float:
    small = prepared.content_frames(pixels)
    vectors = scorer.extractor.content_vectors(small[prepared.clips])
    return float((vectors * weights).sum())


def test_integrated_gradients_add_up_to_the_change_of_the_logit(detector, extractor, crops) -> None:
    scorer = CropScorer(detector, extractor)
    prepared = scorer.prepare(crops)
    attribution = integrated_attribution(scorer, prepared, steps=16, baseline="still")
    still = prepared.pixels.mean(0, keepdim=True).expand_as(prepared.pixels)
    change = scorer.logit(prepared, prepared.pixels) - scorer.logit(prepared, still)
    assert float(attribution.sum()) == pytest.approx(change, rel=0.1, abs=1e-3)


def test_the_sheet_and_the_maps_are_written_whole(detector, extractor, crops, tmp_path) -> None:
    result = saliency_maps(detector, extractor, crops, SaliencyCfg("gradient"))
    sheet = saliency_sheet(tmp_path / "v-saliency.png", crops, result.maps, "v.mp4", 0.7, "ddf")
    assert sheet.read_bytes().startswith(b"\x89PNG")
    saved = save_saliency(tmp_path / "v-saliency.npz", result, crops=crops)
    with np.load(saved) as data:
        np.testing.assert_array_equal(data["maps"], result.maps)
        np.testing.assert_array_equal(data["crops"], crops)
        assert float(data["logit"]) == result.logit and str(data["method"]) == "gradient"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v-saliency.npz", "v-saliency.png"]


def test_pointing_share_is_the_mass_inside_the_mask() -> None:
    maps = np.zeros((2, 4, 4), np.float32)
    maps[0, 0, 0], maps[1, 3, 3] = 3.0, 1.0
    masks = np.zeros((2, 4, 4), bool)
    masks[0, :2, :2] = True
    assert pointing_share(maps, masks) == 0.75
    assert pointing_share(np.zeros_like(maps), masks) == 0.0


def test_unknown_methods_are_refused() -> None:
    with pytest.raises(ValueError, match="no saliency method 'occlusion'"):
        SaliencyCfg("occlusion")
