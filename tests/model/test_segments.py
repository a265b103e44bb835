"""Windows over a long video: where they lie, which frames they sample, and which face
each one follows (no networks here; the end-to-end check is tests/cli/test_segments_cli.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from model.faces import sample_frame_indices
from model.segments import frames_for, plan_windows
from model.tracking import FrameDetections, TrackLinker, link_tracks, window_subject


def test_windows_cover_the_video_and_sample_as_its_cut_would() -> None:
    windows = list(plan_windows(751, 250, 125, 32))
    assert [(w.start_frame, w.end_frame) for w in windows] == [
        (0, 250), (125, 375), (250, 500), (375, 625), (500, 750), (625, 751)
    ]  # fmt: skip
    for window in windows:
        cut = sample_frame_indices(window.end_frame - window.start_frame, 32)
        assert np.array_equal(window.samples, window.start_frame + cut)
        assert window.last == window.end_frame - 1


def test_a_video_shorter_than_a_window_is_one_window_and_strides_may_equal_it() -> None:
    (only,) = plan_windows(40, 250, 125, 32)
    assert (only.start_frame, only.end_frame) == (0, 40)
    assert [(w.start_frame, w.end_frame) for w in plan_windows(500, 250, 250, 8)] == [
        (0, 250), (250, 500)
    ]  # fmt: skip
    short = list(plan_windows(20, 10, 10, 8))[-1]
    assert len(set(short.samples.tolist())) == 8


def test_a_stream_has_windows_without_end_all_full_length() -> None:
    first = list(itertools.islice(plan_windows(None, 100, 30, 16), 50))
    assert all(w.end_frame - w.start_frame == 100 for w in first)
    assert [w.start_frame for w in first[:3]] == [0, 30, 60]


@pytest.mark.parametrize(("window", "stride"), [(0, 1), (10, 0), (10, 11)])
def test_windows_that_would_leave_frames_unjudged_are_refused(window: int, stride: int) -> None:
    with pytest.raises(ValueError, match="stride"):
        next(plan_windows(100, window, stride, 8))


def test_seconds_become_whole_frames() -> None:
    assert frames_for(10.0, 29.97) == 300 and frames_for(0.001, 25.0) == 1


def _face(x: float, size: float = 40.0) -> FrameDetections:
    return FrameDetections(np.array([[x, 10.0, x + size, 10.0 + size]]), np.array([0.99]))


def _faces(*xs: float) -> FrameDetections:
    boxes = np.array([[x, 10.0, x + 40.0, 50.0] for x in xs])
    return FrameDetections(boxes, np.full(len(xs), 0.99))


def test_linking_frame_by_frame_is_the_whole_video_linking() -> None:
    detections = [_face(10 + 3 * i) if i % 4 else _faces(10 + 3 * i, 300) for i in range(12)]
    linker = TrackLinker()
    for frame, found in enumerate(detections):
        linker.add(frame, found)
    expected = link_tracks(detections)
    assert [t.frames for t in linker.tracks] == [t.frames for t in expected]


def test_a_window_keeps_the_followed_subject_where_a_cut_would_pick_another() -> None:
    # Frames 0-9: the subject alone at x~10; frames 10-19: the subject on 3 frames, and a
    # second face at x=300 on all 10. A cut of frames 10-19 would follow the second face
    # (on more frames); the whole video keeps following the subject, which it can.
    linker = TrackLinker()
    for frame in range(20):
        faces = [10.0] if frame < 10 else ([10.0, 300.0] if frame % 4 == 0 else [300.0])
        linker.add(frame, _faces(*faces))
    first, _ = window_subject(linker.tracks, list(range(10)), None)
    assert first is not None
    followed, window = window_subject(linker.tracks, list(range(10, 20)), first)
    assert followed is first and window is not None and window.frames == [2, 6]
    alone, picked = window_subject(linker.tracks, list(range(10, 20)), None)
    assert alone is not first and picked is not None and len(picked.frames) == 10


def test_forgetting_keeps_what_later_windows_read_and_the_followed_subject() -> None:
    linker = TrackLinker()
    for frame in range(10):
        linker.add(frame, _faces(10.0, 300.0) if frame < 3 else _face(10.0))
    subject = max(linker.tracks, key=lambda t: len(t.frames))
    linker.forget_before(5, keep=subject)
    assert linker.tracks == [subject] and subject.frames == [5, 6, 7, 8, 9]


def test_a_live_reader_sheds_whole_windows_while_the_queue_is_half_full() -> None:
    import threading

    from model.segments import WindowCursor
    from model.stream import FrameQueue, StreamSummary, _read

    frame = np.zeros((2, 2, 3), np.uint8)

    def source(is_wanted):  # noqa: ANN001, ANN202
        return ((i, frame if is_wanted(i) else None) for i in range(40))

    stop = threading.Event()
    behind = FrameQueue(8, lossless=False)
    for i in range(4):  # the networks are behind: half full before the stream starts
        behind.put(-10 + i, frame, stop)
    summary = StreamSummary()
    _read(source, WindowCursor(plan_windows(None, 10, 10, 4)), behind, stop, summary)
    # Every window started while the queue was half full: each is shed whole, none of its
    # frames queued, and what was waiting stays.
    assert behind.dropped == [0, 3, 6, 9, 10, 13, 16, 19, 20, 23, 26, 29, 30, 33, 36, 39]
    assert summary.frames_queued == 16 and [item[0] for item in behind._items] == [-10, -9, -8, -7]

    keeping_up = FrameQueue(8, lossless=False)
    _read(source, WindowCursor(plan_windows(None, 10, 10, 4)), keeping_up, stop, StreamSummary())
    # Window 0 started with room and is queued whole; nothing drains this queue either,
    # so window 1 starts with it half full (4 of 8) and it and the later ones are shed.
    assert [item[0] for item in keeping_up._items] == [0, 3, 6, 9]
    assert keeping_up.dropped == [10, 13, 16, 19, 20, 23, 26, 29, 30, 33, 36, 39]
