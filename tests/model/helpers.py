"""Plain helpers for the model-layer tests: where the real media lie, and synthetic clips."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
MEDIA = Path(os.environ.get("DDM_TEST_MEDIA", SHARED / "media"))
REFERENCE = Path(os.environ.get("DDM_TEST_REFERENCE", SHARED / "reference"))
FFPP_VIDEOS = MEDIA / "ff++" / "original_sequences" / "youtube" / "c23" / "videos"


def write_clip(path: Path, frames: np.ndarray, fps: float = 25.0, fourcc: str = "mp4v") -> Path:
    """Write (T, H, W, 3) uint8 RGB frames as a video file."""
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened(), f"OpenCV cannot write {path}"
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def faceless_frames(count: int, height: int = 240, width: int = 320) -> np.ndarray:
    """Smooth colour gradients with a moving rectangle: video-like, but no face."""
    ys, xs = np.mgrid[0:height, 0:width]
    frames = []
    for t in range(count):
        frame = np.stack(
            [(xs + 7 * t) % 256, (ys + 3 * t) % 256, np.full_like(xs, (40 * t) % 256)], axis=-1
        ).astype(np.uint8)
        x0 = (10 * t) % (width - 60)
        frame[80:140, x0 : x0 + 60] = (255, 255, 0)
        frames.append(frame)
    return np.stack(frames)


def numbered_frames(count: int, height: int = 64, width: int = 80, step: int = 8) -> np.ndarray:
    """Flat frames whose grey level encodes their index (index * step), to check sampling."""
    return np.stack([np.full((height, width, 3), step * i, dtype=np.uint8) for i in range(count)])


def perturbed_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The module's random state with random BN statistics too, so a round trip that
    dropped buffers could not pass by accident."""
    generator = torch.Generator().manual_seed(1)
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith(("running_mean", "running_var")):
            value = torch.rand(value.shape, generator=generator) + 0.5
        elif key.endswith("num_batches_tracked"):
            value = torch.tensor(7)
        state[key] = value
    return state
