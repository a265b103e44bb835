"""`ddm predict --stream` as a user runs it, in a subprocess: a clip on standard input
scored window by window as JSON lines (exit 0), a broken stream (one line, exit 1), a live
pipe that falls behind (frames dropped by the stated policy), and Ctrl-C (exit 130)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import read_bgr, write_bgr
from tests.cli.test_segments_cli import FAKE, PART_FRAMES, REAL

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def _ddm(env: dict[str, str | None], *args: str, **kwargs) -> subprocess.Popen:  # noqa: ANN003
    full = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    full["PYTHONPATH"] = str(REPO)
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", "predict", "--stream", "-", *args],
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    real, fps = read_bgr(REAL, PART_FRAMES)
    fake, _ = read_bgr(FAKE, PART_FRAMES)
    return write_bgr(tmp_path_factory.mktemp("stream") / "long.mp4", real + fake, fps, "mp4v")


def test_a_clip_on_standard_input_gives_one_json_line_per_window(trained, long_clip) -> None:
    windows = ("--window-seconds", "6", "--stride-seconds", "3")
    with open(long_clip, "rb") as clip:
        process = _ddm(trained, "--json", *windows, stdin=clip)
        out, err = (text.decode() for text in process.communicate(timeout=600))
    assert process.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    # A redirected file is read without loss, its length known: the windows of --segments.
    assert [(w["start"], w["end"]) for w in lines] == [(0.0, 6.0), (3.0, 9.0), (6.0, 12.0)]
    for window in lines:
        assert 0.0 <= window["score"] <= 1.0 and window["frames_sampled"] == 8
        assert window["latency"] > 0
    assert "0 of 24 sampled frames dropped" in err and "3 windows scored" in err


def test_a_broken_stream_is_one_line_and_exit_1(trained, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video at all" * 1000)
    with open(garbage, "rb") as stdin:
        process = _ddm(trained, "--json", stdin=stdin)
        out, err = process.communicate(timeout=600)
    assert process.returncode == 1 and out == b""
    assert err.decode().strip().splitlines()[-1] == "error: cannot open stream '-'"


def test_a_live_pipe_drops_frames_by_its_policy_and_ctrl_c_exits_130(
    trained, long_clip, tmp_path: Path
) -> None:
    # Matroska can be read from a pipe. The whole clip arrives at once, far faster than
    # the networks score it: the bounded queue drops the oldest frames, the windows that
    # lost one are skipped, and the stream still ends cleanly.
    frames, fps = read_bgr(long_clip)
    piped = write_bgr(tmp_path / "live.mkv", frames, fps, "mp4v").read_bytes()
    process = _ddm(trained, "--json", "--window-seconds", "2", stdin=subprocess.PIPE)
    out, err = (text.decode() for text in process.communicate(piped, timeout=600))
    assert process.returncode == 0, err
    summary = err.strip().splitlines()[-1]
    dropped, sampled = (int(n) for n in summary.split("; ")[1].split(" sampled")[0].split(" of "))
    assert 0 < dropped < sampled, summary
    scored = [json.loads(line) for line in out.splitlines()]
    assert f"{len(scored)} windows scored" in summary and "skipped" in summary

    # Ctrl-C while the pipe is still open and a window has been scored: exit 130.
    process = _ddm(trained, "--json", "--window-seconds", "2", stdin=subprocess.PIPE)
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(piped)
    process.stdin.flush()
    assert 0.0 <= json.loads(process.stdout.readline())["score"] <= 1.0
    process.send_signal(signal.SIGINT)
    _, err = (text.decode() for text in process.communicate(timeout=120))
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1] == "interrupted"
