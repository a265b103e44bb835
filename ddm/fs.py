"""Atomic artifact writes and the content-addressed cache layout (catalog layer)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

# Temporary files of atomic writes start with this, so leftovers of a crash are recognisable.
TEMP_PREFIX = ".tmp-"


def _process_umask() -> int:
    # os.umask can only be read by setting it; done once, at import, before any thread.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# mkstemp creates files readable by their owner only; artifacts get the mode any other
# file of this process would get, so workers of other users can read a shared cache.
FILE_MODE = 0o666 & ~_process_umask()


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside `path`; on success fsync it and rename it into place.

    A crash at any moment leaves either the old file (or none) or the complete new one,
    never a partial file at `path`. The temporary name starts with `.tmp-` so that cache
    garbage collection can recognise leftovers.

    Args:
        path: the final location.
        mode: "wb" or "w".
    """
    final = Path(path)
    with _interrupts_deferred():
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{final.name}.", dir=final.parent)
        except OSError as exc:
            problem = storage_problem(exc, final.parent)
            if problem is None:
                raise
            raise problem from exc
        try:
            with os.fdopen(fd, mode) as handle:
                yield handle
                handle.flush()
                os.fchmod(handle.fileno(), FILE_MODE)
                os.fsync(handle.fileno())
            os.replace(tmp_name, final)
        except BaseException as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            problem = storage_problem(exc, final.parent)
            if problem is not None:
                raise problem from exc
            raise
        _fsync_directory(final.parent)


def move_into_place(source: str | os.PathLike[str], final: str | os.PathLike[str]) -> None:
    """Rename a finished file onto `final` as `atomic_write` does: its bytes reach the disk
    first, the directory entry after, and Ctrl-C waits until the rename is done.

    For files assembled over several runs (a resumable download), which `atomic_write`'s
    one-shot temporary file cannot hold.
    """
    final = Path(final)
    with _interrupts_deferred():
        fd = os.open(source, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(source, final)
    _fsync_directory(final.parent)


# errno -> what to say of the folder: the set-up problems a write can meet.
_STORAGE_ERRNOS = {
    errno.ENOSPC: "no space left on {}",
    errno.EDQUOT: "disk quota exceeded on {}",
    errno.EROFS: "cannot write to {}: read-only file system",
    errno.EACCES: "cannot write to {}: permission denied",
    errno.EPERM: "cannot write to {}: operation not permitted",
}
# Below this many free bytes, a writer's own error (torch's zip writer says "unexpected
# pos") is taken for a full disk.
_NEARLY_FULL_BYTES = 1 << 20


def storage_problem(exc: BaseException, folder: str | os.PathLike[str]) -> Any:
    """`exc` as a StorageProblem naming `folder` when it comes from a full, read-only or
    forbidden folder, else None."""
    from ddm.errors import StorageProblem

    if isinstance(exc, OSError) and exc.errno in _STORAGE_ERRNOS:
        return StorageProblem(_STORAGE_ERRNOS[exc.errno].format(folder))
    if isinstance(exc, (OSError, RuntimeError)) and _free_bytes(folder) < _NEARLY_FULL_BYTES:
        return StorageProblem(_STORAGE_ERRNOS[errno.ENOSPC].format(folder))
    return None


def _free_bytes(folder: str | os.PathLike[str]) -> int:
    try:
        stats = os.statvfs(folder)
    except OSError:
        return _NEARLY_FULL_BYTES  # unknown: not taken for full
    return stats.f_bavail * stats.f_frsize


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) until the block ends, then raise it: an interrupt inside a
    writer (torch's zip writer above all) would leave it half-written and raise its own
    error instead of KeyboardInterrupt. Only the main thread can take signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


def _fsync_directory(directory: Path) -> None:
    # The rename is durable only once the directory entry itself reaches the disk.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def check_writable_dir(path: str | os.PathLike[str] | None, setting: str) -> None:
    """Make sure `path` is a folder this process can create files in (creating it if needed).

    Raises:
        SetupError: it is a file, or cannot be created or written; names `setting`.
    """
    from ddm.errors import SetupError

    folder = Path(path) if path is not None else None
    try:
        if folder is None:
            raise NotADirectoryError("not set")
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise SetupError(f"{setting} {folder} is not a writable folder: {reason}") from None


def cache_path(cache_dir: str | os.PathLike[str], fingerprint: str, video_hash: str) -> Path:
    """Where one video's features for one extractor live.

    `<cache_dir>/<fingerprint>/<video_hash[:2]>/<video_hash>.pt`: content-addressed, so a
    re-encoded video gets a new file and a new extractor a new folder.
    """
    if not fingerprint or not video_hash or "/" in fingerprint + video_hash:
        raise ValueError(f"bad cache key: {fingerprint!r}, {video_hash!r}")
    return Path(cache_dir) / fingerprint / video_hash[:2] / f"{video_hash}.pt"


def remove_temporaries(final: Path) -> int:
    """Delete leftovers of interrupted atomic writes of `final` (a crash mid-write)."""
    removed = 0
    if final.parent.is_dir():
        for leftover in final.parent.glob(f"{TEMP_PREFIX}{final.name}.*"):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
                removed += 1
    return removed


def sha256_of(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """The sha256 of a whole file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
