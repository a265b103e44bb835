"""Query and command functions over datasets (catalog layer)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ddm.catalog.models import Dataset
from ddm.catalog.records import DatasetRecord
from ddm.errors import NotFound


def to_record(row: Dataset) -> DatasetRecord:
    return DatasetRecord(
        id=row.id,
        name=row.name,
        format=row.format,
        root_path=row.root_path,
        video_count=row.video_count,
        real_count=row.real_count,
        fake_count=row.fake_count,
        missing_count=row.missing_count,
        unreadable_count=row.unreadable_count,
        listed_missing_count=row.listed_missing_count,
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
