"""Plain records that a layout scan returns (catalog layer, no database).

The catalog joins these to its rows; nothing here knows about SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class VideoEntry:
    """One video file found in a dataset tree, labelled from the dataset's own sources.

    Attributes:
        path: relative to the dataset root, '/'-separated.
        label: 'real' or 'fake'; None only when the file that gives labels is unreadable
            (or, for DFDC, does not list this video).
        split: 'train', 'val' or 'test'; None when unknown.
        split_source: 'official' (from the dataset's split files) or 'derived' (by ddm).
        method: the manipulation method, e.g. 'Deepfakes'; None for reals and unknown methods.
        compression: 'raw', 'c23', 'c40' or None ('c0' is stored as 'raw').
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


@dataclass(frozen=True)
class LayoutScan:
    """Everything a scan of one dataset root found, before any probing.

    Attributes:
        format: 'ffpp', 'celebdf', 'dfdc' or 'folder'.
        default_name: the dataset name to use when the user gives none.
        root: the dataset root as given.
        entries: the videos on disk, sorted by path.
        listed_missing: per source (DFDC part, list file), how many listed videos are absent.
        problems: one readable line each (malformed metadata, label cross-check mismatches).
        notes: JSON-serialisable extra facts for the summary (identity overlap, counts).
    """

    format: str
    default_name: str
    root: Path
    entries: tuple[VideoEntry, ...]
    listed_missing: Mapping[str, int]
    problems: tuple[str, ...]
    notes: Mapping[str, object]
