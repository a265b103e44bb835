"""Atomic writes: the final path holds the old content or the complete new one, never a part."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ddm.fs import FILE_MODE, atomic_write


def test_write_lands_complete(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "file.bin"
    with atomic_write(target) as handle:
        handle.write(b"x" * 1000)
    assert target.read_bytes() == b"x" * 1000
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"]


def test_failure_midway_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target, "w") as handle:
        handle.write("half of the new")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]


def test_written_files_get_the_usual_mode_not_mkstemps_private_one(tmp_path: Path) -> None:
    target = tmp_path / "shared.bin"
    with atomic_write(target) as handle:
        handle.write(b"x")
    umask = os.umask(0o022)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == FILE_MODE == 0o666 & ~umask
