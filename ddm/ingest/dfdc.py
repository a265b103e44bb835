"""DFDC layouts: training parts (`dfdc_train_part_N/metadata.json`), the public
validation/test sets (`labels.csv`, or a metadata.json with `is_fake`) and DFDC Preview
(`dataset.json`). Labels come only from those files (ingest layer, no database).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ddm.ingest.common import encoding_problem, relative_path, relative_videos
from ddm.ingest.records import Format, LayoutScan, VideoEntry
from ddm.vocab import Label, Split, SplitSource

logger = logging.getLogger(__name__)

PART_DIR = re.compile(r"^dfdc_train_part_\d+$")
SAMPLE_DIR = "train_sample_videos"  # the Kaggle competition's 400-clip sample
LABEL_DIR_SPLITS = {"validation": Split.VAL, "val": Split.VAL, "test": Split.TEST}
PREVIEW_INDEX = "dataset.json"
PREVIEW_DIRS = ("original_videos", "method_A", "method_B")
_SPLITS = {"validation": Split.VAL, **{split.value: split for split in Split}}
# Part folders may sit below train/ and inside a wrapper such as dfdc_train_part_00/.
_MAX_DEPTH = 3
# What a label file gives its videos; kept from the last ingest while the file is unreadable.
_LABEL_FILE_FIELDS = frozenset(
    {"label", "raw_label", "split", "split_source", "method", "original_path", "identity_group"}
)
# The longest label text kept as `raw_label` (its column's width).
_RAW_TEXT_LIMIT = 32
# An `original` longer than this is no DFDC file name; its group key must fit 128 characters.
_ORIGINAL_NAME_LIMIT = 120


@dataclass(frozen=True)
class _Source:
    kind: str  # 'part' | 'labels' | 'preview'
    directory: Path
    name: str  # the part name, e.g. 'dfdc_train_part_0' or 'test'


@dataclass
class _Found:
    # Each video's `VideoEntry` fields but its links, which need every source's names: built
    # once at the end, since copying 128,000 frozen entries costs seconds of a re-scan.
    entries: list[dict[str, Any]]
    originals: dict[str, str | None]  # file name -> its 'original' file name
    listed_missing: dict[str, int]
    problems: list[str]


def find_sources(root: Path) -> list[_Source]:
    """The DFDC label sources below `root`: parts, labelled sets and a Preview index."""
    sources: list[_Source] = []
    if (root / PREVIEW_INDEX).is_file():
        sources.append(_Source("preview", root, PREVIEW_INDEX))
    for directory in _dirs(root):
        name = directory.name
        if PART_DIR.match(name) or name == SAMPLE_DIR:
            if (directory / "metadata.json").exists() or not _has_part_child(directory):
                sources.append(_Source("part", directory, name))
        elif (directory / "labels.csv").exists() or (
            name.lower() in LABEL_DIR_SPLITS and (directory / "metadata.json").exists()
        ):
            sources.append(_Source("labels", directory, name))
    return sources


def recognises_dfdc(root: Path) -> bool:
    """Whether `root` (or a folder up to three levels below) holds a DFDC label source."""
    return bool(find_sources(root))


def scan_dfdc(root: Path, *, seed: int = 0) -> LayoutScan:
    """Scan a DFDC root: every part, labelled set and Preview index found below it.

    Videos a metadata file lists but the disk lacks are counted per part. A video whose
    metadata file is unreadable, or that its file does not list, gets no label. Every split
    comes from the label files, so `seed` is unused.
    """
    found = _Found([], {}, {}, [])
    sources = find_sources(root)
    for source in sources:
        if source.kind == "part":
            _scan_part(root, source, found)
        elif source.kind == "labels":
            _scan_labels(root, source, found)
        else:
            _scan_preview(root, found)
    entries = _link_originals(found.entries, found.originals)
    is_preview_only = bool(sources) and all(s.kind == "preview" for s in sources)
    return LayoutScan(
        format=FORMAT.name,
        default_name="dfdcp" if is_preview_only else "dfdc",
        root=root,
        entries=tuple(sorted(entries, key=lambda e: e.path)),
        listed_missing=found.listed_missing,
        problems=tuple(found.problems),
        notes={"parts": sorted(s.name for s in sources if s.kind != "preview")},
    )


def _dirs(root: Path) -> list[Path]:
    out: list[Path] = []
    frontier = [root]
    for depth in range(_MAX_DEPTH + 1):
        out += frontier
        frontier = [c for d in frontier if not _is_leaf(d, depth) for c in _subdirs(d)]
    return out


def _is_leaf(directory: Path, depth: int) -> bool:
    # Do not descend into a part that has its metadata: its only children are videos.
    return depth > 0 and (directory / "metadata.json").exists()


def _subdirs(directory: Path) -> list[Path]:
    try:
        with os.scandir(directory) as items:
            return sorted(Path(i.path) for i in items if i.is_dir() and not i.name.startswith("."))
    except OSError:
        return []


def _has_part_child(directory: Path) -> bool:
    return any(PART_DIR.match(d.name) for d in _subdirs(directory))


def _videos(root: Path, directory: Path, found: _Found, *, recursive: bool = False) -> list[str]:
    rels = []
    for rel in relative_videos(root, directory, recursive=recursive):
        problem = encoding_problem(rel)
        if problem:
            found.problems.append(problem)
        else:
            rels.append(rel)
    return rels


def _scan_part(root: Path, source: _Source, found: _Found) -> None:
    rels = _videos(root, source.directory, found)
    meta_file = relative_path(source.directory / "metadata.json", root)
    records, error = _load_json_object(source.directory / "metadata.json", meta_file)
    # Every video of a training part is official train.
    _label_or_report(rels, records, error, source, meta_file, Split.TRAIN, found)


def _scan_labels(root: Path, source: _Source, found: _Found) -> None:
    rels = _videos(root, source.directory, found)
    split = LABEL_DIR_SPLITS.get(source.name.lower(), Split.TEST)
    if (source.directory / "labels.csv").exists():
        label_file = relative_path(source.directory / "labels.csv", root)
        records, error = _load_labels_csv(source.directory / "labels.csv", label_file)
    else:
        label_file = relative_path(source.directory / "metadata.json", root)
        records, error = _load_json_object(source.directory / "metadata.json", label_file)
    _label_or_report(rels, records, error, source, label_file, split, found)


def _label_or_report(
    rels: list[str],
    records: dict[str, object],
    error: str | None,
    source: _Source,
    label_file: str,
    split: Split,
    found: _Found,
) -> None:
    # An unreadable label file tells nothing new: its videos keep what it said before.
    if error:
        found.problems.append(f"{error}; {_kept(len(rels), f'videos of {source.name}')}")
        found.entries += [_unread(rel, source.name, error) for rel in rels]
        return
    _label_from_records(rels, records, source, label_file, split, found)


def _label_from_records(
    rels: list[str],
    records: dict[str, object],
    source: _Source,
    label_file: str,
    split_default: Split,
    found: _Found,
) -> None:
    present = {rel.rsplit("/", 1)[-1]: rel for rel in rels}
    unlisted = invalid = 0
    for name, rel in present.items():
        record = records.get(name)
        if record is None:
            unlisted += 1
            error = f"not listed in {label_file}"
            found.entries.append(_unlabelled(rel, source.name, error))
            continue
        label, raw = _label_of(record)
        if label is None:
            invalid += 1
        split = _SPLITS.get((_text(_field(record, "split")) or "").lower(), split_default)
        original = _field(record, "original")
        is_name = isinstance(original, str) and len(original) <= _ORIGINAL_NAME_LIMIT
        found.originals[name] = original if is_name else None
        found.entries.append(
            {
                "path": rel,
                "label": label,
                "split": split,
                "split_source": SplitSource.OFFICIAL,
                "raw_label": raw,
                "part": source.name,
                "metadata_error": None if label else f"{label_file}: no valid label for {name}",
            }
        )
    missing = sum(1 for name in records if name not in present)
    if missing:
        found.listed_missing[source.name] = found.listed_missing.get(source.name, 0) + missing
    if unlisted:
        found.problems.append(f"{label_file}: {unlisted} videos on disk are not listed; no label")
    if invalid:
        found.problems.append(f"{label_file}: {invalid} entries have no valid label")


def _scan_preview(root: Path, found: _Found) -> None:
    records, error = _load_json_object(root / PREVIEW_INDEX, PREVIEW_INDEX)
    rels: list[str] = []
    listed_tops = {key.split("/", 1)[0] for key in records if "/" in key}
    for top in sorted((set(PREVIEW_DIRS) | listed_tops) - {"", ".", ".."}):
        rels += _videos(root, root / top, found, recursive=True)
    if error:
        found.problems.append(f"{error}; {_kept(len(rels), 'Preview videos')}")
        found.entries += [_unread(rel, None, error) for rel in rels]
        return
    unlisted = 0
    for rel in rels:
        record = records.get(rel)
        if record is None:
            unlisted += 1
            found.entries.append(_unlabelled(rel, None, f"not listed in {PREVIEW_INDEX}"))
            continue
        label, raw = _label_of(record)
        split = _SPLITS.get((_text(_field(record, "set")) or "").lower())
        found.entries.append(
            {
                "path": rel,
                "label": label,
                "split": split,
                "split_source": SplitSource.OFFICIAL if split else None,
                "method": rel.split("/", 1)[0] if label == Label.FAKE else None,
                "raw_label": raw,
                "metadata_error": None if label else f"{PREVIEW_INDEX}: no valid label for {rel}",
            }
        )
    present = set(rels)
    missing = sum(1 for key in records if key not in present)
    if missing:
        found.listed_missing[PREVIEW_INDEX] = missing
    if unlisted:
        found.problems.append(
            f"{PREVIEW_INDEX}: {unlisted} videos on disk are not listed; no label"
        )


def _unlabelled(rel: str, part: str | None, error: str) -> dict[str, Any]:
    return {
        "path": rel,
        "label": None,
        "split": None,
        "split_source": None,
        "part": part,
        "metadata_error": error,
    }


def _unread(rel: str, part: str | None, error: str) -> dict[str, Any]:
    return {**_unlabelled(rel, part, error), "unread_fields": _LABEL_FILE_FIELDS}


def _kept(count: int, what: str) -> str:
    return f"the {count} {what} keep the labels ingested before (new ones get none)"


def _field(record: object, key: str) -> object:
    return record.get(key) if isinstance(record, dict) else None


def _label_of(record: object) -> tuple[Label | None, str | None]:
    """(label, raw value) from one metadata record: `label` FAKE/REAL, or `is_fake` 0/1."""
    if isinstance(record, dict) and "label" in record:
        raw = _text(record["label"])
        return _NAMED_LABELS.get((raw or "").lower()), raw
    if isinstance(record, dict) and "is_fake" in record:
        value = record["is_fake"]
        raw = _text(int(value) if isinstance(value, bool) else value)
        return _BINARY_LABELS.get(raw or ""), raw
    if isinstance(record, str):  # a labels.csv cell
        return _BINARY_LABELS.get(record), _text(record)
    return None, None


def _text(value: object) -> str | None:
    """A metadata value as short text: a scalar as written (cut to the raw-label width),
    anything else by its JSON type name. Never the repr of a nested value, which can be
    huge or recurse past Python's limit."""
    if value is None:
        return None
    if isinstance(value, str | int | float | bool):
        return str(value)[:_RAW_TEXT_LIMIT]
    return "list" if isinstance(value, list) else "object"


# labels.csv and `is_fake`: 1 = fake, 0 = real.
_BINARY_LABELS = {"1": Label.FAKE, "0": Label.REAL}
# metadata.json `label`: FAKE or REAL, in any letter case.
_NAMED_LABELS = {label.value: label for label in Label}


def _load_json_object(path: Path, shown: str) -> tuple[dict[str, object], str | None]:
    """The JSON object in `path`, or ({}, a one-line reason it cannot be used)."""
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}, f"{shown}: missing"
    except OSError as exc:
        return {}, f"{shown}: unreadable ({exc.strerror})"
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        return {}, f"{shown}: malformed JSON ({exc})"
    except RecursionError:
        # The decoder recurses once per nesting level; a hostile file nests 200,000 deep.
        return {}, f"{shown}: malformed JSON (nested too deeply)"
    if not isinstance(data, dict):
        return {}, f"{shown}: malformed (expected an object keyed by file name)"
    return data, None


def _load_labels_csv(path: Path, shown: str) -> tuple[dict[str, object], str | None]:
    """filename -> label cell from a `filename,label` CSV, or ({}, a one-line reason)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        return {}, f"{shown}: unreadable ({exc.strerror})"
    except UnicodeDecodeError:
        return {}, f"{shown}: not UTF-8 text"
    try:
        return _parse_labels_csv(text, shown)
    except csv.Error as exc:  # a cell past the field limit, an unclosed quote, ...
        return {}, f"{shown}: malformed CSV ({exc})"


def _parse_labels_csv(text: str, shown: str) -> tuple[dict[str, object], str | None]:
    reader = csv.reader(io.StringIO(text))
    header = [cell.strip().lower() for cell in next(reader, [])]
    if "filename" not in header or "label" not in header:
        return {}, f"{shown}: malformed (expected a 'filename,label' header)"
    name_at, label_at = header.index("filename"), header.index("label")
    records: dict[str, object] = {}
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(name_at, label_at):
            return {}, f"{shown} line {reader.line_num}: malformed row {','.join(row)[:60]!r}"
        records[row[name_at].strip()] = row[label_at].strip()
    return records, None


def _link_originals(
    entries: list[dict[str, Any]], originals: dict[str, str | None]
) -> list[VideoEntry]:
    """The entries, with `original_path` (when the real is on disk) and the `original`
    chain's group (each entry's dict is completed in place)."""
    by_name = {e["path"].rsplit("/", 1)[-1]: e["path"] for e in entries}
    linked = []
    for entry in entries:
        name = entry["path"].rsplit("/", 1)[-1]
        original = originals.get(name)
        root_name = _chain_root(name, originals)
        entry["original_path"] = by_name.get(original) if original else None
        entry["identity_group"] = (
            f"orig:{root_name.rsplit('.', 1)[0]}" if entry.get("part") else None
        )
        linked.append(VideoEntry.of(entry))
    return linked


def _chain_root(name: str, originals: dict[str, str | None]) -> str:
    seen = {name}
    while (parent := originals.get(name)) and parent not in seen:
        seen.add(parent)
        name = parent
    return name


FORMAT = Format(
    name="dfdc",
    looks_like="DFDC dfdc_train_part_N/metadata.json, labels.csv or dataset.json",
    recognises=recognises_dfdc,
    scan=scan_dfdc,
    # Last: its label files are searched three levels deep, so it could also match a
    # labels.csv or metadata.json kept inside another layout's tree.
    detect_priority=40,
)
