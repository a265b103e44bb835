"""Plain records of the ingest layer (no database): what a layout scan finds, what probing a
file finds, and the spec each dataset format declares.

The catalog applies these to its rows; nothing here knows about SQLAlchemy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ddm.vocab import ProbeStatus


@dataclass(frozen=True)
class VideoEntry:
    """One video file found in a dataset tree, labelled from the dataset's own sources.

    Attributes:
        path: relative to the dataset root, '/'-separated.
        label: a `Label`; None only when the file that gives labels is unreadable
            (or, for DFDC, does not list this video).
        split: a `Split`; None when unknown.
        split_source: a `SplitSource`: official (the dataset's split files) or derived (ddm).
        method: the manipulation method, e.g. 'Deepfakes'; None for reals and unknown methods.
        compression: a `Compression` or None ('c0' is stored as 'raw').
        target_identity: the person whose footage is used (for reals, the person shown).
        source_identity: for face swaps, the donor identity; None for reals.
        original_path: relative path of a fake's real counterpart when it is present on
            disk, else None.
        identity_group: the key that keeps one identity out of two derived splits.
        raw_label: the label value exactly as a labelling file gave it ('FAKE', '1', ...);
            None when the label comes from the folder alone.
        part: the download part the video came from, e.g. 'dfdc_train_part_0'.
        metadata_error: set when the metadata or split file that should label this video
            is unreadable or does not cover it.
        unread_fields: the fields above this scan could not learn because the file that
            gives them is unreadable (they are None here). The catalog keeps what that file
            gave before: a broken metadata file must not erase a dataset's labels.
    """

    path: str
    label: str | None
    split: str | None
    split_source: str | None
    method: str | None = None
    compression: str | None = None
    target_identity: str | None = None
    source_identity: str | None = None
    original_path: str | None = None
    identity_group: str | None = None
    raw_label: str | None = None
    part: str | None = None
    metadata_error: str | None = None
    unread_fields: frozenset[str] = frozenset()

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> VideoEntry:
        """`VideoEntry(**values)`, built as one dict: a frozen dataclass's `__init__` sets
        each field through `object.__setattr__`, 4.4 us an entry against 2.3 us here,
        and a scan of DFDC builds one per file.

        Raises:
            TypeError: a value for no field, or none for a field without a default.
        """
        if not _ENTRY_REQUIRED <= values.keys() <= _ENTRY_DEFAULTS.keys():
            unknown = sorted(values.keys() - _ENTRY_DEFAULTS.keys())
            missing = sorted(_ENTRY_REQUIRED - values.keys())
            raise TypeError(f"VideoEntry: no field {unknown}, no value for {missing}")
        entry = object.__new__(cls)
        object.__setattr__(entry, "__dict__", {**_ENTRY_DEFAULTS, **values})
        return entry


# Every field in order, those without a default set to None until given.
_ENTRY_DEFAULTS: dict[str, Any] = {
    f.name: None if f.default is dataclasses.MISSING else f.default
    for f in dataclasses.fields(VideoEntry)
}
_ENTRY_REQUIRED = frozenset(
    f.name for f in dataclasses.fields(VideoEntry) if f.default is dataclasses.MISSING
)


@dataclass(frozen=True)
class Adoption:
    """Rows that an older ddm recorded in another dataset of the same tree and that belong
    to this scan's dataset now (DeepFakeDetection used to be part of FF++).

    The catalog moves them, with their ids and so their caches and history, instead of
    marking them missing there and recording them afresh here.

    Attributes:
        from_format: the format of the datasets that may hold them.
        path_prefixes: the relative paths this dataset owns in such a dataset, whether or
            not the file is still on disk.
    """

    from_format: str
    path_prefixes: tuple[str, ...]


@dataclass(frozen=True)
class LayoutScan:
    """Everything a scan of one dataset root found, before any probing.

    Attributes:
        format: the `Format.name` of the scanner that made it.
        default_name: the dataset name to use when the user gives none (the scanner's
            choice: DFDC's depends on what it found, a plain folder's is the folder's name).
        root: the dataset root as given.
        entries: the videos on disk, sorted by path.
        listed_missing: per source (DFDC part, list file), how many listed videos are absent.
        problems: one readable line each (malformed metadata, label cross-check mismatches).
        notes: JSON-serialisable extra facts for the summary (identity overlap, counts).
        companions: further datasets found in the same tree, each recorded under its own
            name (FF++'s download tree also holds DeepFakeDetection).
        adoption: which rows of other datasets this one takes over, if any.
    """

    format: str
    default_name: str
    root: Path
    entries: tuple[VideoEntry, ...]
    listed_missing: Mapping[str, int]
    problems: tuple[str, ...]
    notes: Mapping[str, object]
    companions: tuple[LayoutScan, ...] = ()
    adoption: Adoption | None = None


@dataclass(frozen=True)
class ProbeResult:
    """What OpenCV could read from one file.

    Attributes:
        status: a ProbeStatus value.
        error: one line explaining a non-OK status, else None.
        frame_count: the verified number of decodable frames (see `probe.probe_video`).
        reported_frame_count: the count the container claims; differs from `frame_count`
            when the container is wrong (typically a truncated download).
    """

    status: str
    error: str | None = None
    frame_count: int | None = None
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None
    reported_frame_count: int | None = None

    def __post_init__(self) -> None:
        # Store a plain str: some drivers (psycopg 3) write an Enum's *name*, not its value.
        object.__setattr__(self, "status", ProbeStatus(self.status).value)

    @property
    def is_ok(self) -> bool:
        return self.status == ProbeStatus.OK


@dataclass(frozen=True)
class FileFingerprint:
    """A content fingerprint; `method` says how `sha256` was computed (see fingerprint_file)."""

    sha256: str
    size: int
    mtime: float
    method: str


@dataclass(frozen=True)
class FileFacts:
    """Everything probing one file found: the one shape the catalog records.

    Attributes:
        probe: what OpenCV could read.
        fingerprint: the content fingerprint; None when the file cannot be read.
    """

    probe: ProbeResult
    fingerprint: FileFingerprint | None = None

    @property
    def content_hash(self) -> str | None:
        return self.fingerprint.sha256 if self.fingerprint else None


# A file listed by a scan but not probed yet.
NOT_PROBED = FileFacts(ProbeResult(ProbeStatus.PENDING))


class Scanner(Protocol):
    """Reads a dataset tree and its label files; never probes a video."""

    def __call__(self, root: Path, *, seed: int = 0) -> LayoutScan: ...


@dataclass(frozen=True)
class Format:
    """One dataset layout, declared by its own module and listed in `registry.FORMATS`.

    Attributes:
        name: what `--format` takes and the catalog stores on the dataset.
        looks_like: how the layout shows on disk; completes the "expected ..." error for a
            root no format recognises.
        recognises: whether a root holds this layout (cheap: top-level names, a few stats).
        scan: the scanner; `seed` places videos in derived train/val splits.
        detect_priority: lower is tried first by `registry.detect_format`: specific
            layouts before loose ones that could also match inside them.
    """

    name: str
    looks_like: str
    recognises: Callable[[Path], bool]
    scan: Scanner
    detect_priority: int
