"""One ingest from end to end: scan the tree, probe what changed, record it in one transaction
(services layer).

Probing (seconds to hours) happens with no database session open; the catalog is then
brought in line with the scan in a single transaction, so an ingest that fails part-way
leaves the catalog as it was. One tree may hold several datasets (FaceForensics' holds FF++
and DeepFakeDetection): they are probed together and recorded in that one transaction.
Two ingests of one dataset may overlap: the one that finds the other recorded while it
probed scans again and reconciles that newer state, reusing its own probes, instead of
overwriting it (`catalog.videos.record_ingests`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from ddm.catalog.datasets import summarize_dataset
from ddm.catalog.records import DatasetSummary
from ddm.catalog.videos import (
    DatasetIngest,
    IngestCounts,
    StoredDataset,
    StoredFile,
    record_ingests,
    stored_dataset,
)
from ddm.db import session_scope
from ddm.errors import InvalidInput, StaleIngest
from ddm.ingest.probe import probe_many
from ddm.ingest.records import FileFacts, LayoutScan
from ddm.ingest.registry import scan
from ddm.ingest.resplit import apply_policy
from ddm.services import ProgressHook

logger = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Scan-and-record rounds before giving up on a dataset other ingests keep changing; every
# round after the first probes only what changed meanwhile.
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class IngestReport:
    """The outcome of one `ddm ingest`, for its first dataset and each companion.

    Attributes:
        probed: this dataset's files this ingest probed (each once, whatever the attempts).
        attempts: scan-and-record rounds; above 1 when another ingest of the dataset
            recorded while this one probed.
        companions: the further datasets the same tree held, recorded by the same
            ingest (DeepFakeDetection beside FF++), each with its own report.
    """

    name: str
    format: str
    counts: IngestCounts
    probed: int
    summary: DatasetSummary
    seconds: dict[str, float] = field(default_factory=dict)  # scan, stat, probe, record
    attempts: int = 1
    companions: tuple[IngestReport, ...] = ()


@dataclass(frozen=True)
class _Options:
    workers: int
    rehash: bool
    on_start: ProgressHook | None
    on_advance: ProgressHook | None


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
            A companion found in the same tree is named by `companion_name`.
        workers: probe threads.
        rehash: probe and hash every file, even those whose size and mtime are unchanged.
        on_start: called with the number of files to probe, once per attempt.
        on_advance: called with 1 after each probed file.

    Raises:
        InvalidInput: the path holds no recognisable dataset, or the name is not usable.
        StaleIngest: other ingests of the dataset recorded first MAX_ATTEMPTS times.
    """
    clock = _PhaseClock()
    root = Path(root).expanduser().resolve()
    layout = scan(root, format)
    _dataset_names(layout, name)  # refuse a bad name before probing anything
    clock.lap("scan")
    options = _Options(workers, rehash, on_start, on_advance)
    probed: dict[str, FileFacts] = {}  # this run's probes, by `_absolute` path
    for attempt in range(1, MAX_ATTEMPTS + 1):
        parts = _dataset_names(layout, name)
        try:
            results = _probe_and_record(factory, parts, probed, options, clock)
        except StaleIngest:
            logger.warning(
                "another ingest of dataset %r recorded while this one probed; scanning again "
                "to keep its changes (attempt %d of %d)",
                parts[0][0],
                attempt + 1,
                MAX_ATTEMPTS,
            )
            layout = scan(root, layout.format)
            clock.lap("scan")
            continue
        reports = [
            IngestReport(
                part_name,
                part.format,
                counts,
                _probed_count(part, probed),
                summary,
                clock.laps,
                attempt,
            )
            for (part_name, part), (counts, summary) in zip(parts, results, strict=True)
        ]
        return dataclasses.replace(reports[0], companions=tuple(reports[1:]))
    raise StaleIngest(
        f"dataset {_dataset_names(layout, name)[0][0]!r}: other ingests of it recorded first "
        f"{MAX_ATTEMPTS} times; run `ddm ingest` again once they are done"
    )


def companion_name(name: str | None, companion: LayoutScan) -> str:
    """The name of a dataset found beside the one the user named: its own default ('dfd'),
    or `NAME-<default>` ('ffc23-dfd') under `--name NAME`."""
    return companion.default_name if name is None else f"{name}-{companion.default_name}"


def _dataset_names(layout: LayoutScan, name: str | None) -> list[tuple[str, LayoutScan]]:
    """(dataset name, scan) for the tree's dataset and each companion.

    Raises:
        InvalidInput: a name is not usable.
    """
    parts = [(name or layout.default_name, layout)]
    parts += [(companion_name(name, c), c) for c in layout.companions]
    for part_name, _ in parts:
        if not NAME_PATTERN.match(part_name):
            raise InvalidInput(
                f"dataset name {part_name!r} must be at most 64 letters, digits, '_', '.' or "
                "'-'; choose one with --name"
            )
    return parts


def _probe_and_record(
    factory: sessionmaker[Session],
    parts: list[tuple[str, LayoutScan]],
    probed: dict[str, FileFacts],
    options: _Options,
    clock: _PhaseClock,
) -> list[tuple[IngestCounts, DatasetSummary]]:
    """One round: read the catalog, probe what it lacks, record every dataset of the tree;
    `probed` gains the probes.

    Raises:
        StaleIngest: another ingest recorded after the catalog was read.
    """
    parent = parts[0][0]
    with session_scope(factory) as session:
        stored = [
            stored_dataset(session, name, layout, parent=None if name == parent else parent)
            for name, layout in parts
        ]
    # A split chosen with `ddm split` outlives the format's own.
    parts = [
        (name, apply_policy(layout, known.split_policy) if known.split_policy else layout)
        for (name, layout), known in zip(parts, stored, strict=True)
    ]
    plans = [
        _plan(layout, known, probed, options.rehash)
        for (_, layout), known in zip(parts, stored, strict=True)
    ]
    todo = {
        Path(absolute): absolute
        for (_, layout), (_, paths) in zip(parts, plans, strict=True)
        for absolute in (_absolute(layout, path) for path in paths)
    }
    clock.lap("stat")
    if options.on_start:
        options.on_start(len(todo))
    on_advance = options.on_advance
    results = probe_many(
        todo,
        workers=options.workers,
        on_done=(lambda *_: on_advance(1)) if on_advance else None,
    )
    probed.update((todo[path], facts) for path, facts in results.items())
    ingests = []
    for (name, layout), known, (facts, paths) in zip(parts, stored, plans, strict=True):
        facts.update({path: probed[_absolute(layout, path)] for path in paths})
        ingests.append(DatasetIngest(name, layout, facts, known))
    clock.lap("probe")
    with session_scope(factory) as session:
        counts = record_ingests(session, ingests)
        outcome = [(counts[name], summarize_dataset(session, name)) for name, _ in parts]
    clock.lap("record")
    return outcome


def _plan(
    layout: LayoutScan, stored: StoredDataset, probed: dict[str, FileFacts], rehash: bool
) -> tuple[dict[str, FileFacts], list[str]]:
    """(facts this run already has and can reuse, paths to probe now)."""
    reuse: dict[str, FileFacts] = {}
    todo: list[str] = []
    prefix = _absolute(layout, "")
    for entry in layout.entries:
        path = prefix + entry.path  # a string: a `Path` per file costs seconds over DFDC
        mine = probed.get(path) if probed else None
        if mine is not None and not _needs_probe(path, _as_stored(mine)):
            reuse[entry.path] = mine  # probed in an earlier attempt, unchanged since
        elif rehash or _needs_probe(path, stored.files.get(entry.path)):
            todo.append(entry.path)
    return reuse, todo


def _absolute(layout: LayoutScan, path: str) -> str:
    """The absolute path of an entry's relative `path`, as a string."""
    return os.path.join(str(layout.root), path)


def _probed_count(layout: LayoutScan, probed: dict[str, FileFacts]) -> int:
    if not probed:
        return 0
    prefix = _absolute(layout, "")
    return sum(1 for entry in layout.entries if prefix + entry.path in probed)


def _as_stored(facts: FileFacts) -> StoredFile | None:
    fingerprint = facts.fingerprint
    return StoredFile(fingerprint.size, fingerprint.mtime, True) if fingerprint else None


class _PhaseClock:
    """Seconds spent in each phase, summed over attempts, for the report and the benchmark."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._mark = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.laps[phase] = self.laps.get(phase, 0.0) + now - self._mark
        self._mark = now


def _needs_probe(path: str, stored: StoredFile | None) -> bool:
    # Size and mtime unchanged means the content is unchanged, as git and DVC assume;
    # `--rehash` is the escape hatch for the rare file rewritten in place with both kept.
    if stored is None or not stored.is_present:
        return True
    try:
        stat = os.stat(path)
    except OSError:
        return True
    return stat.st_size != stored.size_bytes or stat.st_mtime != stored.mtime
