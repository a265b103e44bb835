"""Decoding ahead: the prefetched frames are the ones decoded on the spot, skipped videos
are dropped, and errors surface when the video is taken."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model.errors import UnreadableVideo
from model.faces import decode_video, extract_faces
from model.prefetch import FramePrefetcher
from tests.model.helpers import numbered_frames, write_clip


@pytest.fixture
def clips(tmp_path: Path) -> list[Path]:
    return [
        write_clip(tmp_path / f"clip{i}.mp4", numbered_frames(12 + 4 * i), fourcc="mp4v")
        for i in range(4)
    ]


def same(a, b) -> bool:
    return (
        np.array_equal(a.frames, b.frames)
        and np.array_equal(a.indices, b.indices)
        and a.num_video_frames == b.num_video_frames
    )


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_taken_in_order_equals_decoding_on_the_spot(clips: list[Path], workers: int) -> None:
    with FramePrefetcher(8, workers=workers, ahead=2) as prefetcher:
        prefetcher.schedule(clips)
        for clip in clips:
            assert same(prefetcher.take(clip), decode_video(clip, 8))


def test_skipped_videos_are_dropped(clips: list[Path]) -> None:
    with FramePrefetcher(8, workers=1, ahead=2) as prefetcher:
        prefetcher.schedule(clips)
        assert same(prefetcher.take(clips[2]), decode_video(clips[2], 8))
        # The two skipped ones are gone; only what comes after is in flight.
        assert list(prefetcher._running) == [str(clips[3])]
        assert same(prefetcher.take(clips[3]), decode_video(clips[3], 8))
        # Not scheduled at all: decoded on the spot.
        assert same(prefetcher.take(clips[0]), decode_video(clips[0], 8))


def test_an_unreadable_video_fails_when_taken(clips: list[Path], tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 100)
    with FramePrefetcher(8, workers=1) as prefetcher:
        prefetcher.schedule([broken, clips[0]])
        with pytest.raises(UnreadableVideo):
            prefetcher.take(broken)
        assert same(prefetcher.take(clips[0]), decode_video(clips[0], 8))


def test_prefetched_frames_must_match_the_sample_count(clips: list[Path], face_detector) -> None:
    with pytest.raises(ValueError, match="4 frames were decoded ahead, not 8"):
        extract_faces(clips[0], face_detector.cfg, face_detector, decode_video(clips[0], 4))


def test_extracting_from_prefetched_frames_gives_the_same_features(
    clips: list[Path], face_detector
) -> None:
    decoded = decode_video(clips[1], 8)
    ahead = extract_faces(clips[1], face_detector.cfg, face_detector, decoded)
    here = extract_faces(clips[1], face_detector.cfg, face_detector)
    assert np.array_equal(ahead.crops, here.crops) and np.array_equal(ahead.boxes, here.boxes)
    assert ahead.timings["decode"] == decoded.seconds
