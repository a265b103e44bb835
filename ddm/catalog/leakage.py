"""The leakage guard: how a run saw a video it is evaluated on, if it did (catalog layer).

A number a paper can cite covers videos the run never saw. "Saw" is what a reviewer would
call it, strongest first (`ddm.vocab.Leak`):

- file: the video was a train/val member, or the same file (by content hash) was one in
  another dataset;
- sequence: the same sequence at another compression was a member (an FF++ tree
  ingested per compression, as `ff_c23` and `ff_c40`);
- split: the video sits in the train or val split of a dataset the run trained on, though
  it was no member (left out for want of a cache, say);
- identity: it shares an identity group or a person with a member (the same person or
  footage; a fake's person is its target's and its source's, whose face was swapped in;
  the official FF++ and Celeb-DF splits are not identity-disjoint, DATASETS.md §1.5,
  §2.4).

Identity groups and sequences are compared within one dataset format: groups are named by
each format's own rules, so equal names of two formats mean nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from ddm.catalog.models import Dataset, RunMember, Video
from ddm.vocab import Leak, Split

# Folder names of compression levels (FF++ writes raw, c0, c23, c40): a path with them
# masked names one sequence at every compression.
COMPRESSION_FOLDERS = frozenset({"raw", "c0", "c23", "c40"})
SEEN_SPLITS = frozenset({Split.TRAIN.value, Split.VAL.value})


# Not frozen: one is built per video of a selection, and a frozen one sets each field
# through object.__setattr__ (2.7 us against 0.35 us a record: 0.3 s of DFDC's 115,000).
@dataclass(slots=True)
class VideoKeys:
    """What the guard compares of one video (a run member or an evaluated video)."""

    video_id: int
    content_hash: str | None
    dataset_id: int
    format: str
    path: str
    compression: str | None
    split: str | None
    identity_group: str | None
    target_identity: str | None = None
    source_identity: str | None = None


@dataclass(frozen=True)
class SeenByRun:
    """Everything a run saw, as keys; `leak_of` places any video against them."""

    video_ids: frozenset[int]
    content_hashes: frozenset[str]
    sequences: frozenset[tuple[str, str]]
    identities: frozenset[tuple[str, str, str]]
    train_datasets: frozenset[int]

    def leak_of(self, video: VideoKeys) -> Leak | None:
        """The strongest way the run saw `video`, or None when it is held out."""
        if video.video_id in self.video_ids or video.content_hash in self.content_hashes:
            return Leak.FILE
        # Sequences and identities are qualified by format: a video of a format no member
        # has (DFDC's, scored by runs trained on FF++) cannot share one, and building its
        # keys was a third of a 115,000-video selection's checks.
        formats = self._member_formats
        sequence = sequence_key(video) if video.format in formats else None
        if sequence is not None and sequence in self.sequences:
            return Leak.SEQUENCE
        if video.dataset_id in self.train_datasets and video.split in SEEN_SPLITS:
            return Leak.SPLIT
        if video.format in formats and not self.identities.isdisjoint(identity_keys(video)):
            return Leak.IDENTITY
        return None

    @functools.cached_property
    def _member_formats(self) -> frozenset[str]:
        return frozenset(key[0] for key in (*self.sequences, *self.identities))


def keys_query() -> Select[Any]:
    """The columns `VideoKeys` needs, joined to the dataset's format; filter as needed."""
    return select(
        Video.id.label("video_id"),
        Video.content_hash,
        Video.dataset_id,
        Dataset.format,
        Video.path,
        Video.compression,
        Video.split,
        Video.identity_group,
        Video.target_identity,
        Video.source_identity,
    ).join(Dataset, Dataset.id == Video.dataset_id)


def seen_by_run(session: Session, run_id: int, train_datasets: Iterable[str]) -> SeenByRun:
    """The keys of every train/val member of the run, and its training datasets' ids."""
    return MemberKeys(session).seen_by_run(run_id, train_datasets)


class MemberKeys:
    """Run members' keys, each video's read once for every run that has it as a member.

    The runs of a matrix mostly share their members (ten runs on FF++'s train/val split
    are ten times the same 13,000 videos): a run's members are then read as ids and hashes
    alone, and only videos not read before as whole key rows. Keep one no longer than the
    session's reads of one plan: it does not see videos change after it read them.
    """

    def __init__(self, session: Session) -> None:
        self._session = session
        # video id -> (its sequence key, its identity keys)
        self._keys: dict[int, tuple[tuple[str, str] | None, set[tuple[str, str, str]]]] = {}

    def seen_by_run(self, run_id: int, train_datasets: Iterable[str]) -> SeenByRun:
        """What `seen_by_run` returns."""
        of_run = RunMember.run_id == run_id
        members = self._session.connection().execute(
            select(RunMember.video_id, RunMember.content_hash).where(of_run)
        )
        # The hash of the file as the run read it: the video may have changed since.
        hash_of = dict(members.all())
        if not self._keys.keys() >= hash_of.keys():
            self._read(of_run)
        video_ids = frozenset(hash_of.keys() & self._keys.keys())
        keys = [self._keys[video_id] for video_id in video_ids]
        names = list(train_datasets)
        dataset_ids = self._session.scalars(select(Dataset.id).where(Dataset.name.in_(names)))
        return SeenByRun(
            video_ids=video_ids,
            content_hashes=frozenset(hash_of[v] for v in video_ids if hash_of[v]),
            sequences=frozenset(sequence for sequence, _ in keys if sequence),
            identities=frozenset().union(*(identities for _, identities in keys)),
            train_datasets=frozenset(dataset_ids.all()),
        )

    def _read(self, of_run: Any) -> None:
        query = keys_query().join(RunMember, RunMember.video_id == Video.id).where(of_run)
        # Core rows by position: a run's members are about 13,000 FF++ videos.
        for row in self._session.connection().execute(query):
            keys = VideoKeys(*row)
            self._keys[keys.video_id] = (sequence_key(keys), identity_keys(keys))


def identity_keys(video: VideoKeys) -> set[tuple[str, str, str]]:
    """The identity group and the people of a video, each qualified by its dataset format."""
    keys = {(video.format, "group", video.identity_group)} if video.identity_group else set()
    people = (video.target_identity, video.source_identity)
    return keys | {(video.format, "person", person) for person in people if person}


def sequence_key(video: VideoKeys) -> tuple[str, str] | None:
    """(format, path with its compression folder masked), for videos stored per compression."""
    if video.compression is None:
        return None
    return video.format, _masked(video.path)


@functools.lru_cache(maxsize=1 << 18)
def _masked(path: str) -> str:
    # Cached: a cross-dataset matrix masks the same members' paths once per run.
    parts = ["*" if part.lower() in COMPRESSION_FOLDERS else part for part in path.split("/")]
    return "/".join(parts)
