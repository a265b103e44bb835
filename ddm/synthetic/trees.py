"""Small datasets of generated face clips in the real layouts: an FF++-style tree whose ids
are official FF++ pairs (so the official splits apply at ingest) and a DFDC-style part with
a real-format `metadata.json` (no torch)."""

from __future__ import annotations

import json
import random
import string
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ddm.fs import atomic_write
from ddm.ingest.common import ffpp_pairs
from ddm.synthetic.clips import ARTEFACTS, ClipCfg, render_clip
from ddm.vocab import Split

FFPP_METHODS = ("Recolor", "Seam")
DFDC_METHOD = "Jitter"
DFDC_PART = "dfdc_train_part_0"
FREE_BOX_HEADER = 8  # 4-byte size, 4-byte type

OnClip = Callable[[Path], None]


@dataclass(frozen=True)
class TreeSummary:
    """What a generated tree holds: its root and the clips per label and method."""

    root: Path
    reals: int
    fakes: dict[str, int] = field(default_factory=dict)

    @property
    def clips(self) -> int:
        return self.reals + sum(self.fakes.values())


def build_ffpp_tree(
    root: Path,
    pairs: dict[Split, int],
    cfg: ClipCfg,
    *,
    seed: int = 0,
    on_clip: OnClip | None = None,
) -> TreeSummary:
    """Reals `A.mp4`, `B.mp4` and fakes `A_B.mp4` (first method), `B_A.mp4` (second
    method) for the first `pairs[split]` official pairs of each split."""
    reals = root / "original_sequences" / "youtube" / "c23" / "videos"
    folders = {m: root / "manipulated_sequences" / m / "c23" / "videos" for m in FFPP_METHODS}
    for folder in (reals, *folders.values()):
        folder.mkdir(parents=True, exist_ok=True)
    jobs: list[tuple[Path, str | None]] = []
    for split, count in pairs.items():
        for a, b in ffpp_pairs()[split][:count]:
            jobs += [(reals / f"{a}.mp4", None), (reals / f"{b}.mp4", None)]
            jobs.append((folders[FFPP_METHODS[0]] / f"{a}_{b}.mp4", FFPP_METHODS[0]))
            jobs.append((folders[FFPP_METHODS[1]] / f"{b}_{a}.mp4", FFPP_METHODS[1]))
    fakes = _render_all(jobs, cfg, seed, on_clip)
    equalize_sizes([path for path, _ in jobs])
    return TreeSummary(root, sum(method is None for _, method in jobs), fakes)


def build_dfdc_tree(
    root: Path,
    reals: int,
    cfg: ClipCfg,
    *,
    seed: int = 0,
    on_clip: OnClip | None = None,
) -> TreeSummary:
    """One DFDC training part: `reals` originals, each with one fake made by the DFDC-style
    method, labelled by a `metadata.json` in the real format."""
    part = root / DFDC_PART
    part.mkdir(parents=True, exist_ok=True)
    names = _dfdc_names(2 * reals, seed)
    metadata: dict[str, dict[str, str]] = {}
    jobs: list[tuple[Path, str | None]] = []
    for original, fake in zip(names[:reals], names[reals:], strict=True):
        metadata[original] = {"label": "REAL", "split": "train"}
        metadata[fake] = {"label": "FAKE", "split": "train", "original": original}
        jobs += [(part / original, None), (part / fake, DFDC_METHOD)]
    fakes = _render_all(jobs, cfg, seed + 1, on_clip)
    equalize_sizes([path for path, _ in jobs])
    with atomic_write(part / "metadata.json", "w") as handle:
        json.dump(metadata, handle)
    return TreeSummary(root, reals, fakes)


def _dfdc_names(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    names: list[str] = []
    while len(names) < count:
        name = "".join(rng.choices(string.ascii_lowercase, k=10)) + ".mp4"
        if name not in names:
            names.append(name)
    return names


def _render_all(
    jobs: list[tuple[Path, str | None]], cfg: ClipCfg, seed: int, on_clip: OnClip | None
) -> dict[str, int]:
    """Render each clip once (a real shared by two pairs is not rendered twice)."""
    fakes: dict[str, int] = {}
    done: set[Path] = set()
    for index, (path, method) in enumerate(jobs):
        if path in done:
            continue
        done.add(path)
        render_clip(path, seed * 100_003 + index, cfg, ARTEFACTS[method] if method else None)
        if method:
            fakes[method] = fakes.get(method, 0) + 1
        if on_clip is not None:
            on_clip(path)
    return fakes


def equalize_sizes(paths: list[Path]) -> int:
    """Pad every clip to one file size with a trailing ISO-BMFF `free` box; returns it.

    A fake's face changes every frame, so it compresses worse than its real: left as they
    are, file size and bitrate alone would tell the labels apart (`ddm stats` says so).
    Decoders skip `free` boxes, so the frames are untouched.
    """
    unique = list(dict.fromkeys(paths))
    target = max(path.stat().st_size for path in unique) + FREE_BOX_HEADER
    for path in unique:
        padding = target - path.stat().st_size
        with path.open("ab") as handle:
            handle.write(struct.pack(">I4s", padding, b"free") + bytes(padding - FREE_BOX_HEADER))
    return target
