"""Re-splitting a dataset in the catalog (`ddm split`) and reading the policy back for
later ingests (catalog layer).

Runs froze their members (`run_members`), so moving a video between splits never changes
what a run trained on; the leakage guard still knows the run saw it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from ddm.catalog.datasets import get_dataset
from ddm.catalog.models import Dataset, Evaluation, Prediction, Video
from ddm.catalog.videos import SPLIT_POLICY_NOTE
from ddm.errors import InvalidInput
from ddm.ingest.group_files import GroupFileError
from ddm.ingest.resplit import SplitPolicy, resplit
from ddm.vocab import Label, Split, SplitSource

logger = logging.getLogger(__name__)

NO_SPLIT = "none"


@dataclass(frozen=True)
class SplitChange:
    """What `ddm split` changed in one dataset.

    Attributes:
        resplit: videos placed afresh.
        kept_official: videos whose official split stayed (no `--force`).
        kept_splits: the splits only official videos fill.
        moved: "from->to" -> videos that changed split ('none' for no split).
        by_split: split -> label -> present videos, after.
        straddling: videos left without a split, their groups in different splits.
        shortages: a line per class some split lacks.
    """

    dataset: str
    format: str
    policy: dict[str, object]
    resplit: int
    kept_official: int
    kept_splits: list[str]
    moved: dict[str, int]
    by_split: dict[str, dict[str, int]]
    straddling: int
    shortages: list[str] = field(default_factory=list)


def split_dataset(session: Session, name: str, policy: SplitPolicy) -> SplitChange:
    """Re-split the dataset's present videos by `policy` and record the policy, in the
    caller's transaction.

    The dataset's ingest version is bumped first (its row lock, or SQLite's write lock,
    held to commit): an ingest that read the catalog before records nothing and scans
    again, applying this policy.

    Raises:
        NotFound: no such dataset.
        InvalidInput: the group file cannot be read, or names no video of the dataset.
    """
    get_dataset(session, name)
    session.execute(
        update(Dataset)
        .where(Dataset.name == name)
        .values(ingest_version=Dataset.ingest_version + 1)
        .execution_options(synchronize_session=False)
    )
    dataset = session.scalars(
        select(Dataset).where(Dataset.name == name).execution_options(populate_existing=True)
    ).one()
    rows = list(
        session.scalars(
            select(Video).where(Video.dataset_id == dataset.id, Video.is_present.is_(True))
        )
    )
    try:
        outcome = resplit(rows, policy)
    except GroupFileError as exc:
        raise InvalidInput(f"--group-by: {exc}") from None
    if policy.group_by and not outcome.groups:
        raise InvalidInput(
            f"--group-by: {policy.group_by} names no video of {name}; give paths relative "
            f"to {dataset.root_path}"
        )
    moved: Counter[str] = Counter()
    for row in rows:
        if row.path not in outcome.splits:
            continue
        new = outcome.splits[row.path]
        if new != row.split:
            moved[f"{row.split or NO_SPLIT}->{new.value if new else NO_SPLIT}"] += 1
        row.split = new.value if new else None
        row.split_source = SplitSource.DERIVED.value
        row.identity_group = outcome.groups.get(row.path, row.identity_group)
    dataset.notes = {**(dataset.notes or {}), SPLIT_POLICY_NOTE: policy.to_json()}
    session.flush()
    logger.info(
        "re-split dataset=%s videos=%d moved=%d", name, len(outcome.splits), sum(moved.values())
    )
    return SplitChange(
        dataset=name,
        format=dataset.format,
        policy=policy.to_json(),
        resplit=len(outcome.splits),
        kept_official=sum(1 for r in rows if r.path not in outcome.splits),
        kept_splits=sorted(outcome.kept),
        moved=dict(sorted(moved.items())),
        by_split=_by_split(rows),
        straddling=len(outcome.assignment.straddling),
        shortages=list(outcome.assignment.shortages),
    )


def _by_split(rows: list[Video]) -> dict[str, dict[str, int]]:
    counts = Counter((row.split or NO_SPLIT, row.label) for row in rows)
    return {
        split: {label.value: counts[(split, label.value)] for label in Label}
        for split in [*(s.value for s in Split), NO_SPLIT]
        if any(counts[(split, label.value)] for label in Label) or split != NO_SPLIT
    }


def split_changes(session: Session, evaluation_ids: Sequence[int]) -> dict[int, int]:
    """Evaluation id -> how many of its scored videos are no longer in the split it scored
    (a re-split since); evaluations of every split and unchanged ones are left out."""
    # Evaluations of one split only, chosen first: joined in the one query, PostgreSQL read
    # the predictions of every split too (a DFDC evaluation of all videos has 115,000).
    of_one_split = session.scalars(
        select(Evaluation.id).where(
            Evaluation.id.in_(list(evaluation_ids)), Evaluation.split.is_not(None)
        )
    ).all()
    if not of_one_split:
        return {}
    query = (
        select(Prediction.evaluation_id, func.count())
        .join(Evaluation, Evaluation.id == Prediction.evaluation_id)
        .join(Video, Video.id == Prediction.video_id)
        .where(
            Prediction.evaluation_id.in_(of_one_split),
            or_(Video.split.is_(None), Video.split != Evaluation.split),
        )
        .group_by(Prediction.evaluation_id)
    )
    return {evaluation_id: count for evaluation_id, count in session.execute(query)}
