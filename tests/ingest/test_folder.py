"""The plain real/ + fake/ folder layout, and bad files inside a scanned tree."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

from ddm.ingest.probe import probe_many
from ddm.ingest.records import LayoutScan
from ddm.ingest.registry import detect_format, scan
from tests.ingest.conftest import write_clip

LinkVideos = Callable[[Path, Iterable[str]], None]


def test_real_and_fake_folders_any_extension_and_depth(
    tmp_path: Path, link_videos: LinkVideos
) -> None:
    root = tmp_path / "my-set"
    link_videos(
        root,
        ["real/a.mp4", "real/sub/b.MOV", "Fake/x.avi", "Fake/deep/nested/y.mkv", "fake2/z.mp4"],
    )
    (root / "Fake/._x.avi").write_bytes(b"\0\0")  # a macOS resource fork
    (root / "real/notes.txt").write_text("not a video")
    assert detect_format(root) == "folder"

    result = scan(root)

    assert (result.format, result.default_name) == ("folder", "my-set")
    assert [(e.path, e.label) for e in result.entries] == [
        ("Fake/deep/nested/y.mkv", "fake"),
        ("Fake/x.avi", "fake"),
        ("real/a.mp4", "real"),
        ("real/sub/b.MOV", "real"),
    ]
    assert {e.split_source for e in result.entries} == {"derived"}
    # The first folder below fake/ names the method; reals have none.
    assert [e.method for e in result.entries] == ["deep", None, None, None]
    assert all(e.identity_group is None for e in result.entries)


def test_seeded_split_is_deterministic_and_stable(tmp_path: Path, link_videos: LinkVideos) -> None:
    link_videos(tmp_path, [f"real/{n:03d}.mp4" for n in range(200)])
    first = {e.path: e.split for e in scan(tmp_path, seed=3).entries}
    assert first == {e.path: e.split for e in scan(tmp_path, seed=3).entries}
    shares = {s: sum(v == s for v in first.values()) / 200 for s in ("train", "val", "test")}
    assert shares == {"train": 0.7, "val": 0.15, "test": 0.15}
    assert first != {e.path: e.split for e in scan(tmp_path, seed=4).entries}

    link_videos(tmp_path, [f"fake/{n:03d}.mp4" for n in range(50)])
    after = {e.path: e.split for e in scan(tmp_path, seed=3).entries}

    # Stratified by label: fakes added never move a real.
    assert {p: after[p] for p in first} == first


def _labels_by_split(result: LayoutScan) -> dict[str | None, set[str | None]]:
    found: dict[str | None, set[str | None]] = {}
    for entry in result.entries:
        found.setdefault(entry.split, set()).add(entry.label)
    return found


def test_twelve_real_and_twelve_fake_clips_give_both_labels_in_every_split(
    tmp_path: Path, link_videos: LinkVideos
) -> None:
    link_videos(tmp_path, [f"{label}/{n:02d}.mp4" for label in ("real", "fake") for n in range(12)])

    result = scan(tmp_path)

    assert _labels_by_split(result) == {s: {"real", "fake"} for s in ("train", "val", "test")}
    counts = Counter((e.split, e.label) for e in result.entries)
    assert counts == {(s, lab): n for s, n in SPLIT_SIZES.items() for lab in ("real", "fake")}
    assert result.notes["split"] == {"seed": 0, "ratios": [70, 15, 15], "grouped_by": "file"}
    assert result.problems == ()


SPLIT_SIZES = {"train": 8, "val": 2, "test": 2}


def test_methods_named_by_subfolders_are_stratified(
    tmp_path: Path, link_videos: LinkVideos
) -> None:
    link_videos(tmp_path, [f"real/{n:02d}.mp4" for n in range(20)])
    link_videos(tmp_path, [f"fake/{m}/{n:02d}.mp4" for m in ("Blend", "Swap") for n in range(10)])

    result = scan(tmp_path, seed=5)

    methods = {s: {e.method for e in result.entries if e.split == s} for s in ("val", "test")}
    assert methods == {"val": {None, "Blend", "Swap"}, "test": {None, "Blend", "Swap"}}


def test_groups_csv_keeps_each_group_in_one_split(tmp_path: Path, link_videos: LinkVideos) -> None:
    people = [f"p{n}" for n in range(10)]
    rels = [f"{label}/{p}_{c}.mp4" for label in ("real", "fake") for p in people for c in range(3)]
    link_videos(tmp_path, rels)
    rows = ["file,group"] + [f"{rel},{rel.split('/')[1].split('_')[0]}" for rel in rels]
    (tmp_path / "groups.csv").write_text("\n".join(rows) + "\n")

    result = scan(tmp_path)

    split_of_group: dict[str, set[str | None]] = {}
    for entry in result.entries:
        split_of_group.setdefault(entry.identity_group or "", set()).add(entry.split)
    assert set(split_of_group) == set(people)
    assert all(len(splits) == 1 for splits in split_of_group.values()), split_of_group
    assert _labels_by_split(result) == {s: {"real", "fake"} for s in ("train", "val", "test")}
    assert result.notes["split"]["grouped_by"] == "groups.csv"  # type: ignore[index]


def test_a_name_prefix_before_a_double_underscore_is_the_group(
    tmp_path: Path, link_videos: LinkVideos
) -> None:
    rels = [
        f"{lab}/{p}__clip{c}.mp4" for lab in ("real", "fake") for p in "abcdefgh" for c in (1, 2)
    ]
    link_videos(tmp_path, [*rels, "real/loose.mp4"])

    result = scan(tmp_path)

    entries = {e.path: e for e in result.entries}
    for person in "abcdefgh":
        group = {
            entries[f"{lab}/{person}__clip{c}.mp4"] for lab in ("real", "fake") for c in (1, 2)
        }
        assert {(e.identity_group, e.split) for e in group} == {
            (person, entries[f"real/{person}__clip1.mp4"].split)
        }
    assert entries["real/loose.mp4"].identity_group is None
    assert result.notes["split"]["grouped_by"] == "name prefix before '__'"  # type: ignore[index]


def test_a_tiny_folder_fills_val_and_test_first_and_says_what_is_missing(
    tmp_path: Path, link_videos: LinkVideos
) -> None:
    link_videos(tmp_path, ["real/a.mp4", "real/b.mp4", "fake/c.mp4", "fake/d.mp4", "fake/e.mp4"])

    result = scan(tmp_path)

    assert _labels_by_split(result) == {
        "train": {"fake"},
        "val": {"real", "fake"},
        "test": {"real", "fake"},
    }
    assert result.problems == (
        "train gets no real video: 2 real group(s) for 3 splits; add real videos or choose "
        "other ratios (`ddm split DATASET --ratios`)",
    )


def test_an_unreadable_groups_csv_keeps_the_splits_it_gave(
    tmp_path: Path, link_videos: LinkVideos
) -> None:
    link_videos(tmp_path, ["real/a.mp4", "fake/b.mp4"])
    (tmp_path / "groups.csv").write_text("file;group\nreal/a.mp4;x\n")

    result = scan(tmp_path)

    assert all(e.split is None and "groups.csv" in (e.metadata_error or "") for e in result.entries)
    assert all(
        {"split", "split_source", "identity_group"} <= e.unread_fields for e in result.entries
    )
    assert len(result.problems) == 1 and result.problems[0].startswith("groups.csv")


def test_bad_files_are_scanned_and_probed_without_losing_the_others(
    tmp_path: Path, link_videos: LinkVideos, real_clip: Path
) -> None:
    write_clip(tmp_path / "real/good one.mp4")
    write_clip(tmp_path / "fake/ünïcødé 東京.mp4")
    (tmp_path / "real/empty.mp4").touch()
    (tmp_path / "real/text.mp4").write_text("plain text, not a video\n")
    (tmp_path / "fake/truncated.mp4").write_bytes(real_clip.read_bytes()[:50_000])
    (tmp_path / "fake/broken link.mp4").symlink_to(tmp_path / "nowhere.mp4")
    (tmp_path / "fake/folder.mp4").mkdir()
    os.mknod(os.fsencode(tmp_path / "real") + b"/bad-\xff.mp4")

    result = scan(tmp_path)
    probed = probe_many([tmp_path / e.path for e in result.entries], workers=2)

    statuses = {p.relative_to(tmp_path).as_posix(): f.probe.status for p, f in probed.items()}
    assert statuses == {
        "real/good one.mp4": "ok",
        "fake/ünïcødé 東京.mp4": "ok",
        "real/empty.mp4": "empty",
        "real/text.mp4": "not_video",
        "fake/truncated.mp4": "corrupt",
        "fake/broken link.mp4": "missing",
        "fake/folder.mp4": "unreadable",
    }
    assert len(result.problems) == 1 and "not valid UTF-8" in result.problems[0]
