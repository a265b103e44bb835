"""Dataset layout detection and dispatch to one scanner per format (catalog layer).

`scan()` only reads the tree and its label files; probing the videos is `probe.py`'s job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from ddm.errors import InvalidInput
from ddm.ingest import celebdf, dfdc, ffpp, folder
from ddm.ingest.records import LayoutScan

logger = logging.getLogger(__name__)

FORMATS = ("ffpp", "celebdf", "dfdc", "folder")

_SCANNERS: dict[str, Callable[[Path, int], LayoutScan]] = {
    "ffpp": lambda root, seed: ffpp.scan_ffpp(root),
    "celebdf": lambda root, seed: celebdf.scan_celebdf(root, seed=seed),
    "dfdc": lambda root, seed: dfdc.scan_dfdc(root),
    "folder": lambda root, seed: folder.scan_folder(root, seed=seed),
}


def detect_format(root: Path) -> str:
    """The layout of the dataset at `root`: 'ffpp', 'celebdf', 'dfdc' or 'folder'.

    Raises:
        InvalidInput: `root` does not exist, is not a directory, or holds no known layout.
    """
    _check_root(root)
    if (root / "original_sequences").is_dir() or (root / "manipulated_sequences").is_dir():
        return "ffpp"
    if any((root / name).is_dir() for name in celebdf.FOLDER_LABELS):
        return "celebdf"
    if folder.label_dirs(root):
        return "folder"
    if dfdc.find_sources(root):
        return "dfdc"
    raise InvalidInput(
        f"{root}: no recognisable dataset (expected FaceForensics++ original_sequences/ or "
        "manipulated_sequences/, Celeb-DF Celeb-real/ Celeb-synthesis/ YouTube-real/, DFDC "
        "dfdc_train_part_N/metadata.json, labels.csv or dataset.json, or real/ and fake/ "
        "folders); name the format explicitly if the layout is one of these"
    )


def scan(root: Path, format: str | None = None, *, seed: int = 0) -> LayoutScan:
    """Scan the dataset at `root` in `format` (detected when None).

    Args:
        root: the dataset root.
        format: one of FORMATS, or None to detect it.
        seed: the seed of derived train/val splits (Celeb-DF, plain folders).

    Raises:
        InvalidInput: bad root, unknown format, or a forced format that finds nothing.
    """
    _check_root(root)
    if format is None:
        format = detect_format(root)
    elif format not in _SCANNERS:
        raise InvalidInput(f"unknown dataset format {format!r}; choose one of {', '.join(FORMATS)}")
    result = _SCANNERS[format](root, seed)
    if not (result.entries or result.listed_missing or result.problems):
        raise InvalidInput(f"{root}: no {format} videos or label files found")
    logger.info(
        "scanned root=%s format=%s videos=%d problems=%d",
        root,
        format,
        len(result.entries),
        len(result.problems),
    )
    return result


def _check_root(root: Path) -> None:
    if not root.exists():
        raise InvalidInput(f"{root}: no such directory")
    if not root.is_dir():
        raise InvalidInput(f"{root}: not a directory; give the dataset's root folder")
