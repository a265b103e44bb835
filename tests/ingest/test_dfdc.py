"""DFDC: the real partial-download layout, the public test/validation labels and Preview."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

from ddm.ingest.records import LayoutScan, VideoEntry
from ddm.ingest.registry import detect_format, scan

LinkVideos = Callable[[Path, Iterable[str]], None]


def _by_path(result: LayoutScan) -> dict[str, VideoEntry]:
    return {e.path: e for e in result.entries}


def test_real_partial_download(media: Path) -> None:
    root = media / "dfdc"
    assert detect_format(root) == "dfdc"

    result = scan(root)

    assert (result.format, result.default_name) == ("dfdc", "dfdc")
    got = {e.path: (e.label, e.raw_label, e.split, e.split_source, e.part) for e in result.entries}
    assert got == {
        "dfdc_train_part_0/brtujopkby.mp4": (
            "fake",
            "FAKE",
            "train",
            "official",
            "dfdc_train_part_0",
        ),
        "dfdc_train_part_10/widuwuoiur.mp4": (
            "fake",
            "FAKE",
            "train",
            "official",
            "dfdc_train_part_10",
        ),
        "dfdc_train_part_10/yhffcuhhjy.mp4": (
            "fake",
            "FAKE",
            "train",
            "official",
            "dfdc_train_part_10",
        ),
    }
    sizes = {
        part: len(json.loads((root / part / "metadata.json").read_bytes()))
        for part in ("dfdc_train_part_0", "dfdc_train_part_1", "dfdc_train_part_10")
    }
    assert sizes == {
        "dfdc_train_part_0": 1334,
        "dfdc_train_part_1": 1699,
        "dfdc_train_part_10": 3192,
    }
    assert dict(result.listed_missing) == {
        "dfdc_train_part_0": 1334 - 1,
        "dfdc_train_part_1": 1699,  # metadata only, none of its videos
        "dfdc_train_part_10": 3192 - 2,
    }
    assert result.problems == ()
    # Their real originals were not downloaded: no link, but the group follows `original`.
    metadata = json.loads((root / "dfdc_train_part_0/metadata.json").read_bytes())
    entry = _by_path(result)["dfdc_train_part_0/brtujopkby.mp4"]
    assert entry.original_path is None and entry.method is None
    assert entry.identity_group == "orig:" + metadata["brtujopkby.mp4"]["original"][:-4]


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_nested_parts_public_sets_and_broken_metadata(
    tmp_path: Path, link_videos: LinkVideos
) -> None:
    part0 = "train/dfdc_train_part_00/dfdc_train_part_0"  # an extra level after unzipping
    link_videos(
        tmp_path,
        [f"{part0}/{n}.mp4" for n in ("real1", "fake1", "fake2", "chain", "stray")]
        + [
            "train/dfdc_train_part_1/f.mp4",
            "train/dfdc_train_part_2/g.mp4",
            "test/h.mp4",
            "test/i.mp4",
            "validation/k.mp4",
        ],
    )
    metadata = {
        "real1.mp4": {"label": "REAL", "split": "train", "original": None},
        "fake1.mp4": {"label": "FAKE", "split": "train", "original": "real1.mp4"},
        "fake2.mp4": {"label": "FAKE", "split": "train", "original": "gone.mp4"},
        "chain.mp4": {"label": "FAKE", "split": "train", "original": "fake1.mp4"},
        "listed.mp4": {"label": "FAKE", "split": "train", "original": "real1.mp4"},
    }
    _write(tmp_path / part0 / "metadata.json", json.dumps(metadata))
    _write(tmp_path / "train/dfdc_train_part_1/metadata.json", '{"f.mp4": {"label": "FA')
    _write(tmp_path / "test/labels.csv", "filename,label\nh.mp4,1\ni.mp4,0\nj.mp4,1\n")
    _write(tmp_path / "validation/labels.csv", "filename,label\r\nk.mp4,0\r\n")
    assert detect_format(tmp_path) == "dfdc"

    result = scan(tmp_path)

    entries = _by_path(result)
    assert entries[f"{part0}/real1.mp4"].label == "real"
    fake1 = entries[f"{part0}/fake1.mp4"]
    assert (fake1.label, fake1.part, fake1.original_path) == (
        "fake",
        "dfdc_train_part_0",
        f"{part0}/real1.mp4",
    )
    assert entries[f"{part0}/fake2.mp4"].original_path is None
    assert entries[f"{part0}/chain.mp4"].identity_group == fake1.identity_group == "orig:real1"
    stray = entries[f"{part0}/stray.mp4"]
    assert (stray.label, stray.split) == (None, None)
    assert "not listed" in (stray.metadata_error or "")
    broken = entries["train/dfdc_train_part_1/f.mp4"]
    assert (broken.label, broken.split, broken.part) == (None, None, "dfdc_train_part_1")
    assert "malformed JSON" in (broken.metadata_error or "")
    no_metadata = entries["train/dfdc_train_part_2/g.mp4"]
    assert no_metadata.label is None and "missing" in (no_metadata.metadata_error or "")
    assert [(entries[f"test/{n}.mp4"].label, entries[f"test/{n}.mp4"].raw_label) for n in "hi"] == [
        ("fake", "1"),
        ("real", "0"),
    ]
    assert {entries[f"test/{n}.mp4"].split for n in "hi"} == {"test"}
    assert (entries["validation/k.mp4"].label, entries["validation/k.mp4"].split) == ("real", "val")
    assert dict(result.listed_missing) == {"dfdc_train_part_0": 1, "test": 1}
    assert sum("dfdc_train_part_1/metadata.json: malformed JSON" in p for p in result.problems) == 1
    assert len(result.problems) == 3  # unlisted stray, part 1 malformed, part 2 missing


def test_malformed_labels_csv(tmp_path: Path, link_videos: LinkVideos) -> None:
    link_videos(tmp_path, ["test/a.mp4"])
    _write(tmp_path / "test/labels.csv", "name;is_it_fake\na.mp4;1\n")

    result = scan(tmp_path)

    assert [(e.label, e.split) for e in result.entries] == [(None, None)]
    assert "expected a 'filename,label' header" in (result.entries[0].metadata_error or "")


def test_public_test_metadata_with_is_fake(tmp_path: Path, link_videos: LinkVideos) -> None:
    link_videos(tmp_path, ["test/aalscayrfi.mp4", "test/b.mp4"])
    _write(
        tmp_path / "test/metadata.json",
        json.dumps(
            {"aalscayrfi.mp4": {"is_fake": 0}, "b.mp4": {"is_fake": 1, "augmentations": {}}}
        ),
    )

    entries = _by_path(scan(tmp_path))

    assert entries["test/aalscayrfi.mp4"].label == "real"
    assert (entries["test/b.mp4"].label, entries["test/b.mp4"].split) == ("fake", "test")


def test_dfdc_preview_dataset_json(tmp_path: Path, link_videos: LinkVideos) -> None:
    fake = "method_A/1003254/1003254_A/1255229_1003254_A_001.mp4"
    real = "original_videos/1003254/1003254_A/001.mp4"
    unlisted = "method_B/1/1_B/x.mp4"
    link_videos(tmp_path, [fake, real, unlisted])
    index = {
        fake: {"label": "fake", "set": "train", "augmentations": {}},
        real: {"label": "real", "set": "test"},
        "method_B/2/2_B/absent.mp4": {"label": "fake", "set": "test"},
    }
    _write(tmp_path / "dataset.json", json.dumps(index))
    assert detect_format(tmp_path) == "dfdc"

    result = scan(tmp_path)

    entries = _by_path(result)
    assert result.default_name == "dfdcp"
    assert (entries[fake].label, entries[fake].split, entries[fake].method) == (
        "fake",
        "train",
        "method_A",
    )
    assert (entries[real].label, entries[real].split, entries[real].method) == (
        "real",
        "test",
        None,
    )
    assert {entries[p].split_source for p in (fake, real)} == {"official"}
    assert entries[unlisted].label is None
    assert dict(result.listed_missing) == {"dataset.json": 1}


DEEP_JSON = "[" * 200_000 + "]" * 200_000


def test_any_unreadable_label_file_is_a_problem_of_that_file(
    tmp_path: Path, link_videos: LinkVideos
) -> None:
    link_videos(tmp_path, ["dfdc_train_part_0/a.mp4", "test/b.mp4", "validation/c.mp4"])
    _write(tmp_path / "dfdc_train_part_0/metadata.json", DEEP_JSON)  # RecursionError
    _write(tmp_path / "test/metadata.json", '{"b.mp4": {"is_fake": 1}, "x": ' + DEEP_JSON + "}")
    # One cell past the csv module's field limit (131072 characters) is a csv.Error.
    _write(tmp_path / "validation/labels.csv", "filename,label\nc.mp4," + "1" * 200_000 + "\n")

    result = scan(tmp_path)

    errors = {e.path: e.metadata_error or "" for e in result.entries}
    assert [e.label for e in result.entries] == [None, None, None]
    assert "dfdc_train_part_0/metadata.json: malformed JSON" in errors["dfdc_train_part_0/a.mp4"]
    assert "test/metadata.json: malformed JSON" in errors["test/b.mp4"]
    assert "validation/labels.csv" in errors["validation/c.mp4"]
    assert len(result.problems) == 3 and all("\n" not in line for line in result.problems)


def test_hostile_record_values_never_break_a_scan(tmp_path: Path, link_videos: LinkVideos) -> None:
    link_videos(tmp_path, ["dfdc_train_part_0/a.mp4", "dfdc_train_part_0/b.mp4"])
    deep = "[" * 900 + "]" * 900  # parses, but its repr nests as deep
    metadata = (
        '{"a.mp4": {"label": "' + "F" * 500 + '", "split": ' + deep + "}, "
        '"b.mp4": {"label": ' + deep + ', "original": ' + deep + "}}"
    )
    _write(tmp_path / "dfdc_train_part_0/metadata.json", metadata)

    entries = _by_path(scan(tmp_path))

    a, b = entries["dfdc_train_part_0/a.mp4"], entries["dfdc_train_part_0/b.mp4"]
    assert (a.label, a.split, len(a.raw_label or "")) == (None, "train", 32)
    assert (b.label, b.raw_label, b.original_path) == (None, "list", None)
