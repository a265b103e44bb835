"""Scores over time: a long video judged window by window, each window sampled with the
extractor's T exactly as a video cut to that window would be, while the subject's face is
followed over the whole video and its frames are decoded once, in order (model layer).

The face pipeline (`model.faces`, `model.tracking`) and the extractor's encoders are the
very ones whole-video extraction runs; only the bookkeeping of windows lives here.
"""

from __future__ import annotations

import logging
import math
import os
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import nn

from model.errors import UnreadableVideo
from model.faces import (
    FaceCfg,
    FaceDetector,
    FaceTrack,
    crop_faces,
    grab_frames,
    open_video,
    sample_frame_indices,
    square_boxes,
)
from model.features import FeatureExtractor
from model.precision import strict_fp32
from model.tracking import FALLBACK, Track, TrackLinker, track_boxes, window_subject

logger = logging.getLogger(__name__)

# The verdict over windows: a video is as fake as its most suspicious window, since a
# manipulation of one part is a fake video; the window that gave it is the deciding one.
VERDICT_RULE = "max"


@dataclass(frozen=True)
class Window:
    """One window of a video: frames [start_frame, end_frame) and the T frames it samples,
    the ones `model.faces.sample_frame_indices` picks in a video cut to it."""

    index: int
    start_frame: int
    end_frame: int  # exclusive
    samples: np.ndarray  # (T,) int64 video frame indices, repeats where the window is short

    @property
    def last(self) -> int:
        """The frame that completes the window."""
        return int(self.samples.max())


@dataclass(frozen=True)
class WindowScore:
    """A window's score and how its faces were found."""

    window: Window
    score: float  # P(fake), from the logit in float64
    logit: float
    source_per_frame: np.ndarray  # (T,) codes into model.tracking.FRAME_SOURCES
    boxes: np.ndarray  # (T, 4) int64 crop boxes

    @property
    def fallback_frames(self) -> int:
        return int((self.source_per_frame == FALLBACK).sum())

    @property
    def distinct_frames(self) -> int:
        return len({int(i) for i in self.window.samples})


@dataclass(frozen=True)
class VideoWindows:
    """Every window of one video, in order, and the video's timing."""

    fps: float
    num_video_frames: int
    windows: list[WindowScore]

    def deciding(self) -> WindowScore:
        """The window the verdict comes from (`VERDICT_RULE`: the highest score; the
        earliest of equal ones)."""
        return max(self.windows, key=lambda w: (w.logit, -w.window.index))


def frames_for(seconds: float, fps: float) -> int:
    """A duration in whole frames (at least one)."""
    return max(1, round(seconds * fps))


def plan_windows(
    num_video_frames: int | None, window: int, stride: int, num_samples: int
) -> Iterator[Window]:
    """Windows of `window` frames, one every `stride` frames from the first.

    They cover the video: the last one is the first to reach its end, cut there (so it may
    be shorter), and a video shorter than one window is one window. With
    `num_video_frames` None (a stream of unknown length) they go on, each full length.

    Raises:
        ValueError: a count is not positive, or the stride is longer than the window
            (which would leave frames unjudged).
    """
    if min(window, stride, num_samples) <= 0 or stride > window:
        raise ValueError(
            f"need 0 < stride <= window and T > 0, got {stride}, {window}, {num_samples}"
        )
    start, index = 0, 0
    while True:
        end = start + window
        if num_video_frames is not None:
            end = min(end, num_video_frames)
        samples = start + sample_frame_indices(end - start, num_samples)
        yield Window(index, start, end, samples.astype(np.int64))
        if num_video_frames is not None and end >= num_video_frames:
            return
        start, index = start + stride, index + 1


class WindowCursor:
    """Which windows a frame index falls in, as the indices go by in order: the reader of
    a stream asks it which frames to keep, the face follower which windows are complete."""

    def __init__(self, windows: Iterator[Window]) -> None:
        self._upcoming = windows
        self._next: Window | None = next(windows, None)
        self._open: deque[Window] = deque()

    @property
    def is_done(self) -> bool:
        return self._next is None and not self._open

    def wants(self, index: int) -> bool:
        """Whether frame `index` is sampled by a window; ask for every index, in order."""
        return any(True for _ in self.sampling(index))

    def sampling(self, index: int) -> Iterator[Window]:
        """The open windows that sample frame `index`."""
        while self._next is not None and self._next.start_frame <= index:
            self._open.append(self._next)
            self._next = next(self._upcoming, None)
        return (window for window in self._open if index in window.samples)

    def open_windows(self) -> list[Window]:
        """The windows started and not yet complete, in order."""
        return list(self._open)

    def completed(self, index: int) -> Iterator[Window]:
        """Hand out, in order, the windows whose last sampled frame is at or before `index`."""
        while self._open and self._open[0].last <= index:
            yield self._open.popleft()

    def first_open_start(self, default: int) -> int:
        return self._open[0].start_frame if self._open else default


class FaceFollower:
    """The face crops of each window of a video whose frames arrive one by one, in order.

    Detection runs once per sampled frame (in batches, as frames arrive), linking runs over
    the whole video (`model.tracking.TrackLinker`), and each window's subject is chosen by
    `model.tracking.window_subject`: the subject followed so far where it is in the window.
    Its boxes are then filled, smoothed, squared and cropped within the window exactly as
    `model.faces.extract_faces` does for a whole video. Frames are kept only while a window
    still to come samples them.

    Args:
        windows: the windows, in order of their start (see `plan_windows`).
        cfg: the face settings of the extractor.
        detector: the face detector.
    """

    def __init__(self, windows: Iterator[Window], cfg: FaceCfg, detector: FaceDetector) -> None:
        self.cfg = cfg
        self.detector = detector
        self._cursor = WindowCursor(windows)
        self._frames: dict[int, np.ndarray] = {}
        self._pending: list[int] = []  # kept frames not yet detected, in order
        self._linker = TrackLinker()
        self._followed: Track | None = None
        self._lost: set[int] = set()  # windows missing a sampled frame (a dropped one)

    @property
    def is_done(self) -> bool:
        """True once every window has been handed out."""
        return self._cursor.is_done

    def wants(self, index: int) -> bool:
        """Whether frame `index` is sampled by a window; ask for every index, in order."""
        return self._cursor.wants(index)

    def push(
        self, index: int, frame: np.ndarray | None, *, dropped: bool = False
    ) -> list[tuple[Window, FaceTrack | None]]:
        """Take frame `index` (None for one not wanted) and return the windows it completes,
        each with its crops, or None for a window that lost a sampled frame.

        Args:
            index: the frame's index; every index must be pushed, in order.
            frame: the RGB frame, or None.
            dropped: the frame was wanted but dropped (a stream that fell behind): the
                windows sampling it are handed out without crops, never scored from
                other frames.

        Raises:
            UnreadableVideo: a sampled frame did not decode (and was not `dropped`).
        """
        if self.wants(index):
            if dropped:
                self._lost.update(w.index for w in self._cursor.sampling(index))
            elif frame is None:
                raise UnreadableVideo(f"frame {index} cannot be decoded")
            else:
                self._keep(index, frame)
        done: list[tuple[Window, FaceTrack | None]] = []
        for window in self._cursor.completed(index):
            self._detect()
            lost = window.index in self._lost
            self._lost.discard(window.index)
            done.append((window, None if lost else self._crops(window)))
        if done:
            self._forget(index)
        return done

    def _keep(self, index: int, frame: np.ndarray) -> None:
        self._frames[index] = frame
        self._pending.append(index)
        if len(self._pending) >= self.detector.batch_size:
            self._detect()

    def _detect(self) -> None:
        if not self._pending:
            return
        frames = np.stack([self._frames[i] for i in self._pending])
        for index, found in zip(self._pending, self.detector.detect(frames), strict=True):
            self._linker.add(index, found)
        self._pending.clear()

    def _crops(self, window: Window) -> FaceTrack:
        samples = [int(i) for i in window.samples]
        self._followed, subject = window_subject(self._linker.tracks, samples, self._followed)
        track, sources = track_boxes(subject, len(samples), self.cfg.box_smoothing)
        frames = [self._frames[i] for i in samples]
        height, width = frames[0].shape[:2]
        boxes = square_boxes(track, len(samples), width, height, self.cfg)
        return FaceTrack(
            crops=crop_faces(frames, boxes, self.cfg.face_size),
            boxes=boxes,
            source_per_frame=sources,
            frame_indices=window.samples,
            num_video_frames=window.end_frame - window.start_frame,
        )

    def _forget(self, index: int) -> None:
        keep_from = self._cursor.first_open_start(index + 1)
        for frame in [f for f in self._frames if f < keep_from]:
            del self._frames[frame]
        self._linker.forget_before(keep_from, keep=self._followed)


def score_faces(
    extractor: FeatureExtractor, model: nn.Module, faces: FaceTrack, device: torch.device
) -> tuple[float, float]:
    """(score, logit) of one window's crops: the extractor's encoders, then the detector
    as `ddm predict` runs it on a whole video's features."""
    from model.explain import explain_video

    style = extractor.encode_style(faces.crops)
    content = extractor.encode_content(faces.crops)
    explained = explain_video(model, content, style, device=device)
    return float(explained["score"]), float(explained["logit"])


def video_timing(path: str | os.PathLike[str]) -> tuple[float, int]:
    """(frames per second, frame count the container reports, 0 when it reports none).

    Raises:
        UnreadableVideo: the file cannot be opened, or its frame rate is unknown (windows
            are placed in seconds).
    """
    capture = open_video(path)
    try:
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        count = max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
    finally:
        capture.release()
    if not math.isfinite(fps) or fps <= 0:
        raise UnreadableVideo(f"video {str(path)!r} has no frame rate: windows cannot be timed")
    return fps, count


def score_video_windows(
    path: str | os.PathLike[str],
    extractor: FeatureExtractor,
    model: nn.Module,
    window_seconds: float,
    stride_seconds: float,
    *,
    device: torch.device | str = "cpu",
    on_window: Callable[[WindowScore], None] | None = None,
) -> VideoWindows:
    """Score every window of a video file (see `plan_windows` and `FaceFollower`).

    Frames are decoded once, in order, whatever the overlap. A container that reports more
    frames than decode (a truncated file) is decoded a second time over the frames that
    do, as `model.faces.read_frames` does for a whole video.

    Raises:
        UnreadableVideo: the file cannot be opened, has no frame rate or no frames.
        ValueError: a window or stride that is not positive, or a stride over the window.
    """
    fps, count = video_timing(path)
    window, stride = frames_for(window_seconds, fps), frames_for(stride_seconds, fps)
    for _ in range(2):
        scores, decoded, complete = _score_pass(
            path, count or None, window, stride, extractor, model, torch.device(device), on_window
        )
        if complete:
            return VideoWindows(fps, decoded, scores)
        if decoded == 0:
            raise UnreadableVideo(f"video {str(path)!r} decodes to zero frames")
        logger.info(
            "path=%s reports %d frames, %d decode: windows planned again", path, count, decoded
        )
        count = decoded
    raise UnreadableVideo(f"video {str(path)!r} decodes differently each time it is read")


def _score_pass(
    path: str | os.PathLike[str],
    count: int | None,
    window: int,
    stride: int,
    extractor: FeatureExtractor,
    model: nn.Module,
    device: torch.device,
    on_window: Callable[[WindowScore], None] | None,
) -> tuple[list[WindowScore], int, bool]:
    """One decoding pass; (scores, frames decoded, whether every window was scored).
    Without a count, windows are planned as for a stream and the tail is left undone."""
    plan = plan_windows(count, window, stride, extractor.cfg.num_frames)
    follower = FaceFollower(plan, extractor.cfg.face_cfg(), extractor.face_detector)
    scores: list[WindowScore] = []
    decoded = 0
    with strict_fp32():  # as extraction: TF32 could flip MTCNN's boxes
        for index, frame in grab_frames(path, follower.wants):
            decoded = index + 1
            for done, faces in follower.push(index, frame):
                assert faces is not None  # nothing is dropped from a file
                score, logit = score_faces(extractor, model, faces, device)
                scores.append(WindowScore(done, score, logit, faces.source_per_frame, faces.boxes))
                if on_window is not None:
                    on_window(scores[-1])
            if count is not None and follower.is_done:
                break
    return scores, decoded, count is not None and follower.is_done
