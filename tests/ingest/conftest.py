"""Fixtures for the ingest tests: the real sample clips, tiny generated clips, and helpers
that build dataset trees in tmp_path."""

from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[3] / "shared"
MEDIA = Path(os.environ.get("DDM_TEST_MEDIA", SHARED / "media"))
REFERENCE = Path(os.environ.get("DDM_TEST_REFERENCE", SHARED / "reference"))
# The smallest real clip (FF++ c23, 1280x720, 309 frames at 25 fps, 181 kB).
SMALL_REAL_CLIP = MEDIA / "ff++/original_sequences/youtube/c23/videos/004.mp4"


@pytest.fixture(scope="session")
def media() -> Path:
    if not MEDIA.is_dir():
        pytest.skip(f"real sample media not found at {MEDIA} (set DDM_TEST_MEDIA)")
    return MEDIA


@pytest.fixture(scope="session")
def real_clip(media: Path) -> Path:
    return SMALL_REAL_CLIP


@pytest.fixture
def link_videos(real_clip: Path) -> Callable[[Path, Iterable[str]], None]:
    """Create each relative path under a root as a symlink to one real clip."""

    def link(root: Path, rels: Iterable[str]) -> None:
        for rel in rels:
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.symlink_to(real_clip)

    return link


def write_clip(path: Path, frames: int = 12, size: tuple[int, int] = (64, 48)) -> Path:
    """Write a tiny synthetic clip with OpenCV (mp4v in .mp4, MJPG in .avi)."""
    fourcc = "MJPG" if path.suffix == ".avi" else "mp4v"
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), 10.0, size)
    assert writer.isOpened(), f"OpenCV cannot write {path}"
    for index in range(frames):
        frame = np.full((size[1], size[0], 3), (index * 20) % 256, np.uint8)
        cv2.putText(
            frame, str(index), (4, size[1] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255)
        )
        writer.write(frame)
    writer.release()
    return path


def decode_all(path: Path) -> int:
    """Count frames by decoding the whole file: the independent reference for tests."""
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    count = 0
    while capture.grab():
        count += 1
    capture.release()
    return count


def _boxes(data: bytes | bytearray, start: int, end: int) -> Iterator[tuple[bytes, int, int, int]]:
    index = start
    while index + 8 <= end:
        size, kind = struct.unpack(">I4s", data[index : index + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[index + 8 : index + 16])[0], 16
        elif size == 0:
            size = end - index
        yield kind, index, header, size
        index += size


def _shift_chunk_offsets(moov: bytearray, start: int, end: int, delta: int) -> None:
    for kind, index, header, size in _boxes(moov, start, end):
        if kind in (b"trak", b"mdia", b"minf", b"stbl"):
            _shift_chunk_offsets(moov, index + header, index + size, delta)
        elif kind in (b"stco", b"co64"):
            body = index + header + 4  # skip version and flags
            (count,) = struct.unpack(">I", moov[body : body + 4])
            fmt, width = (">I", 4) if kind == b"stco" else (">Q", 8)
            for n in range(count):
                at = body + 4 + n * width
                (value,) = struct.unpack(fmt, moov[at : at + width])
                moov[at : at + width] = struct.pack(fmt, value + delta)


def faststart(data: bytes) -> bytes:
    """Move an mp4's moov box in front of mdat (as `-movflags faststart` does).

    A faststart file that is cut short still opens, and its header still claims every
    frame: exactly the partial download whose container frame count is wrong.
    """
    boxes = list(_boxes(data, 0, len(data)))
    kind, index, header, size = next(b for b in boxes if b[0] == b"moov")
    moov = bytearray(data[index : index + size])
    _shift_chunk_offsets(moov, header, len(moov), len(moov))
    first, rest = boxes[0], [b for b in boxes[1:] if b[0] != b"moov"]
    out = bytearray(data[first[1] : first[1] + first[3]]) + moov
    for _kind, at, _header, box_size in rest:
        out += data[at : at + box_size]
    return bytes(out)


@pytest.fixture
def copy_clip(real_clip: Path) -> Callable[[Path], Path]:
    """Copy the small real clip to a path (a real file, not a link)."""

    def copy(path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(real_clip, path)
        return path

    return copy
