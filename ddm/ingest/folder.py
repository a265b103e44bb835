"""The plain-folder layout: `real/**` and `fake/**` with any common video extension, and a
seeded, identity-free derived train/val split (catalog layer, no database).
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
from ddm.ingest.records import LayoutScan, VideoEntry

logger = logging.getLogger(__name__)

LABEL_DIRS = ("real", "fake")


def label_dirs(root: Path) -> dict[str, Path]:
    """label -> directory for the `real/` and `fake/` folders of `root` (any letter case)."""
    found: dict[str, Path] = {}
    try:
        children = sorted(p for p in root.iterdir() if p.is_dir())
    except OSError:
        return found
    for child in children:
        label = child.name.lower()
        if label in LABEL_DIRS and label not in found:
            found[label] = child
    return found


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
                    split_source="derived",
                )
            )
    return LayoutScan(
        format="folder",
        default_name=root.resolve().name,
        root=root,
        entries=tuple(sorted(entries, key=lambda e: e.path)),
        listed_missing={},
        problems=tuple(problems),
        notes={},
    )
