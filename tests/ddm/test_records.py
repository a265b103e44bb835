"""`ddm.catalog.records`: a record built from its values is the record its class builds, and
its JSON is what `dataclasses.asdict` gives."""

from __future__ import annotations

import dataclasses
import functools
from datetime import UTC, datetime

import pytest

from ddm.catalog.records import VideoRecord, from_values, to_json

FIELDS = [field.name for field in dataclasses.fields(VideoRecord)]


def _values(**given: object) -> list[object]:
    values: list[object] = [f"{name}-value" for name in FIELDS]
    for name, value in given.items():
        values[FIELDS.index(name)] = value
    return values


def test_from_values_is_the_classes_own_record() -> None:
    values = _values(id=7, present=True, fps=29.97, latest_score=None)
    built = from_values(VideoRecord, values)
    assert built == VideoRecord(*values)
    assert hash(built) == hash(VideoRecord(*values))
    assert repr(built) == repr(VideoRecord(*values))
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.path = "elsewhere.mp4"  # type: ignore[misc]


def test_from_values_refuses_a_value_too_many_or_too_few() -> None:
    with pytest.raises(ValueError):
        from_values(VideoRecord, _values()[:-1])
    with pytest.raises(ValueError):
        from_values(VideoRecord, [*_values(), "extra"])


@dataclasses.dataclass(frozen=True)
class _Named:
    name: str
    value: object

    @functools.cached_property
    def shout(self) -> str:
        return self.name.upper()


def test_to_json_is_asdict_for_records_built_either_way() -> None:
    values = _values(id=3, fps=25.0, present=False, size_bytes=None)
    for record in (VideoRecord(*values), from_values(VideoRecord, values)):
        assert to_json(record) == dataclasses.asdict(record)
        assert list(to_json(record)) == FIELDS
    when = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert to_json(_Named("a", when)) == {"name": "a", "value": "2024-05-06T07:08:09Z"}


def test_to_json_leaves_out_a_cached_property_it_has_read() -> None:
    flat = _Named("a", 1)
    assert flat.shout == "A"  # now held in the record's own dict beside its fields
    assert to_json(flat) == {"name": "a", "value": 1}


def test_to_json_is_a_copy_the_caller_may_change() -> None:
    record = from_values(VideoRecord, _values(latest_score=0.25))
    row = to_json(record)
    del row["latest_score"]  # as `ddm videos` without --scores does
    row["path"] = "changed.mp4"
    assert record.latest_score == 0.25
    assert record.path == "path-value"
