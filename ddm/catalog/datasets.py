"""Query and command functions over datasets (catalog layer)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ddm.catalog.models import Dataset, Video
from ddm.catalog.records import DatasetRecord, DatasetSummary
from ddm.errors import NotFound
from ddm.vocab import Label, ProbeStatus, Split


def to_record(row: Dataset) -> DatasetRecord:
    return DatasetRecord(
        id=row.id,
        name=row.name,
        format=row.format,
        root=row.root_path,
        videos=row.video_count,
        real=row.real_count,
        fake=row.fake_count,
        missing=row.missing_count,
        unreadable=row.unreadable_count,
        listed_missing=row.listed_missing_count,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def list_datasets(session: Session) -> list[DatasetRecord]:
    """Every dataset, by name."""
    rows = session.scalars(select(Dataset).order_by(Dataset.name))
    return [to_record(row) for row in rows]


def get_dataset(session: Session, name: str) -> DatasetRecord:
    """One dataset by name.

    Raises:
        NotFound: no dataset has that name.
    """
    row = session.scalars(select(Dataset).where(Dataset.name == name)).one_or_none()
    if row is None:
        known = ", ".join(d.name for d in list_datasets(session)) or "none yet"
        raise NotFound(f"no dataset named {name!r} (known: {known}); run `ddm ingest PATH` first")
    return to_record(row)


def summarize_dataset(session: Session, name: str) -> DatasetSummary:
    """Counts of one dataset's present videos by label x split and by method x compression,
    with its unreadable files, listed-but-missing counts and ingest problems.

    Raises:
        NotFound: no dataset has that name.
    """
    record = get_dataset(session, name)
    present = (Video.dataset_id == record.id, Video.is_present.is_(True))
    by_label_split = session.execute(
        select(Video.label, Video.split, func.count())
        .where(*present)
        .group_by(Video.label, Video.split)
    ).all()
    by_method = session.execute(
        select(Video.method, Video.compression, func.count())
        .where(*present)
        .group_by(Video.method, Video.compression)
    ).all()
    unreadable = session.execute(
        select(Video.path, Video.probe_status, Video.probe_error)
        .where(*present, Video.probe_status != ProbeStatus.OK.value)
        .order_by(Video.path)
    ).all()
    notes = session.scalars(select(Dataset.notes).where(Dataset.id == record.id)).one() or {}
    return DatasetSummary(
        dataset=record,
        by_label_split=_rows(("label", "split", "videos"), by_label_split),
        by_method_compression=_rows(("method", "compression", "videos"), by_method),
        unreadable=_rows(("path", "probe_status", "probe_error"), unreadable),
        listed_missing=dict(notes.get("listed_missing", {})),
        problems=list(notes.get("problems", [])),
        notes={k: v for k, v in notes.items() if k not in ("listed_missing", "problems")},
    )


def split_balance(by_label_split: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per split (train, val, test, then videos of none): real and fake counts and the
    share of fakes, from `summarize_dataset`'s label x split counts; unlabelled videos
    count in `videos` only."""
    counts: dict[str, Counter[str]] = {}
    for row in by_label_split:
        split = row["split"] or "none"
        counts.setdefault(split, Counter())[row["label"] or "unlabelled"] += int(row["videos"])
    order = [*(s.value for s in Split), "none"]
    balance = []
    for split in sorted(counts, key=lambda s: order.index(s) if s in order else len(order)):
        real, fake = counts[split][Label.REAL.value], counts[split][Label.FAKE.value]
        labelled = real + fake
        balance.append(
            {
                "split": split,
                "videos": sum(counts[split].values()),
                "real": real,
                "fake": fake,
                "fake_share": fake / labelled if labelled else None,
            }
        )
    return balance


def _rows(columns: tuple[str, ...], values: Sequence[Sequence[object]]) -> list[dict[str, object]]:
    def key(row: Sequence[object]) -> tuple[str, ...]:
        return tuple("" if value is None else str(value) for value in row)

    return [dict(zip(columns, row, strict=True)) for row in sorted(values, key=key)]
