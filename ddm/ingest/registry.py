"""The dataset formats ddm knows: layout detection and dispatch to each format's scanner
(ingest layer, no database).

A format is one module declaring one `Format` (see `records.Format`); adding one means
writing that module and listing its `FORMAT` below. This module imports only the stdlib
and the scanners, so the CLI reads `FORMAT_NAMES` without loading OpenCV or SQLAlchemy.
`scan()` only reads the tree and its label files; probing the videos is `probe.py`'s job.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ddm.errors import InvalidInput
from ddm.ingest import celebdf, dfd, dfdc, ffpp, folder
from ddm.ingest.records import Format, LayoutScan

logger = logging.getLogger(__name__)

# In the order users see them: `--format` choices and error messages.
FORMATS: tuple[Format, ...] = (
    ffpp.FORMAT,
    dfd.FORMAT,
    celebdf.FORMAT,
    dfdc.FORMAT,
    folder.FORMAT,
)
FORMAT_NAMES: tuple[str, ...] = tuple(spec.name for spec in FORMATS)

_BY_NAME = {spec.name: spec for spec in FORMATS}
_DETECTION_ORDER = sorted(FORMATS, key=lambda spec: spec.detect_priority)


def detect_format(root: Path) -> str:
    """The name of the format whose layout `root` holds, e.g. 'ffpp'.

    Formats are tried by `Format.detect_priority`; the first that recognises `root` wins.

    Raises:
        InvalidInput: `root` does not exist, is not a directory, or holds no known layout.
    """
    _check_root(root)
    for spec in _DETECTION_ORDER:
        if spec.recognises(root):
            return spec.name
    *others, last = (spec.looks_like for spec in FORMATS)
    raise InvalidInput(
        f"{root}: no recognisable dataset (expected {', '.join(others)}, or {last}); "
        "name the format explicitly if the layout is one of these"
    )


def scan(root: Path, format: str | None = None, *, seed: int = 0) -> LayoutScan:
    """Scan the dataset at `root` in `format` (detected when None).

    Args:
        root: the dataset root.
        format: one of FORMAT_NAMES, or None to detect it.
        seed: the seed of derived train/val splits (Celeb-DF, plain folders).

    Raises:
        InvalidInput: bad root, unknown format, or a forced format whose layout `root`
            does not hold.
    """
    _check_root(root)
    if format is None:
        format = detect_format(root)
    elif format not in _BY_NAME:
        raise InvalidInput(
            f"unknown dataset format {format!r}; choose one of {', '.join(FORMAT_NAMES)}"
        )
    spec = _BY_NAME[format]
    # A forced format must still find its own layout: a scanner given a foreign tree can
    # report plenty (Celeb-DF's shipped test list "misses" all 518 videos) and so pass
    # for a dataset, an empty one.
    if not spec.recognises(root):
        raise InvalidInput(f"{root}: not a {format} dataset (expected {spec.looks_like})")
    result = spec.scan(root, seed=seed)
    if not (result.entries or result.listed_missing or result.problems):
        raise InvalidInput(f"{root}: not a {format} dataset: no videos or label files found")
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
