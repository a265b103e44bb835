"""The plain-folder layout: `real/**` and `fake/**` with any common video extension, and a
seeded, identity-free derived train/val split (ingest layer, no database).
"""

from __future__ import annotations

import logging
from pathlib import Path

from ddm.ingest.common import (
    derived_split,
    encoding_problem,
    list_videos,
    relative_path,
)
from ddm.ingest.records import Format, LayoutScan, VideoEntry
from ddm.vocab import Label, SplitSource

logger = logging.getLogger(__name__)

# Folder name (lower-cased) -> the label of every video below it.
_LABEL_DIRS = {label.value: label for label in Label}


def label_dirs(root: Path) -> dict[Label, Path]:
    """label -> directory for the `real/` and `fake/` folders of `root` (any letter case)."""
    found: dict[Label, Path] = {}
    try:
        children = sorted(p for p in root.iterdir() if p.is_dir())
    except OSError:
        return found
    for child in children:
        label = _LABEL_DIRS.get(child.name.lower())
        if label is not None and label not in found:
            found[label] = child
    return found


def recognises_folder(root: Path) -> bool:
    """Whether `root` holds a `real/` or `fake/` folder."""
    return bool(label_dirs(root))


def scan_folder(root: Path, *, seed: int = 0) -> LayoutScan:
    """Scan a `real/` + `fake/` folder; every video is split train/val on its own path.

    No identity is known, so each video is its own group: the split is reproducible for a
    seed and never moves when files are added, but it cannot keep one person out of both.
    """
    entries: list[VideoEntry] = []
    problems: list[str] = []
    for label, directory in label_dirs(root).items():
        for path in list_videos(directory, recursive=True):
            rel = relative_path(path, root)
            problem = encoding_problem(rel)
            if problem:
                problems.append(problem)
                continue
            entries.append(
                VideoEntry(
                    path=rel,
                    label=label,
                    split=derived_split(f"file:{rel}", seed),
                    split_source=SplitSource.DERIVED,
                )
            )
    return LayoutScan(
        format=FORMAT.name,
        default_name=root.resolve().name,
        root=root,
        entries=tuple(sorted(entries, key=lambda e: e.path)),
        listed_missing={},
        problems=tuple(problems),
        notes={},
    )


FORMAT = Format(
    name="folder",
    looks_like="real/ and fake/ folders",
    recognises=recognises_folder,
    scan=scan_folder,
    # Before DFDC: real/ and fake/ say the labels outright, while DFDC's label files are
    # searched deep enough to be found inside such a tree.
    detect_priority=30,
)
