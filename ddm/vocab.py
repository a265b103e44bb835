"""The words every layer shares: labels, splits, statuses, cache errors (no heavy imports).

One home for each value set, so the catalog's CHECK constraints, the scanners, the jobs and
the CLI's choices cannot drift apart. This module imports only the standard library:
`ddm --help` may read it.
"""

from __future__ import annotations

from enum import StrEnum


def values(enum: type[StrEnum]) -> list[str]:
    """The enum's values in declaration order, e.g. for a CLI choice."""
    return [member.value for member in enum]


class Label(StrEnum):
    REAL = "real"
    FAKE = "fake"


class Split(StrEnum):
    TRAIN = "train"
    VAL = "val"
    TEST = "test"


class SplitSource(StrEnum):
    OFFICIAL = "official"  # from the dataset's own split files
    DERIVED = "derived"  # computed by ddm


class Leak(StrEnum):
    """How a run saw a video it is evaluated on, strongest first: the reason a prediction is
    left out of the held-out headline metrics (`catalog.evaluations`)."""

    FILE = "file"  # the video, or the same file in another dataset, was a train/val member
    SEQUENCE = "sequence"  # the same FF++ sequence at another compression was a member
    SPLIT = "split"  # in a train/val split of a dataset the run trained on, though no member
    IDENTITY = "identity"  # shares an identity group with a member


class Compression(StrEnum):
    RAW = "raw"
    C23 = "c23"
    C40 = "c40"


class ProbeStatus(StrEnum):
    """The outcome of probing one file; everything but OK is an error kind."""

    PENDING = "pending"  # listed, not probed yet
    OK = "ok"
    MISSING = "missing"  # no file, or a broken symlink
    UNREADABLE = "unreadable"  # permissions, a directory, a device or FIFO
    EMPTY = "empty"  # zero bytes
    NOT_VIDEO = "not_video"  # content is not a video container (text, image, ...)
    CORRUPT = "corrupt"  # a video container that cannot be opened (truncated, damaged)
    NO_FRAMES = "no_frames"  # opens, but no video frame decodes
    PROBE_FAILED = "probe_failed"  # an unexpected error while probing (a bug: see the log)


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_JOB_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)
FINISHED_JOB_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class VideoOutcomeStatus(StrEnum):
    """What a job did with one video of its batch."""

    EXTRACTED = "extracted"
    REUSED = "reused"  # identical content already had a valid cache: recorded, not redone
    FAILED = "failed"
    SKIPPED = "skipped"


class CacheError(StrEnum):
    """Why a feature-cache row is invalid, when ddm itself decided it (not an extraction error).

    Stored verbatim in `feature_caches.error`; `ddm cache verify` recognises its own by value.
    """

    FILE_MISSING = "file missing"
    SIZE_MISMATCH = "size mismatch"
    CHECKSUM_MISMATCH = "checksum mismatch"
    PATH_MISMATCH = "path does not match fingerprint"
    NO_CHECKSUM = "no checksum recorded"
    UNREADABLE = "file unreadable"  # followed by ": <reason>"
    # Written by ingest when a video's bytes change: features of content that no longer
    # exists, never re-validated by verify.
    CONTENT_CHANGED = "the video's content changed"
