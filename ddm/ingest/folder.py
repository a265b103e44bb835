"""The plain-folder layout: `real/**` and `fake/**` with any common video extension, and a
seeded train/val/test split, stratified by label and method, grouped where the folder says
which files belong together (ingest layer, no database).

- method: the first folder below `fake/` (`fake/FaceSwap/x.mp4`); none for `fake/x.mp4`.
- group: a `groups.csv` (`file,group`) at the root, else the part of a file name before
  its first `__` (`alice__beach.mp4` and `alice__car.mp4` are one group); a file with
  neither is a group of its own.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ddm.ingest.common import encoding_problem, relative_videos
from ddm.ingest.group_files import GROUPS_FILE, GroupFileError, read_group_file
from ddm.ingest.records import Format, LayoutScan, VideoEntry
from ddm.ingest.splitting import DEFAULT_RATIOS, Splittable, assign_splits, stratum_of
from ddm.vocab import Label, SplitSource

logger = logging.getLogger(__name__)

# Folder name (lower-cased) -> the label of every video below it.
_LABEL_DIRS = {label.value: label for label in Label}
NAME_GROUP_SEPARATOR = "__"
# What an unreadable groups.csv leaves as the last ingest recorded it.
_GROUP_FIELDS = frozenset({"split", "split_source", "identity_group"})


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
    """Scan a `real/` + `fake/` folder and split it 70/15/15 into train, val and test.

    Groups are placed whole, stratified by label and method, in seeded order (see
    `splitting.assign_splits`); an unreadable `groups.csv` leaves the splits and groups
    of the last ingest in place rather than splitting a group across them.
    """
    found, problems = _videos(root)
    try:
        groups, grouped_by = _groups(root, found)
    except GroupFileError as exc:
        error = f"{exc}; splits kept from the last ingest (new videos get none)"
        entries = [_entry(rel, label, None, None, error) for rel, label in found.items()]
        return _scan(root, entries, [*problems, error], {})
    items = [
        Splittable(rel, label, stratum_of(label, method_of(rel, label)), (groups[rel],))
        for rel, label in found.items()
    ]
    assignment = assign_splits(items, DEFAULT_RATIOS, seed)
    entries = [
        _entry(rel, label, assignment.splits[rel], _named_group(groups[rel]), None)
        for rel, label in found.items()
    ]
    notes = {"split": {"seed": seed, "ratios": list(DEFAULT_RATIOS), "grouped_by": grouped_by}}
    return _scan(root, entries, [*problems, *assignment.shortages], notes)


def method_of(rel: str, label: str) -> str | None:
    """The first folder below `fake/` of a fake, e.g. 'FaceSwap'; None for reals."""
    parts = rel.split("/")
    return parts[1] if label == Label.FAKE and len(parts) > 2 else None


def _videos(root: Path) -> tuple[dict[str, Label], list[str]]:
    found: dict[str, Label] = {}
    problems: list[str] = []
    for label, directory in label_dirs(root).items():
        for rel in relative_videos(root, directory, recursive=True):
            problem = encoding_problem(rel)
            if problem:
                problems.append(problem)
            else:
                found[rel] = label
    return found, problems


def _groups(root: Path, found: dict[str, Label]) -> tuple[dict[str, str], str]:
    """rel -> group key (a group file's, a name prefix's, or the file's own), and the rule.

    Raises:
        GroupFileError: the root's groups.csv cannot be read.
    """
    if (root / GROUPS_FILE).exists():
        listed = read_group_file(root / GROUPS_FILE)
        return {rel: listed.get(rel, f"file:{rel}") for rel in found}, GROUPS_FILE
    by_name = {rel: _name_group(rel) for rel in found}
    if any(group is not None for group in by_name.values()):
        named = {rel: group or f"file:{rel}" for rel, group in by_name.items()}
        return named, f"name prefix before {NAME_GROUP_SEPARATOR!r}"
    return {rel: f"file:{rel}" for rel in found}, "file"


def _name_group(rel: str) -> str | None:
    prefix, separator, _ = rel.rsplit("/", 1)[-1].partition(NAME_GROUP_SEPARATOR)
    return prefix if separator and prefix else None


def _named_group(group: str) -> str | None:
    # A file alone is no identity: its row keeps no group, as before groups existed.
    return None if group.startswith("file:") else group


def _entry(
    rel: str, label: Label, split: str | None, group: str | None, error: str | None
) -> VideoEntry:
    return VideoEntry(
        path=rel,
        label=label,
        split=split,
        split_source=SplitSource.DERIVED if error is None else None,
        method=method_of(rel, label),
        identity_group=group,
        metadata_error=error,
        unread_fields=_GROUP_FIELDS if error else frozenset(),
    )


def _scan(
    root: Path, entries: list[VideoEntry], problems: list[str], notes: dict[str, object]
) -> LayoutScan:
    return LayoutScan(
        format=FORMAT.name,
        default_name=root.resolve().name,
        root=root,
        entries=tuple(sorted(entries, key=lambda e: e.path)),
        listed_missing={},
        problems=tuple(problems),
        notes=notes,
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
