"""bf16 extraction: its own fingerprint, outputs within the agreement the benchmarks use
(cosine >= 0.99 against fp32), and channels-last fp32 equal to the plain forward pass."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from model.faces import FaceDetector, style_input
from model.features import ExtractorCfg, FeatureExtractor, extractor_fingerprint
from model.precision import channels_last_input, check_precision, to_channels_last

SMALL = ExtractorCfg(num_frames=8, face_size=64)
RANDOM = {"psp_encoder": None, "slow_r50": None}


def test_bf16_has_its_own_fingerprint_and_fp32_keeps_the_old_one() -> None:
    fp32 = extractor_fingerprint(SMALL, RANDOM)
    assert extractor_fingerprint(replace(SMALL, precision="fp32"), RANDOM) == fp32
    assert extractor_fingerprint(replace(SMALL, precision="bf16"), RANDOM) != fp32


def test_an_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16"):
        ExtractorCfg(precision="int4")
    assert check_precision("bf16") == "bf16"


@pytest.fixture(scope="module")
def two_precisions(psp_model, slow_model, face_detector: FaceDetector, real_clip: Path):
    """The features of the real clip at fp32 and at bf16, from the same networks."""
    features = {}
    for precision in ("fp32", "bf16"):
        cfg = replace(SMALL, precision=precision)
        extractor = FeatureExtractor(cfg, psp_model, slow_model, face_detector, RANDOM)
        features[precision] = extractor.extract(real_clip)
    return features


def test_bf16_features_agree_with_fp32(two_precisions) -> None:
    fp32, bf16 = two_precisions["fp32"], two_precisions["bf16"]
    assert torch.equal(fp32["boxes"], bf16["boxes"])  # detection does not change
    for key in ("style", "content"):
        assert bf16[key].dtype == torch.float32 and bf16[key].shape == fp32[key].shape
        # bf16 really ran: not bit-identical to fp32...
        assert not torch.equal(bf16[key], fp32[key])
        # ...but every frame's (clip's) vector points the same way.
        cosine = F.cosine_similarity(bf16[key].flatten(1), fp32[key].flatten(1))
        assert cosine.min() >= 0.99, f"{key}: cosine {cosine.min():.4f}"
    assert two_precisions["bf16"]["fingerprint"] != two_precisions["fp32"]["fingerprint"]


def test_channels_last_fp32_equals_the_plain_forward(psp_model) -> None:
    plain = copy.deepcopy(psp_model)
    for param in plain.parameters():
        param.data = param.data.contiguous()
    fast = to_channels_last(copy.deepcopy(plain))
    assert any(not p.is_contiguous() for p in fast.parameters())  # the layout did change
    x = style_input(torch.randint(0, 256, (4, 64, 64, 3), dtype=torch.uint8).numpy())
    with torch.inference_mode():
        expected = plain(x, levels=(9,))
        actual = fast(channels_last_input(x), levels=(9,))
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)


def test_the_inference_encoder_drops_other_heads_and_folds_norms(psp_model) -> None:
    from model.psp import prepare_for_inference

    lean = prepare_for_inference(copy.deepcopy(psp_model))
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    assert count(lean) < 0.25 * count(psp_model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in lean.body[0].res_layer[3:])
    x = style_input(torch.randint(0, 256, (4, 64, 64, 3), dtype=torch.uint8).numpy())
    with torch.inference_mode():
        torch.testing.assert_close(lean(x), psp_model(x, levels=(9,)), rtol=1e-4, atol=1e-5)
        with pytest.raises(ValueError, match="level 3 was dropped"):
            lean(x, levels=(3,))


def test_the_subsampling_shortcut_is_the_max_pool_it_replaces() -> None:
    from model.psp import BottleneckIRSE

    for stride in (1, 2):
        unit = BottleneckIRSE(32, 32, stride).eval()
        x = torch.randn(2, 32, 9, 9)
        assert torch.equal(unit._shortcut(x), unit.shortcut_layer(x))
