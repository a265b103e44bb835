"""The seed's preprocessing: uniform frame sampling, MTCNN face crops that follow one face
track (centre crop only when a video has none), and the two normalisations of the style
and content paths (model layer).

Decoding uses OpenCV; detection uses facenet-pytorch's MTCNN, whose weights ship inside
the package, so nothing is downloaded.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from torch import Tensor

from model.errors import UnreadableVideo
from model.tracking import FALLBACK, INTERPOLATED, FrameDetections, subject_boxes

logger = logging.getLogger(__name__)

STYLE_MEAN, STYLE_STD = 0.5, 0.5  # pSp's input contract
CONTENT_MEAN, CONTENT_STD = 0.45, 0.225  # PyTorchVideo's Kinetics contract
# Keep every face MTCNN's own last stage passes (its threshold is 0.7): probability does
# not separate the subject from other detections, the track does. Measured on the real
# clips (T=32): the subject's detections scored 0.83 to 1.0, but 34 of the 72 others
# (background faces, shadows, hands) scored 0.9 or more, 12 of them 0.99 or more; on
# blurred and darkened frames 13 of 221 subject detections fell below 0.9 and 6 below 0.8,
# and the DFDC clip shows a visible face at 0.72. A cut above 0.7 thus loses real
# faces without removing the worst false ones, which `model.tracking` discards instead.
MIN_FACE_PROB = 0.7


@dataclass(frozen=True)
class FaceCfg:
    """How frames are sampled and faces cropped.

    Attributes:
        num_frames: frames sampled uniformly over the whole video (T).
        face_size: side of the square face crops fed to the style encoder.
        margin: fraction of the detected box's longer side added around it in total
            (half on each side) before cropping.
        min_face_prob: MTCNN probability below which a detection is ignored (see
            MIN_FACE_PROB).
        detect_max_side: frames are downscaled to this longer side for a first detection
            pass; MTCNN's image pyramid on full-HD frames is about 4x slower on CPU.
        box_smoothing: radius, in sampled frames, of the temporal smoothing of the
            subject's box centre and size; 0 turns it off.
    """

    num_frames: int = 32
    face_size: int = 256
    margin: float = 0.2
    min_face_prob: float = MIN_FACE_PROB
    detect_max_side: int = 640
    box_smoothing: int = 1


@dataclass
class FaceTrack:
    """Face crops of the sampled frames of one video.

    Attributes:
        crops: (T, S, S, 3) uint8 RGB crops.
        boxes: (T, 4) int crop boxes (x0, y0, x1, y1) in source pixels, fallback included.
        source_per_frame: (T,) uint8 codes into `model.tracking.FRAME_SOURCES`: how each
            frame's box was obtained (detected, interpolated from the subject's track,
            or the centre-crop fallback).
        frame_indices: (T,) the source frame index of each sample.
        num_video_frames: frames decoded from the video.
        timings: seconds spent per stage ("decode", "detect", "track", "crop").
    """

    crops: np.ndarray
    boxes: np.ndarray
    source_per_frame: np.ndarray
    frame_indices: np.ndarray
    num_video_frames: int
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def fallback_per_frame(self) -> np.ndarray:
        """(T,) bool, True where the centre crop was used (no face track in the video)."""
        return self.source_per_frame == FALLBACK

    @property
    def num_fallback(self) -> int:
        """Number of sampled frames that fell back to the centre crop."""
        return int(self.fallback_per_frame.sum())

    @property
    def num_interpolated(self) -> int:
        """Number of sampled frames whose box was interpolated along the subject's track."""
        return int((self.source_per_frame == INTERPOLATED).sum())


@dataclass(frozen=True)
class DecodedVideo:
    """The uniformly sampled frames of one video, as `decode_video` returns them.

    Attributes:
        frames: (T, H, W, 3) uint8 RGB.
        indices: (T,) the source frame index of each sample.
        num_video_frames: frames in the video.
        seconds: time the decoding took (in whichever thread ran it).
    """

    frames: np.ndarray
    indices: np.ndarray
    num_video_frames: int
    seconds: float


def decode_video(path: str | os.PathLike[str], num_samples: int) -> DecodedVideo:
    """`read_frames`, timed and packed for `extract_faces`.

    Raises:
        UnreadableVideo: the file cannot be opened or yields no frames.
    """
    start = time.perf_counter()
    frames, indices, num_video_frames = read_frames(path, num_samples)
    return DecodedVideo(frames, indices, num_video_frames, time.perf_counter() - start)


def sample_frame_indices(num_video_frames: int, num_samples: int) -> np.ndarray:
    """Pick `num_samples` frame indices spread uniformly over the video.

    Videos shorter than `num_samples` are padded circularly: 0, 1, ..., n-1, 0, 1, ...

    Raises:
        ValueError: either count is not positive.
    """
    if num_video_frames <= 0 or num_samples <= 0:
        raise ValueError(f"need positive counts, got {num_video_frames} and {num_samples}")
    if num_video_frames < num_samples:
        return np.arange(num_samples) % num_video_frames
    return np.linspace(0, num_video_frames - 1, num_samples).round().astype(np.int64)


def read_frames(
    path: str | os.PathLike[str], num_samples: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Decode the uniformly sampled frames of a video.

    Returns:
        (frames (T, H, W, 3) uint8 RGB, frame indices (T,), frames in the video).

    Raises:
        UnreadableVideo: the file cannot be opened or yields no frames.
    """
    reported = _reported_frame_count(path)
    if reported > 0:
        indices = sample_frame_indices(reported, num_samples)
        frames, decoded = _decode_at(path, indices)
        if all(int(i) in frames for i in indices):
            return _expand(frames, indices), indices, reported
    else:
        decoded = _count_frames(path)
    # The container's frame count was missing or too high (e.g. a truncated file):
    # sample again over the frames that actually decode.
    if decoded == 0:
        raise UnreadableVideo(f"video {str(path)!r} decodes to zero frames")
    indices = sample_frame_indices(decoded, num_samples)
    frames, _ = _decode_at(path, indices)
    missing = sorted({int(i) for i in indices} - frames.keys())
    if missing:
        raise UnreadableVideo(f"video {str(path)!r}: frames {missing[:5]} cannot be decoded")
    return _expand(frames, indices), indices, decoded


def read_sampled_frame(
    path: str | os.PathLike[str], indices: Sequence[int], position: int
) -> np.ndarray:
    """Frame `indices[position]` of a video that `read_frames(path, len(indices))` sampled
    at `indices`, decoding only up to it when the container's frame count still gives those
    indices (a thumbnail of the first frame need not decode the clip to its end); otherwise
    through `read_frames`, whose resampling over the frames that decode must give them.

    Raises:
        UnreadableVideo: the file cannot be read, or its sampling no longer gives `indices`
            (the file changed since they were taken).
    """
    wanted = [int(i) for i in indices]
    reported = _reported_frame_count(path)
    if reported > 0 and [int(i) for i in sample_frame_indices(reported, len(wanted))] == wanted:
        frames, _ = _decode_at(path, np.asarray(wanted[position : position + 1]))
        if wanted[position] in frames:
            return frames[wanted[position]]
    frames_read, read, _ = read_frames(path, len(wanted))
    if [int(i) for i in read] != wanted:
        raise UnreadableVideo(f"video {str(path)!r} changed since it was sampled")
    return frames_read[position]  # type: ignore[no-any-return]


def open_video(path: str | os.PathLike[str]) -> cv2.VideoCapture:
    """An open capture of a video file; the caller releases it.

    Raises:
        UnreadableVideo: the file does not exist or OpenCV cannot open it.
    """
    if not os.path.isfile(path):
        raise UnreadableVideo(f"video {str(path)!r} does not exist")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise UnreadableVideo(f"video {str(path)!r} cannot be opened by OpenCV/FFmpeg")
    return capture


def _reported_frame_count(path: str | os.PathLike[str]) -> int:
    capture = open_video(path)
    try:
        return max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
    finally:
        capture.release()


def _count_frames(path: str | os.PathLike[str]) -> int:
    capture = open_video(path)
    count = 0
    try:
        while capture.grab():
            count += 1
    finally:
        capture.release()
    return count


def _decode_at(
    path: str | os.PathLike[str], indices: np.ndarray
) -> tuple[dict[int, np.ndarray], int]:
    wanted = set(int(i) for i in indices)
    frames: dict[int, np.ndarray] = {}
    grabbed = 0
    for index, frame in grab_frames(path, wanted.__contains__, max(wanted)):
        grabbed += 1
        if frame is not None:
            frames[index] = frame
    return frames, grabbed


def grab_frames(
    path: str | os.PathLike[str], is_wanted: Callable[[int], bool], last: int | None = None
) -> Iterator[tuple[int, np.ndarray | None]]:
    """Decode a video from its first frame, in order: (index, RGB frame) for every frame,
    the frame None unless `is_wanted(index)` (only those are converted).

    Sequential grab/retrieve instead of seeking: seeking in long-GOP H.264 through OpenCV
    lands on keyframes and silently returns the wrong frame.

    Args:
        path: the video file.
        is_wanted: which frames to return.
        last: stop after this index (None: at the end of the video).

    Raises:
        UnreadableVideo: the file cannot be opened.
    """
    capture = open_video(path)
    try:
        yield from capture_frames(capture, is_wanted, last)
    finally:
        capture.release()


def capture_frames(
    capture: cv2.VideoCapture, is_wanted: Callable[[int], bool], last: int | None = None
) -> Iterator[tuple[int, np.ndarray | None]]:
    """`grab_frames` of an open capture (a file, a pipe, a camera, a network stream); the
    caller releases it."""
    index = 0
    while (last is None or index <= last) and capture.grab():
        frame = None
        if is_wanted(index):
            ok, bgr = capture.retrieve()
            if ok:
                frame = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        yield index, frame
        index += 1


def _expand(frames: dict[int, np.ndarray], indices: np.ndarray) -> np.ndarray:
    return np.stack([frames[int(i)] for i in indices])


def square_box(box: Sequence[float], width: int, height: int, margin: float) -> np.ndarray:
    """Grow a detection box into a square crop box that lies inside the frame.

    The side is the box's longer side times (1 + margin), capped at the frame's shorter
    side; the square is shifted, not shrunk, when it would leave the frame, so crops keep
    the face's aspect ratio.

    Returns:
        int array (x0, y0, x1, y1), exclusive of x1 and y1.
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    side = min(max(x1 - x0, y1 - y0) * (1 + margin), width, height)
    side = max(int(round(side)), 1)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = int(np.clip(round(cx - side / 2), 0, width - side))
    top = int(np.clip(round(cy - side / 2), 0, height - side))
    return np.array([left, top, left + side, top + side], dtype=np.int64)


def centre_box(width: int, height: int) -> np.ndarray:
    """The largest centred square of a frame: the fallback when no face is found."""
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return np.array([left, top, left + side, top + side], dtype=np.int64)


def crop_resize(frame: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """Cut `box` out of an (H, W, 3) frame and resize it to `size` x `size`."""
    x0, y0, x1, y1 = (int(v) for v in box)
    crop = frame[y0:y1, x0:x1]
    return cv2.resize(crop, (size, size), interpolation=_interpolation(crop.shape[0], size))


def _interpolation(side: int, size: int) -> int:
    # INTER_AREA avoids aliasing when shrinking; it degrades to bilinear-like when growing.
    return cv2.INTER_AREA if side > size else cv2.INTER_LINEAR


def resize_matrix(side: int, size: int) -> np.ndarray:
    """The linear map `crop_resize` applies along each axis of a square crop.

    Both interpolations are separable, so resizing an (side, side) image X gives
    R @ X @ R.T with R of shape (size, side), before rounding to uint8; the saliency
    maps (model/saliency.py) carry gradients back through it.
    """
    identity = np.eye(side, dtype=np.float32)
    return cv2.resize(identity, (side, size), interpolation=_interpolation(side, size))


class FaceDetector:
    """facenet-pytorch MTCNN returning every face above the confidence cut, per frame.

    Args:
        cfg: detection settings.
        device: where MTCNN runs.
        batch_size: frames per MTCNN call; bounds peak memory, does not change results.
            Defaults to 16 on a CPU and 64 on a GPU, where larger batches keep it busy.
    """

    def __init__(
        self, cfg: FaceCfg, device: str | torch.device = "cpu", batch_size: int | None = None
    ) -> None:
        from facenet_pytorch import MTCNN  # heavy import; only needed when detecting

        from model.mtcnn import detect_faces, use_strided_pooling

        self.cfg = cfg
        is_gpu = torch.device(device).type == "cuda"
        self.batch_size = batch_size or (64 if is_gpu else 16)
        self.mtcnn = MTCNN(keep_all=True, device=torch.device(device))
        if not is_gpu:  # measured on CPUs only; the same values either way
            use_strided_pooling(self.mtcnn.pnet, self.mtcnn.rnet, self.mtcnn.onet)
        # facenet-pytorch's networks and settings, but our pass: its own waits on the
        # device once per candidate box (see model.mtcnn).
        self._detect_faces = detect_faces

    def detect(self, frames: np.ndarray) -> list[FrameDetections]:
        """Return the faces with probability >= `cfg.min_face_prob` on each frame, boxes in
        source pixels.

        Detection runs on downscaled frames first; frames where that finds nothing are
        retried at full resolution, because small or distant faces vanish when shrunk.
        """
        scale = min(1.0, self.cfg.detect_max_side / max(frames.shape[1:3]))
        found = self._detect_at(frames if scale == 1.0 else _downscale(frames, scale), scale)
        missed = [i for i, faces in enumerate(found) if len(faces) == 0]
        if missed and scale < 1.0:
            for i, faces in zip(missed, self._detect_at(frames[missed], 1.0), strict=True):
                found[i] = faces
        return found

    def _detect_at(self, frames: np.ndarray, scale: float) -> list[FrameDetections]:
        found: list[FrameDetections] = []
        for start in range(0, len(frames), self.batch_size):
            batch = frames[start : start + self.batch_size]
            batch_boxes, batch_probs, _ = self._detect_faces(self.mtcnn, batch)
            found.extend(
                self._keep(b, p, scale) for b, p in zip(batch_boxes, batch_probs, strict=True)
            )
        return found

    def _keep(
        self, boxes: np.ndarray | None, probs: np.ndarray | None, scale: float
    ) -> FrameDetections:
        if boxes is None or probs is None:
            return FrameDetections.empty()
        probs = np.asarray(probs, dtype=np.float64)
        confident = probs >= self.cfg.min_face_prob
        return FrameDetections(np.asarray(boxes, np.float64)[confident] / scale, probs[confident])


def _downscale(frames: np.ndarray, scale: float) -> np.ndarray:
    height, width = frames.shape[1:3]
    size = (round(width * scale), round(height * scale))
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])


def extract_faces(
    path: str | os.PathLike[str],
    cfg: FaceCfg,
    detector: FaceDetector,
    decoded_video: DecodedVideo | None = None,
) -> FaceTrack:
    """Sample `cfg.num_frames` frames of a video and crop its subject's face in each.

    The subject is the face track present on most sampled frames (`model.tracking`);
    frames it was missed on take its interpolated box, and only a video without any
    track falls back to the centre crop, on every frame.

    Args:
        path: the video file.
        cfg: sampling and cropping settings.
        detector: the face detector.
        decoded_video: the sampled frames, when they were decoded ahead of time; they
            must have been sampled with `cfg.num_frames`.

    Raises:
        UnreadableVideo: the video cannot be opened or has no frames.
        ValueError: `decoded_video` holds another number of frames.
    """
    if decoded_video is None:
        decoded_video = decode_video(path, cfg.num_frames)
    elif len(decoded_video.frames) != cfg.num_frames:
        raise ValueError(
            f"{path}: {len(decoded_video.frames)} frames were decoded ahead, not {cfg.num_frames}"
        )
    frames, indices = decoded_video.frames, decoded_video.indices
    num_video_frames = decoded_video.num_video_frames
    decoded = time.perf_counter()
    detections = detector.detect(frames)
    detected = time.perf_counter()
    boxes, sources = crop_boxes(detections, frames.shape[2], frames.shape[1], cfg)
    tracked = time.perf_counter()
    crops = crop_faces(frames, boxes, cfg.face_size)
    cropped = time.perf_counter()
    if sources[0] == FALLBACK:
        logger.debug("path=%s no face track: centre crop on all %d frames", path, len(sources))
    return FaceTrack(
        crops=crops,
        boxes=boxes,
        source_per_frame=sources,
        frame_indices=indices,
        num_video_frames=num_video_frames,
        timings={
            "decode": decoded_video.seconds,
            "detect": detected - decoded,
            "track": tracked - detected,
            "crop": cropped - tracked,
        },
    )


def crop_boxes(
    detections: list[FrameDetections], width: int, height: int, cfg: FaceCfg
) -> tuple[np.ndarray, np.ndarray]:
    """Square crop boxes of the subject's track on every frame, or the centre crop on
    every frame when there is no track.

    Returns:
        ((T, 4) int64 crop boxes, (T,) uint8 source codes).
    """
    track, sources = subject_boxes(detections, cfg.box_smoothing)
    return square_boxes(track, len(detections), width, height, cfg), sources


def square_boxes(
    track: np.ndarray | None, num_frames: int, width: int, height: int, cfg: FaceCfg
) -> np.ndarray:
    """(T, 4) int64 crop boxes from the subject's (T, 4) detection boxes, or the centre
    crop on all `num_frames` frames when there is no subject (`track` None)."""
    if track is None:
        return np.stack([centre_box(width, height)] * num_frames)
    return np.stack([square_box(box, width, height, cfg.margin) for box in track])


def crop_faces(frames: Sequence[np.ndarray], boxes: np.ndarray, size: int) -> np.ndarray:
    """(T, size, size, 3) uint8: each frame's box, resized (see `crop_resize`)."""
    return np.stack([crop_resize(f, b, size) for f, b in zip(frames, boxes, strict=True)])


def style_input(crops: np.ndarray) -> Tensor:
    """(T, S, S, 3) uint8 crops -> (T, 3, S, S) floats normalised with mean/std 0.5."""
    return normalise_style(torch.from_numpy(crops))


def normalise_style(pixels: Tensor) -> Tensor:
    """(B, S, S, 3) uint8 (or float) crops, on any device -> (B, 3, S, S) floats there,
    mean/std 0.5."""
    x = _float_copy(pixels.permute(0, 3, 1, 2)).div_(255)
    return x.sub_(STYLE_MEAN).div_(STYLE_STD)


def _float_copy(pixels: Tensor) -> Tensor:
    # Always a new tensor, so the in-place steps never write into float pixels that the
    # saliency maps differentiate; for uint8 it is the conversion `float()` made anyway.
    return pixels.to(torch.float32, copy=True)


def content_input(crops: np.ndarray, size: int = 112, clip_len: int = 16) -> Tensor:
    """Cut the crops into clips for the content encoder.

    The T crops are resized to `size`, normalised with mean 0.45 / std 0.225 and split
    into ceil(T / clip_len) consecutive clips; a short last clip (or a single clip when
    T < clip_len) is padded circularly with its own frames.

    Returns:
        (ceil(T / clip_len), 3, clip_len, size, size) floats.
    """
    return normalise_content(torch.from_numpy(content_pixels(crops, size, clip_len)))


def content_pixels(crops: np.ndarray, size: int = 112, clip_len: int = 16) -> np.ndarray:
    """The clips of `content_input` before normalisation.

    Returns:
        (ceil(T / clip_len), clip_len, size, size, 3) uint8.
    """
    small = content_frames(crops, size)  # (T, s, s, 3)
    return small[clip_frame_indices(len(small), clip_len)]


def content_frames(crops: np.ndarray, size: int = 112) -> np.ndarray:
    """(T, S, S, 3) uint8 crops resized for the content path -> (T, size, size, 3) uint8."""
    whole = np.array([0, 0, crops.shape[2], crops.shape[1]])
    return np.stack([crop_resize(crop, whole, size) for crop in crops])


def clip_frame_indices(num_frames: int, clip_len: int = 16) -> np.ndarray:
    """Which sampled frame fills each place of each content clip.

    Returns:
        (ceil(T / clip_len), clip_len) int64: consecutive frames, a short last clip
        padded circularly with its own frames.
    """
    clips = []
    for start in range(0, num_frames, clip_len):
        length = min(clip_len, num_frames - start)
        clips.append(start + np.arange(clip_len) % length)
    return np.stack(clips).astype(np.int64)


def normalise_content(pixels: Tensor) -> Tensor:
    """(N, L, s, s, 3) uint8 (or float) clips, on any device -> (N, 3, L, s, s) floats
    there, normalised with mean 0.45 / std 0.225."""
    x = _float_copy(pixels.permute(0, 4, 1, 2, 3)).div_(255)
    return x.sub_(CONTENT_MEAN).div_(CONTENT_STD)
