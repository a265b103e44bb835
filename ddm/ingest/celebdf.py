"""Celeb-DF v1/v2 layout: labels from the folder, the official test list, and a derived
identity-disjoint train/val split for everything else (ingest layer, no database).

Every celebrity is its own identity, placed whole in train or val (each YouTube-real file
is one too); a fake lands where its target and its source both are, and a fake between a
train and a val identity is left out of both. Grouping every identity seen together in a
fake instead links nearly all 59 celebrities of the real dataset into one group: one
split, no validation set.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ddm.ingest.common import (
    DERIVED_VAL_PERCENT,
    encoding_problem,
    relative_videos,
    shipped_bytes,
)
from ddm.ingest.records import Format, LayoutScan, VideoEntry
from ddm.ingest.splitting import Assignment, Splittable, assign_splits, stratum_of
from ddm.vocab import Label, Split, SplitSource

logger = logging.getLogger(__name__)

TEST_LIST = "List_of_testing_videos.txt"
FOLDER_LABELS = {
    "Celeb-real": Label.REAL,
    "YouTube-real": Label.REAL,
    "Celeb-synthesis": Label.FAKE,
}
# In the official list the digit 1 means REAL: the reverse of the usual convention.
LIST_DIGIT_LABELS = {"1": Label.REAL, "0": Label.FAKE}

_CELEB_REAL = re.compile(r"^(id\d+)_(\d+)$")
_CELEB_FAKE = re.compile(r"^(id\d+)_(id\d+)_(\d+)$")
_LIST_LINE = re.compile(r"^([01])\s+(\S(?:.*\S)?)$")
# What the test list gives a video (the label comes from its folder): kept from the last
# ingest while the list is unreadable.
_LIST_FIELDS = frozenset({"split", "split_source", "raw_label"})
_KEPT = "splits kept from the last ingest (new videos get none)"
# The official list is the test split; the rest is train and val.
DERIVED_RATIOS = (100 - DERIVED_VAL_PERCENT, DERIVED_VAL_PERCENT, 0)


@dataclass(frozen=True)
class TestList:
    """The parsed official test list: relative path -> digit as written, or an error."""

    digits: dict[str, str]
    source: str  # 'dataset' (the user's copy) or 'shipped' (our v2 copy)
    sha256: str
    error: str | None = None


def recognises_celebdf(root: Path) -> bool:
    """Whether `root` holds any of Celeb-DF's Celeb-real/, Celeb-synthesis/, YouTube-real/."""
    return any((root / name).is_dir() for name in FOLDER_LABELS)


def scan_celebdf(root: Path, *, seed: int = 0) -> LayoutScan:
    """Scan a Celeb-DF root.

    Listed videos are official 'test'; the rest are split train/val by identity group with
    `derive_splits`. The list digit is only cross-checked against the folder label.
    """
    problems: list[str] = []
    present: dict[str, str] = {}  # rel path -> folder
    for folder in FOLDER_LABELS:
        for rel in relative_videos(root, root / folder):
            problem = encoding_problem(rel)
            if problem:
                problems.append(problem)
            else:
                present[rel] = folder
    test_list = read_test_list(root)
    notes: dict[str, object] = {
        "test_list": {
            "source": test_list.source,
            "sha256": test_list.sha256,
            "matches_shipped_v2": test_list.sha256 == _shipped_sha256(),
        },
    }
    if test_list.error:
        problems.append(test_list.error)
        entries = [
            _entry(rel, folder, None, test_list.error, None) for rel, folder in present.items()
        ]
        return _scan(root, entries, {}, problems, notes)
    mismatches = _cross_check(test_list)
    problems += mismatches
    notes["test_list_mismatches"] = len(mismatches)
    derived = derive_splits([rel for rel in present if rel not in test_list.digits], seed)
    notes["derived_split"] = _derived_note(derived, seed)
    problems += derived.shortages
    entries = [
        _entry(rel, folder, test_list.digits.get(rel), None, derived)
        for rel, folder in present.items()
    ]
    outside = {rel for rel in test_list.digits if rel.partition("/")[0] not in FOLDER_LABELS}
    problems += [
        f"{TEST_LIST}: {rel} is outside the Celeb-DF folders; ignored" for rel in sorted(outside)
    ]
    missing = sum(1 for rel in test_list.digits if rel not in present and rel not in outside)
    notes["test_identity_overlap"] = _overlap(entries)
    return _scan(root, entries, {TEST_LIST: missing} if missing else {}, problems, notes)


def read_test_list(root: Path) -> TestList:
    """Parse the dataset's own test list, or the shipped v2 copy when the dataset has none.

    Tolerates CRLF, blank lines, extra spaces and a missing final newline. Any other line
    makes the whole list unreadable: the splits are then kept from the last ingest (or
    unknown) rather than guessed.
    """
    path = root / TEST_LIST
    if path.exists():
        source = "dataset"
        try:
            data = path.read_bytes()
        except OSError as exc:
            return TestList({}, source, "", f"{TEST_LIST}: unreadable ({exc.strerror}); {_KEPT}")
    else:
        source, data = "shipped", shipped_bytes("celebdf", TEST_LIST)
    sha = hashlib.sha256(data).hexdigest()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return TestList({}, source, sha, f"{TEST_LIST}: not UTF-8 text; {_KEPT}")
    digits: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _LIST_LINE.match(line.strip())
        if not match:
            error = f"{TEST_LIST} line {number} malformed ({line.strip()[:60]!r}); {_KEPT}"
            return TestList({}, source, sha, error)
        digit, rel = match.groups()
        digits[rel.replace("\\", "/")] = digit
    if not digits:
        return TestList({}, source, sha, f"{TEST_LIST}: no entries; {_KEPT}")
    return TestList(digits, source, sha)


def _shipped_sha256() -> str:
    return hashlib.sha256(shipped_bytes("celebdf", TEST_LIST)).hexdigest()


def identity_of(rel: str) -> tuple[str | None, str | None, str]:
    """(target identity, source identity, own group) for a Celeb-DF relative path.

    Celeb-real `idP_NNNN` -> P; Celeb-synthesis `idT_idS_NNNN` -> T (the owner of the
    footage) and S (the face swapped in), own group T; every YouTube-real file is its own
    identity. A name outside these patterns is its own group.
    """
    folder, _, name = rel.partition("/")
    stem = name.rsplit(".", 1)[0]
    if folder == "YouTube-real":
        return stem, None, f"youtube:{stem}"
    fake = _CELEB_FAKE.match(stem)
    if folder == "Celeb-synthesis" and fake:
        return fake.group(1), fake.group(2), fake.group(1)
    real = _CELEB_REAL.match(stem)
    if folder == "Celeb-real" and real:
        return real.group(1), None, real.group(1)
    return None, None, f"file:{rel}"


def derive_splits(rels: Iterable[str], seed: int) -> Assignment:
    """Train/val of the videos outside the test list: each identity placed whole, with
    `DERIVED_RATIOS`, stratified so that val holds reals and fakes where it can; a fake goes
    where its target and source both are, or nowhere."""
    items = []
    for rel in rels:
        target, source, group = identity_of(rel)
        label = FOLDER_LABELS[rel.partition("/")[0]]
        groups = (group,) if source is None or source == group else (group, source)
        method = rel.partition("/")[0] if label == Label.FAKE else None
        items.append(Splittable(rel, label, stratum_of(label, method), groups))
    return assign_splits(items, DERIVED_RATIOS, seed)


def _derived_note(derived: Assignment, seed: int) -> dict[str, object]:
    left_out = len(derived.straddling)
    note: dict[str, object] = {
        "seed": seed,
        "ratios": list(DERIVED_RATIOS),
        "grouped_by": "identity (celebrity id; each YouTube-real file its own)",
        "straddling": left_out,
    }
    if left_out:
        note["left_out"] = f"{left_out} fakes straddle train and val identities: left out of both"
    return note


def _entry(
    rel: str,
    folder: str,
    digit: str | None,
    list_error: str | None,
    derived: Assignment | None,
) -> VideoEntry:
    target, source, group = identity_of(rel)
    split: Split | None
    split_source: SplitSource | None
    if list_error:
        split, split_source = None, None  # unread: the catalog keeps the last ones
    elif digit is not None:
        split, split_source = Split.TEST, SplitSource.OFFICIAL
    else:
        assert derived is not None, "a readable list comes with derived splits"
        split, split_source = derived.splits[rel], SplitSource.DERIVED
    return VideoEntry(
        path=rel,
        label=FOLDER_LABELS[folder],
        split=split,
        split_source=split_source,
        method=folder if FOLDER_LABELS[folder] == Label.FAKE else None,
        target_identity=target,
        source_identity=source,
        identity_group=group,
        raw_label=digit,
        metadata_error=list_error,
        unread_fields=_LIST_FIELDS if list_error else frozenset(),
    )


def _cross_check(test_list: TestList) -> list[str]:
    """One line per listed video whose digit contradicts its folder (1 = real, 0 = fake)."""
    problems = []
    for rel, digit in test_list.digits.items():
        expected = FOLDER_LABELS.get(rel.partition("/")[0])
        if expected is not None and LIST_DIGIT_LABELS[digit] != expected:
            problems.append(
                f"{TEST_LIST} cross-check: {rel} has digit {digit} "
                f"(= {LIST_DIGIT_LABELS[digit]}) but its folder says {expected}; "
                "kept the folder label"
            )
    return problems


def _overlap(entries: list[VideoEntry]) -> dict[str, object]:
    """Identity groups the official test list shares with the derived train/val videos."""
    test_groups = {e.identity_group for e in entries if e.split == Split.TEST}
    other = Counter(e.identity_group for e in entries if e.split in (Split.TRAIN, Split.VAL))
    shared = sorted(g for g in test_groups & set(other) if g is not None)
    return {
        "identities": shared,
        "videos": sum(other[g] for g in shared),
        "test_videos": sum(
            1 for e in entries if e.split == Split.TEST and e.identity_group in shared
        ),
    }


def _scan(
    root: Path,
    entries: list[VideoEntry],
    listed_missing: dict[str, int],
    problems: list[str],
    notes: dict[str, object],
) -> LayoutScan:
    return LayoutScan(
        format=FORMAT.name,
        default_name="celebdf",
        root=root,
        entries=tuple(sorted(entries, key=lambda e: e.path)),
        listed_missing=listed_missing,
        problems=tuple(problems),
        notes=notes,
    )


FORMAT = Format(
    name="celebdf",
    looks_like="Celeb-DF Celeb-real/ Celeb-synthesis/ YouTube-real/",
    recognises=recognises_celebdf,
    scan=scan_celebdf,
    detect_priority=20,
)
