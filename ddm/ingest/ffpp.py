"""FaceForensics++ layout (with FaceShifter and DeepFakeDetection): labels from the folder,
official pair splits from the shipped JSON (ingest layer, no database).

Tree: `original_sequences/{youtube,actors}/<comp>/videos/*.mp4` and
`manipulated_sequences/<Method>/<comp>/videos/*.mp4`, where <comp> is raw (alias c0), c23
or c40. Masks, Deepfakes models, extracted frames and images are not videos and are skipped.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from ddm.ingest.common import (
    encoding_problem,
    ffpp_pairs,
    ffpp_youtube_ids,
    list_videos,
    relative_path,
)
from ddm.ingest.records import Format, LayoutScan, VideoEntry
from ddm.vocab import Compression, Label, Split, SplitSource

logger = logging.getLogger(__name__)

# Folder name -> compression; FF++ calls raw "c0" in places.
COMPRESSIONS = {"c0": Compression.RAW, **{c.value: c for c in Compression}}
FFPP_METHODS = frozenset({"Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter"})
DFD_METHOD = "DeepFakeDetection"

_SEQUENCE = re.compile(r"^(\d{3})$")
_PAIR = re.compile(r"^(\d{3})_(\d{3})$")
_ACTOR_SCENE = re.compile(r"^(\d{2})__(.+)$")
_DFD_FAKE = re.compile(r"^(\d{2})_(\d{2})__(.+)__([A-Za-z0-9]{8})$")


@dataclass(frozen=True)
class _File:
    rel: str
    stem: str
    kind: str  # 'youtube' | 'actors' | a method folder name
    compression: Compression


@dataclass(frozen=True)
class _Official:
    split_of: dict[str, Split]  # sequence id -> split
    pairs: frozenset[frozenset[str]]
    group_of: dict[str, str]  # sequence id -> identity group
    leaking: frozenset[str]  # ids sharing a YouTube video with an id in another split


def recognises_ffpp(root: Path) -> bool:
    """Whether `root` holds FF++'s original_sequences/ or manipulated_sequences/."""
    return (root / "original_sequences").is_dir() or (root / "manipulated_sequences").is_dir()


def scan_ffpp(root: Path, *, seed: int = 0) -> LayoutScan:
    """Scan a FaceForensics++ root.

    Reals and fakes take their official split from the pair lists; the actors and
    DeepFakeDetection videos have none and are stored as test-only with a derived source.
    A fake `T_S` links to `T` of the same compression when that file is present. Every
    split is fixed by the dataset, so `seed` is unused.
    """
    files, problems = _collect(root)
    official = _official()
    originals = {(f.kind, f.compression, f.stem): f.rel for f in files if f.kind in _REAL_KINDS}
    entries: list[VideoEntry] = []
    unknown_methods: set[str] = set()
    for file in files:
        if file.kind not in _REAL_KINDS and file.kind not in FFPP_METHODS | {DFD_METHOD}:
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


_REAL_KINDS = frozenset({"youtube", "actors"})


def _collect(root: Path) -> tuple[list[_File], list[str]]:
    files: list[_File] = []
    problems: list[str] = []
    kinds = [(d.name, d) for d in _subdirs(root / "original_sequences") if d.name in _REAL_KINDS]
    kinds += [(d.name, d) for d in _subdirs(root / "manipulated_sequences")]
    for kind, kind_dir in kinds:
        for comp_dir in _subdirs(kind_dir):
            compression = COMPRESSIONS.get(comp_dir.name.lower())
            if compression is None:  # masks/, models/, frames/ ...
                continue
            for path in list_videos(comp_dir / "videos"):
                rel = relative_path(path, root)
                problem = encoding_problem(rel)
                if problem:
                    problems.append(problem)
                    continue
                stem = path.name.rsplit(".", 1)[0]
                files.append(_File(rel, stem, kind, compression))
    return files, problems


def _subdirs(directory: Path) -> list[Path]:
    try:
        return sorted(p for p in directory.iterdir() if p.is_dir())
    except OSError:
        return []


def _entry(
    file: _File, official: _Official, originals: dict[tuple[str, str, str], str]
) -> tuple[VideoEntry, str | None]:
    if file.kind == "youtube":
        return _youtube_real(file, official)
    if file.kind == "actors":
        return _actor_real(file)
    if file.kind == DFD_METHOD:
        return _dfd_fake(file, originals)
    return _pair_fake(file, official, originals)


def _youtube_real(file: _File, official: _Official) -> tuple[VideoEntry, str | None]:
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
    file: _File, official: _Official, originals: dict[tuple[str, str, str], str]
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
        original_path=originals.get(("youtube", file.compression, target)),
        identity_group=official.group_of.get(target),
    )
    problem = None if split else f"{file.rel}: {target}/{source} is not an official FF++ pair"
    return entry, problem


def _actor_real(file: _File) -> tuple[VideoEntry, str | None]:
    # DeepFakeDetection has no official split: it is a cross-dataset test set only.
    match = _ACTOR_SCENE.match(file.stem)
    actor = match.group(1) if match else None
    entry = VideoEntry(
        path=file.rel,
        label=Label.REAL,
        split=Split.TEST,
        split_source=SplitSource.DERIVED,
        compression=file.compression,
        target_identity=actor,
        identity_group=f"actor:{actor}" if actor else None,
    )
    return entry, None


def _dfd_fake(
    file: _File, originals: dict[tuple[str, str, str], str]
) -> tuple[VideoEntry, str | None]:
    match = _DFD_FAKE.match(file.stem)
    target, source, scene = match.groups()[:3] if match else (None, None, None)
    original = None
    if target and scene:
        original = originals.get(("actors", file.compression, f"{target}__{scene}"))
    entry = VideoEntry(
        path=file.rel,
        label=Label.FAKE,
        split=Split.TEST,
        split_source=SplitSource.DERIVED,
        method=DFD_METHOD,
        compression=file.compression,
        target_identity=target,
        source_identity=source,
        original_path=original,
        identity_group=f"actor:{target}" if target else None,
    )
    return entry, None


def _ids(entry: VideoEntry) -> set[str]:
    if entry.method == DFD_METHOD or entry.identity_group is None:
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
    looks_like="FaceForensics++ original_sequences/ or manipulated_sequences/",
    recognises=recognises_ffpp,
    scan=scan_ffpp,
    detect_priority=10,
)
