"""FaceForensics++ layout (with FaceShifter): labels from the folder, official pair splits
from the shipped JSON (ingest layer, no database).

The download tree (`ff_tree`) also holds DeepFakeDetection, which is a dataset of its own:
it is scanned by `dfd` and returned as this scan's companion, so that FF++'s test split is
exactly the official test pairs.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from ddm.ingest import dfd, ff_tree
from ddm.ingest.common import ffpp_pairs, ffpp_youtube_ids
from ddm.ingest.ff_tree import DFD_KINDS, MANIPULATED, ORIGINALS, REAL_KINDS, TreeFile
from ddm.ingest.records import Format, LayoutScan, VideoEntry
from ddm.vocab import Label, Split, SplitSource

logger = logging.getLogger(__name__)

FFPP_METHODS = frozenset({"Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter"})

_SEQUENCE = re.compile(r"^(\d{3})$")
_PAIR = re.compile(r"^(\d{3})_(\d{3})$")


@dataclass(frozen=True)
class _Official:
    split_of: dict[str, Split]  # sequence id -> split
    pairs: frozenset[frozenset[str]]
    group_of: dict[str, str]  # sequence id -> identity group
    leaking: frozenset[str]  # ids sharing a YouTube video with an id in another split


def recognises_ffpp(root: Path) -> bool:
    """Whether `root` holds FF++'s original_sequences/youtube/ or a method folder other than
    DeepFakeDetection's (a tree of DFD alone is the `dfd` format)."""
    reals = [d for d in ff_tree.subdirs(root / ORIGINALS) if d.name in REAL_KINDS]
    kinds = reals + ff_tree.subdirs(root / MANIPULATED)
    return any(d.name not in DFD_KINDS for d in kinds)


def scan_ffpp(root: Path, *, seed: int = 0) -> LayoutScan:
    """Scan a FaceForensics++ root, and its DeepFakeDetection part as a companion.

    Reals and fakes take their official split from the pair lists. A fake `T_S` links to
    `T` of the same compression when that file is present. A tree whose FF++ folders hold
    no video is scanned as DeepFakeDetection alone. Every split is fixed by the dataset, so
    `seed` is unused.
    """
    ffpp = _scan_official(root)
    if not dfd.recognises_dfd(root):
        return ffpp
    companion = dfd.scan_dfd(root)
    if not (ffpp.entries or ffpp.problems):
        return companion  # FF++'s folders are empty: DFD is all there is
    return dataclasses.replace(ffpp, companions=(companion,))


def _scan_official(root: Path) -> LayoutScan:
    files, problems = ff_tree.collect(root, lambda kind: kind not in DFD_KINDS)
    official = _official()
    originals = {(f.compression, f.stem): f.rel for f in files if f.kind == "youtube"}
    entries: list[VideoEntry] = []
    unknown_methods: set[str] = set()
    for file in files:
        if file.kind != "youtube" and file.kind not in FFPP_METHODS:
            unknown_methods.add(file.kind)
        entry, problem = _entry(file, official, originals)
        entries.append(entry)
        if problem:
            problems.append(problem)
    notes: dict[str, object] = {}
    if unknown_methods:
        notes["unknown_methods"] = sorted(unknown_methods)
    leaked = [e.path for e in entries if _ids(e) & official.leaking]
    if leaked:
        notes["official_split_youtube_overlap"] = {
            "sequences": sorted(official.leaking),
            "videos": len(leaked),
        }
    return LayoutScan(
        format=FORMAT.name,
        default_name="ff",
        root=root,
        entries=tuple(sorted(entries, key=lambda e: e.path)),
        listed_missing={},
        problems=tuple(problems),
        notes=notes,
    )


def _entry(
    file: TreeFile, official: _Official, originals: dict[tuple[str, str], str]
) -> tuple[VideoEntry, str | None]:
    if file.kind == "youtube":
        return _youtube_real(file, official)
    return _pair_fake(file, official, originals)


def _youtube_real(file: TreeFile, official: _Official) -> tuple[VideoEntry, str | None]:
    match = _SEQUENCE.match(file.stem)
    seq = match.group(1) if match else None
    split = official.split_of.get(seq) if seq else None
    entry = VideoEntry(
        path=file.rel,
        label=Label.REAL,
        split=split,
        split_source=SplitSource.OFFICIAL if split else None,
        compression=file.compression,
        target_identity=seq,
        identity_group=official.group_of.get(seq) if seq else None,
    )
    problem = None if split else f"{file.rel}: not a sequence of the official FF++ splits"
    return entry, problem


def _pair_fake(
    file: TreeFile, official: _Official, originals: dict[tuple[str, str], str]
) -> tuple[VideoEntry, str | None]:
    match = _PAIR.match(file.stem)
    if not match:
        entry = VideoEntry(
            path=file.rel,
            label=Label.FAKE,
            split=None,
            split_source=None,
            method=file.kind,
            compression=file.compression,
        )
        return entry, f"{file.rel}: name is not target_source (T_S); no split assigned"
    target, source = match.groups()
    is_pair = frozenset({target, source}) in official.pairs
    split = official.split_of.get(target) if is_pair else None
    entry = VideoEntry(
        path=file.rel,
        label=Label.FAKE,
        split=split,
        split_source=SplitSource.OFFICIAL if split else None,
        method=file.kind,
        compression=file.compression,
        target_identity=target,
        source_identity=source,
        original_path=originals.get((file.compression, target)),
        identity_group=official.group_of.get(target),
    )
    problem = None if split else f"{file.rel}: {target}/{source} is not an official FF++ pair"
    return entry, problem


def _ids(entry: VideoEntry) -> set[str]:
    if entry.identity_group is None:
        return set()
    return {i for i in (entry.target_identity, entry.source_identity) if i}


@functools.cache
def _official() -> _Official:
    """Splits, pairs and identity groups from the shipped pair lists and conversion_dict.

    A group is a pair, merged with every other pair whose sequences come from the same
    YouTube video (DATASETS.md §1.5), so it is stable whatever subset is on disk.
    """
    split_of: dict[str, Split] = {}
    pairs: set[frozenset[str]] = set()
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    for split, split_pairs in ffpp_pairs().items():
        for a, b in split_pairs:
            split_of[a] = split_of[b] = split
            pairs.add(frozenset({a, b}))
            union(a, b)
    by_youtube: dict[str, list[str]] = {}
    for seq, youtube_id in ffpp_youtube_ids().items():
        by_youtube.setdefault(youtube_id, []).append(seq)
    leaking: set[str] = set()
    for seqs in by_youtube.values():
        for other in seqs[1:]:
            union(seqs[0], other)
        if len({split_of.get(s) for s in seqs}) > 1:
            leaking.update(seqs)
    group_of = {seq: f"seq:{find(seq)}" for seq in split_of}
    return _Official(split_of, frozenset(pairs), group_of, frozenset(leaking))


FORMAT = Format(
    name="ffpp",
    looks_like="FaceForensics++ original_sequences/youtube/ or manipulated_sequences/<Method>/",
    recognises=recognises_ffpp,
    scan=scan_ffpp,
    detect_priority=10,
)
