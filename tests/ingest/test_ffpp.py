"""FaceForensics++: the real sample layout and generated trees."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from ddm.ingest.records import VideoEntry
from ddm.ingest.registry import FORMAT_NAMES, detect_format, scan
from tests.ingest.trees import DFD_VIDEOS, add_deepfakedetection, is_dfd

LinkVideos = Callable[[Path, Iterable[str]], None]
YT = "original_sequences/youtube"
MS = "manipulated_sequences"


def _by_path(entries: Iterable[VideoEntry]) -> dict[str, VideoEntry]:
    return {e.path: e for e in entries}


def test_real_sample_layout(media: Path) -> None:
    root = media / "ff++"
    assert detect_format(root) == "ffpp"

    result = scan(root)

    assert (result.format, result.default_name, result.root) == ("ffpp", "ff", root)
    assert result.problems == () and dict(result.listed_missing) == {}
    got = {
        e.path: (e.label, e.split, e.split_source, e.method, e.compression, e.original_path)
        for e in result.entries
    }
    assert got == {
        f"{YT}/c23/videos/004.mp4": ("real", "val", "official", None, "c23", None),
        f"{YT}/c23/videos/519.mp4": ("real", "train", "official", None, "c23", None),
        f"{YT}/c23/videos/634.mp4": ("real", "test", "official", None, "c23", None),
        f"{MS}/Deepfakes/c23/videos/519_515.mp4": (
            "fake",
            "train",
            "official",
            "Deepfakes",
            "c23",
            f"{YT}/c23/videos/519.mp4",
        ),
        f"{MS}/FaceSwap/c23/videos/634_660.mp4": (
            "fake",
            "test",
            "official",
            "FaceSwap",
            "c23",
            f"{YT}/c23/videos/634.mp4",
        ),
        f"{MS}/NeuralTextures/c23/videos/004_982.mp4": (
            "fake",
            "val",
            "official",
            "NeuralTextures",
            "c23",
            f"{YT}/c23/videos/004.mp4",
        ),
        # 750.mp4 is absent, as in a partial download: still ingested, with no link.
        f"{MS}/Face2Face/c23/videos/750_743.mp4": (
            "fake",
            "train",
            "official",
            "Face2Face",
            "c23",
            None,
        ),
    }
    fake = _by_path(result.entries)[f"{MS}/Face2Face/c23/videos/750_743.mp4"]
    assert (fake.target_identity, fake.source_identity, fake.raw_label) == ("750", "743", None)
    assert all(e.metadata_error is None and e.part is None for e in result.entries)


def test_identity_groups_follow_pairs(media: Path) -> None:
    entries = _by_path(scan(media / "ff++").entries)

    real, fake = (
        entries[f"{YT}/c23/videos/519.mp4"],
        entries[f"{MS}/Deepfakes/c23/videos/519_515.mp4"],
    )
    assert real.identity_group == fake.identity_group is not None
    assert entries[f"{YT}/c23/videos/004.mp4"].identity_group != real.identity_group


def test_c0_is_stored_as_raw_and_links_within_one_compression(
    tmp_path: Path, link_videos: LinkVideos
) -> None:
    link_videos(
        tmp_path,
        [
            f"{YT}/c0/videos/071.mp4",
            f"{YT}/c40/videos/054.mp4",
            f"{MS}/Deepfakes/c0/videos/071_054.mp4",
            f"{MS}/FaceShifter/raw/videos/054_071.mp4",
            f"{MS}/Face2Face/c23/videos/071_054.mp4",
        ],
    )

    entries = _by_path(scan(tmp_path).entries)

    assert {e.compression for e in entries.values()} == {"raw", "c40", "c23"}
    assert entries[f"{YT}/c0/videos/071.mp4"].compression == "raw"
    assert entries[f"{MS}/Deepfakes/c0/videos/071_054.mp4"].original_path == (
        f"{YT}/c0/videos/071.mp4"
    )
    # The raw FaceShifter fake's target 054 exists only at c40: no cross-compression link.
    assert entries[f"{MS}/FaceShifter/raw/videos/054_071.mp4"].original_path is None
    assert entries[f"{MS}/Face2Face/c23/videos/071_054.mp4"].original_path is None
    # 071/054 is an official train pair; FaceShifter shares the FF++ splits.
    assert {(e.split, e.split_source) for e in entries.values()} == {("train", "official")}


def test_actors_and_deepfakedetection_are_derived_test_only(
    tmp_path: Path, link_videos: LinkVideos
) -> None:
    link_videos(
        tmp_path,
        [
            "original_sequences/actors/c23/videos/01__exit_phone_room.mp4",
            f"{MS}/DeepFakeDetection/c23/videos/01_02__exit_phone_room__YVGY8LOK.mp4",
            f"{MS}/DeepFakeDetection/c23/videos/03_01__walking_outside__ABCDEFGH.mp4",
        ],
    )

    result = scan(tmp_path)

    # A tree of DeepFakeDetection alone is the `dfd` dataset, not an FF++ one.
    assert detect_format(tmp_path) == "dfd"
    assert (result.format, result.default_name, result.companions) == ("dfd", "dfd", ())
    entries = _by_path(result.entries)
    assert {(e.split, e.split_source) for e in entries.values()} == {("test", "derived")}
    assert {e.identity_group for e in entries.values()} == {"actor:01", "actor:03"}
    real = entries["original_sequences/actors/c23/videos/01__exit_phone_room.mp4"]
    assert (real.label, real.method, real.target_identity) == ("real", None, "01")
    fake = entries[f"{MS}/DeepFakeDetection/c23/videos/01_02__exit_phone_room__YVGY8LOK.mp4"]
    assert (fake.label, fake.method) == ("fake", "DeepFakeDetection")
    assert (fake.target_identity, fake.source_identity) == ("01", "02")
    assert fake.original_path == real.path
    assert (
        entries[
            f"{MS}/DeepFakeDetection/c23/videos/03_01__walking_outside__ABCDEFGH.mp4"
        ].original_path
        is None
    )


def test_masks_models_and_frames_are_not_videos(tmp_path: Path, link_videos: LinkVideos) -> None:
    link_videos(
        tmp_path,
        [
            f"{YT}/c23/videos/071.mp4",
            f"{MS}/Deepfakes/c23/videos/071_054.mp4",
            f"{MS}/Deepfakes/masks/videos/071_054.mp4",
            f"{MS}/Deepfakes/c23/images/071_054/0000.mp4",
            f"{MS}/Deepfakes/c23/frames/071_054/0000.mp4",
            f"{YT}/c23/videos/._071.mp4",
        ],
    )
    (tmp_path / f"{MS}/Deepfakes/models/071_054").mkdir(parents=True)
    (tmp_path / f"{MS}/Deepfakes/models/071_054/encoder.h5").write_bytes(b"\0")
    (tmp_path / f"{YT}/c23/videos/readme.txt").write_text("not a video")

    paths = [e.path for e in scan(tmp_path).entries]

    assert paths == [f"{MS}/Deepfakes/c23/videos/071_054.mp4", f"{YT}/c23/videos/071.mp4"]


def test_names_outside_the_official_pairs_are_kept_without_a_split(
    tmp_path: Path, link_videos: LinkVideos
) -> None:
    link_videos(
        tmp_path,
        [
            f"{MS}/Deepfakes/c23/videos/071_081.mp4",  # both ids exist, but not as a pair
            f"{MS}/Deepfakes/c23/videos/my clip.mp4",
            f"{YT}/c23/videos/071.mp4",
        ],
    )

    result = scan(tmp_path)

    entries = _by_path(result.entries)
    assert entries[f"{MS}/Deepfakes/c23/videos/071_081.mp4"].split is None
    assert entries[f"{MS}/Deepfakes/c23/videos/my clip.mp4"].label == "fake"
    assert entries[f"{MS}/Deepfakes/c23/videos/my clip.mp4"].split is None
    assert entries[f"{YT}/c23/videos/071.mp4"].split == "train"
    assert len(result.problems) == 2


def test_official_splits_cover_all_thousand_sequences_pair_closed(
    tmp_path: Path, link_videos: LinkVideos
) -> None:
    link_videos(tmp_path, [f"{YT}/c23/videos/{i:03d}.mp4" for i in range(1000)])

    entries = scan(tmp_path).entries

    counts = {s: sum(1 for e in entries if e.split == s) for s in ("train", "val", "test")}
    assert counts == {"train": 720, "val": 140, "test": 140}


def test_deepfakedetection_is_a_dataset_of_its_own_beside_ffpp(
    tmp_path: Path, link_videos: LinkVideos, real_clip: Path
) -> None:
    # 953/974 is an official test pair, 071/054 a train pair.
    link_videos(
        tmp_path,
        [
            f"{YT}/c23/videos/953.mp4",
            f"{YT}/c23/videos/974.mp4",
            f"{YT}/c23/videos/071.mp4",
            f"{MS}/Deepfakes/c23/videos/953_974.mp4",
            f"{MS}/FaceSwap/c23/videos/974_953.mp4",
            f"{MS}/Face2Face/c23/videos/071_054.mp4",
        ],
    )
    add_deepfakedetection(tmp_path, real_clip)

    result = scan(tmp_path)

    assert (result.format, result.default_name) == ("ffpp", "ff")
    assert not [e.path for e in result.entries if is_dfd(e.path)]
    test = {e.path for e in result.entries if e.split == "test"}
    assert test == {
        f"{YT}/c23/videos/953.mp4",
        f"{YT}/c23/videos/974.mp4",
        f"{MS}/Deepfakes/c23/videos/953_974.mp4",
        f"{MS}/FaceSwap/c23/videos/974_953.mp4",
    }
    assert {e.split_source for e in result.entries} == {"official"}
    [dfd] = result.companions
    assert (dfd.format, dfd.default_name, dfd.root) == ("dfd", "dfd", tmp_path)
    assert [e.path for e in dfd.entries] == sorted(DFD_VIDEOS)
    assert {(e.split, e.split_source) for e in dfd.entries} == {("test", "derived")}
    # Rows an earlier ingest recorded in the FF++ dataset belong to this one now.
    assert dfd.adoption is not None and dfd.adoption.from_format == "ffpp"
    assert all(is_dfd(path) for path in dfd.adoption.path_prefixes)


def test_deepfakedetection_alone_can_be_forced(
    tmp_path: Path, link_videos: LinkVideos, real_clip: Path
) -> None:
    link_videos(tmp_path, [f"{YT}/c23/videos/953.mp4"])
    add_deepfakedetection(tmp_path, real_clip)

    result = scan(tmp_path, "dfd")

    assert "dfd" in FORMAT_NAMES and detect_format(tmp_path) == "ffpp"
    assert (result.format, result.companions) == ("dfd", ())
    assert [e.path for e in result.entries] == sorted(DFD_VIDEOS)
