"""Format detection, dispatch and the errors for paths that hold no dataset."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from ddm.errors import InvalidInput
from ddm.ingest.registry import FORMAT_NAMES, detect_format, scan

LinkVideos = Callable[[Path, Iterable[str]], None]


def test_a_path_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no such directory"):
        detect_format(tmp_path / "absent")
    with pytest.raises(InvalidInput, match="no such directory"):
        scan(tmp_path / "absent")


def test_a_file_is_not_a_dataset_root(tmp_path: Path) -> None:
    (tmp_path / "clip.mp4").write_bytes(b"\0")
    with pytest.raises(InvalidInput, match="not a directory"):
        scan(tmp_path / "clip.mp4")


def test_a_folder_with_no_known_layout(tmp_path: Path, link_videos: LinkVideos) -> None:
    link_videos(tmp_path, ["videos/a.mp4", "b.mp4"])
    with pytest.raises(InvalidInput) as error:
        scan(tmp_path)
    message = str(error.value)
    assert "\n" not in message and "no recognisable dataset" in message


def test_unknown_format_and_forced_format_with_nothing_found(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="unknown dataset format 'ff'"):
        scan(tmp_path, "ff")
    with pytest.raises(InvalidInput, match="not a ffpp dataset"):
        scan(tmp_path, "ffpp")


def test_forced_format_overrides_detection(tmp_path: Path, link_videos: LinkVideos) -> None:
    link_videos(tmp_path, ["real/a.mp4", "Celeb-real/id0_0000.mp4"])
    assert detect_format(tmp_path) == "celebdf"
    assert [e.path for e in scan(tmp_path, "folder").entries] == ["real/a.mp4"]
    assert FORMAT_NAMES == ("ffpp", "dfd", "celebdf", "dfdc", "folder")


# One small tree per format, in the shape its `recognises` looks for.
TREES = {
    "ffpp": ["original_sequences/youtube/c23/videos/000.mp4"],
    "dfd": ["original_sequences/actors/c23/videos/01__exit_phone_room.mp4"],
    "celebdf": ["Celeb-real/id0_0000.mp4"],
    "dfdc": ["dfdc_train_part_0/a.mp4"],
    "folder": ["real/a.mp4"],
}


@pytest.mark.parametrize("forced", FORMAT_NAMES)
@pytest.mark.parametrize("actual", FORMAT_NAMES)
def test_a_forced_format_refuses_a_tree_that_is_not_its_own(
    tmp_path: Path, link_videos: LinkVideos, forced: str, actual: str
) -> None:
    link_videos(tmp_path, TREES[actual])
    if actual == "dfdc":
        (tmp_path / "dfdc_train_part_0/metadata.json").write_text('{"a.mp4": {"label": "FAKE"}}')
    assert detect_format(tmp_path) == actual
    if forced == actual:
        assert scan(tmp_path, forced).entries
        return
    with pytest.raises(InvalidInput) as error:
        scan(tmp_path, forced)
    message = str(error.value)
    assert "\n" not in message and f"not a {forced} dataset" in message
