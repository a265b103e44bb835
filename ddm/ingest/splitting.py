"""Derived splits: groups of videos (an identity, a source) placed whole in train, val and
test, stratified by what each group holds and deterministic from a seed (ingest layer, no
database). Scanners use it on their entries and `ddm split` on catalog rows.

A video shows one or more groups: its own (a person, a source clip, or the file itself)
and, for a face swap, the group of the face swapped in. A video lands in the split its
groups share; a video whose groups fall in different splits gets none, since either choice
would put a face seen in training on the other side.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ddm.errors import InvalidInput
from ddm.vocab import Split

# train, val, test percentages.
Ratios = tuple[int, int, int]
DEFAULT_RATIOS: Ratios = (70, 15, 15)
SPLIT_ORDER = (Split.TRAIN, Split.VAL, Split.TEST)
# The held-out splits come first: a tiny dataset fills them with both classes before train.
_GUARANTEE_ORDER = (Split.VAL, Split.TEST, Split.TRAIN)
# Within a stratum, groups are laid out in hash order: test first, then val, then train.
_LAYOUT_ORDER = (Split.TEST, Split.VAL, Split.TRAIN)


@dataclass(frozen=True)
class Splittable:
    """One video to place.

    Attributes:
        key: the video's relative path.
        label: its label (None when unknown: placed, never counted for a class).
        stratum: what its group is stratified by, e.g. 'fake' or 'fake/Deepfakes'.
        groups: its own group first, then any other group it shows (a swapped-in face).
    """

    key: str
    label: str | None
    stratum: str
    groups: tuple[str, ...]


@dataclass(frozen=True)
class Assignment:
    """Where each video went.

    Attributes:
        splits: key -> split; None for a video whose groups fell in different splits.
        straddling: those keys, sorted.
        shortages: one line per class that some split lacks because the class has too few
            groups (or every video of it straddles).
    """

    splits: dict[str, Split | None]
    straddling: tuple[str, ...]
    shortages: tuple[str, ...]


def parse_ratios(text: str) -> Ratios:
    """'70,15,15' -> (70, 15, 15): three non-negative integers summing to 100, train > 0.

    Raises:
        InvalidInput: anything else.
    """
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != 3 or not all(part.isdigit() for part in parts):
        raise InvalidInput(f"ratios {text!r}: give three whole percentages, e.g. 70,15,15")
    ratios = (int(parts[0]), int(parts[1]), int(parts[2]))
    if sum(ratios) != 100 or ratios[0] == 0:
        raise InvalidInput(f"ratios {text!r}: the three must sum to 100, with train above 0")
    return ratios


def group_rank(seed: int, group: str) -> bytes:
    """A group's place in the seeded order: sha256 of "<seed>:<group>"."""
    return hashlib.sha256(f"{seed}:{group}".encode()).digest()


def assign_splits(items: Iterable[Splittable], ratios: Ratios, seed: int) -> Assignment:
    """Place every group in a split, then every video in the split its groups share.

    Groups are stratified by the strata of their own videos (a group of reals apart from a
    group of fakes, a group holding both apart from either); within a stratum they are
    laid out in seeded hash order and cut by the ratios (largest remainder), so the split
    is the same for a seed and adding a group moves at most the few at each cut. Then every
    class with enough groups gets at least one in val, test and train (in that order)
    where their ratio is above 0.
    """
    items = list(items)
    own: dict[str, list[Splittable]] = defaultdict(list)
    for item in items:
        own[item.groups[0]].append(item)
    every_group = {group for item in items for group in item.groups}
    strata: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for group in every_group:
        strata[tuple(sorted({i.stratum for i in own.get(group, ())}))].append(group)
    placed: dict[str, Split] = {}
    for _, groups in sorted(strata.items()):
        placed.update(_cut(sorted(groups, key=lambda g: group_rank(seed, g)), ratios))
    wanted = [s for s in _GUARANTEE_ORDER if ratios[SPLIT_ORDER.index(s)] > 0]
    _guarantee_classes(placed, _classes_by_group(own), wanted, seed)
    _rescue_straddled(items, placed, wanted, seed)
    splits = {item.key: _common_split(item, placed) for item in items}
    straddling = tuple(sorted(key for key, split in splits.items() if split is None))
    return Assignment(splits, straddling, tuple(_shortages(items, splits, wanted)))


def _cut(ordered: list[str], ratios: Ratios) -> dict[str, Split]:
    counts = _quotas(len(ordered), ratios)
    placed: dict[str, Split] = {}
    start = 0
    for split in _LAYOUT_ORDER:
        for group in ordered[start : start + counts[split]]:
            placed[group] = split
        start += counts[split]
    return placed


def _quotas(n: int, ratios: Ratios) -> dict[Split, int]:
    """Largest-remainder apportionment of n groups; ties go to the held-out splits. Ratios
    need not sum to 100: a split kept official elsewhere has 0 and the others share n."""
    total = sum(ratios)
    exact = {split: n * ratio / total for split, ratio in zip(SPLIT_ORDER, ratios, strict=True)}
    counts = {split: math.floor(value) for split, value in exact.items()}
    by_remainder = sorted(exact, key=lambda s: (-(exact[s] - counts[s]), _GUARANTEE_ORDER.index(s)))
    for split in by_remainder[: n - sum(counts.values())]:
        counts[split] += 1
    return counts


def _classes_by_group(own: Mapping[str, list[Splittable]]) -> dict[str, set[str]]:
    return {group: {i.label for i in members if i.label} for group, members in own.items()}


def _guarantee_classes(
    placed: dict[str, Split], classes: Mapping[str, set[str]], wanted: list[Split], seed: int
) -> None:
    """Move groups so that each wanted split holds a group of each class, where the class
    has groups enough."""
    for label in sorted({label for labels in classes.values() for label in labels}):
        holders = [g for g in sorted(placed) if label in classes.get(g, set())]
        for split in wanted:
            if not any(placed[g] == split for g in holders):
                donor = _donor(placed, holders, split, wanted, classes, seed)
                if donor is not None:
                    placed[donor] = split


def _rescue_straddled(
    items: list[Splittable], placed: dict[str, Split], wanted: list[Split], seed: int
) -> None:
    """A wanted split whose groups hold a class only through videos that straddle (a
    swap between one of its identities and one elsewhere) takes the other groups of one
    such video, the first in hash order, so that the class is there after all."""
    for label in sorted({item.label for item in items if item.label}):
        of_label = [item for item in items if item.label == label]
        for split in wanted:
            if any(_common_split(item, placed) == split for item in of_label):
                continue
            touching = [i for i in of_label if any(placed[g] == split for g in i.groups)]
            if touching:
                chosen = min(touching, key=lambda i: group_rank(seed, i.key))
                for group in chosen.groups:
                    placed[group] = split


def _shortages(
    items: list[Splittable], splits: Mapping[str, Split | None], wanted: list[Split]
) -> list[str]:
    lines = []
    for label in sorted({item.label for item in items if item.label}):
        groups = {item.groups[0] for item in items if item.label == label}
        placed = {splits[item.key] for item in items if item.label == label}
        missing = [split.value for split in wanted if split not in placed]
        if missing:
            lines.append(
                f"{' and '.join(missing)} {'get' if len(missing) > 1 else 'gets'} no {label} "
                f"video: {len(groups)} {label} "
                f"group(s) for {len(wanted)} splits; add {label} videos or choose other "
                "ratios (`ddm split DATASET --ratios`)"
            )
    return lines


def _donor(
    placed: Mapping[str, Split],
    holders: list[str],
    split: Split,
    wanted: list[Split],
    classes: Mapping[str, set[str]],
    seed: int,
) -> str | None:
    """The group to move into `split`: from the split holding most of the class that can
    spare one (or that comes after `split` in the guarantee order), a single-class group
    first, the last in hash order."""
    by_split: dict[Split, list[str]] = defaultdict(list)
    for group in holders:
        by_split[placed[group]].append(group)
    rank = wanted.index(split)
    for other in sorted(by_split, key=lambda s: -len(by_split[s])):
        lower = other not in wanted or wanted.index(other) > rank
        if other != split and (len(by_split[other]) >= 2 or lower):
            return max(
                by_split[other],
                key=lambda g: (len(classes.get(g, ())) == 1, group_rank(seed, g)),
            )
    return None


def _common_split(item: Splittable, placed: Mapping[str, Split]) -> Split | None:
    splits = {placed[group] for group in item.groups}
    return splits.pop() if len(splits) == 1 else None


def stratum_of(label: str | None, method: str | None) -> str:
    """The stratum of a video: its label, and its method when it has one."""
    return "/".join(part for part in (label or "unlabelled", method) if part)
