"""Frozen records returned by catalog functions (catalog layer).

Callers never see ORM rows: a record is a plain snapshot, safe to pass across threads,
processes and the CLI's JSON renderer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any


def to_json(record: Any) -> dict[str, Any]:
    """A record as JSON-able values: datetimes become ISO-8601 UTC strings."""
    return {key: _jsonable(value) for key, value in asdict(record).items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value


@dataclass(frozen=True)
class DatasetRecord:
    id: int
    name: str
    format: str
    root_path: str
    video_count: int
    real_count: int
    fake_count: int
    missing_count: int
    unreadable_count: int
    listed_missing_count: int
    created_at: datetime
    updated_at: datetime
