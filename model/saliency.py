"""Where in the face crops the detector's fake score comes from (model layer).

The crops one video was scored from go back through the very networks that scored it:
the extractor's pSp encoder (a style code per frame) and Slow R50 (a content vector per
clip, from the crops resized by `model.faces.crop_resize`), then the detector with its
fitted standardisation. The detector's logit is differentiated with respect to every crop
pixel through all of them, in two steps that give the exact chain rule in bounded memory:
the detector's gradient with respect to the codes and vectors first, then each batch of
frames (or clips) through its encoder again with that gradient as the output's weight.

Methods (`SaliencyCfg.method`), compared on the demo's fakes in bench/saliency.py:
- "gradient": |d logit / d pixel|, summed over colours; one pass, noisy.
- "smoothgrad": the same, averaged over copies of the crops with Gaussian pixel noise.
- "integrated": integrated gradients from black crops, (x - 0) * mean gradient along the
  straight path, summed over colours; only the part that raises the logit is kept.
- "gradcam": Grad-CAM on each encoder's last feature maps (pSp's map read by the style
  head, Slow R50's last stage), upsampled to the crop; the positive part.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ddm.fs import atomic_write
from model.faces import clip_frame_indices, content_frames, resize_matrix
from model.features import FeatureExtractor

logger = logging.getLogger(__name__)

GRADIENT, SMOOTHGRAD, INTEGRATED, GRADCAM = "gradient", "smoothgrad", "integrated", "gradcam"
METHODS = (GRADIENT, SMOOTHGRAD, INTEGRATED, GRADCAM)


@dataclass(frozen=True)
class SaliencyCfg:
    """How the maps are computed.

    Attributes:
        method: one of METHODS.
        samples: noisy copies ("smoothgrad") or steps along the path ("integrated").
        noise: SmoothGrad's noise standard deviation, as a fraction of the pixel range.
        seed: seeds SmoothGrad's noise, so a video's map is the same every time.
    """

    method: str = INTEGRATED
    samples: int = 4
    noise: float = 0.15
    baseline: str = "still"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"no saliency method {self.method!r}: one of {', '.join(METHODS)}")
        if self.samples < 1:
            raise ValueError(f"saliency samples must be at least 1, not {self.samples}")


@dataclass(frozen=True)
class Saliency:
    """One video's maps.

    Attributes:
        maps: (T, S, S) float32, >= 0: how much each crop pixel drives the fake score.
        logit: the detector's output on the unperturbed crops (equal to the video's score
            from extracted features, up to float rounding).
        method: the method that made `maps`.
        seconds: wall time spent.
    """

    maps: np.ndarray
    logit: float
    method: str
    seconds: float


class CropScorer:
    """The detector's logit as a differentiable function of one video's face crops.

    Args:
        detector: the fitted detector (its standardisation included).
        extractor: the `model.features.FeatureExtractor` whose features it was trained on;
            its `style_codes` and `content_vectors` are the encoding used here.
    """

    def __init__(self, detector: nn.Module, extractor: FeatureExtractor) -> None:
        self.detector = detector.eval().to(extractor.device)
        self.extractor = extractor
        self.cfg = extractor.cfg
        self.device = extractor.device
        self.batch_size = extractor.batch_size

    def prepare(self, crops: np.ndarray) -> _Crops:
        """The crops as float pixels, with what the content path needs to resize them."""
        side, size = crops.shape[1], self.cfg.content_size
        matrix = torch.from_numpy(resize_matrix(side, size)).to(self.device)
        pixels = torch.from_numpy(crops).to(self.device, torch.float32)
        # Extraction rounds the resized frames to uint8; the difference is kept as a
        # constant, so the unperturbed crops give exactly the extracted content vectors.
        exact = torch.from_numpy(content_frames(crops, size)).to(self.device, torch.float32)
        rounding = exact - _resize(pixels, matrix)
        clips = torch.from_numpy(clip_frame_indices(len(crops), self.cfg.clip_len))
        return _Crops(pixels, matrix, rounding, clips.to(self.device))

    def logit(self, crops: _Crops, pixels: Tensor) -> float:
        with torch.no_grad():
            style, content = self._encode(crops, pixels)
            return float(self.detector(content[None], style[None])[0])

    def gradient(self, crops: _Crops, pixels: Tensor) -> tuple[float, Tensor]:
        """(logit, d logit / d pixels (T, S, S, 3)) at `pixels`."""
        logit, style_grad, content_grad = self._code_gradients(crops, pixels)
        grad = torch.zeros_like(pixels)
        for frames in _batches(len(pixels), self.batch_size):
            x = pixels[frames].detach().requires_grad_(True)
            with torch.enable_grad():
                codes = self.extractor.style_codes(x)
                (grad[frames],) = torch.autograd.grad(codes, x, style_grad[frames])
        grad += self._content_pixel_gradient(crops, pixels, content_grad)
        return logit, grad

    def gradcam(self, crops: _Crops) -> tuple[float, Tensor]:
        """(logit, (T, S, S) Grad-CAM map) on the unperturbed crops."""
        pixels = crops.pixels
        logit, style_grad, content_grad = self._code_gradients(crops, pixels)
        side = pixels.shape[1]
        maps = torch.zeros(pixels.shape[:3], device=self.device)
        encoder = self.extractor.style_encoder
        style_heads = [encoder.styles[level] for level in self.cfg.levels]
        for frames in _batches(len(pixels), self.batch_size):
            with torch.enable_grad(), _inputs_of(style_heads) as taps:
                codes = self.extractor.style_codes(pixels[frames])
                feature_maps = list({id(t): t for t in taps}.values())
                grads = torch.autograd.grad(codes, feature_maps, style_grad[frames])
            for features, grad in zip(feature_maps, grads, strict=True):
                maps[frames] += _upsampled_cam(features, grad, side)
        maps += self._content_cam(crops, content_grad, side)
        return logit, maps

    def _code_gradients(self, crops: _Crops, pixels: Tensor) -> tuple[float, Tensor, Tensor]:
        with torch.no_grad():
            style, content = self._encode(crops, pixels)
        style.requires_grad_(True)
        content.requires_grad_(True)
        with torch.enable_grad():
            logit = self.detector(content[None], style[None])[0]
            style_grad, content_grad = torch.autograd.grad(logit, (style, content))
        return float(logit.detach()), style_grad, content_grad

    def _encode(self, crops: _Crops, pixels: Tensor) -> tuple[Tensor, Tensor]:
        style = torch.cat(
            [self.extractor.style_codes(pixels[f]) for f in _batches(len(pixels), self.batch_size)]
        )
        small = crops.content_frames(pixels)
        content = torch.cat(
            [
                self.extractor.content_vectors(small[crops.clips[c]])
                for c in _batches(len(crops.clips), self.batch_size)
            ]
        )
        return style, content

    def _content_pixel_gradient(
        self, crops: _Crops, pixels: Tensor, content_grad: Tensor
    ) -> Tensor:
        small = crops.content_frames(pixels).detach().requires_grad_(True)
        small_grad = torch.zeros_like(small)
        for clips in _batches(len(crops.clips), self.batch_size):
            with torch.enable_grad():
                vectors = self.extractor.content_vectors(small[crops.clips[clips]])
                (grad,) = torch.autograd.grad(vectors, small, content_grad[clips])
            small_grad += grad
        # The adjoint of the separable resize R X R^T is R^T G R.
        return _resize(small_grad, crops.matrix.T)

    def _content_cam(self, crops: _Crops, content_grad: Tensor, side: int) -> Tensor:
        small = crops.content_frames(crops.pixels)
        maps = torch.zeros((len(crops.pixels), side, side), device=self.device)
        last_stage = self.extractor.content_encoder.blocks[-2]
        for clips in _batches(len(crops.clips), self.batch_size):
            with torch.enable_grad(), _outputs_of(last_stage) as taps:
                vectors = self.extractor.content_vectors(small[crops.clips[clips]])
                (grad,) = torch.autograd.grad(vectors, taps[0], content_grad[clips])
            features = taps[0]  # (n, C, L, h, w)
            weights = grad.mean(dim=(2, 3, 4), keepdim=True)
            cam = (weights * features).sum(1).relu()  # (n, L, h, w)
            frames = crops.clips[clips].flatten()
            cam = _to_pixels(cam.flatten(0, 1), side)
            maps.index_add_(0, frames, cam)
        return maps


@dataclass
class _Crops:
    pixels: Tensor  # (T, S, S, 3) float32 in [0, 255]
    matrix: Tensor  # (s, S): the content path's resize along each axis
    rounding: Tensor  # (T, s, s, 3): extraction's uint8 rounding of the resized frames
    clips: Tensor  # (N, clip_len) frame index of each clip place

    def content_frames(self, pixels: Tensor) -> Tensor:
        return _resize(pixels, self.matrix) + self.rounding


def _resize(pixels: Tensor, matrix: Tensor) -> Tensor:
    """(T, A, A, 3) -> (T, a, a, 3) with the (a, A) separable resize `matrix`."""
    return torch.einsum("ia,tabc,jb->tijc", matrix, pixels, matrix)


def _batches(count: int, size: int) -> Iterator[slice]:
    for start in range(0, count, size):
        yield slice(start, min(start + size, count))


def _upsampled_cam(features: Tensor, grad: Tensor, side: int) -> Tensor:
    """Grad-CAM of (B, C, h, w) maps and their gradients -> (B, side, side)."""
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cam = (weights * features).sum(1).relu()  # (B, h, w)
    return _to_pixels(cam, side)


def _to_pixels(cam: Tensor, side: int) -> Tensor:
    """(B, h, w) -> (B, side, side), bilinear, keeping each map's total."""
    scale = cam.shape[-1] * cam.shape[-2] / (side * side)
    up = F.interpolate(cam[:, None], size=(side, side), mode="bilinear", align_corners=False)
    return up[:, 0] * scale


@contextmanager
def _inputs_of(modules: list[nn.Module]) -> Iterator[list[Tensor]]:
    taps: list[Tensor] = []
    hooks = [m.register_forward_hook(lambda m, args, out: taps.append(args[0])) for m in modules]
    try:
        yield taps
    finally:
        for hook in hooks:
            hook.remove()


@contextmanager
def _outputs_of(module: nn.Module) -> Iterator[list[Tensor]]:
    taps: list[Tensor] = []
    hook = module.register_forward_hook(lambda m, args, out: taps.append(out))
    try:
        yield taps
    finally:
        hook.remove()


def saliency_maps(
    detector: nn.Module,
    extractor: FeatureExtractor,
    crops: np.ndarray,
    cfg: SaliencyCfg | None = None,
) -> Saliency:
    """How much each pixel of each face crop drives the detector's fake score.

    Args:
        detector: the fitted detector.
        extractor: the feature extractor whose networks made its inputs.
        crops: (T, S, S, 3) uint8 crops of one video, as `extractor.face_track` cuts them.
        cfg: the method and its settings.

    Returns:
        The maps, >= 0, one per frame, and the logit they explain.
    """
    cfg = cfg or SaliencyCfg()
    start = time.perf_counter()
    scorer = CropScorer(detector, extractor)
    prepared = scorer.prepare(crops)
    logit, maps = _METHODS[cfg.method](scorer, prepared, cfg)
    seconds = time.perf_counter() - start
    array = maps.detach().float().cpu().numpy().astype(np.float32)
    return Saliency(array, logit, cfg.method, seconds)


def _gradient(scorer: CropScorer, crops: _Crops, cfg: SaliencyCfg) -> tuple[float, Tensor]:
    logit, grad = scorer.gradient(crops, crops.pixels)
    return logit, grad.abs().sum(-1)


def _smoothgrad(scorer: CropScorer, crops: _Crops, cfg: SaliencyCfg) -> tuple[float, Tensor]:
    generator = torch.Generator(device="cpu").manual_seed(cfg.seed)
    total = torch.zeros(crops.pixels.shape[:3], device=crops.pixels.device)
    for _ in range(cfg.samples):
        noise = torch.randn(crops.pixels.shape, generator=generator) * (cfg.noise * 255)
        _, grad = scorer.gradient(crops, crops.pixels + noise.to(crops.pixels.device))
        total += grad.abs().sum(-1)
    return scorer.logit(crops, crops.pixels), total / cfg.samples


def _integrated(scorer: CropScorer, crops: _Crops, cfg: SaliencyCfg) -> tuple[float, Tensor]:
    attribution = integrated_attribution(scorer, crops, cfg.samples, cfg.baseline)
    return scorer.logit(crops, crops.pixels), attribution.sum(-1).relu()


def integrated_attribution(
    scorer: CropScorer, crops: _Crops, steps: int, baseline: str = "still"
) -> Tensor:
    """Integrated gradients, (T, S, S, 3): (x - x0) * the mean gradient on the straight
    path from x0 to x (midpoint rule); they sum to about logit(x) - logit(x0).

    The baseline x0 is "still" (every frame replaced by the video's mean crop: a video
    without motion, whose style flow is zero) or "black".
    """
    pixels = crops.pixels
    start = pixels.mean(0, keepdim=True).expand_as(pixels) if baseline == "still" else pixels * 0
    total = torch.zeros_like(pixels)
    for step in range(steps):
        alpha = (step + 0.5) / steps
        total += scorer.gradient(crops, start + alpha * (pixels - start))[1]
    return (pixels - start) * total / steps


def _gradcam(scorer: CropScorer, crops: _Crops, cfg: SaliencyCfg) -> tuple[float, Tensor]:
    return scorer.gradcam(crops)


_METHODS: dict[str, Callable[[CropScorer, _Crops, SaliencyCfg], tuple[float, Tensor]]] = {
    GRADIENT: _gradient,
    SMOOTHGRAD: _smoothgrad,
    INTEGRATED: _integrated,
    GRADCAM: _gradcam,
}


def pointing_share(maps: np.ndarray, masks: np.ndarray) -> float:
    """The share of a video's saliency that falls inside its masks (the pointing game).

    Args:
        maps: (T, S, S) saliency, >= 0.
        masks: (T, S, S) bool, the manipulated region of each crop.

    Returns:
        sum of `maps` inside `masks` / sum of `maps`; 0.0 for an all-zero map.
    """
    total = float(maps.sum(dtype=np.float64))
    return float(maps[masks].sum(dtype=np.float64)) / total if total > 0 else 0.0


def save_saliency(path: str | Path, saliency: Saliency, **arrays: np.ndarray) -> Path:
    """Write the maps (and `arrays` beside them, e.g. the crops) as one compressed .npz,
    atomically; `np.load(path)["maps"]` reads them back."""
    with atomic_write(path) as handle:
        np.savez_compressed(
            handle,
            maps=saliency.maps,
            logit=np.float64(saliency.logit),
            method=np.str_(saliency.method),
            **arrays,
        )
    return Path(path)
