"""Frame sampling, decoding errors, face crops with centre-crop fallback, and the two
normalisations, on synthetic clips and on the real clips in shared/media."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ddm.errors import DdmError
from model.errors import UnreadableVideo
from model.faces import (
    CONTENT_MEAN,
    CONTENT_STD,
    FaceCfg,
    FaceDetector,
    centre_box,
    content_input,
    extract_faces,
    read_frames,
    sample_frame_indices,
    square_box,
    style_input,
)
from tests.model.helpers import MEDIA, numbered_frames, write_clip


def test_uniform_sampling_spans_the_whole_video() -> None:
    indices = sample_frame_indices(300, 8)
    assert indices.tolist() == [0, 43, 85, 128, 171, 214, 256, 299]
    assert sample_frame_indices(8, 8).tolist() == list(range(8))


def test_short_videos_are_padded_circularly() -> None:
    assert sample_frame_indices(5, 8).tolist() == [0, 1, 2, 3, 4, 0, 1, 2]
    assert sample_frame_indices(1, 3).tolist() == [0, 0, 0]


@pytest.mark.parametrize(("frames", "samples"), [(0, 8), (10, 0), (-1, 4)])
def test_sampling_needs_positive_counts(frames: int, samples: int) -> None:
    with pytest.raises(ValueError):
        sample_frame_indices(frames, samples)


def test_square_box_adds_the_margin_around_the_centre() -> None:
    box = square_box([100, 100, 200, 150], width=640, height=480, margin=0.2)
    assert box.tolist() == [90, 65, 210, 185]  # side 100 * 1.2, centred on (150, 125)


def test_square_box_is_shifted_into_the_frame_and_capped() -> None:
    assert square_box([0, 0, 50, 50], 640, 480, 0.2).tolist() == [0, 0, 60, 60]
    assert square_box([600, 430, 640, 480], 640, 480, 0.2).tolist() == [580, 420, 640, 480]
    assert square_box([0, 0, 640, 480], 640, 480, 0.2).tolist() == [80, 0, 560, 480]


def test_centre_box_is_the_largest_centred_square() -> None:
    assert centre_box(1920, 1080).tolist() == [420, 0, 1500, 1080]
    assert centre_box(1080, 1920).tolist() == [0, 420, 1080, 1500]


def grey_levels(frames: np.ndarray) -> list[int]:
    return [round(float(frame.mean()) / 8) for frame in frames]


def test_read_frames_returns_the_sampled_frames(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "n.avi", numbered_frames(20), fourcc="MJPG")
    frames, indices, count = read_frames(clip, 8)
    assert count == 20
    assert frames.shape == (8, 64, 80, 3) and frames.dtype == np.uint8
    assert grey_levels(frames) == indices.tolist() == sample_frame_indices(20, 8).tolist()


def test_read_frames_pads_short_videos(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "short.avi", numbered_frames(5), fourcc="MJPG")
    frames, indices, count = read_frames(clip, 8)
    assert count == 5
    assert grey_levels(frames) == [0, 1, 2, 3, 4, 0, 1, 2]


def test_read_frames_resamples_when_the_container_overstates_its_length(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "full.avi", numbered_frames(20, 120, 160), fourcc="MJPG")
    truncated = tmp_path / "truncated.avi"
    data = clip.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])  # the header still says 20 frames
    frames, indices, count = read_frames(truncated, 8)
    assert 0 < count < 20
    assert len(frames) == 8 and indices.max() < count


def unreadable(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.mp4"
    if kind == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "zero_frames":
        path = write_clip(tmp_path / "zero.avi", np.zeros((0, 64, 64, 3), np.uint8), fourcc="MJPG")
    return path


@pytest.mark.parametrize("kind", ["missing", "garbage", "empty", "zero_frames"])
def test_unreadable_videos_raise_one_error_type(tmp_path: Path, kind: str) -> None:
    with pytest.raises(UnreadableVideo, match="video") as info:
        read_frames(unreadable(tmp_path, kind), 8)
    assert isinstance(info.value, DdmError)


def test_faces_are_found_in_a_real_clip(real_clip: Path, face_detector: FaceDetector) -> None:
    track = extract_faces(real_clip, FaceCfg(num_frames=8), face_detector)
    assert track.crops.shape == (8, 256, 256, 3)
    assert track.num_fallback <= 1, track.fallback_per_frame
    x0, y0, x1, y1 = track.boxes.T
    assert ((x1 - x0) == (y1 - y0)).all() and (x0 >= 0).all() and (y0 >= 0).all()
    assert (x1 <= 1280).all() and (y1 <= 720).all()
    # Face crops are much smaller than the 720 px centre-crop fallback.
    assert ((x1 - x0)[~track.fallback_per_frame] < 400).all()
    assert set(track.timings) == {"decode", "detect"}


def test_a_faceless_clip_falls_back_on_every_frame(
    faceless_clip: Path, face_detector: FaceDetector
) -> None:
    track = extract_faces(faceless_clip, FaceCfg(num_frames=8), face_detector)
    assert track.fallback_per_frame.all()
    assert track.num_fallback == 8
    assert (track.boxes == centre_box(320, 240)).all()
    assert track.crops.shape == (8, 256, 256, 3)


def test_style_input_is_normalised_to_minus_one_one() -> None:
    crops = np.zeros((2, 8, 8, 3), np.uint8)
    crops[1] = 255
    x = style_input(crops)
    assert x.shape == (2, 3, 8, 8)
    assert torch.all(x[0] == -1) and torch.all(x[1] == 1)


def test_content_input_pads_a_short_clip_circularly() -> None:
    crops = numbered_frames(8, 32, 32)
    clips = content_input(crops, size=16)
    assert clips.shape == (1, 3, 16, 16, 16)
    assert torch.equal(clips[0, :, 8:], clips[0, :, :8])
    expected = (8 * 3 / 255 - CONTENT_MEAN) / CONTENT_STD
    assert clips[0, 0, 3].mean().item() == pytest.approx(expected, abs=1e-5)


def test_content_input_cuts_consecutive_clips() -> None:
    clips = content_input(numbered_frames(40, 32, 32, step=6), size=16)
    assert clips.shape == (3, 3, 16, 16, 16)
    levels = ((clips[:, 0, :, 0, 0] * CONTENT_STD + CONTENT_MEAN) * 255 / 6).round().int()
    assert levels[1].tolist() == list(range(16, 32))
    assert levels[2].tolist() == [*range(32, 40), *range(32, 40)]


@pytest.mark.slow
def test_fallback_rate_on_every_real_clip() -> None:
    clips = sorted(MEDIA.rglob("*.mp4"))
    if not clips:
        pytest.skip(f"no real media under {MEDIA}")
    detector = FaceDetector(FaceCfg())
    rates = {c.name: extract_faces(c, FaceCfg(), detector).num_fallback / 32 for c in clips}
    print("centre-crop fallback rate per clip (T=32):", rates)
    assert max(rates.values()) <= 0.25, rates
