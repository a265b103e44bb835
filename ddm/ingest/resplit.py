"""A split policy chosen with `ddm split` (ratios, seed, group file, whether official splits
give way) and its application to any dataset's videos, catalog rows or scan entries alike
(ingest layer, no database).

The catalog records the policy on the dataset, and every later ingest applies it to its
scan again, so a re-ingest keeps the user's split instead of restoring the format's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ddm.ingest.group_files import GroupFileError, read_group_file
from ddm.ingest.records import LayoutScan
from ddm.ingest.splitting import (
    SPLIT_ORDER,
    Assignment,
    Ratios,
    Splittable,
    assign_splits,
    stratum_of,
)
from ddm.vocab import Split, SplitSource

# What a group file that cannot be read leaves as it was.
_GROUP_FIELDS = frozenset({"split", "split_source", "identity_group"})


class SplitVideo(Protocol):
    """What a re-split reads of a video: a catalog row or a scan entry."""

    path: str
    label: str | None
    method: str | None
    split: str | None
    split_source: str | None
    identity_group: str | None
    target_identity: str | None
    source_identity: str | None


@dataclass(frozen=True)
class SplitPolicy:
    """What `ddm split` was asked; stored in the dataset's notes as `split_policy`.

    Attributes:
        group_by: an absolute path to a `file,group` CSV, or None.
        force: official splits are re-drawn too.
    """

    ratios: Ratios
    seed: int
    group_by: str | None = None
    force: bool = False

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "ratios": list(self.ratios)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SplitPolicy:
        ratios = tuple(int(r) for r in data["ratios"])
        return cls(
            (ratios[0], ratios[1], ratios[2]),
            int(data["seed"]),
            data.get("group_by"),
            bool(data.get("force", False)),
        )


@dataclass(frozen=True)
class Resplit:
    """The outcome of a policy on a set of videos.

    Attributes:
        splits: path -> new split, for every re-split video (None: it straddles).
        groups: path -> group from the group file, for the videos it lists.
        kept: the splits left official, with their ratio set to 0 for the rest.
        assignment: the underlying placement (straddling videos, shortages).
    """

    splits: dict[str, Split | None]
    groups: dict[str, str]
    kept: frozenset[str]
    assignment: Assignment


def resplit(videos: Sequence[SplitVideo], policy: SplitPolicy) -> Resplit:
    """Place `videos` by `policy`: official ones stay unless `force`, and the others share
    the ratios of the splits no official video fills.

    Raises:
        GroupFileError: the policy's group file cannot be read.
    """
    listed = read_group_file(Path(policy.group_by)) if policy.group_by else {}
    official = [] if policy.force else [v for v in videos if v.split_source == SplitSource.OFFICIAL]
    kept = frozenset(v.split for v in official if v.split)
    ratios = tuple(
        0 if split in kept else r for split, r in zip(SPLIT_ORDER, policy.ratios, strict=True)
    )
    pool = [v for v in videos if policy.force or v.split_source != SplitSource.OFFICIAL]
    if not pool or not any(ratios):
        return Resplit({}, {}, kept, Assignment({}, (), ()))
    items = _items(pool, listed, videos)
    assignment = assign_splits(items, (ratios[0], ratios[1], ratios[2]), policy.seed)
    groups = {v.path: listed[v.path] for v in pool if v.path in listed}
    return Resplit(assignment.splits, groups, kept, assignment)


def _items(
    pool: Sequence[SplitVideo], listed: Mapping[str, str], videos: Sequence[SplitVideo]
) -> list[Splittable]:
    # A swapped-in face belongs to the group its own reals are in (Celeb-DF, DFD).
    group_of_identity = {
        v.target_identity: v.identity_group
        for v in videos
        if v.target_identity and v.identity_group and not v.source_identity
    }
    items = []
    for video in pool:
        own = listed.get(video.path) or video.identity_group or f"file:{video.path}"
        groups: tuple[str, ...] = (own,)
        if video.source_identity and video.path not in listed:
            other = group_of_identity.get(video.source_identity, video.source_identity)
            groups = (own,) if other == own else (own, other)
        items.append(
            Splittable(video.path, video.label, stratum_of(video.label, video.method), groups)
        )
    return items


def apply_policy(scan: LayoutScan, policy: SplitPolicy) -> LayoutScan:
    """`scan` with its splits re-drawn by `policy`, as `ddm split` drew them; an unreadable
    group file keeps the splits the catalog has (and says so)."""
    try:
        outcome = resplit(scan.entries, policy)
    except GroupFileError as exc:
        error = f"{exc}; splits kept from the last `ddm split` (new videos get none)"
        entries = tuple(
            dataclasses.replace(e, unread_fields=e.unread_fields | _GROUP_FIELDS)
            for e in scan.entries
        )
        return dataclasses.replace(scan, entries=entries, problems=(*scan.problems, error))
    entries = tuple(
        dataclasses.replace(
            entry,
            split=outcome.splits[entry.path],
            split_source=SplitSource.DERIVED,
            identity_group=outcome.groups.get(entry.path, entry.identity_group),
        )
        if entry.path in outcome.splits
        else entry
        for entry in scan.entries
    )
    notes = {**scan.notes, "split": {**policy.to_json(), "by": "ddm split"}}
    problems = (*scan.problems, *outcome.assignment.shortages)
    return dataclasses.replace(scan, entries=entries, problems=problems, notes=notes)
