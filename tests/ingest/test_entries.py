"""`VideoEntry.of`: the entry its constructor builds, refusing what the constructor refuses."""

from __future__ import annotations

import dataclasses

import pytest

from ddm.ingest.records import VideoEntry

GIVEN = {
    "path": "dfdc_train_part_0/abc.mp4",
    "label": "fake",
    "split": "train",
    "split_source": "official",
    "raw_label": "FAKE",
    "part": "dfdc_train_part_0",
    "original_path": None,
    "identity_group": "orig:abc",
}


def test_of_is_the_constructors_entry() -> None:
    built = VideoEntry.of(GIVEN)
    assert built == VideoEntry(**GIVEN)
    assert hash(built) == hash(VideoEntry(**GIVEN))
    assert dataclasses.asdict(built) == dataclasses.asdict(VideoEntry(**GIVEN))
    assert built.method is None and built.unread_fields == frozenset()  # the defaults
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.label = "real"  # type: ignore[misc]


@pytest.mark.parametrize(
    "values",
    [
        {**GIVEN, "labels": "fake"},  # no such field
        {key: value for key, value in GIVEN.items() if key != "split_source"},  # required
    ],
)
def test_of_refuses_what_the_constructor_refuses(values: dict[str, object]) -> None:
    with pytest.raises(TypeError):
        VideoEntry(**values)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        VideoEntry.of(values)
