"""Face tracks over the sampled frames of a video: link per-frame detections, pick the
subject, fill the frames it was missed on and smooth its boxes (model layer; numpy only).

The style flow is a frame-to-frame difference, so a crop that jumps to another person or
to an empty corner for one frame is a spike that looks like the very artefact the
detector hunts for; every sampled frame's box therefore comes from one track.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

# How each sampled frame got its box; a frame's code is its index in FRAME_SOURCES.
DETECTED, INTERPOLATED, FALLBACK = 0, 1, 2
FRAME_SOURCES = ("detected", "interpolated", "fallback")

# A detection joins a track when its centre lies within this many face sizes of the
# track's last box. Sampled frames are ~10 video frames apart at T=32, and the fastest
# head motion in the real clips moved the centre 0.45 face sizes between samples, while
# two people side by side stand well over 1.5 face sizes apart.
MAX_CENTRE_SHIFT = 1.0
# ... and when its size is within this factor of the track's: a face in the background
# near the subject (3x smaller in FF++ 004) must not be taken for it.
MAX_SIZE_RATIO = 1.6
# A lone detection is indistinguishable from a one-off false positive (on a real DFDC
# clip MTCNN scored a shadow on the wall 0.995 for one frame), so a track needs two.
MIN_TRACK_DETECTIONS = 2


@dataclass(frozen=True)
class FrameDetections:
    """The faces found on one frame.

    Attributes:
        boxes: (N, 4) float64 (x0, y0, x1, y1) in source pixels.
        probs: (N,) float64 MTCNN probabilities.
    """

    boxes: np.ndarray
    probs: np.ndarray

    @classmethod
    def empty(cls) -> FrameDetections:
        """No face on this frame."""
        return cls(np.zeros((0, 4)), np.zeros(0))

    def __len__(self) -> int:
        return len(self.boxes)


@dataclass
class Track:
    """One face followed over the sampled frames: which frames it was detected on, and
    its detection box on each of them."""

    frames: list[int] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)

    def add(self, frame: int, box: np.ndarray) -> None:
        self.frames.append(frame)
        self.boxes.append(box)

    @property
    def mean_size(self) -> float:
        return float(np.mean([_size(box) for box in self.boxes]))


def _size(box: np.ndarray) -> float:
    # The geometric mean of width and height: MTCNN's box aspect varies with pose.
    return float(np.sqrt(max(box[2] - box[0], 1e-6) * max(box[3] - box[1], 1e-6)))


def _centre(box: np.ndarray) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])


def _link_cost(last: np.ndarray, box: np.ndarray) -> float | None:
    """Centre distance in face sizes, or None when the two boxes cannot be one face."""
    last_size, size = _size(last), _size(box)
    if max(last_size, size) / min(last_size, size) > MAX_SIZE_RATIO:
        return None
    shift = float(np.linalg.norm(_centre(last) - _centre(box))) / ((last_size + size) / 2)
    return shift if shift <= MAX_CENTRE_SHIFT else None


class TrackLinker:
    """Links detections into tracks one frame at a time, in time order, by position and
    size: each frame's detections are matched greedily, closest pair first, to the last
    box of every live track (a track survives frames it was missed on); a detection
    matching no track starts a new one.

    Frames are named by any increasing key (a sampled position, a video frame index), so
    one linker can follow a face over a whole video while it is being decoded.
    """

    def __init__(self) -> None:
        self.tracks: list[Track] = []

    def add(self, frame: int, found: FrameDetections) -> None:
        """Link the detections of `frame`, which must come after every frame added so far."""
        pairs = []
        for t, track in enumerate(self.tracks):
            for d, box in enumerate(found.boxes):
                cost = _link_cost(track.boxes[-1], box)
                if cost is not None:
                    pairs.append((cost, t, d))
        used_tracks: set[int] = set()
        used_boxes: set[int] = set()
        for _, t, d in sorted(pairs):
            if t not in used_tracks and d not in used_boxes:
                self.tracks[t].add(frame, found.boxes[d])
                used_tracks.add(t)
                used_boxes.add(d)
        for d, box in enumerate(found.boxes):
            if d not in used_boxes:
                self.tracks.append(Track([frame], [box]))

    def forget_before(self, frame: int, keep: Track | None = None) -> None:
        """Drop what no later window can use: the detections before `frame` (a track's
        last box stays, to link to) and the tracks last seen before it, except `keep`.

        Bounds the memory of a linker that follows a stream for hours.
        """
        self.tracks = [t for t in self.tracks if t is keep or t.frames[-1] >= frame]
        for track in self.tracks:
            first = next((i for i, f in enumerate(track.frames) if f >= frame), len(track.frames))
            first = min(first, len(track.frames) - 1)
            del track.frames[:first], track.boxes[:first]


def link_tracks(detections: Sequence[FrameDetections]) -> list[Track]:
    """Link the detections of consecutive frames into tracks (see `TrackLinker`); frame
    keys are the positions in `detections`."""
    linker = TrackLinker()
    for frame, found in enumerate(detections):
        linker.add(frame, found)
    return linker.tracks


def pick_subject(tracks: Sequence[Track], num_frames: int) -> Track | None:
    """The track on most frames (ties: the larger mean face), or None when no track is
    long enough to be a face rather than a stray detection."""
    needed = min(MIN_TRACK_DETECTIONS, num_frames)
    candidates = [track for track in tracks if len(track.frames) >= needed]
    if not candidates:
        return None
    return max(candidates, key=lambda track: (len(track.frames), track.mean_size))


def fill_track(track: Track, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """A box for every sampled frame: the track's own where detected, else interpolated
    linearly between its nearest detected neighbours (held at the ends).

    Returns:
        ((T, 4) float64 boxes, (T,) uint8 source codes: DETECTED or INTERPOLATED).
    """
    known = np.asarray(track.frames)
    coords = np.stack(track.boxes).astype(np.float64)  # (K, 4)
    everywhere = np.arange(num_frames)
    # np.interp holds the first and last values beyond the ends, as wanted.
    boxes = np.stack([np.interp(everywhere, known, coords[:, i]) for i in range(4)], axis=1)
    sources = np.full(num_frames, INTERPOLATED, dtype=np.uint8)
    sources[known] = DETECTED
    return boxes, sources


def smooth_boxes(boxes: np.ndarray, radius: int) -> np.ndarray:
    """Smooth box centres and sizes over time with a binomial kernel of `radius`.

    MTCNN's boxes on a still face jitter by a few pixels and a few percent in size; a
    crop following that jitter turns it into style flow. The kernel (1, 2, 1)/4 at
    radius 1 is light enough to follow a moving head between samples. Ends are padded by
    repetition, so a still track stays exactly where it is.

    Args:
        boxes: (T, 4) (x0, y0, x1, y1).
        radius: half-width of the kernel in sampled frames; 0 returns the boxes as they are.
    """
    if radius <= 0 or len(boxes) < 2:
        return boxes.astype(np.float64)
    kernel = np.array([1.0])
    for _ in range(2 * radius):
        kernel = np.convolve(kernel, [0.5, 0.5])
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    size = boxes[:, 2:] - boxes[:, :2]
    params = np.concatenate([centre, size], axis=1)  # (T, 4): cx, cy, w, h
    padded = np.pad(params, ((radius, radius), (0, 0)), mode="edge")
    smooth = np.stack([np.convolve(padded[:, i], kernel, mode="valid") for i in range(4)], axis=1)
    return np.concatenate([smooth[:, :2] - smooth[:, 2:] / 2, smooth[:, :2] + smooth[:, 2:] / 2], 1)


def subject_boxes(
    detections: Sequence[FrameDetections], smoothing: int
) -> tuple[np.ndarray | None, np.ndarray]:
    """Follow the video's subject through the sampled frames.

    Returns:
        ((T, 4) float64 smoothed detection boxes, or None when no face track exists;
        (T,) uint8 source codes, all FALLBACK in the None case).
    """
    num_frames = len(detections)
    return track_boxes(pick_subject(link_tracks(detections), num_frames), num_frames, smoothing)


def track_boxes(
    subject: Track | None, num_frames: int, smoothing: int
) -> tuple[np.ndarray | None, np.ndarray]:
    """The subject's filled and smoothed boxes on `num_frames` sampled frames (its frame
    keys are positions 0..T-1), or (None, all FALLBACK) without a subject."""
    if subject is None:
        return None, np.full(num_frames, FALLBACK, dtype=np.uint8)
    boxes, sources = fill_track(subject, num_frames)
    return smooth_boxes(boxes, smoothing), sources


def restrict(track: Track, samples: Sequence[int]) -> Track:
    """`track` seen through one window: keyed by position in `samples` (the window's
    sampled frame keys, in order, repeats allowed), as a cut of the video to that window
    would have linked it."""
    boxes = dict(zip(track.frames, track.boxes, strict=True))
    window = Track()
    for position, frame in enumerate(samples):
        if frame in boxes:
            window.add(position, boxes[frame])
    return window


def window_subject(
    tracks: Sequence[Track], samples: Sequence[int], followed: Track | None
) -> tuple[Track | None, Track | None]:
    """The subject of one window of a video whose tracks were linked over the whole of it.

    The subject followed so far keeps the part wherever it has a track in this window (at
    least `MIN_TRACK_DETECTIONS` detections); otherwise the window's own subject is picked
    as `pick_subject` picks a video's. Where the window holds one face track, that is the
    very track a video cut to the window would follow.

    Returns:
        (the video track now followed, or None; the subject restricted to the window).
    """
    seen = [(track, restrict(track, samples)) for track in tracks]
    needed = min(MIN_TRACK_DETECTIONS, len(samples))
    if followed is not None:
        for track, window in seen:
            if track is followed and len(window.frames) >= needed:
                return track, window
    pick = pick_subject([window for _, window in seen], len(samples))
    if pick is None:
        return followed, None
    return next(track for track, window in seen if window is pick), pick
