"""Celeb-DF: folder labels, the test list (1 = real), derived identity-disjoint splits."""

from __future__ import annotations

import random
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


def test_derived_split_is_identity_disjoint_and_grouped_by_identity(celebdf: Path) -> None:
    result = scan(celebdf)

    rest = [e for e in result.entries if e.split != "test" and e.split is not None]
    assert {(e.split, e.split_source) for e in rest} == {("train", "derived"), ("val", "derived")}
    groups = {s: {e.identity_group for e in rest if e.split == s} for s in ("train", "val")}
    assert groups["train"] and groups["val"] and not groups["train"] & groups["val"]
    entries = _by_path(result)
    fake = entries["Celeb-synthesis/id5_id4_0000.mp4"]
    assert (fake.target_identity, fake.source_identity, fake.identity_group) == (
        "id5",
        "id4",
        "id5",
    )
    assert entries["Celeb-real/id5_0000.mp4"].identity_group == "id5"
    youtube = entries["YouTube-real/00005.mp4"]
    assert (youtube.target_identity, youtube.identity_group) == ("00005", "youtube:00005")


def test_a_fake_takes_the_split_its_two_identities_share(celebdf: Path) -> None:
    # id0's face is swapped into id1's footage and back: a train fake showing id0 beside
    # val reals of id0 would leak the identity, so such a fake is left out of both.
    entries = _by_path(scan(celebdf))

    for fake in (e for e in entries.values() if e.label == "fake" and e.split != "test"):
        target, source = (
            entries[f"Celeb-real/{identity}_0000.mp4"].split
            for identity in (fake.target_identity, fake.source_identity)
        )
        assert fake.split == (target if target == source else None), fake.path


def test_overlap_between_test_identities_and_the_rest_is_reported(celebdf: Path) -> None:
    result = scan(celebdf)

    # id1 has test videos (a real and two fakes it is the target of) and also train/val
    # videos; YouTube 00170 is only in the test list.
    overlap = result.notes["test_identity_overlap"]
    others = [e for e in result.entries if e.split != "test" and e.identity_group == "id1"]
    assert overlap == {"identities": ["id1"], "videos": len(others), "test_videos": 3}
    assert len(others) == 4  # two reals and two fakes of id1


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
    # The official list is consistent with its folders; one real left for train and val
    # is said, too.
    assert [p for p in result.problems if TEST_LIST in p] == []
    assert [p for p in result.problems if "train gets no real video" in p]


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


def _swap_tree(celebrities: int, fakes: int, youtube: int, seed: int = 0) -> list[str]:
    """A Celeb-DF-like tree: a few reals per celebrity and fakes swapping random pairs,
    so nearly every celebrity is linked to nearly every other through some fake."""
    rng = random.Random(seed)
    rels = [f"Celeb-real/id{p}_{c:04d}.mp4" for p in range(celebrities) for c in range(3)]
    for n in range(fakes):
        target, source = rng.sample(range(celebrities), 2)
        rels.append(f"Celeb-synthesis/id{target}_id{source}_{n:04d}.mp4")
    rels += [f"YouTube-real/{n:05d}.mp4" for n in range(youtube)]
    return rels


def _identities(entry: VideoEntry) -> set[str]:
    return {i for i in (entry.target_identity, entry.source_identity) if i}


def test_cross_linked_swaps_still_give_a_val_split_with_both_classes(
    tmp_path: Path, link_videos: LinkVideos
) -> None:
    listed_fake = "Celeb-synthesis/id1_id2_9999.mp4"
    link_videos(tmp_path, [*_swap_tree(celebrities=30, fakes=400, youtube=20), listed_fake])
    _write_list(tmp_path, ["1 Celeb-real/id0_0000.mp4", f"0 {listed_fake}"])

    result = scan(tmp_path, seed=3)

    entries = _by_path(result)
    by_split = {s: [e for e in result.entries if e.split == s] for s in ("train", "val")}
    assert {e.label for e in by_split["val"]} == {"real", "fake"}
    assert {e.label for e in by_split["train"]} == {"real", "fake"}
    seen = {s: set().union(*(_identities(e) for e in by_split[s])) for s in by_split}
    assert not seen["train"] & seen["val"]
    assert 0.08 < len(seen["val"]) / (len(seen["val"]) + len(seen["train"])) < 0.25
    assert entries["Celeb-real/id0_0000.mp4"].split == "test"
    assert entries[listed_fake].split == "test"


def test_a_fake_between_a_train_and_a_val_identity_gets_no_split_and_is_counted(
    tmp_path: Path, link_videos: LinkVideos
) -> None:
    link_videos(tmp_path, _swap_tree(celebrities=30, fakes=400, youtube=20))
    _write_list(tmp_path, ["1 Celeb-real/id0_0000.mp4"])

    result = scan(tmp_path, seed=3)

    real_split = {
        e.target_identity: e.split
        for e in result.entries
        if e.path.startswith("Celeb-real/") and e.split != "test"
    }
    unsplit = [e for e in result.entries if e.split is None]
    assert unsplit and all(e.label == "fake" for e in unsplit)
    for fake in unsplit:
        assert real_split[fake.target_identity] != real_split[fake.source_identity], fake.path
        assert fake.split_source == "derived"
    for fake in (e for e in result.entries if e.label == "fake" and e.split in ("train", "val")):
        assert real_split[fake.target_identity] == real_split[fake.source_identity] == fake.split
    assert result.notes["derived_split"]["straddling"] == len(unsplit)
    assert (
        f"{len(unsplit)} fakes straddle train and val identities: left out of both"
        in result.notes["derived_split"]["left_out"]
    )
    assert all(e.identity_group == e.target_identity for e in unsplit)
