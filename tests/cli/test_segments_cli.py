"""`ddm predict --segments` end to end: a long clip of a real and a fake part (real FF++
clips, real MTCNN, the small backbones at random weights, T = 8) judged window by window,
each window scoring exactly as the clip cut to it and predicted whole."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.cli.conftest import ok_json, one_error_line, read_bgr, write_bgr
from tests.conftest import MEDIA, invoke_ddm

FRAMES = 8  # T of the `trained` run's extractor, hence of every window
FFPP = MEDIA / "ff++"
REAL = FFPP / "original_sequences/youtube/c23/videos/634.mp4"
FAKE = FFPP / "manipulated_sequences/FaceSwap/c23/videos/634_660.mp4"
PART_FRAMES = 150  # 6 s of each at 25 fps: the long clip is 12 s, its boundary at 6 s


@pytest.mark.slow
def test_windows_cover_a_long_clip_and_each_scores_as_the_clip_cut_to_it(
    trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real, fps = read_bgr(REAL, PART_FRAMES)
    fake, fake_fps = read_bgr(FAKE, PART_FRAMES)
    assert fps == fake_fps == 25.0 and real[0].shape == fake[0].shape
    long_clip = write_bgr(tmp_path / "long.mp4", real + fake, fps, "mp4v")
    grabs = _count_grabs(monkeypatch, long_clip)

    result = invoke_ddm(
        trained,
        *("predict", str(long_clip), "--segments", "--json", "--explain", str(tmp_path / "x")),
        *("--window-seconds", "6", "--stride-seconds", "3"),
    )
    (answer,) = ok_json(result)
    # Decoded once, in order, although every frame but the first and last 3 s lies in two
    # windows: the capture grabbed each frame of the clip once, and was opened once more
    # only to read its frame rate and count.
    assert grabs == {"opened": 2, "grabbed": 2 * PART_FRAMES}

    segments = answer["segments"]
    assert [(s["start"], s["end"]) for s in segments] == [(0.0, 6.0), (3.0, 9.0), (6.0, 12.0)]
    # The boundary between the real and the fake part is where windows 0 and 2 meet.
    assert segments[0]["end_frame"] == segments[2]["start_frame"] == PART_FRAMES
    assert answer["duration"] == 12.0 and answer["frames_per_window"] == FRAMES
    assert all(s["frames_sampled"] == FRAMES == s["distinct_frames"] for s in segments)
    assert all(0.0 <= s["score"] <= 1.0 and 0.0 <= s["fallback_share"] <= 1.0 for s in segments)
    # The verdict: the highest window, which decides.
    deciding = max(segments, key=lambda s: s["logit"])
    assert answer["deciding_window"] == deciding["index"] and answer["score"] == deciding["score"]
    assert answer["rule"] == "max over windows"
    assert answer["flagged_windows"] == sum(s["score"] >= 0.5 for s in segments)
    figure = tmp_path / "x" / "long-segments.png"
    assert answer["explanation"] == str(figure) and figure.read_bytes().startswith(b"\x89PNG")

    # The window across the boundary, cut out of the long clip without loss (FFV1) and
    # predicted whole: the same frames sampled, the same crops, the same score.
    middle = segments[1]
    decoded, _ = read_bgr(long_clip)
    part = decoded[middle["start_frame"] : middle["end_frame"]]
    cut = write_bgr(tmp_path / "cut.avi", part, fps, "FFV1")
    assert all(np.array_equal(a, b) for a, b in zip(read_bgr(cut)[0], part, strict=True))
    (whole,) = ok_json(invoke_ddm(trained, "predict", str(cut), "--json"))
    assert whole["frames_sampled"] == FRAMES and whole["frame_sources"] == middle["frame_sources"]
    # Bit-equal crops give bit-equal logits; 1e-6 leaves room only for MTCNN boxes that
    # differ in the last float bits between batch compositions (3e-5 px measured), which
    # round to the same integer crop box.
    assert whole["logit"] == pytest.approx(middle["logit"], abs=1e-6)
    assert whole["score"] == pytest.approx(middle["score"], abs=1e-6)


def _count_grabs(monkeypatch: pytest.MonkeyPatch, path: Path) -> dict[str, int]:
    """Count how often OpenCV opens `path` and grabs a frame of it (an edge we do not own)."""
    counts = {"opened": 0, "grabbed": 0}
    original = cv2.VideoCapture

    class CountingCapture:
        def __init__(self, source: str, *args: object) -> None:
            self._capture = original(source, *args)
            self._counted = source == str(path)
            counts["opened"] += self._counted

        def grab(self) -> bool:
            ok = self._capture.grab()
            counts["grabbed"] += self._counted and ok
            return ok

        def __getattr__(self, name: str) -> object:
            return getattr(self._capture, name)

    monkeypatch.setattr(cv2, "VideoCapture", CountingCapture)
    return counts


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--segments", "--window-seconds", "0"), "'--window-seconds': 0.0 is not in the range"),
        (("--segments", "--stride-seconds", "-1"), "'--stride-seconds': -1.0 is not in the range"),
        (
            ("--segments", "--window-seconds", "4", "--stride-seconds", "5"),
            "longer than the window",
        ),
        (("--window-seconds", "4"), "--window-seconds and --stride-seconds need --segments"),
        (("--segments", "--window-seconds", "ten"), "'ten' is not a valid float"),
    ],
)
def test_bad_window_values_are_one_usage_line(run_ddm, args, said) -> None:
    result = run_ddm("predict", str(REAL), *args)
    one_error_line(result, 2, said)


def test_the_cli_default_window_is_the_tasks_one() -> None:
    from cli.segments_view import DEFAULT_WINDOW_SECONDS
    from tasks.segments import DEFAULT_STRIDE_SECONDS, WindowSpec

    assert WindowSpec().window_seconds == DEFAULT_WINDOW_SECONDS
    assert DEFAULT_STRIDE_SECONDS == DEFAULT_WINDOW_SECONDS / 2


@pytest.mark.slow
def test_a_report_with_segments_stores_each_window_and_says_which_part_was_flagged(
    trained,
) -> None:
    windows = ("--segments", "--window-seconds", "0.8", "--stride-seconds", "0.4")
    document = ok_json(invoke_ddm(trained, "report", "--eval", "mine", *windows, "--json"))
    (entry,) = document["runs"]
    segments = entry["segments"]
    assert (segments["window_seconds"], segments["stride_seconds"]) == (0.8, 0.4)
    assert segments["n_videos"] == entry["n_videos"] == 2 and segments["without_windows"] == 0
    assert (segments["n_fakes"], segments["n_reals"]) == (1, 1)
    for video in segments["videos"]:
        # 40 frames at 25 fps: windows of 20 frames every 10 cover them in three.
        assert video["windows"] == 3
        assert video["flagged_share"] == video["flagged_windows"] / 3
        assert (video["verdict"] == "fake") == (video["deciding_window"]["score"] >= 0.5)
        assert bool(video["flagged_parts"]) == (video["flagged_windows"] > 0)
    assert any("windows of 0.8 s every 0.4 s" in s for s in document["bias"]["sentences"])
    out = Path(trained["DDM_HOME"]).parent / "report-out"
    written = invoke_ddm(trained, "report", "--eval", "mine", *windows, "--out", str(out))
    assert written.exit_code == 0, written.stderr
    markdown = (out / "report.md").read_text()
    assert f"## Windows of run {entry['run_id']}: 0.8 s every 0.4 s" in markdown
    for video in segments["videos"]:  # a row per video: its parts and deciding window
        parts = ", ".join(f"{a:.1f}-{b:.1f}" for a, b in video["flagged_parts"]) or "none"
        deciding = video["deciding_window"]
        assert (
            f"| {video['path']} | {video['label']} | {video['verdict']} | "
            f"{video['flagged_windows']}/3 | {parts} | "
            f"{deciding['start']:.1f}-{deciding['end']:.1f} s ({deciding['score']:.3f}) |"
        ) in markdown

    # The stored windows are the ones `ddm predict --segments` gives for the same file.
    video = segments["videos"][0]
    root = Path(trained["DDM_HOME"]).parent / "mine"
    (answer,) = ok_json(
        invoke_ddm(trained, "predict", str(root / video["path"]), *windows, "--json")
    )
    assert answer["deciding_window"] == video["deciding_window"]["index"]
    assert answer["score"] == pytest.approx(video["deciding_window"]["score"], abs=1e-12)
    assert answer["flagged_windows"] == video["flagged_windows"]

    # Asked again: the evaluation and its windows are reused; another stride adds windows
    # to the same evaluation.
    again = ok_json(invoke_ddm(trained, "report", "--eval", "mine", *windows, "--json"))
    assert again["runs"][0]["reused"] and again["runs"][0]["segments"] == segments
    wider = (*windows[:-1], "0.8")
    text = invoke_ddm(trained, "report", "--eval", "mine", *wider)
    assert text.exit_code == 0, text.stderr
    assert "windows of 0.8 s every 0.8 s (max over windows)" in text.stdout
    third = ok_json(invoke_ddm(trained, "report", "--eval", "mine", "--json"))
    assert third["runs"][0]["evaluation_id"] == entry["evaluation_id"]
    assert [v["windows"] for v in third["runs"][0]["segments"]["videos"]] == [2, 2]
