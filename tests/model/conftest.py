"""Fixtures for the model-layer tests: backbones with random weights (built once per
session, since pSp alone holds ~1 GB), real and synthetic clips, and feature caches."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from model import create_model
from model.faces import FaceCfg, FaceDetector
from model.features import save_features
from tests.model.helpers import FFPP_VIDEOS, faceless_frames, perturbed_state, write_clip


@pytest.fixture(scope="session")
def real_clip() -> Path:
    clip = FFPP_VIDEOS / "004.mp4"
    if not clip.is_file():
        pytest.skip(f"real media not available at {clip}")
    return clip


@pytest.fixture(scope="session")
def psp_model() -> torch.nn.Module:
    """The full pSp encoder with random weights, in eval mode; tests must not modify it."""
    torch.manual_seed(0)
    return create_model("psp_encoder").eval()


@pytest.fixture(scope="session")
def slow_model() -> torch.nn.Module:
    """Slow R50 with random weights, in eval mode; tests must not modify it."""
    torch.manual_seed(0)
    return create_model("slow_r50").eval()


@pytest.fixture(scope="session")
def face_detector() -> FaceDetector:
    return FaceDetector(FaceCfg(num_frames=8))


@pytest.fixture
def faceless_clip(tmp_path: Path) -> Path:
    return write_clip(tmp_path / "faceless.mp4", faceless_frames(30))


@pytest.fixture
def make_feature_files(tmp_path: Path) -> Callable[..., list[tuple[Path, float]]]:
    """Write synthetic cache files whose style flow carries the label (fakes jitter from
    frame to frame, reals drift smoothly); returns (path, label) items."""

    def make(
        count: int, *, frames: int = 8, levels: int = 1, clips: int = 1, seed: int = 0
    ) -> list[tuple[Path, float]]:
        generator = torch.Generator().manual_seed(seed)
        items = []
        for index in range(count):
            label = float(index % 2)
            base = torch.randn(1, levels, 512, generator=generator)
            steps = torch.randn(frames, levels, 512, generator=generator)
            style = base + (steps if label else 0.05 * steps.cumsum(0) / frames)
            content = torch.randn(clips, 2048, generator=generator)
            path = tmp_path / f"features-{seed}-{index}.pt"
            save_features(path, {"content": content, "style": style})
            items.append((path, label))
        return items

    return make


@pytest.fixture(scope="session")
def psp_official(
    tmp_path_factory: pytest.TempPathFactory, psp_model: torch.nn.Module
) -> Iterator[tuple[Path, dict[str, torch.Tensor], torch.Tensor]]:
    """A file laid out like psp_ffhq_encode.pt: the whole pSp state dict (encoder and
    decoder keys), the training options, and latent_avg outside the state dict."""
    encoder = perturbed_state(psp_model)
    state = {f"encoder.{key}": value for key, value in encoder.items()}
    state["decoder.style.1.weight"] = torch.randn(512, 512)
    state["decoder.noises.noise_0"] = torch.randn(1, 1, 4, 4)
    latent_avg = torch.randn(18, 512)
    path = tmp_path_factory.mktemp("weights") / "psp_ffhq_encode.pt"
    opts = {"encoder_type": "GradualStyleEncoder", "start_from_latent_avg": True}
    torch.save({"state_dict": state, "opts": opts, "latent_avg": latent_avg}, path)
    yield path, encoder, latent_avg
    path.unlink()  # ~1 GB; pytest keeps the last few temporary folders around
