"""Face clips with natural motion, and deepfake-like artefacts by method (no torch).

Every clip is rendered from one real photograph of a face: scikit-image ships
`astronaut.png` (a colour portrait) inside its wheel, so it is there offline. A random but
smooth camera path moves over it (pan, zoom, small rotations), the lighting drifts, and
sensor grain is added to every frame. A fake is the same kind of clip with an artefact
inside the face region, by method:

- `Recolor` (FF++-style): the face is re-rendered each frame with a colour gain drawn
  afresh per frame and per channel, zero-mean, inside a soft elliptical mask: temporally
  inconsistent colour, the same mean colour.
- `Seam` (FF++-style): a slightly rescaled copy of the face is blended in with a sharp
  elliptical mask whose centre drifts from frame to frame: a visible seam that moves.
- `Jitter` (DFDC-style, used by neither FF++-style method): the face region is shifted
  and rotated by a fresh small amount every frame inside a soft mask.
- `Mouth` (NeuralTextures-like, in no generated tree): only the mouth region flickers in
  colour; a local manipulation, for checking that saliency maps point at it.

Every artefact returns the mask it blended with, so where a fake was manipulated is known
exactly (`render_clip_with_masks`).

Reals and fakes share everything else (frame count, size, fps, codec, motion statistics,
grain), so nothing but the artefact tells them apart; `ddm stats` checks it.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

# MTCNN's box of the face in astronaut.png (512 x 512), measured once: x0, y0, x1, y1.
FACE_BOX = (181.0, 62.0, 268.0, 172.0)
FPS = 25.0

Frame = np.ndarray  # (H, W, 3) float32 BGR in [0, 255]
Mask = np.ndarray  # (H, W, 1) float32 in [0, 1]: how much of each pixel the artefact replaced
# An artefact returns the manipulated frame and the mask it blended it with, so the region
# a detector should point at is known exactly (the saliency test's ground truth).
Artefact = Callable[[Frame, "FaceRegion", np.random.Generator, float], tuple[Frame, Mask]]


@dataclass(frozen=True)
class ClipCfg:
    """The size of every clip and the strength of the artefacts.

    Attributes:
        frames: frames per clip.
        size: side of the square frames.
        strength: artefact strength, 0 to 1 (e.g. 0.15: colour gains of +-15%).
        grain: standard deviation of the per-pixel sensor noise, in grey levels.
    """

    frames: int = 40
    size: int = 256
    strength: float = 0.15
    grain: float = 3.0


@dataclass(frozen=True)
class FaceRegion:
    """Where the face is in one frame: centre and half-axes of its ellipse, in pixels."""

    cx: float
    cy: float
    ax: float
    ay: float

    def mask(self, shape: tuple[int, ...], soft: bool = True, shift=(0.0, 0.0)) -> np.ndarray:
        """(H, W, 1) float mask of the ellipse: feathered (soft) or nearly sharp."""
        mask = np.zeros(shape[:2], np.float32)
        centre = (int(round(self.cx + shift[0])), int(round(self.cy + shift[1])))
        axes = (max(int(self.ax), 1), max(int(self.ay), 1))
        cv2.ellipse(mask, centre, axes, 0, 0, 360, 1.0, -1)
        blur = max(self.ax, self.ay) * (0.4 if soft else 0.06)
        return cv2.GaussianBlur(mask, (0, 0), max(blur, 0.5))[..., None]


@lru_cache(maxsize=1)
def source_photo() -> np.ndarray:
    """scikit-image's astronaut.png as a BGR float32 array (read from the installed wheel)."""
    path = importlib.resources.files("skimage") / "data" / "astronaut.png"
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"cannot read {path}; is scikit-image installed?")
    return image.astype(np.float32)


def render_clip(path: Path, seed: int, cfg: ClipCfg, artefact: Artefact | None = None) -> Path:
    """Write one clip (mp4) following a random camera path; `artefact` makes it fake."""
    return render_clip_with_masks(path, seed, cfg, artefact)[0]


def render_clip_with_masks(
    path: Path, seed: int, cfg: ClipCfg, artefact: Artefact | None = None
) -> tuple[Path, np.ndarray]:
    """`render_clip`, also returning where the artefact is in every frame.

    Returns:
        (the clip, (frames, size, size) float32 masks in [0, 1]: the weight with which
        `artefact` replaced each pixel; all zero for a real).
    """
    # Separate streams: an artefact's draws leave the camera path and the grain as they
    # are, so a fake and a real of one seed differ by the artefact alone.
    rng, grain, artefact_rng = (np.random.default_rng([seed, stream]) for stream in range(3))
    path_params = _camera_path(rng, cfg.frames)
    masks = np.zeros((cfg.frames, cfg.size, cfg.size), np.float32)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (cfg.size,) * 2)
    try:
        for t in range(cfg.frames):
            matrix, gain = _camera(path_params, t, cfg.size)
            frame = cv2.warpAffine(
                source_photo(), matrix, (cfg.size, cfg.size), borderMode=cv2.BORDER_REFLECT
            )
            if artefact is not None:
                frame, mask = artefact(frame, _face_region(matrix), artefact_rng, cfg.strength)
                masks[t] = mask[..., 0]
            frame = frame * gain + grain.normal(0.0, cfg.grain, frame.shape)
            writer.write(np.clip(frame, 0, 255).astype(np.uint8))
    finally:
        writer.release()
    return path, masks


def _camera_path(rng: np.random.Generator, frames: int) -> dict[str, np.ndarray]:
    # Smooth per-frame values: a random start, a random drift and a slow oscillation.
    t = np.arange(frames) / max(frames - 1, 1)

    def smooth(start: float, drift: float, wobble: float) -> np.ndarray:
        phase = rng.uniform(0, 2 * np.pi)
        return start + drift * rng.uniform(-1, 1) * t + wobble * np.sin(2 * np.pi * t + phase)

    return {
        "dx": smooth(rng.uniform(-20, 20), 25, 6),
        "dy": smooth(rng.uniform(-15, 15), 20, 5),
        "zoom": smooth(rng.uniform(1.2, 1.6), 0.25, 0.05),
        "angle": smooth(rng.uniform(-4, 4), 4, 2),
        "gain": smooth(rng.uniform(0.9, 1.1), 0.1, 0.04),
    }


def _camera(params: dict[str, np.ndarray], t: int, size: int) -> tuple[np.ndarray, float]:
    """The affine map photo -> frame at frame t (the face kept near the middle)."""
    fx, fy = (FACE_BOX[0] + FACE_BOX[2]) / 2, (FACE_BOX[1] + FACE_BOX[3]) / 2
    scale = params["zoom"][t] * size / 512 * 1.6
    matrix = cv2.getRotationMatrix2D((fx, fy), float(params["angle"][t]), float(scale))
    matrix[:, 2] += (size / 2 - fx + params["dx"][t], size / 2 - fy + params["dy"][t])
    return matrix, float(params["gain"][t])


def _face_region(matrix: np.ndarray) -> FaceRegion:
    x0, y0, x1, y1 = FACE_BOX
    cx, cy = matrix @ np.array([(x0 + x1) / 2, (y0 + y1) / 2, 1.0])
    scale = float(np.hypot(*matrix[0, :2]))
    return FaceRegion(float(cx), float(cy), (x1 - x0) / 2 * scale, (y1 - y0) / 2 * scale)


# --------------------------------------------------------------------------- artefacts


def recolor(
    frame: Frame, face: FaceRegion, rng: np.random.Generator, strength: float
) -> tuple[Frame, Mask]:
    """A fresh zero-mean colour gain per channel and frame, inside a soft face mask."""
    gains = 1.0 + rng.uniform(-strength, strength, 3).astype(np.float32)
    mask = face.mask(frame.shape)
    return frame * (1 - mask) + frame * gains * mask, mask


def seam(
    frame: Frame, face: FaceRegion, rng: np.random.Generator, strength: float
) -> tuple[Frame, Mask]:
    """A rescaled copy of the face pasted with a sharp mask whose centre drifts."""
    scale = 1.0 + strength * 0.6
    matrix = cv2.getRotationMatrix2D((face.cx, face.cy), 0.0, scale)
    pasted = cv2.warpAffine(frame, matrix, frame.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
    wander = rng.normal(0.0, strength * face.ax * 0.3, 2)
    mask = face.mask(frame.shape, soft=False, shift=tuple(wander))
    return frame * (1 - mask) + pasted * mask, mask


def jitter(
    frame: Frame, face: FaceRegion, rng: np.random.Generator, strength: float
) -> tuple[Frame, Mask]:
    """The face region shifted and rotated by a fresh small amount every frame."""
    angle = rng.normal(0.0, strength * 20)
    shift = rng.normal(0.0, strength * face.ax * 0.25, 2)
    matrix = cv2.getRotationMatrix2D((face.cx, face.cy), float(angle), 1.0)
    matrix[:, 2] += shift
    moved = cv2.warpAffine(frame, matrix, frame.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
    mask = face.mask(frame.shape)
    return frame * (1 - mask) + moved * mask, mask


def mouth(
    frame: Frame, face: FaceRegion, rng: np.random.Generator, strength: float
) -> tuple[Frame, Mask]:
    """Only the mouth re-rendered, as NeuralTextures does: a fresh colour gain per channel
    and frame (twice `recolor`'s, on a fifth of its area) inside a nearly sharp mask."""
    region = FaceRegion(face.cx, face.cy + 0.55 * face.ay, 0.5 * face.ax, 0.3 * face.ay)
    gains = 1.0 + rng.uniform(-2 * strength, 2 * strength, 3).astype(np.float32)
    mask = region.mask(frame.shape, soft=False)
    return frame * (1 - mask) + frame * gains * mask, mask


ARTEFACTS: dict[str, Artefact] = {
    "Recolor": recolor,
    "Seam": seam,
    "Jitter": jitter,
    "Mouth": mouth,  # used by no generated tree: the saliency test's local manipulation
}
