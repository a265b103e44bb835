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


def test_ctrl_c_inside_a_write_lands_after_it(tmp_path: Path) -> None:
    import signal

    import torch

    target = tmp_path / "last.pt"
    with pytest.raises(KeyboardInterrupt), atomic_write(target) as handle:
        handle.write(b"")  # the writer has begun
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C now, half-way
        torch.save({"weights": torch.arange(1000)}, handle)
    # The interrupt came after the rename: the file is whole, the caller still stopped.
    assert torch.equal(torch.load(target, weights_only=True)["weights"], torch.arange(1000))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_full_disk_is_named_not_a_writer_error(tmp_path: Path, monkeypatch) -> None:
    from types import SimpleNamespace

    from ddm.errors import StorageProblem

    full = SimpleNamespace(f_bavail=0, f_frsize=4096)
    monkeypatch.setattr(os, "statvfs", lambda _: full)
    full_disk = pytest.raises(StorageProblem, match=f"no space left on {tmp_path}")
    with full_disk, atomic_write(tmp_path / "last.pt") as handle:
        handle.write(b"half")
        raise RuntimeError("[enforce fail at inline_container.cc:672] unexpected pos 6385728")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_cannot_be_written_is_named() -> None:
    from ddm.errors import StorageProblem

    # /sys refuses new files even to root.
    refused = pytest.raises(StorageProblem, match="cannot write to /sys/ddm-test")
    with refused, atomic_write("/sys/ddm-test/report.json") as handle:
        handle.write(b"{}")
