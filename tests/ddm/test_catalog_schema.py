"""Constraints and column types behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ddm.catalog.datasets import get_dataset, list_datasets
from ddm.catalog.models import Dataset, Job, Video
from ddm.db import make_session_factory, session_scope
from ddm.errors import AlreadyExists, NotFound


def _dataset(session: Session, name: str = "ff") -> Dataset:
    row = Dataset(name=name, format="ffpp", root_path="/data/ff")
    session.add(row)
    session.flush()
    return row


@pytest.mark.parametrize(
    ("model", "values"),
    [
        (Job, {"kind": "extract", "status": "paused"}),
        # No case for an unknown kind: kinds belong to the job registry, not the schema.
    ],
)
def test_check_constraints_reject_unknown_states(session: Session, model, values) -> None:
    session.add(model(**values))
    with pytest.raises(IntegrityError, match="(?i)check"):
        session.flush()


@pytest.mark.parametrize("column", ["label", "split", "split_source", "compression"])
def test_video_vocabularies_are_checked(session: Session, column: str) -> None:
    dataset = _dataset(session)
    session.add(Video(dataset_id=dataset.id, path="a.mp4", **{column: "bogus"}))
    with pytest.raises(IntegrityError, match="(?i)check"):
        session.flush()


def test_video_path_is_unique_per_dataset(session: Session) -> None:
    first, second = _dataset(session, "ff"), _dataset(session, "dfdc")
    session.add_all(
        [Video(dataset_id=first.id, path="x/1.mp4"), Video(dataset_id=second.id, path="x/1.mp4")]
    )
    session.flush()
    session.add(Video(dataset_id=first.id, path="x/1.mp4"))
    with pytest.raises(IntegrityError):
        session.flush()


def test_times_come_back_aware_in_utc(session: Session) -> None:
    eastern = timezone(timedelta(hours=-5))
    job = Job(kind="train", heartbeat_at=datetime(2026, 1, 2, 7, 0, tzinfo=eastern))
    session.add(job)
    session.flush()
    session.expire_all()
    stored = session.scalars(select(Job)).one()
    assert stored.heartbeat_at == datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
    assert stored.heartbeat_at.utcoffset() == timedelta(0)
    assert stored.created_at.tzinfo is not None


def test_naive_times_are_refused(session: Session) -> None:
    session.add(Job(kind="train", heartbeat_at=datetime(2026, 1, 2, 7, 0)))
    with pytest.raises(Exception, match="naive datetime"):
        session.flush()


def test_deleting_a_dataset_removes_its_videos(session: Session) -> None:
    dataset = _dataset(session)
    session.add(Video(dataset_id=dataset.id, path="a.mp4"))
    session.flush()
    session.delete(dataset)
    session.flush()
    session.expire_all()
    assert session.scalars(select(Video)).all() == []


def test_list_and_get_datasets(session: Session) -> None:
    _dataset(session, "dfdc")
    _dataset(session, "celebdf")
    assert [d.name for d in list_datasets(session)] == ["celebdf", "dfdc"]
    assert get_dataset(session, "dfdc").format == "ffpp"
    with pytest.raises(NotFound, match="known: celebdf, dfdc"):
        get_dataset(session, "ff")


def test_session_scope_translates_integrity_errors(engine) -> None:
    factory = make_session_factory(engine)
    with session_scope(factory) as session:
        _dataset(session, "ff")
    with pytest.raises(AlreadyExists), session_scope(factory) as session:
        _dataset(session, "ff")
    with session_scope(factory) as session:
        assert len(list_datasets(session)) == 1
