"""One ingest from end to end: scan the tree, probe what changed, record it in one transaction
(services layer).

Probing (seconds to hours) happens with no database session open; the catalog is then
brought in line with the scan in a single transaction, so an ingest that fails part-way
leaves the catalog as it was.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from ddm.catalog.datasets import summarize_dataset
from ddm.catalog.records import DatasetSummary
from ddm.catalog.videos import IngestCounts, StoredFile, record_ingest, stored_files
from ddm.db import session_scope
from ddm.errors import InvalidInput
from ddm.ingest.probe import probe_many
from ddm.ingest.registry import scan
from ddm.services import ProgressHook

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class IngestReport:
    """The outcome of one `ddm ingest`."""

    name: str
    format: str
    counts: IngestCounts
    probed: int
    summary: DatasetSummary
    seconds: dict[str, float] = field(default_factory=dict)  # scan, stat, probe, record


def ingest_dataset(
    factory: sessionmaker[Session],
    root: Path,
    *,
    format: str | None = None,
    name: str | None = None,
    workers: int = 4,
    rehash: bool = False,
    on_start: ProgressHook | None = None,
    on_advance: ProgressHook | None = None,
) -> IngestReport:
    """Scan `root`, probe new or changed files in parallel, and record the result.

    Args:
        factory: sessions on the catalog.
        format: one of `registry.FORMAT_NAMES`; detected when None.
        name: the dataset name; the format's default ('ff', 'celebdf', ...) when None.
        workers: probe threads.
        rehash: probe and hash every file, even those whose size and mtime are unchanged.
        on_start: called once with the number of files to probe.
        on_advance: called with 1 after each probed file.

    Raises:
        InvalidInput: the path holds no recognisable dataset, or the name is not usable.
    """
    clock = _PhaseClock()
    layout = scan(Path(root).expanduser().resolve(), format)
    dataset_name = name or layout.default_name
    if not NAME_PATTERN.match(dataset_name):
        raise InvalidInput(
            f"dataset name {dataset_name!r} must be letters, digits, '_', '.' or '-'; "
            "choose one with --name"
        )
    clock.lap("scan")
    with session_scope(factory) as session:
        known = stored_files(session, dataset_name)
    todo = [
        entry.path
        for entry in layout.entries
        if rehash or _needs_probe(layout.root / entry.path, known.get(entry.path))
    ]
    clock.lap("stat")
    if on_start:
        on_start(len(todo))
    results = probe_many(
        [layout.root / path for path in todo],
        workers=workers,
        on_done=(lambda *_: on_advance(1)) if on_advance else None,
    )
    facts = {path: results[layout.root / path] for path in todo}
    clock.lap("probe")
    with session_scope(factory) as session:
        counts = record_ingest(session, dataset_name, layout, facts)
        summary = summarize_dataset(session, dataset_name)
    clock.lap("record")
    return IngestReport(dataset_name, layout.format, counts, len(todo), summary, clock.laps)


class _PhaseClock:
    """Seconds spent in each phase, for the report and the benchmark."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._mark = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.laps[phase] = now - self._mark
        self._mark = now


def _needs_probe(path: Path, stored: StoredFile | None) -> bool:
    # Size and mtime unchanged means the content is unchanged, as git and DVC assume;
    # `--rehash` is the escape hatch for the rare file rewritten in place with both kept.
    if stored is None or not stored.is_present:
        return True
    try:
        stat = os.stat(path)
    except OSError:
        return True
    return stat.st_size != stored.size_bytes or stat.st_mtime != stored.mtime
