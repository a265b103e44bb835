"""Celeb-DF: folder labels, the test list (1 = real), derived identity-disjoint splits."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from ddm.ingest.celebdf import TEST_LIST
from ddm.ingest.records import LayoutScan, VideoEntry
from ddm.ingest.registry import detect_format, scan

LinkVideos = Callable[[Path, Iterable[str]], None]

# Listed videos; the last fake line deliberately carries the digit of a real (1).
LISTED = {
    "YouTube-real/00170.mp4": "1",
    "Celeb-real/id1_0007.mp4": "1",
    "Celeb-synthesis/id1_id0_0007.mp4": "0",
    "Celeb-synthesis/id1_id3_0007.mp4": "1",
}
LISTED_ABSENT = "0 Celeb-synthesis/id9_id7_0001.mp4"


def _tree_videos(identities: range) -> list[str]:
    # Fakes swap within pairs of identities (0 and 1, 2 and 3, ...), both ways.
    rels = [f"Celeb-real/id{p}_{c:04d}.mp4" for p in identities for c in range(2)]
    rels += [f"Celeb-synthesis/id{t}_id{t ^ 1}_{c:04d}.mp4" for t in identities for c in range(2)]
    rels += [f"YouTube-real/{n:05d}.mp4" for n in identities]
    return rels


def _write_list(root: Path, lines: list[str]) -> None:
    # CRLF, padded spaces, a blank line and no final newline, as mirrors have them.
    (root / TEST_LIST).write_bytes("\r\n".join(lines).encode())


@pytest.fixture
def celebdf(tmp_path: Path, link_videos: LinkVideos) -> Path:
    link_videos(tmp_path, _tree_videos(range(40)) + list(LISTED))
    lines = [f"{digit}  {rel} " for rel, digit in LISTED.items()] + ["", LISTED_ABSENT]
    _write_list(tmp_path, lines)
    return tmp_path


def _by_path(result: LayoutScan) -> dict[str, VideoEntry]:
    return {e.path: e for e in result.entries}


def test_labels_come_from_the_folder_and_the_list_digit_is_a_cross_check(celebdf: Path) -> None:
    assert detect_format(celebdf) == "celebdf"

    result = scan(celebdf)

    entries = _by_path(result)
    assert (result.format, result.default_name) == ("celebdf", "celebdf")
    assert entries["YouTube-real/00170.mp4"].label == "real"
    assert entries["Celeb-real/id1_0007.mp4"].label == "real"
    assert entries["Celeb-synthesis/id1_id0_0007.mp4"].label == "fake"
    mismatched = entries["Celeb-synthesis/id1_id3_0007.mp4"]
    assert (mismatched.label, mismatched.raw_label) == ("fake", "1")
    assert [p for p in result.problems if "cross-check" in p] == [
        f"{TEST_LIST} cross-check: Celeb-synthesis/id1_id3_0007.mp4 has digit 1 (= real) "
        "but its folder says fake; kept the folder label"
    ]
    assert result.notes["test_list_mismatches"] == 1
    assert entries["Celeb-synthesis/id0_id1_0000.mp4"].label == "fake"
    assert entries["Celeb-synthesis/id0_id1_0000.mp4"].method == "Celeb-synthesis"
    assert entries["Celeb-real/id0_0000.mp4"].method is None


def test_listed_videos_are_official_test_and_absent_ones_are_counted(celebdf: Path) -> None:
    result = scan(celebdf)

    tests = {e.path for e in result.entries if e.split == "test"}
    assert tests == set(LISTED)
    assert all(e.split_source == "official" for e in result.entries if e.split == "test")
    assert dict(result.listed_missing) == {TEST_LIST: 1}
    assert result.notes["test_list"]["source"] == "dataset"  # type: ignore[index]
    assert result.notes["test_list"]["matches_shipped_v2"] is False  # type: ignore[index]


def test_derived_split_is_identity_disjoint_and_grouped_by_target(celebdf: Path) -> None:
    result = scan(celebdf)

    rest = [e for e in result.entries if e.split != "test"]
    assert {(e.split, e.split_source) for e in rest} == {("train", "derived"), ("val", "derived")}
    groups = {s: {e.identity_group for e in rest if e.split == s} for s in ("train", "val")}
    assert groups["train"] and groups["val"] and not groups["train"] & groups["val"]
    entries = _by_path(result)
    fake = entries["Celeb-synthesis/id5_id4_0000.mp4"]
    assert (fake.target_identity, fake.source_identity, fake.identity_group) == (
        "id5",
        "id4",
        "id4",
    )
    assert fake.split == entries["Celeb-real/id5_0001.mp4"].split
    youtube = entries["YouTube-real/00005.mp4"]
    assert (youtube.target_identity, youtube.identity_group) == ("00005", "youtube:00005")


def test_a_swapped_in_identity_shares_the_split_of_its_own_reals(celebdf: Path) -> None:
    # id0's face is swapped into id1's footage and back: train fakes showing id0 beside val
    # reals of id0 would leak the identity, so both identities form one group.
    entries = _by_path(scan(celebdf))

    for fake in (e for e in entries.values() if e.label == "fake" and e.split != "test"):
        for identity in (fake.target_identity, fake.source_identity):
            real = entries[f"Celeb-real/{identity}_0000.mp4"]
            assert (real.identity_group, real.split) == (fake.identity_group, fake.split), fake.path
    # Ids seen together in any fake, listed ones included, are one group: 0, 1 and 3 (the
    # list's id1_id3), and 2 through its pair with 3.
    assert {entries[f"Celeb-real/id{i}_0000.mp4"].identity_group for i in range(4)} == {"id0"}
    assert entries["Celeb-real/id4_0000.mp4"].identity_group == "id4"


def test_overlap_between_test_identities_and_the_rest_is_reported(celebdf: Path) -> None:
    result = scan(celebdf)

    # id1 (group id0, with ids 0, 2 and 3) has test videos and also train/val videos;
    # YouTube 00170 is only in the test list.
    overlap = result.notes["test_identity_overlap"]
    others = [e for e in result.entries if e.split != "test" and e.identity_group == "id0"]
    assert overlap == {"identities": ["id0"], "videos": len(others), "test_videos": 3}
    assert len(others) == 16  # two reals and two fakes of each of the four ids


def test_derived_split_is_deterministic_and_stable_when_videos_are_added(
    celebdf: Path, link_videos: LinkVideos
) -> None:
    before = {e.path: e.split for e in scan(celebdf, seed=7).entries}
    assert before == {e.path: e.split for e in scan(celebdf, seed=7).entries}
    assert before != {e.path: e.split for e in scan(celebdf, seed=8).entries}

    link_videos(celebdf, ["Celeb-real/id3_0099.mp4", "Celeb-synthesis/id77_id3_0000.mp4"])
    after = {e.path: e.split for e in scan(celebdf, seed=7).entries}

    assert {p: after[p] for p in before} == before
    assert after["Celeb-real/id3_0099.mp4"] == before["Celeb-real/id3_0000.mp4"]


def test_shipped_v2_list_is_used_when_the_dataset_has_none(
    tmp_path: Path, link_videos: LinkVideos
) -> None:
    link_videos(tmp_path, ["YouTube-real/00170.mp4", "Celeb-real/id0_0000.mp4"])

    result = scan(tmp_path)

    entries = _by_path(result)
    assert entries["YouTube-real/00170.mp4"].split == "test"
    assert entries["YouTube-real/00170.mp4"].raw_label == "1"
    assert entries["Celeb-real/id0_0000.mp4"].split_source == "derived"
    assert result.notes["test_list"] == {
        "source": "shipped",
        "sha256": "07063d46206e011aef9d1ad8d1854f5b87ae519ba6e452b897cc528c3dcfcdc0",
        "matches_shipped_v2": True,
    }
    assert dict(result.listed_missing) == {TEST_LIST: 517}
    assert result.problems == ()  # the official list is consistent with its folders


def test_malformed_test_list_leaves_splits_unknown_but_keeps_folder_labels(
    tmp_path: Path, link_videos: LinkVideos
) -> None:
    link_videos(tmp_path, ["Celeb-real/id0_0000.mp4", "Celeb-synthesis/id0_id1_0000.mp4"])
    _write_list(tmp_path, ["1 Celeb-real/id0_0000.mp4", "real Celeb-synthesis/id0_id1_0000.mp4"])

    result = scan(tmp_path)

    assert [(e.label, e.split, e.split_source) for e in result.entries] == [
        ("real", None, None),
        ("fake", None, None),
    ]
    assert all(e.metadata_error and "line 2 malformed" in e.metadata_error for e in result.entries)
    assert len(result.problems) == 1 and "line 2 malformed" in result.problems[0]
