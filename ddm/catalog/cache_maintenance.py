"""The steps of `ddm cache verify` and `ddm cache gc`: re-check cache rows against their
files, and remove files no row needs (catalog layer; `ddm.services.caches` composes them).

Verification never holds a write transaction while it hashes: the rows are read
(`cache_entries`), the files checked with no session open (`check_entry`) and the verdicts
recorded in a short second transaction (`record_verdicts`). Each verdict is a conditional
UPDATE on the row as it was read, so a worker re-extracting the video meanwhile wins.
"""

from __future__ import annotations

import logging
import os
import posixpath
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import Literal

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from ddm.catalog.datasets import get_dataset
from ddm.catalog.models import Dataset, FeatureCache, Video
from ddm.catalog.types import utcnow
from ddm.fs import TEMP_PREFIX, cache_path, sha256_of
from ddm.vocab import CacheError

logger = logging.getLogger(__name__)

# Errors only verify writes. A row invalidated with one of these is re-checked, and made
# valid again when its file checks out (a file restored from backup, a remounted disk).
# Every other invalid row (an extraction failure, changed content, never extracted) is
# left as it is: only a new extraction may make it valid.
VERIFY_ERRORS = frozenset(
    {
        CacheError.FILE_MISSING,
        CacheError.SIZE_MISMATCH,
        CacheError.CHECKSUM_MISMATCH,
        CacheError.PATH_MISMATCH,
        CacheError.NO_CHECKSUM,
    }
)

# A running worker may be writing a temporary file right now; only older ones are leftovers.
TEMP_GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class CacheEntry:
    """What verification needs of one cache row: a snapshot, the row may change meanwhile."""

    id: int
    video_id: int
    fingerprint: str
    path: str
    is_valid: bool
    error: str | None
    checksum: str | None
    bytes: int | None
    video_hash: str | None
    video_content_hash: str | None

    @property
    def needs_check(self) -> bool:
        """Valid rows, and rows that only a previous verify invalidated."""
        return self.is_valid or is_verify_error(self.error)


# What verify did to a failing row that it reports: flipped it now, or found it failed before.
Action = Literal["invalidated", "still invalid"]


@dataclass(frozen=True)
class CacheProblem:
    """One row whose file does not back it, as `ddm cache verify` lists it."""

    cache_id: int
    video_id: int
    fingerprint: str
    path: str
    error: str
    action: Action


@dataclass(frozen=True)
class VerifyReport:
    """What verify found; checked = ok + invalidated + revalidated + still_invalid
    + changed_meanwhile."""

    checked: int = 0
    ok: int = 0
    invalidated: int = 0
    revalidated: int = 0
    still_invalid: int = 0
    changed_meanwhile: int = 0
    problems: tuple[CacheProblem, ...] = ()


@dataclass(frozen=True)
class GcReport:
    """What gc removed (or, in a dry run, would remove); paths relative to the cache folder."""

    dry_run: bool
    files_removed: tuple[str, ...]
    bytes_freed: int
    temporaries_removed: int
    temporaries_kept: int
    directories_removed: int
    files_kept: int
    foreign_kept: int  # files not where the cache layout puts them: never removed
    links_skipped: int


def is_verify_error(error: str | None) -> bool:
    return error is not None and (error in VERIFY_ERRORS or error.startswith(CacheError.UNREADABLE))


# --------------------------------------------------------------------------- verify


def cache_entries(session: Session, *, dataset: str | None = None) -> list[CacheEntry]:
    """Every cache row that points at a file (of one dataset), with its video's current hash.

    Raises:
        NotFound: `dataset` names no dataset.
    """
    query = (
        select(
            FeatureCache.id,
            FeatureCache.video_id,
            FeatureCache.fingerprint,
            FeatureCache.path,
            FeatureCache.is_valid,
            FeatureCache.error,
            FeatureCache.checksum,
            FeatureCache.bytes,
            FeatureCache.video_hash,
            Video.content_hash,
        )
        .join(Video, FeatureCache.video_id == Video.id)
        .where(FeatureCache.path.is_not(None))
        .order_by(FeatureCache.id)
    )
    if dataset is not None:
        get_dataset(session, dataset)  # an unknown name is an error, not "0 checked"
        query = query.join(Dataset, Video.dataset_id == Dataset.id).where(Dataset.name == dataset)
    return [CacheEntry(*row) for row in session.execute(query)]


def check_entry(entry: CacheEntry, cache_dir: Path) -> str | None:
    """The one-line reason the row's file does not back it, or None when it does.

    Rows that `needs_check` rules out are not looked at (returns their current error).
    Touches only the filesystem, so it may run with no session open.
    """
    if not entry.needs_check:
        return entry.error
    if entry.video_content_hash is not None and entry.video_hash != entry.video_content_hash:
        return CacheError.CONTENT_CHANGED
    # The derived path is checked first: it also keeps a corrupt row ("../x") from making
    # verify read a file outside the cache.
    if entry.path != _derived_path(cache_dir, entry.fingerprint, entry.video_hash):
        return CacheError.PATH_MISMATCH
    return _check_file(cache_dir / entry.path, entry)


def _derived_path(cache_dir: Path, fingerprint: str, video_hash: str | None) -> str | None:
    try:
        derived = cache_path(cache_dir, fingerprint, video_hash or "")
    except ValueError:
        return None
    return derived.relative_to(cache_dir).as_posix()


def _check_file(file: Path, entry: CacheEntry) -> str | None:
    try:
        info = file.stat()
    except (FileNotFoundError, NotADirectoryError):
        return CacheError.FILE_MISSING
    except OSError as exc:
        return f"{CacheError.UNREADABLE}: {exc.strerror or type(exc).__name__}"
    if not stat.S_ISREG(info.st_mode):
        return CacheError.FILE_MISSING
    if entry.bytes is not None and info.st_size != entry.bytes:
        return CacheError.SIZE_MISMATCH
    if entry.checksum is None:
        return CacheError.NO_CHECKSUM
    try:
        digest = sha256_of(file)
    except FileNotFoundError:
        return CacheError.FILE_MISSING
    except OSError as exc:
        return f"{CacheError.UNREADABLE}: {exc.strerror or type(exc).__name__}"
    return None if digest == entry.checksum else CacheError.CHECKSUM_MISMATCH


def record_verdicts(
    session: Session, verdicts: Iterable[tuple[CacheEntry, str | None]]
) -> VerifyReport:
    """Write each row's verdict (from `check_entry`) and count the outcomes.

    Each write is conditional on the row still being as it was read; a row that changed
    meanwhile (a worker re-extracted it) is left alone and counted as `changed_meanwhile`.
    """
    counts = {
        "checked": 0,
        "ok": 0,
        "invalidated": 0,
        "revalidated": 0,
        "still_invalid": 0,
        "changed_meanwhile": 0,
    }
    problems: list[CacheProblem] = []
    for entry, error in verdicts:
        counts["checked"] += 1
        outcome = _record_one(session, entry, error)
        counts[outcome] += 1
        if error is not None and entry.needs_check and outcome != "changed_meanwhile":
            action: Action = "invalidated" if outcome == "invalidated" else "still invalid"
            problems.append(
                CacheProblem(entry.id, entry.video_id, entry.fingerprint, entry.path, error, action)
            )
    logger.info("cache verify: %s", counts)
    return VerifyReport(**counts, problems=tuple(problems))


def _record_one(session: Session, entry: CacheEntry, error: str | None) -> str:
    if entry.is_valid and error is None:
        return "ok"
    if not entry.needs_check or (not entry.is_valid and error == entry.error):
        return "still_invalid"
    if not _set_verdict(session, entry, error):
        return "changed_meanwhile"
    if entry.is_valid:
        logger.warning("cache_id=%s video_id=%s invalid: %s", entry.id, entry.video_id, error)
        return "invalidated"
    return "revalidated" if error is None else "still_invalid"


def _set_verdict(session: Session, entry: CacheEntry, error: str | None) -> bool:
    result = session.execute(
        update(FeatureCache)
        .where(
            FeatureCache.id == entry.id,
            FeatureCache.path == entry.path,
            FeatureCache.is_valid.is_(entry.is_valid),
            FeatureCache.checksum.is_not_distinct_from(entry.checksum),
            FeatureCache.error.is_not_distinct_from(entry.error),
        )
        .values(is_valid=error is None, error=error, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


# --------------------------------------------------------------------------- gc


@dataclass
class _Scan:
    files: dict[str, os.stat_result] = field(default_factory=dict)
    entries: dict[str, int] = field(default_factory=dict)  # folder -> how many entries
    links: int = 0


def collect_garbage(
    session: Session, cache_dir: Path, *, dry_run: bool = False, temp_grace: timedelta = TEMP_GRACE
) -> GcReport:
    """Remove cache files no row needs, leftover temporaries, then empty folders.

    A file is kept when a row references it (valid or not) or when a job holds the lease on
    the (video, fingerprint) it belongs to: the file lands before its row is written, so an
    extraction in flight has a file and no row yet. Temporaries of atomic writes are removed
    only once older than `temp_grace`. Only files where `ddm.fs.cache_path` puts them (and
    their temporaries) are candidates: anything else is left alone, so a cache folder set to
    the wrong place by mistake loses nothing. Symbolic links are neither followed nor removed.

    Call it in a fresh transaction: the catalog is read after the folder is scanned, and an
    older snapshot could miss the row of a file written meanwhile.

    Args:
        session: read only; nothing is written to the catalog.
        cache_dir: the cache root; nothing outside it is touched.
        dry_run: report what would be removed, remove nothing.
        temp_grace: how old a temporary file must be to count as a crash's leftover.
    """
    root = Path(cache_dir)
    if not root.is_dir():
        return GcReport(dry_run, (), 0, 0, 0, 0, 0, 0, 0)
    # Scan before reading the catalog: a file seen here was written before the query, so
    # its row or its lease is committed by the time the query runs.
    scan = _scan(root)
    needed = _needed_paths(session, root)
    doomed, young, foreign = _classify(root, scan, needed, time.time() - temp_grace.total_seconds())
    removed, freed = _remove_files(root, scan, doomed, dry_run)
    folders = _remove_empty_folders(root, scan, removed, dry_run)
    temporaries = sum(_is_temporary(rel) for rel in removed)
    logger.info(
        "cache gc%s: %d files, %d bytes, %d folders",
        " (dry run)" if dry_run else "",
        len(removed),
        freed,
        folders,
    )
    kept = len(scan.files) - len(removed) - young - foreign
    return GcReport(
        dry_run, tuple(removed), freed, temporaries, young, folders, kept, foreign, scan.links
    )


def _classify(
    root: Path, scan: _Scan, needed: set[str], oldest: float
) -> tuple[list[str], int, int]:
    """(files to remove, young temporaries, files outside the cache layout)."""
    doomed, young, foreign = [], 0, 0
    for rel, info in sorted(scan.files.items()):
        if not _is_cache_file(root, rel):
            foreign += 1
        elif rel in needed:
            continue
        elif _is_temporary(rel) and info.st_mtime > oldest:
            young += 1
        else:
            doomed.append(rel)
    return doomed, young, foreign


def _is_temporary(rel: str) -> bool:
    return PurePosixPath(rel).name.startswith(TEMP_PREFIX)


def _is_cache_file(root: Path, rel: str) -> bool:
    """Whether `rel` is where `cache_path` puts a file, or a temporary of such a file."""
    parts = rel.split("/")
    if len(parts) != 3:
        return False
    fingerprint, _, name = parts
    if name.startswith(TEMP_PREFIX):  # `.tmp-<final name>.<random>`, as atomic_write names it
        name = name[len(TEMP_PREFIX) :].rpartition(".")[0]
    final = f"{parts[0]}/{parts[1]}/{name}"
    return _derived_path(root, fingerprint, name.partition(".")[0]) == final


def _scan(root: Path) -> _Scan:
    scan = _Scan()
    # followlinks=False: a linked folder is listed but never entered.
    for folder, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(folder)
        scan.entries[_rel(root, here)] = len(dirnames) + len(filenames)
        scan.links += sum((here / name).is_symlink() for name in dirnames)
        for name in filenames:
            try:
                info = (here / name).lstat()
            except FileNotFoundError:
                continue
            if stat.S_ISREG(info.st_mode):
                scan.files[_rel(root, here / name)] = info
            elif stat.S_ISLNK(info.st_mode):
                scan.links += 1
    return scan


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _needed_paths(session: Session, root: Path) -> set[str]:
    """Paths rows reference, plus where leased extractions are writing, in one snapshot.

    One statement rather than a path query plus a lease query: between two statements a
    worker could commit its row and drop its lease, and gc would see neither.
    """
    rows = session.execute(
        select(
            FeatureCache.path,
            FeatureCache.fingerprint,
            FeatureCache.claimed_by_job_id,
            Video.content_hash,
        )
        .outerjoin(Video, FeatureCache.video_id == Video.id)
        .where(or_(FeatureCache.path.is_not(None), FeatureCache.claimed_by_job_id.is_not(None)))
    )
    needed: set[str] = set()
    for path, fingerprint, claimed_by, content_hash in rows:
        if path is not None:
            needed.update(_as_relative(root, path))
        if claimed_by is not None:
            derived = _derived_path(root, fingerprint, content_hash)
            if derived is not None:
                needed.add(derived)
    return needed


def _as_relative(root: Path, path: str) -> set[str]:
    """A stored path as scan keys: stored paths are relative, but tolerate absolute ones."""
    if not PurePosixPath(path).is_absolute():
        return {posixpath.normpath(path)}
    keys = set()
    for base in (root, root.resolve()):
        try:
            keys.add(Path(path).relative_to(base).as_posix())
        except ValueError:
            continue
    return keys


def _remove_files(
    root: Path, scan: _Scan, doomed: list[str], dry_run: bool
) -> tuple[list[str], int]:
    removed, freed = [], 0
    for rel in doomed:  # sorted, so reports are stable
        seen = scan.files[rel]
        if not dry_run and not _unlink_if_unchanged(root / rel, seen):
            continue
        removed.append(rel)
        freed += seen.st_size
    return removed, freed


def _unlink_if_unchanged(path: Path, seen: os.stat_result) -> bool:
    # A worker may have replaced the file since the scan (a new extraction of the same
    # video): that file is not the one judged unneeded.
    try:
        now = path.lstat()
        if (now.st_ino, now.st_size, now.st_mtime_ns) != (
            seen.st_ino,
            seen.st_size,
            seen.st_mtime_ns,
        ):
            return False
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def _remove_empty_folders(root: Path, scan: _Scan, removed: list[str], dry_run: bool) -> int:
    remaining = dict(scan.entries)
    for rel in removed:
        remaining[posixpath.dirname(rel) or "."] -= 1
    count = 0
    # Deepest first, so that a parent sees its emptied children gone.
    for rel in sorted(remaining, key=lambda r: r.count("/"), reverse=True):
        # Only the layout's own folders (<fingerprint>/ and <fingerprint>/<xx>/).
        if rel == "." or rel.count("/") > 1 or remaining[rel] > 0:
            continue
        if not dry_run:
            try:
                (root / rel).rmdir()
            except OSError:  # something appeared in it meanwhile
                continue
        count += 1
        remaining[posixpath.dirname(rel) or "."] -= 1
    return count
