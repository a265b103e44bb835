"""What `ddm cache verify` and `ddm cache gc` run: the cache checks, each in its own units of
work (service layer: above the catalog, it owns the transactions the catalog steps run in).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from ddm.catalog.cache_maintenance import (
    TEMP_GRACE,
    CacheEntry,
    GcReport,
    VerifyReport,
    cache_entries,
    check_entry,
    collect_garbage,
    record_verdicts,
)
from ddm.db import session_scope
from ddm.services import ProgressHook


def verify_caches(
    factory: sessionmaker[Session],
    cache_dir: Path,
    *,
    dataset: str | None = None,
    on_start: ProgressHook | None = None,
    on_advance: ProgressHook | None = None,
) -> VerifyReport:
    """Re-check every cache row that has a path against its file, and flip validity flags.

    A row fails when its file is missing, its size or sha256 differs from the row, its path
    is not the one its fingerprint and video hash derive, or its video's content changed.
    Failing rows become invalid with a one-line error; rows that only a previous verify
    invalidated become valid again once their file checks out (see `VERIFY_ERRORS`).

    Hashing a large cache takes minutes, so it runs with no session open, between a short
    transaction that reads the rows and one that records the verdicts. A row that a worker
    rewrites meanwhile keeps the worker's version (counted as `changed_meanwhile`).

    Args:
        factory: sessions on the catalog.
        cache_dir: the cache root the rows' relative paths start from.
        dataset: only the caches of this dataset's videos.
        on_start: called once with the number of rows to check.
        on_advance: called with 1 after each row's file is checked.

    Raises:
        NotFound: `dataset` names no dataset.
    """
    with session_scope(factory) as session:
        entries = cache_entries(session, dataset=dataset)
    if on_start is not None:
        on_start(len(entries))
    verdicts = _check_files(entries, cache_dir, on_advance)
    with session_scope(factory) as session:
        report = record_verdicts(session, verdicts)
    return report


def _check_files(
    entries: list[CacheEntry], cache_dir: Path, on_advance: ProgressHook | None
) -> list[tuple[CacheEntry, str | None]]:
    verdicts = []
    for entry in entries:
        verdicts.append((entry, check_entry(entry, cache_dir)))
        if on_advance is not None:
            on_advance(1)
    return verdicts


def collect_cache_garbage(
    factory: sessionmaker[Session],
    cache_dir: Path,
    *,
    dry_run: bool = False,
    temp_grace: timedelta = TEMP_GRACE,
) -> GcReport:
    """Remove cache files no row needs, leftover temporaries, then empty folders.

    See `ddm.catalog.cache_maintenance.collect_garbage` for what is kept. It runs in a
    transaction of its own because it must start after the folder scan: an older snapshot
    could miss the row of a file written meanwhile, and gc would delete that file.

    Args:
        factory: sessions on the catalog; nothing is written to it.
        cache_dir: the cache root; nothing outside it is touched.
        dry_run: report what would be removed, remove nothing.
        temp_grace: how old a temporary file must be to count as a crash's leftover.
    """
    with session_scope(factory) as session:
        report = collect_garbage(session, cache_dir, dry_run=dry_run, temp_grace=temp_grace)
    return report
