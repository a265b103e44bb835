"""Per-video feature extraction for the detector: face crops -> pSp style codes per frame
and Slow R50 content vectors per 16-frame clip (model layer).

`FeatureExtractor.extract(path)` is the one call the tasks layer makes per video; the
extractor's fingerprint names everything that determines its output, so caches made with
other settings or other weights are never mixed up.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ddm.fs import atomic_write
from model.compiled import CompiledForward
from model.errors import IncompatibleFeatures, IncompatibleWeights, WeightsNotFound
from model.faces import (
    MIN_FACE_PROB,
    DecodedVideo,
    FaceCfg,
    FaceDetector,
    FaceTrack,
    content_pixels,
    extract_faces,
    normalise_content,
    normalise_style,
)
from model.precision import (
    FP32,
    autocast_for,
    channels_last_input,
    check_precision,
    strict_fp32,
    to_channels_last,
)
from model.psp import prepare_for_inference
from model.registry import create_model, load_model_weights, resolve_weights
from model.tracking import FRAME_SOURCES
from model.weights import read_weights_file

logger = logging.getLogger(__name__)

EXTRACTOR_NAME = "styleflow_features"
# Bump whenever preprocessing or the feature layout changes in a way that alters outputs.
# 2: crops follow the subject's face track (lower MTCNN cut, interpolated gaps, smoothed
# boxes) and the features record each frame's box source.
EXTRACTOR_VERSION = "2"
RANDOM_PREFIX = "random-"
STYLE_MODEL, CONTENT_MODEL = "psp_encoder", "slow_r50"


@dataclass(frozen=True)
class ExtractorCfg:
    """Every setting that changes the extracted features (all of it is fingerprinted).

    Attributes:
        num_frames: frames sampled uniformly per video (T); the seed uses 32 for FF++
            and 64 for Celeb-DF.
        levels: 0-based pSp W+ levels kept per frame (L = len(levels)).
        face_size: face crop side for the style path (256 for the official pSp).
        margin: total margin around the detected box, as a fraction of its longer side.
        min_face_prob: MTCNN confidence threshold (see `model.faces.MIN_FACE_PROB`).
        detect_max_side: longer side of the frames for the first detection pass.
        box_smoothing: radius, in sampled frames, of the temporal smoothing of the face
            box; 0 turns it off.
        content_size: clip side for the content path (112 in the seed).
        clip_len: frames per content clip (16 in the seed).
        add_latent_avg: add pSp's `latent_avg` to the codes, as the StyleFlow authors'
            code does; it cancels in style flows either way.
        style_model: the registered style backbone (`psp_encoder`, or the CPU-sized
            `psp_encoder_small` of `ddm demo`).
        content_model: the registered content backbone (`slow_r50` or `slow_r50_small`).
        precision: "fp32", or "bf16" for bf16 autocast of both backbones (opt-in: about
            2x faster per video on CPUs with AMX; its features differ from fp32 ones
            by more than rounding, so it has its own fingerprint).
    """

    num_frames: int = 32
    levels: tuple[int, ...] = (9,)
    face_size: int = 256
    margin: float = 0.2
    min_face_prob: float = MIN_FACE_PROB
    detect_max_side: int = 640
    box_smoothing: int = 1
    content_size: int = 112
    clip_len: int = 16
    add_latent_avg: bool = True
    style_model: str = STYLE_MODEL
    content_model: str = CONTENT_MODEL
    precision: str = FP32

    def __post_init__(self) -> None:
        # Configs arrive from JSON job rows with lists; keep them hashable and canonical.
        object.__setattr__(self, "levels", tuple(int(level) for level in self.levels))
        check_precision(self.precision)

    def face_cfg(self) -> FaceCfg:
        """The face-pipeline part of this configuration."""
        return FaceCfg(
            num_frames=self.num_frames,
            face_size=self.face_size,
            margin=self.margin,
            min_face_prob=self.min_face_prob,
            detect_max_side=self.detect_max_side,
            box_smoothing=self.box_smoothing,
        )


def extractor_fingerprint(cfg: ExtractorCfg, weights_sha256: Mapping[str, str | None]) -> str:
    """Hash the extractor's name, version, configuration and weights.

    Args:
        cfg: the extraction settings.
        weights_sha256: model name -> sha256 of its weights file, or None for random
            initialisation.

    Returns:
        A hex sha256, prefixed with "random-" when any backbone has random weights, so
        caches made that way can never pass for real ones.
    """
    payload = {
        "extractor": EXTRACTOR_NAME,
        "version": EXTRACTOR_VERSION,
        "cfg": _fingerprinted_cfg(cfg),
        "weights": {name: sha or "random" for name, sha in sorted(weights_sha256.items())},
    }
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    is_random = any(sha is None for sha in weights_sha256.values())
    return RANDOM_PREFIX + digest if is_random else digest


def _fingerprinted_cfg(cfg: ExtractorCfg) -> dict[str, Any]:
    # The backbones' names are hashed as the keys of `weights`, and fp32 is hashed as the
    # absence of `precision`: the fingerprints (and caches) made before either was
    # configurable stay valid.
    values = dataclasses.asdict(cfg)
    del values["style_model"], values["content_model"]
    if values["precision"] == FP32:
        del values["precision"]
    return values


def is_random_fingerprint(fingerprint: str) -> bool:
    """True for fingerprints of extractors that ran with random weights."""
    return fingerprint.startswith(RANDOM_PREFIX)


class FeatureExtractor:
    """Turns a video file into the detector's inputs.

    Build it with `build_extractor`, which also makes the networks lean and channels-last
    (`model.psp.prepare_for_inference`, `model.precision.to_channels_last`); the
    constructor takes ready modules as they are, so tests and benchmarks can wire their own.

    Args:
        cfg: extraction settings.
        style_encoder: a `psp_encoder` module.
        content_encoder: a `slow_r50` module.
        face_detector: the MTCNN wrapper.
        weights_sha256: model name -> weights sha256 (None for random weights).
        device: where the backbones run.
        batch_size: frames (style) or clips (content) per forward pass.
        compile_style: run the style network through `torch.compile` in inference
            (`model.compiled`): the same codes to rounding, faster once compiled.
    """

    def __init__(
        self,
        cfg: ExtractorCfg,
        style_encoder: nn.Module,
        content_encoder: nn.Module,
        face_detector: FaceDetector,
        weights_sha256: Mapping[str, str | None],
        *,
        device: str | torch.device = "cpu",
        batch_size: int = 8,
        compile_style: bool = False,
    ) -> None:
        self.cfg = cfg
        self.device = torch.device(device)
        self.style_encoder = style_encoder.eval().to(self.device)
        self.content_encoder = content_encoder.eval().to(self.device)
        self.face_detector = face_detector
        self.weights_sha256 = dict(weights_sha256)
        self.batch_size = batch_size
        self.style_forward: Any = self.style_encoder
        if compile_style:
            self.compile_style()
        self.fingerprint = extractor_fingerprint(cfg, self.weights_sha256)

    def compile_style(self) -> bool:
        """Run the style network through `torch.compile` from the next batch on; True
        when this call switched it on (once: a failed compilation is not retried).

        Not fingerprinted: compiled and eager codes agree to rounding (`model.compiled`).
        """
        if isinstance(self.style_forward, CompiledForward):
            return False
        self.style_forward = CompiledForward(self.style_encoder)
        return True

    @property
    def style_is_compiled(self) -> bool:
        """True while the style network runs compiled (False after a failed compilation)."""
        return isinstance(self.style_forward, CompiledForward) and self.style_forward.is_compiled

    @property
    def has_random_weights(self) -> bool:
        """True when a backbone was left with its random initialisation."""
        return is_random_fingerprint(self.fingerprint)

    def describe(self) -> dict[str, Any]:
        """Plain values identifying this extractor, for job rows and cache metadata."""
        return {
            "name": EXTRACTOR_NAME,
            "version": EXTRACTOR_VERSION,
            "cfg": json.loads(json.dumps(dataclasses.asdict(self.cfg))),  # tuples -> lists
            "weights_sha256": dict(self.weights_sha256),
            "fingerprint": self.fingerprint,
        }

    def extract(
        self, path: str | os.PathLike[str], decoded: DecodedVideo | None = None
    ) -> dict[str, Any]:
        """Extract the features of one video.

        Args:
            path: the video file.
            decoded: its sampled frames, when they were decoded ahead of time (see
                `model.prefetch.FramePrefetcher`); decoded here otherwise.

        Returns:
            A dict with `content` (ceil(T/16), 2048), `style` (T, L, 512), `boxes`
            (T, 4) int64, `fallback_per_frame` (T,) bool (centre crop used),
            `frame_source` (T,) uint8 (index into `frame_source_names`: "detected",
            "interpolated", "fallback"), `frame_indices` (T,) int64, `num_fallback`,
            `has_fallback`, `num_interpolated`, `num_video_frames`, `timings` (seconds
            per stage: decode, detect, track, crop, style, content, total) and `fingerprint`.

        Raises:
            UnreadableVideo: the file cannot be opened or has no frames.
        """
        start = time.perf_counter()
        with strict_fp32():
            track = self.face_track(path, decoded)
            style_start = time.perf_counter()
            style = self.encode_style(track.crops)
            content_start = time.perf_counter()
            content = self.encode_content(track.crops)
        end = time.perf_counter()
        timings = dict(track.timings)
        timings.update(style=content_start - style_start, content=end - content_start)
        timings["total"] = end - start
        return {
            "content": content,
            "style": style,
            "boxes": torch.from_numpy(track.boxes),
            "fallback_per_frame": torch.from_numpy(track.fallback_per_frame),
            "frame_source": torch.from_numpy(track.source_per_frame),
            "frame_source_names": list(FRAME_SOURCES),
            "frame_indices": torch.from_numpy(track.frame_indices),
            "num_fallback": track.num_fallback,
            "has_fallback": track.num_fallback > 0,
            "num_interpolated": track.num_interpolated,
            "num_video_frames": track.num_video_frames,
            "timings": timings,
            "fingerprint": self.fingerprint,
        }

    def face_track(
        self, path: str | os.PathLike[str], decoded: DecodedVideo | None = None
    ) -> FaceTrack:
        """The sampled frames' face crops, boxes and sources: what `extract` encodes.

        Raises:
            UnreadableVideo: the file cannot be opened or has no frames.
        """
        with strict_fp32():  # TF32 could flip MTCNN's boxes
            return extract_faces(path, self.cfg.face_cfg(), self.face_detector, decoded)

    @torch.inference_mode()
    def encode_style(self, crops: np.ndarray) -> Tensor:
        """(T, S, S, 3) uint8 face crops -> (T, L, 512) float32 style codes."""
        pixels = torch.from_numpy(crops)  # (T, S, S, 3) uint8
        codes = [self.style_codes(batch) for batch in pixels.split(self.batch_size)]
        return torch.cat(codes).cpu().contiguous()  # (T, L, 512); one wait for the device

    @torch.inference_mode()
    def encode_content(self, crops: np.ndarray) -> Tensor:
        """(T, S, S, 3) uint8 face crops -> (ceil(T / clip_len), 2048) float32 vectors."""
        clips = content_pixels(crops, self.cfg.content_size, self.cfg.clip_len)  # (N,16,s,s,3)
        vectors = [
            self.content_vectors(batch) for batch in torch.from_numpy(clips).split(self.batch_size)
        ]
        return torch.cat(vectors).cpu().contiguous()  # (N, 2048)

    def style_codes(self, pixels: Tensor) -> Tensor:
        """One batch through the style path: (B, S, S, 3) crops, uint8 or float pixels in
        [0, 255] (differentiable), -> (B, L, 512) float32 codes on the device."""
        with strict_fp32(), autocast_for(self.cfg.precision, self.device):
            codes = self.style_forward(self._style_batch(pixels), levels=self.cfg.levels)
        codes = codes.float()
        if self.cfg.add_latent_avg:
            codes = codes + self.style_encoder.latent_avg[list(self.cfg.levels)]
        return codes

    def content_vectors(self, clips: Tensor) -> Tensor:
        """One batch through the content path: (N, clip_len, s, s, 3) clips, uint8 or float
        pixels in [0, 255] (differentiable), -> (N, 2048) float32 vectors on the device."""
        with strict_fp32(), autocast_for(self.cfg.precision, self.device):
            return self.content_encoder(self._content_batch(clips)).float()

    def _style_batch(self, pixels: Tensor) -> Tensor:
        # Normalised on the device: a quarter of the bytes cross, and no float host copy.
        return channels_last_input(normalise_style(upload(pixels, self.device)))

    def _content_batch(self, pixels: Tensor) -> Tensor:
        return channels_last_input(normalise_content(upload(pixels, self.device)))


def upload(pixels: Tensor, device: torch.device) -> Tensor:
    """Copy a batch of uint8 pixels to `device`; from pinned memory, without waiting, to a GPU.

    The copy overlaps the kernels still queued, since the outputs are only read back once
    per video.
    """
    if device.type == "cuda":
        pixels = pixels.pin_memory()
    return pixels.to(device, non_blocking=True)


def build_extractor(
    cfg: ExtractorCfg | None = None,
    *,
    weights_dir: str | os.PathLike[str] | None = None,
    psp_weights: str | os.PathLike[str] | None = None,
    slow_r50_weights: str | os.PathLike[str] | None = None,
    allow_random_weights: bool = False,
    device: str | torch.device = "cpu",
    batch_size: int = 8,
    compile_style: bool = False,
) -> FeatureExtractor:
    """Build the extractor with weights from explicit paths or the weights directory.

    Args:
        cfg: extraction settings; defaults to the seed's.
        weights_dir: folder holding the official files (`psp_ffhq_encode.pt`,
            `SLOW_8x8_R50.pyth`); the caller reads it from `DDM_WEIGHTS_DIR`.
        psp_weights: explicit pSp weights path; must exist when given.
        slow_r50_weights: explicit Slow R50 weights path; must exist when given.
        allow_random_weights: keep random initialisation for a backbone whose file is
            not in `weights_dir`; the fingerprint then starts with "random-".
        device: where the networks run.
        batch_size: frames or clips per forward pass.
        compile_style: compile the style network (`model.compiled`); the first batch
            then pays the compilation.

    Raises:
        WeightsNotFound: a file is missing and random weights were not allowed.
        IncompatibleWeights: a file does not match its network.
    """
    cfg = cfg or ExtractorCfg()
    style, style_sha = _backbone(
        cfg.style_model, psp_weights, weights_dir, allow_random_weights, levels=cfg.levels
    )
    content, content_sha = _backbone(
        cfg.content_model, slow_r50_weights, weights_dir, allow_random_weights
    )
    # Lean and channels-last, since this call built them: modules passed to
    # FeatureExtractor directly are used as they are.
    style = to_channels_last(prepare_for_inference(style))
    content = to_channels_last(content)
    return FeatureExtractor(
        cfg,
        style,
        content,
        FaceDetector(cfg.face_cfg(), device=device),
        {cfg.style_model: style_sha, cfg.content_model: content_sha},
        device=device,
        batch_size=batch_size,
        compile_style=compile_style,
    )


def _backbone(
    name: str,
    path: str | os.PathLike[str] | None,
    weights_dir: str | os.PathLike[str] | None,
    allow_random: bool,
    **kwargs: Any,
) -> tuple[nn.Module, str | None]:
    # Resolve before building: a missing file should fail fast, not after ~1 GB of init.
    try:
        weights = resolve_weights(name, path=path, weights_dir=weights_dir)
    except WeightsNotFound:
        # An explicit path that does not exist is always an error, never a silent fallback.
        if path is not None or not allow_random:
            raise
        logger.warning("model=%s no weights found; using random weights as allowed", name)
        return create_model(name, **kwargs).eval(), None
    model = create_model(name, **kwargs)
    return model.eval(), load_model_weights(model, name, weights).sha256


def save_features(path: str | os.PathLike[str], features: Mapping[str, Any]) -> None:
    """Write one video's features atomically.

    A `.safetensors` path stores the tensors plus the scalars as string metadata, which
    the catalog layer can read with numpy alone; any other suffix uses `torch.save`
    (read back with `weights_only=True`).
    """
    _require_feature_keys(features, path)
    problem = non_finite_problem(features)
    if problem is not None:
        # One NaN in a cache file poisons every statistic fitted over a training set.
        raise IncompatibleFeatures(f"refusing to cache {str(path)!r}: {problem}")
    with atomic_write(path) as handle:
        if Path(path).suffix == ".safetensors":
            handle.write(_safetensors_bytes(features))
        else:
            torch.save(dict(features), handle)


def non_finite_problem(features: Mapping[str, Any]) -> str | None:
    """What is non-finite in a video's `content` and `style`, in words; None when nothing is.

    Returns:
        e.g. "'style' holds 3 non-finite values (NaN or inf) of 16384".
    """
    for key in ("content", "style"):
        value = features[key]
        bad = int((~torch.isfinite(value)).sum())
        if bad:
            noun = "value" if bad == 1 else "values"
            return f"{key!r} holds {bad} non-finite {noun} (NaN or inf) of {value.numel()}"
    return None


def _safetensors_bytes(features: Mapping[str, Any]) -> bytes:
    from safetensors.torch import save

    tensors = {k: v.contiguous() for k, v in features.items() if isinstance(v, Tensor)}
    extras = {k: v for k, v in features.items() if k not in tensors}
    return save(tensors, metadata={"json": json.dumps(extras, sort_keys=True)})


def load_features(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a feature file written by `save_features` (or any weights_only-safe dict).

    Raises:
        IncompatibleFeatures: the file is refused or lacks `content` or `style`.
    """
    if not Path(path).is_file():
        raise IncompatibleFeatures(f"feature file {str(path)!r} does not exist; re-extract it")
    try:
        features = dict(read_weights_file(path))
    except IncompatibleWeights as exc:
        raise IncompatibleFeatures(f"feature file {str(path)!r} is unreadable: {exc}") from exc
    if Path(path).suffix == ".safetensors":
        features.update(_safetensors_metadata(path))
    _require_feature_keys(features, path)
    return features


def _safetensors_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    return json.loads(metadata.get("json", "{}"))


def _require_feature_keys(features: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    for key, ndim in (("content", 2), ("style", 3)):
        value = features.get(key)
        if not isinstance(value, Tensor) or value.ndim != ndim:
            raise IncompatibleFeatures(
                f"feature file {str(path)!r}: {key!r} must be a {ndim}-d tensor; "
                f"re-extract the video"
            )
