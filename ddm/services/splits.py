"""`ddm split` from end to end: check the request, re-split one dataset in one transaction
(services layer)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from ddm.catalog.splits import SplitChange, split_dataset
from ddm.db import session_scope
from ddm.errors import InvalidInput
from ddm.ingest.resplit import SplitPolicy
from ddm.ingest.splitting import DEFAULT_RATIOS, Ratios


def resplit_dataset(
    factory: sessionmaker[Session],
    name: str,
    *,
    ratios: Ratios = DEFAULT_RATIOS,
    seed: int = 0,
    group_by: Path | None = None,
    force: bool = False,
) -> SplitChange:
    """Re-split dataset `name` and record the policy, which later ingests apply again.

    Args:
        ratios: train, val and test percentages.
        seed: orders the groups; the same seed gives the same split.
        group_by: a `file,group` CSV (files relative to the dataset root) whose groups
            are placed whole; the catalog's identity groups otherwise.
        force: re-split official splits (FF++, Celeb-DF's test list, DFDC) too.

    Raises:
        NotFound: no such dataset.
        InvalidInput: the group file is missing, unreadable or names none of its videos.
    """
    if group_by is not None and not group_by.is_file():
        raise InvalidInput(f"--group-by: {group_by} is not a file")
    where = str(group_by.expanduser().resolve()) if group_by is not None else None
    policy = SplitPolicy(ratios, seed, where, force)
    with session_scope(factory) as session:
        return split_dataset(session, name, policy)
