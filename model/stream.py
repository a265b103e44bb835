"""Live scores: windows of a stream judged as its frames arrive, through a bounded queue
that drops frames when the networks fall behind (model layer).

A reader thread decodes the source (OpenCV releases the GIL while it does) and queues only
the frames some window samples; the caller's thread runs `model.segments.FaceFollower` and
the networks on them, window by window, exactly as `ddm predict --segments` does on a file.

Drop policy, for a live source: the queue holds at most `queue_frames` frames. A window
that starts while the queue is half full or more is shed whole: its frames are not queued
(unless a kept window samples them too), so the networks catch up a window at a time and
the windows they do score are complete. Should the queue fill all the same, the oldest
waiting frame is dropped. Either way memory stays bounded, scores stay recent, and a window
that lost any of its sampled frames is skipped, never scored from other frames. A source
that is a file is not live: its reader waits for room instead, and nothing is dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from model.errors import UnreadableVideo
from model.features import FeatureExtractor
from model.precision import strict_fp32
from model.segments import (
    FaceFollower,
    WindowCursor,
    WindowScore,
    frames_for,
    plan_windows,
    score_faces,
)

logger = logging.getLogger(__name__)

# Frames of a source, as `model.faces.capture_frames` yields them for a predicate of the
# wanted indices: (index, RGB frame or None), every index in order.
FrameSource = Callable[[Callable[[int], bool]], Iterator[tuple[int, np.ndarray | None]]]


@dataclass(frozen=True)
class StreamWindow:
    """A window scored live, with the seconds from its last frame's arrival to its score."""

    scored: WindowScore
    latency: float


@dataclass
class StreamSummary:
    """How a stream went: frames read and kept, what was dropped, how fast it went."""

    frames_read: int = 0  # every frame of the source, sampled or not
    frames_queued: int = 0  # sampled frames that reached the queue
    frames_dropped: int = 0  # of those, dropped because the networks were behind
    windows_scored: int = 0
    windows_skipped: int = 0  # lost a sampled frame
    unfinished_frames: int = 0  # after the last complete window, in no complete window
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def dropped_share(self) -> float:
        """Dropped sampled frames over sampled frames read."""
        return self.frames_dropped / self.frames_queued if self.frames_queued else 0.0


class FrameQueue:
    """A bounded queue of (index, frame, arrival time) between the reader and the networks.

    Args:
        capacity: frames held at most.
        lossless: wait for room (a file) instead of dropping the oldest frame (live).
    """

    def __init__(self, capacity: int, *, lossless: bool) -> None:
        self.capacity = capacity
        self.lossless = lossless
        self.dropped: list[int] = []  # indices not yet taken by the consumer
        self.dropped_count = 0
        self._items: deque[tuple[int, np.ndarray, float]] = deque()
        self._ready = threading.Condition()
        self._closed = False
        self.error: BaseException | None = None

    def put(self, index: int, frame: np.ndarray, stop: threading.Event) -> None:
        with self._ready:
            while self.lossless and len(self._items) >= self.capacity and not stop.is_set():
                self._ready.wait(0.1)
            if len(self._items) >= self.capacity:
                self._lose(self._items.popleft()[0])
            self._items.append((index, frame, time.monotonic()))
            self._ready.notify_all()

    @property
    def is_behind(self) -> bool:
        """Half full or more: the networks are not keeping up."""
        with self._ready:
            return len(self._items) >= self.capacity / 2

    def drop(self, index: int) -> None:
        """Count a sampled frame as lost without queueing it."""
        with self._ready:
            self._lose(index)

    def _lose(self, index: int) -> None:
        self.dropped.append(index)
        self.dropped_count += 1

    def close(self, error: BaseException | None = None) -> None:
        with self._ready:
            self._closed, self.error = True, error
            self._ready.notify_all()

    def get(self) -> tuple[int, np.ndarray, float] | None:
        """The next frame, waiting for it; None once the reader is done and all is taken."""
        with self._ready:
            while not self._items and not self._closed:
                self._ready.wait(0.1)  # a timeout keeps Ctrl-C responsive
            if not self._items:
                return None
            item = self._items.popleft()
            self._ready.notify_all()
            return item

    def take_dropped(self) -> list[int]:
        with self._ready:
            dropped, self.dropped = self.dropped, []
            return dropped


def score_stream(
    source: FrameSource,
    fps: float,
    extractor: FeatureExtractor,
    model: nn.Module,
    window_seconds: float,
    stride_seconds: float,
    on_window: Callable[[StreamWindow], None],
    *,
    num_video_frames: int | None = None,
    lossless: bool = False,
    queue_frames: int | None = None,
    device: torch.device | str = "cpu",
) -> StreamSummary:
    """Score a stream's windows as its frames arrive, calling `on_window` for each.

    Args:
        source: the frames (see `FrameSource`).
        fps: its frame rate, which places the windows in seconds.
        num_video_frames: its length when known (a file): the last window then ends at
            its end; unknown, windows are full length and a partial one at the end is not
            scored (`StreamSummary.unfinished_frames`).
        lossless: wait for the networks instead of dropping frames (a file).
        queue_frames: the queue's bound; two windows' sampled frames by default.

    Raises:
        UnreadableVideo: the source failed (re-raised from the reader).
    """
    window, stride = frames_for(window_seconds, fps), frames_for(stride_seconds, fps)
    samples = extractor.cfg.num_frames
    queue = FrameQueue(queue_frames or 2 * samples, lossless=lossless)
    summary = StreamSummary()
    stop = threading.Event()
    cursor = WindowCursor(plan_windows(num_video_frames, window, stride, samples))
    reader = threading.Thread(
        target=_read, args=(source, cursor, queue, stop, summary), name="ddm-stream", daemon=True
    )
    follower = FaceFollower(
        plan_windows(num_video_frames, window, stride, samples),
        extractor.cfg.face_cfg(),
        extractor.face_detector,
    )
    start = time.monotonic()
    reader.start()
    try:
        with strict_fp32():
            _consume(queue, follower, extractor, model, torch.device(device), on_window, summary)
    finally:
        stop.set()
        reader.join(timeout=5)
    summary.seconds = time.monotonic() - start
    if queue.error is not None:
        raise queue.error
    return summary


def _read(
    source: FrameSource,
    cursor: WindowCursor,
    queue: FrameQueue,
    stop: threading.Event,
    summary: StreamSummary,
) -> None:
    error: BaseException | None = None
    shed: set[int] = set()  # windows not queued: they started while the networks were behind
    decided = -1  # the last window whose fate is settled
    try:
        for index, frame in source(cursor.wants):
            summary.frames_read = index + 1
            if stop.is_set():
                break
            for window in cursor.open_windows():
                if window.index > decided:
                    decided = window.index
                    if not queue.lossless and queue.is_behind:
                        shed.add(window.index)
            if cursor.wants(index):
                summary.frames_queued += 1
                kept = any(index in w.samples for w in cursor.open_windows() if w.index not in shed)
                if frame is None or not kept:  # undecodable, or only shed windows want it
                    queue.drop(index)
                else:
                    queue.put(index, frame, stop)
            for window in cursor.completed(index):  # the reader's cursor: what is wanted
                shed.discard(window.index)
    except Exception as exc:  # noqa: BLE001  (handed to the consuming thread, raised there)
        error = UnreadableVideo(f"the stream broke after frame {summary.frames_read}: {exc}")
    queue.close(error)


def _consume(
    queue: FrameQueue,
    follower: FaceFollower,
    extractor: FeatureExtractor,
    model: nn.Module,
    device: torch.device,
    on_window: Callable[[StreamWindow], None],
    summary: StreamSummary,
) -> None:
    last, covered = -1, 0
    lost: set[int] = set()  # dropped sampled frames not yet passed
    while (item := queue.get()) is not None:
        index, frame, arrived = item
        lost.update(queue.take_dropped())
        done = []
        for skipped in range(last + 1, index):
            done += follower.push(skipped, None, dropped=skipped in lost)
            lost.discard(skipped)
        done += follower.push(index, frame)
        last = index
        for window, faces in done:
            covered = max(covered, window.end_frame)
            if faces is None:
                summary.windows_skipped += 1
                continue
            score, logit = score_faces(extractor, model, faces, device)
            scored = WindowScore(window, score, logit, faces.source_per_frame, faces.boxes)
            latency = time.monotonic() - arrived
            summary.windows_scored += 1
            summary.latencies.append(latency)
            on_window(StreamWindow(scored, latency))
    summary.frames_dropped = queue.dropped_count
    summary.unfinished_frames = max(summary.frames_read - covered, 0)


def summary_json(summary: StreamSummary) -> dict[str, Any]:
    """The summary as plain values, latency percentiles included."""
    latencies = np.asarray(summary.latencies)
    return {
        "frames_read": summary.frames_read,
        "frames_sampled": summary.frames_queued,
        "frames_dropped": summary.frames_dropped,
        "dropped_share": summary.dropped_share,
        "windows_scored": summary.windows_scored,
        "windows_skipped": summary.windows_skipped,
        "seconds": summary.seconds,
        "fps": summary.frames_read / summary.seconds if summary.seconds else None,
        "latency_p50": float(np.percentile(latencies, 50)) if len(latencies) else None,
        "latency_p95": float(np.percentile(latencies, 95)) if len(latencies) else None,
    }


@dataclass(frozen=True)
class OpenedSource:
    """A source opened for `score_stream`: its frames, rate, length if known, and whether
    it is a file (read losslessly) or live."""

    frames: FrameSource
    fps: float
    num_video_frames: int | None
    is_file: bool
    release: Callable[[], None]


def open_source(source: str) -> OpenedSource:
    """Open `-` (standard input: a redirected file, or container bytes through a pipe), a
    camera (its number or device path), a URL OpenCV reads, or a file.

    A pipe is read as it comes (`pipe:0`), which needs a container that can be read
    without seeking (MPEG-TS, Matroska/WebM, fragmented MP4); a plain MP4 keeps its index
    where only seeking finds it, so redirect it as a file instead (`< clip.mp4`).

    Raises:
        UnreadableVideo: the source cannot be opened or has no frame rate.
    """
    import cv2

    from model.faces import capture_frames

    target, is_file = _target(source)
    capture = (
        cv2.VideoCapture(target, cv2.CAP_FFMPEG)
        if isinstance(target, str)
        else (cv2.VideoCapture(target))
    )
    if not capture.isOpened():
        capture.release()
        raise UnreadableVideo(f"cannot open stream {source!r}")
    fps = float(capture.get(cv2.CAP_PROP_FPS))
    if not np.isfinite(fps) or fps <= 0:
        capture.release()
        raise UnreadableVideo(f"stream {source!r} has no frame rate: windows cannot be timed")
    count = max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0) if is_file else 0

    def frames(is_wanted: Callable[[int], bool]) -> Iterator[tuple[int, np.ndarray | None]]:
        return capture_frames(capture, is_wanted)

    return OpenedSource(frames, fps, count or None, is_file, capture.release)


def _target(source: str) -> tuple[str | int, bool]:
    import os
    import stat

    if source == "-":
        if stat.S_ISREG(os.fstat(0).st_mode):
            return "/dev/stdin", True  # a redirected file: seekable, any container
        return "pipe:0", False
    if source.isdigit():
        return int(source), False
    return source, os.path.isfile(source)
