"""What an extraction sends to its device and in which precision the device computes:
uint8 crops cross to the device and are normalised there, with the features of the float
path, and TF32 is off while an extraction runs, so a GPU's fp32 features match a CPU's."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import model.features
from model import create_model
from model.errors import UnreadableVideo
from model.faces import FaceDetector, content_input, crop_resize, style_input
from model.features import ExtractorCfg, FeatureExtractor, extractor_fingerprint
from model.precision import channels_last_input

SMALL = ExtractorCfg(
    num_frames=8,
    face_size=64,
    content_size=32,
    style_model="psp_encoder_small",
    content_model="slow_r50_small",
)
RANDOM = {"psp_encoder_small": None, "slow_r50_small": None}


@pytest.fixture(scope="module")
def small_extractor(face_detector: FaceDetector) -> FeatureExtractor:
    torch.manual_seed(0)
    style = create_model("psp_encoder_small").eval()
    style.set_latent_avg(torch.randn(18, 512))
    content = create_model("slow_r50_small").eval()
    return FeatureExtractor(SMALL, style, content, face_detector, RANDOM, batch_size=3)


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)


def test_crops_cross_to_the_device_as_bytes(
    small_extractor: FeatureExtractor, crops: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[Tensor] = []
    upload = model.features.upload

    def recording_upload(batch: Tensor, device: torch.device) -> Tensor:
        sent.append(batch)
        return upload(batch, device)

    monkeypatch.setattr(model.features, "upload", recording_upload)
    small_extractor.encode_style(crops)
    small_extractor.encode_content(crops)
    assert [b.dtype for b in sent] == [torch.uint8] * 4  # 3 style batches, 1 content batch
    assert [tuple(b.shape) for b in sent] == [
        (3, 64, 64, 3),
        (3, 64, 64, 3),
        (2, 64, 64, 3),
        (1, 16, 32, 32, 3),  # one clip of 16 frames, the 8 crops twice (circular padding)
    ]


def float_style_input(crops: np.ndarray) -> Tensor:
    """The style path's input as the host built it before (floats normalised there)."""
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div_(255)
    return x.sub_(0.5).div_(0.5)


def float_content_input(crops: np.ndarray, size: int, clip_len: int) -> Tensor:
    """The content path's input as the host built it before."""
    whole = np.array([0, 0, crops.shape[2], crops.shape[1]])
    small = np.stack([crop_resize(crop, whole, size) for crop in crops])
    x = torch.from_numpy(small).permute(0, 3, 1, 2).float().div_(255)  # (T, 3, s, s)
    x = x.sub_(0.45).div_(0.225)
    clips = []
    for start in range(0, len(x), clip_len):
        clip = x[start : start + clip_len]
        clip = clip[torch.arange(clip_len) % len(clip)]  # circular padding
        clips.append(clip.permute(1, 0, 2, 3))  # (3, clip_len, s, s)
    return torch.stack(clips)


def float_path_style(extractor: FeatureExtractor, crops: np.ndarray) -> Tensor:
    """The style codes as the extractor computed them from host-normalised float batches."""
    levels = list(extractor.cfg.levels)
    with torch.inference_mode():
        codes = [
            extractor.style_encoder(channels_last_input(batch), levels=levels)
            for batch in float_style_input(crops).split(extractor.batch_size)
        ]
        return torch.cat(codes) + extractor.style_encoder.latent_avg[levels]


def float_path_content(extractor: FeatureExtractor, crops: np.ndarray) -> Tensor:
    cfg = extractor.cfg
    clips = float_content_input(crops, cfg.content_size, cfg.clip_len)
    with torch.inference_mode():
        return torch.cat(
            [
                extractor.content_encoder(channels_last_input(batch))
                for batch in clips.split(extractor.batch_size)
            ]
        )


def test_the_input_functions_still_give_the_float_path_inputs(crops: np.ndarray) -> None:
    assert torch.equal(style_input(crops), float_style_input(crops))
    assert torch.equal(content_input(crops, 32, 16), float_content_input(crops, 32, 16))
    assert torch.equal(content_input(crops, 32, 3), float_content_input(crops, 32, 3))


def test_features_equal_those_of_the_float_path(
    small_extractor: FeatureExtractor, crops: np.ndarray
) -> None:
    style = small_extractor.encode_style(crops)
    content = small_extractor.encode_content(crops)
    assert style.dtype == content.dtype == torch.float32
    torch.testing.assert_close(style, float_path_style(small_extractor, crops), rtol=0, atol=0)
    expected = float_path_content(small_extractor, crops)
    torch.testing.assert_close(content, expected, rtol=0, atol=0)


def tf32_settings() -> tuple[bool, bool]:
    return torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32


@pytest.fixture
def tf32_allowed() -> Iterator[None]:
    """TF32 on for convolutions and matmuls, as a process may have it; put back after."""
    saved = tf32_settings()
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@contextlib.contextmanager
def recorded_tf32(modules: list[nn.Module]) -> Iterator[list[tuple[bool, bool]]]:
    """The TF32 settings each time one of `modules` runs."""
    seen: list[tuple[bool, bool]] = []
    hooks = [
        module.register_forward_pre_hook(lambda _module, _args: seen.append(tf32_settings()))
        for module in modules
    ]
    try:
        yield seen
    finally:
        for hook in hooks:
            hook.remove()


@pytest.mark.usefixtures("tf32_allowed")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_tf32_is_off_while_extracting_and_restored_after(
    small_extractor: FeatureExtractor, faceless_clip: Path, precision: str
) -> None:
    cfg = replace(SMALL, precision=precision)
    extractor = FeatureExtractor(
        cfg,
        small_extractor.style_encoder,
        small_extractor.content_encoder,
        FaceDetector(cfg.face_cfg()),
        RANDOM,
    )
    networks = [extractor.style_encoder, extractor.content_encoder]
    with recorded_tf32([*networks, extractor.face_detector.mtcnn.pnet]) as seen:
        extractor.extract(faceless_clip)
    assert len(seen) >= 3 and set(seen) == {(False, False)}  # detection and both backbones
    assert tf32_settings() == (True, True)


@pytest.mark.usefixtures("tf32_allowed")
def test_tf32_settings_are_restored_when_an_extraction_fails(
    small_extractor: FeatureExtractor, tmp_path: Path
) -> None:
    with pytest.raises(UnreadableVideo):
        small_extractor.extract(tmp_path / "missing.mp4")
    assert tf32_settings() == (True, True)


def test_strict_fp32_and_bf16_keep_their_fingerprints() -> None:
    # TF32 is off on every device, so fp32 features agree across devices up to rounding:
    # the fp32 fingerprint stays device-free, and bf16 keeps its own.
    fp32 = extractor_fingerprint(SMALL, RANDOM)
    assert extractor_fingerprint(replace(SMALL, precision="bf16"), RANDOM) != fp32
    assert fp32 == extractor_fingerprint(replace(SMALL, precision="fp32"), RANDOM)
