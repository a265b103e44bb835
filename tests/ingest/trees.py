"""Dataset trees in the real download layouts for the ingest tests, built from links to one
real clip (every file decodes; the layout, not the content, is what these tests check)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

ACTORS = "original_sequences/actors"
DFD = "manipulated_sequences/DeepFakeDetection"

# DeepFakeDetection as the official download script writes it: actors' reals and DFD fakes
# (with a mask video, which is not a video of the dataset).
DFD_VIDEOS = (
    f"{ACTORS}/c23/videos/01__exit_phone_room.mp4",
    f"{ACTORS}/c23/videos/02__walking_outside.mp4",
    f"{DFD}/c23/videos/01_02__exit_phone_room__YVGY8LOK.mp4",
    f"{DFD}/c23/videos/02_01__walking_outside__ABCDEFGH.mp4",
    f"{DFD}/c23/videos/03_01__walking_outside__QWERTYUI.mp4",
)
DFD_MASK = f"{DFD}/masks/videos/01_02__exit_phone_room__YVGY8LOK.mp4"


def link_all(root: Path, rels: Iterable[str], clip: Path) -> None:
    """Create each relative path under `root` as a symlink to `clip`."""
    for rel in rels:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(clip)


def add_deepfakedetection(root: Path, clip: Path) -> tuple[str, ...]:
    """Add DeepFakeDetection's folders to a FaceForensics tree; returns the video paths."""
    link_all(root, [*DFD_VIDEOS, DFD_MASK], clip)
    return DFD_VIDEOS


def is_dfd(path: str) -> bool:
    return path.startswith((f"{ACTORS}/", f"{DFD}/"))
