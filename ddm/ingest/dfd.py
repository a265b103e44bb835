"""DeepFakeDetection (DFD), the part of the FaceForensics download tree that is a dataset of
its own, as in DeepfakeBench: the actors' reals and the DFD fakes (ingest layer, no database).

DFD has no official split: every video is 'test' (derived), a cross-dataset test set.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from ddm.ingest import ff_tree
from ddm.ingest.ff_tree import DFD_FOLDERS, DFD_KINDS, DFD_METHOD, DFD_REAL_KIND, TreeFile
from ddm.ingest.records import Adoption, Format, LayoutScan, VideoEntry
from ddm.vocab import Label, Split, SplitSource

logger = logging.getLogger(__name__)

DEFAULT_NAME = "dfd"
# Older versions recorded these videos in the FF++ dataset of the same tree.
ADOPTION = Adoption(from_format="ffpp", path_prefixes=tuple(f"{f}/" for f in DFD_FOLDERS))

_ACTOR_SCENE = re.compile(r"^(\d{2})__(.+)$")
_DFD_FAKE = re.compile(r"^(\d{2})_(\d{2})__(.+)__([A-Za-z0-9]{8})$")


def recognises_dfd(root: Path) -> bool:
    """Whether `root` holds the actors' or the DeepFakeDetection folder (`DFD_FOLDERS`)."""
    return any((root / folder).is_dir() for folder in DFD_FOLDERS)


def scan_dfd(root: Path, *, seed: int = 0) -> LayoutScan:
    """Scan the DeepFakeDetection part of a FaceForensics root.

    Every video is test-only with a derived split source, grouped by actor. A fake
    `T_S__scene__id` links to the actor T's real of that scene and compression when that
    file is present. No split is drawn at random, so `seed` is unused.
    """
    files, problems = ff_tree.collect(root, lambda kind: kind in DFD_KINDS)
    reals = {(f.compression, f.stem): f.rel for f in files if f.kind == DFD_REAL_KIND}
    entries = [_actor_real(f) if f.kind == DFD_REAL_KIND else _fake(f, reals) for f in files]
    return LayoutScan(
        format=FORMAT.name,
        default_name=DEFAULT_NAME,
        root=root,
        entries=tuple(sorted(entries, key=lambda e: e.path)),
        listed_missing={},
        problems=tuple(problems),
        notes={},
        adoption=ADOPTION,
    )


def _actor_real(file: TreeFile) -> VideoEntry:
    match = _ACTOR_SCENE.match(file.stem)
    actor = match.group(1) if match else None
    return VideoEntry(
        path=file.rel,
        label=Label.REAL,
        split=Split.TEST,
        split_source=SplitSource.DERIVED,
        compression=file.compression,
        target_identity=actor,
        identity_group=f"actor:{actor}" if actor else None,
    )


def _fake(file: TreeFile, reals: dict[tuple[str, str], str]) -> VideoEntry:
    match = _DFD_FAKE.match(file.stem)
    target, source, scene = match.groups()[:3] if match else (None, None, None)
    original = reals.get((file.compression, f"{target}__{scene}")) if match else None
    return VideoEntry(
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


FORMAT = Format(
    name="dfd",
    looks_like="DeepFakeDetection original_sequences/actors/ or "
    "manipulated_sequences/DeepFakeDetection/",
    recognises=recognises_dfd,
    scan=scan_dfd,
    # After ffpp, which recognises every tree this does and scans DFD as its companion:
    # `--format dfd` is how to ingest this part alone.
    detect_priority=11,
)
