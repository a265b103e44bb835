"""The FaceForensics download tree, which holds two datasets: FF++ and DeepFakeDetection
(ingest layer, no database).

The official download script writes `original_sequences/{youtube,actors}/<comp>/videos/` and
`manipulated_sequences/<Method>/<comp>/videos/`, where <comp> is raw (alias c0), c23 or c40.
Masks, Deepfakes models, extracted frames and images are not videos and are skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ddm.ingest.common import encoding_problem, relative_videos
from ddm.vocab import Compression

# Folder name -> compression; FF++ calls raw "c0" in places.
COMPRESSIONS = {"c0": Compression.RAW, **{c.value: c for c in Compression}}
ORIGINALS = "original_sequences"
MANIPULATED = "manipulated_sequences"
REAL_KINDS = frozenset({"youtube", "actors"})
# DeepFakeDetection's reals (the paid actors) and fakes: a dataset of its own.
DFD_REAL_KIND = "actors"
DFD_METHOD = "DeepFakeDetection"
DFD_KINDS = frozenset({DFD_REAL_KIND, DFD_METHOD})
DFD_FOLDERS = (f"{ORIGINALS}/{DFD_REAL_KIND}", f"{MANIPULATED}/{DFD_METHOD}")


@dataclass(frozen=True)
class TreeFile:
    """One video of the tree.

    Attributes:
        kind: 'youtube' or 'actors' for reals, else the method folder's name.
    """

    rel: str
    stem: str
    kind: str
    compression: Compression


def collect(root: Path, wanted: Callable[[str], bool]) -> tuple[list[TreeFile], list[str]]:
    """(the videos of every kind `wanted` accepts, one problem line per unusable name)."""
    files: list[TreeFile] = []
    problems: list[str] = []
    kinds = [d for d in subdirs(root / ORIGINALS) if d.name in REAL_KINDS]
    kinds += subdirs(root / MANIPULATED)
    for kind_dir in kinds:
        if not wanted(kind_dir.name):
            continue
        for comp_dir in subdirs(kind_dir):
            compression = COMPRESSIONS.get(comp_dir.name.lower())
            if compression is None:  # masks/, models/, frames/ ...
                continue
            for rel in relative_videos(root, comp_dir / "videos"):
                problem = encoding_problem(rel)
                if problem:
                    problems.append(problem)
                    continue
                stem = rel.rsplit("/", 1)[-1].rsplit(".", 1)[0]
                files.append(TreeFile(rel, stem, kind_dir.name, compression))
    return files, problems


def subdirs(directory: Path) -> list[Path]:
    try:
        return sorted(p for p in directory.iterdir() if p.is_dir())
    except OSError:
        return []
