"""probe_video, fingerprint_file and probe_many on real clips and on every kind of bad file."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from ddm.errors import InvalidInput
from ddm.ingest.probe import (
    FULL_HASH_LIMIT,
    SAMPLE_CHUNK,
    fingerprint_file,
    probe_many,
    probe_video,
)
from ddm.ingest.records import FileFacts, FileFingerprint, ProbeResult
from ddm.vocab import ProbeStatus
from tests.ingest.conftest import decode_all, faststart, write_clip


def test_real_clip_matches_an_independent_full_decode(real_clip: Path) -> None:
    result = probe_video(real_clip)

    capture = cv2.VideoCapture(str(real_clip))
    ok, frame = capture.read()
    capture.release()
    assert ok
    assert result.status == ProbeStatus.OK and result.error is None
    assert type(result.status) is str
    assert result.frame_count == decode_all(real_clip) == 309
    assert result.reported_frame_count == 309
    assert result.fps == pytest.approx(25.0)
    assert (result.height, result.width) == frame.shape[:2] == (720, 1280)
    assert result.duration_s == pytest.approx(309 / 25.0)


def test_generated_clip(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "tiny.mp4", frames=12)

    result = probe_video(clip)

    assert (result.status, result.frame_count, result.width, result.height) == ("ok", 12, 64, 48)
    assert result.fps == pytest.approx(10.0)


def test_truncated_avi_gets_its_container_count_corrected(tmp_path: Path) -> None:
    whole = write_clip(tmp_path / "whole.avi", frames=60).read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole[: len(whole) // 2])  # the header still says 60 frames

    result = probe_video(cut)

    assert result.status == "ok"
    assert result.reported_frame_count == 60
    assert result.frame_count == decode_all(cut) < 60


def test_truncated_faststart_mp4_gets_its_container_count_corrected(
    real_clip: Path, tmp_path: Path
) -> None:
    # A real H.264 clip rewritten with moov first, then cut: the index claims all 309 frames.
    data = faststart(real_clip.read_bytes())
    whole = tmp_path / "whole.mp4"
    whole.write_bytes(data)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 5])
    assert probe_video(whole).frame_count == 309

    result = probe_video(cut)

    assert (result.status, result.reported_frame_count) == ("ok", 309)
    assert result.frame_count == decode_all(cut)
    assert 0 < result.frame_count < 309


def _bad(path: Path, status: str) -> ProbeResult:
    result = probe_video(path)
    assert result.status == status, result
    assert result.error and "\n" not in result.error
    return result


def test_zero_byte_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.touch()
    _bad(empty, "empty")


def test_mp4_cut_before_its_index_is_corrupt(real_clip: Path, tmp_path: Path) -> None:
    # The real clips keep moov at the end, so a cut file has no index at all.
    data = real_clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    _bad(cut, "corrupt")


def test_garbage_after_an_mp4_header_is_corrupt(real_clip: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(real_clip.read_bytes()[:64] + os.urandom(20_000))
    _bad(damaged, "corrupt")


def test_text_with_a_video_extension_is_not_video(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("GET / HTTP/1.1\nthis is not a video\n" * 50)
    _bad(text, "not_video")


def test_image_with_a_video_extension_is_not_video(tmp_path: Path) -> None:
    image = tmp_path / "frame.mp4"
    ok, encoded = cv2.imencode(".jpg", np.full((32, 32, 3), 128, np.uint8))
    assert ok
    image.write_bytes(encoded.tobytes())
    assert "JPEG" in (_bad(image, "not_video").error or "")


def test_broken_symlink_is_missing(tmp_path: Path) -> None:
    link = tmp_path / "gone.mp4"
    link.symlink_to(tmp_path / "never-existed.mp4")
    assert "broken symlink" in (_bad(link, "missing").error or "")


def test_absent_file_is_missing(tmp_path: Path) -> None:
    _bad(tmp_path / "absent.mp4", "missing")


def test_directory_named_like_a_video_is_unreadable(tmp_path: Path) -> None:
    # Tests run as root, where chmod 000 does not stop reads; a directory cannot be read
    # as a file by anyone.
    (tmp_path / "x.mp4").mkdir()
    _bad(tmp_path / "x.mp4", "unreadable")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_file_without_read_permission_is_unreadable(real_clip: Path, tmp_path: Path) -> None:
    locked = tmp_path / "locked.mp4"
    locked.write_bytes(real_clip.read_bytes())
    locked.chmod(0)
    try:
        _bad(locked, "unreadable")
    finally:
        locked.chmod(0o644)


def test_fifo_is_unreadable_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    _bad(fifo, "unreadable")


def test_name_with_spaces_and_non_ascii(copy_clip: Callable[[Path], Path], tmp_path: Path) -> None:
    clip = copy_clip(tmp_path / "dir with space" / "vidéo ünï 東京 clip.mp4")

    result = probe_video(clip)

    assert (result.status, result.frame_count) == ("ok", 309)
    assert fingerprint_file(clip).sha256 == hashlib.sha256(clip.read_bytes()).hexdigest()


def test_names_ffmpeg_could_misread(
    copy_clip: Callable[[Path], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("x:y.mp4", "50% a%03d.mp4", "q?a=1#b.mp4"):
        copy_clip(tmp_path / name)
    monkeypatch.chdir(tmp_path)  # a relative "x:y.mp4" reads to FFmpeg as protocol "x"

    assert {probe_video(Path(n)).status for n in ("x:y.mp4", "50% a%03d.mp4", "q?a=1#b.mp4")} == {
        "ok"
    }


def test_small_file_fingerprint_is_a_full_sha256(real_clip: Path) -> None:
    fingerprint = fingerprint_file(real_clip)

    data = real_clip.read_bytes()
    assert fingerprint == FileFingerprint(
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        mtime=real_clip.stat().st_mtime,
        method="sha256",
    )


def test_large_file_fingerprint_is_sampled_and_sees_changes(tmp_path: Path) -> None:
    size = FULL_HASH_LIMIT + 3 * SAMPLE_CHUNK
    big = tmp_path / "big.mp4"
    big.write_bytes(os.urandom(size))
    first = fingerprint_file(big)
    assert first.method == "sampled-v1" and first.size == size
    assert first.sha256 != hashlib.sha256(big.read_bytes()).hexdigest()
    assert fingerprint_file(big).sha256 == first.sha256  # deterministic

    seen = {first.sha256}
    for offset in (0, size // 2, size - 1):  # a byte in the head, middle and tail chunks
        with open(big, "r+b") as handle:
            handle.seek(offset)
            byte = handle.read(1)
            handle.seek(offset)
            handle.write(bytes([byte[0] ^ 0xFF]))
        seen.add(fingerprint_file(big).sha256)
    with open(big, "ab") as handle:  # a size change alone
        handle.write(b"\0")
    seen.add(fingerprint_file(big).sha256)
    assert len(seen) == 5


def test_fingerprint_of_a_missing_file_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        fingerprint_file(tmp_path / "absent.mp4")


def test_probe_many_probes_in_parallel_and_reports_each_file(
    real_clip: Path, tmp_path: Path
) -> None:
    good = write_clip(tmp_path / "good.mp4")
    empty = tmp_path / "empty.mp4"
    empty.touch()
    broken = tmp_path / "broken.mp4"
    broken.symlink_to(tmp_path / "nowhere.mp4")
    paths = [real_clip, good, empty, broken]
    seen: list[tuple[Path, str, FileFingerprint | None]] = []
    threads: set[str] = set()

    def on_done(path: Path, facts: FileFacts) -> None:
        threads.add(threading.current_thread().name)
        seen.append((path, facts.probe.status, facts.fingerprint))

    results = probe_many(paths, workers=3, on_done=on_done)

    assert set(results) == set(paths) and len(seen) == 4
    assert threads == {threading.current_thread().name}  # callbacks run in the caller
    assert {p: facts.probe.status for p, facts in results.items()} == {
        real_clip: "ok",
        good: "ok",
        empty: "empty",
        broken: "missing",
    }
    assert results[broken].fingerprint is None
    empty_fingerprint = results[empty].fingerprint
    assert empty_fingerprint is not None and empty_fingerprint.size == 0
    assert results[real_clip].fingerprint == fingerprint_file(real_clip)


def test_probe_many_rejects_zero_workers(real_clip: Path) -> None:
    with pytest.raises(InvalidInput):
        probe_many([real_clip], workers=0)
