"""The face tracker on hand-made detections: linking, the subject's choice, gap filling
and box smoothing."""

from __future__ import annotations

import numpy as np
import pytest

from model.tracking import (
    DETECTED,
    FALLBACK,
    FRAME_SOURCES,
    INTERPOLATED,
    FrameDetections,
    fill_track,
    link_tracks,
    pick_subject,
    smooth_boxes,
    subject_boxes,
)


def box(cx: float, cy: float, side: float) -> list[float]:
    return [cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]


def frame(*boxes: list[float]) -> FrameDetections:
    if not boxes:
        return FrameDetections.empty()
    return FrameDetections(np.array(boxes, dtype=np.float64), np.full(len(boxes), 0.95))


def test_source_codes_index_their_names() -> None:
    assert FRAME_SOURCES[DETECTED] == "detected"
    assert FRAME_SOURCES[INTERPOLATED] == "interpolated"
    assert FRAME_SOURCES[FALLBACK] == "fallback"


def test_two_people_make_two_tracks_whatever_the_order() -> None:
    left, right = box(100, 100, 50), box(400, 100, 54)
    frames = [frame(left, right), frame(right, left), frame(box(110, 104, 48), right)]
    tracks = link_tracks(frames)
    assert [t.frames for t in tracks] == [[0, 1, 2], [0, 1, 2]]
    assert {round(float(t.boxes[-1][0])) for t in tracks} == {86, 373}


def test_a_track_survives_frames_it_was_missed_on() -> None:
    frames = [frame(box(100, 100, 50)), frame(), frame(), frame(box(130, 100, 50))]
    tracks = link_tracks(frames)
    assert len(tracks) == 1 and tracks[0].frames == [0, 3]


def test_a_small_face_beside_the_subject_is_another_track() -> None:
    # Position alone would link them (0.6 face sizes apart); the size ratio of 3 does not.
    frames = [frame(box(100, 100, 60)), frame(box(130, 100, 20))]
    assert len(link_tracks(frames)) == 2


def test_a_distant_jump_starts_a_new_track() -> None:
    frames = [frame(box(100, 100, 50)), frame(box(200, 100, 50))]  # 2 face sizes away
    assert len(link_tracks(frames)) == 2


def test_the_subject_is_on_most_frames_then_larger() -> None:
    small_everywhere = [box(100, 100, 40)] * 4
    frames = [frame(small_everywhere[0], box(400, 100, 80)) for _ in range(3)]
    frames.append(frame(small_everywhere[0]))
    subject = pick_subject(link_tracks(frames), 4)
    assert subject is not None and subject.frames == [0, 1, 2, 3]
    tied = link_tracks([frame(box(100, 100, 40), box(400, 100, 44)) for _ in range(3)])
    subject = pick_subject(tied, 3)
    assert subject is not None and subject.mean_size == pytest.approx(44)


def test_lone_detections_are_no_track() -> None:
    frames = [frame(box(100, 100, 50)), frame(), frame(box(300, 300, 50)), frame()]
    assert pick_subject(link_tracks(frames), 4) is None
    boxes, sources = subject_boxes(frames, smoothing=1)
    assert boxes is None and sources.tolist() == [FALLBACK] * 4
    # A single sampled frame can only ever have a lone detection.
    boxes, sources = subject_boxes([frame(box(100, 100, 50))], smoothing=1)
    assert boxes is not None and sources.tolist() == [DETECTED]


def test_gaps_are_interpolated_and_ends_held() -> None:
    frames = [
        frame(),
        frame(box(100, 100, 40)),
        frame(),
        frame(),
        frame(box(130, 100, 40)),
        frame(),
    ]
    subject = pick_subject(link_tracks(frames), 6)
    assert subject is not None
    boxes, sources = fill_track(subject, 6)
    centres = (boxes[:, 0] + boxes[:, 2]) / 2
    assert centres.tolist() == [100, 100, 110, 120, 130, 130]
    assert sources.tolist() == [
        INTERPOLATED,
        DETECTED,
        INTERPOLATED,
        INTERPOLATED,
        DETECTED,
        INTERPOLATED,
    ]
    assert sources.dtype == np.uint8


def test_smoothing_keeps_a_still_box_and_calms_jitter() -> None:
    still = np.array([box(100, 100, 40)] * 5)
    assert np.allclose(smooth_boxes(still, 1), still)
    rng = np.random.default_rng(0)
    jitter = np.array(
        [box(100 + dx, 100 + dy, 40 + ds) for dx, dy, ds in rng.normal(0, 3, (32, 3))]
    )
    smooth = smooth_boxes(jitter, 1)
    steps_before = np.abs(np.diff(jitter, axis=0)).mean()
    assert np.abs(np.diff(smooth, axis=0)).mean() < 0.6 * steps_before
    assert np.array_equal(smooth_boxes(jitter, 0), jitter)


def test_smoothing_follows_steady_motion() -> None:
    moving = np.array([box(100 + 10 * t, 100, 40) for t in range(8)])
    # A linear path is unchanged by a symmetric kernel, except where the ends are held.
    assert np.allclose(smooth_boxes(moving, 1)[1:-1], moving[1:-1])
