"""Helpers shared by the layout scanners: listing video files and the split files shipped
as package data (ingest layer, no database).
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from ddm.vocab import Split

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp"}
)

# Celeb-DF's derived split sends this percentage of identities to 'val', the rest to 'train'.
DERIVED_VAL_PERCENT = 15


def is_video_name(name: str) -> bool:
    """Whether a file name looks like a video we ingest.

    Hidden names (leading '.') are skipped: macOS copies leave '._x.mp4' resource forks
    next to every video, and they are not videos.
    """
    # `name[dot:]` is `os.path.splitext`'s extension for a name that does not start with a
    # dot, at a third of its cost (a DFDC tree has 128,000 names).
    dot = name.rfind(".")
    return dot > 0 and not name.startswith(".") and name[dot:].lower() in VIDEO_EXTENSIONS


def relative_videos(root: Path, directory: Path, *, recursive: bool = False) -> Iterator[str]:
    """The '/'-separated paths below `root` of the videos in `directory`, sorted by name
    within each directory.

    Anything with a video extension is yielded, including broken symlinks and directories
    named like videos, so that the probe records them as 'missing' or 'unreadable' instead
    of their silently vanishing from the catalog. Symlinked directories are not followed
    (no cycles). A directory that cannot be listed yields nothing. Paths are built as
    strings: a `Path` per file cost most of a re-scan of DFDC's 128,000 files.
    """
    prefix = relative_path(directory, root)
    yield from _relative_videos(str(directory), "" if prefix == "." else prefix + "/", recursive)


def _relative_videos(directory: str, prefix: str, recursive: bool) -> Iterator[str]:
    try:
        with os.scandir(directory) as items:
            children = sorted(items, key=lambda item: item.name)
    except OSError as exc:
        logger.warning("cannot list %s: %s", directory, exc)
        return
    for child in children:
        if is_video_name(child.name):
            yield prefix + child.name
        elif recursive and child.is_dir(follow_symlinks=False):
            yield from _relative_videos(child.path, f"{prefix}{child.name}/", recursive=True)


def relative_path(path: Path, root: Path) -> str:
    """The '/'-separated path of `path` below `root`."""
    return path.relative_to(root).as_posix()


def encoding_problem(rel_path: str) -> str | None:
    """A problem line if the name cannot be stored as UTF-8 text, else None.

    Linux names are bytes; Python maps invalid UTF-8 to lone surrogates, which no
    database text column accepts.
    """
    try:
        rel_path.encode("utf-8")
    except UnicodeEncodeError:
        return f"{ascii(rel_path)}: file name is not valid UTF-8; skipped (rename the file)"
    return None


def shipped_bytes(*parts: str) -> bytes:
    """Read a file shipped under `ddm/ingest/splits/` (package data)."""
    return resources.files("ddm.ingest").joinpath("splits", *parts).read_bytes()


def shipped_text(*parts: str) -> str:
    """Read a file shipped under `ddm/ingest/splits/` as UTF-8 text."""
    return shipped_bytes(*parts).decode("utf-8")


@functools.cache
def ffpp_pairs() -> dict[Split, tuple[tuple[str, str], ...]]:
    """The official FF++ pairs per split, from the shipped `<split>.json` files."""
    return {
        split: tuple((a, b) for a, b in json.loads(shipped_text("ffpp", f"{split.value}.json")))
        for split in Split
    }


@functools.cache
def ffpp_youtube_ids() -> dict[str, str]:
    """FF++ sequence id -> YouTube id, from the shipped `conversion_dict.json`."""
    raw: dict[str, str] = json.loads(shipped_text("ffpp", "conversion_dict.json"))
    return {seq: value.split()[0] for seq, value in raw.items()}
