"""The plain real/ + fake/ folder layout, and bad files inside a scanned tree."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from ddm.ingest.probe import probe_many
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
    assert all(e.method is None and e.identity_group is None for e in result.entries)


def test_seeded_split_is_deterministic_and_stable(tmp_path: Path, link_videos: LinkVideos) -> None:
    link_videos(tmp_path, [f"real/{n:03d}.mp4" for n in range(200)])
    first = {e.path: e.split for e in scan(tmp_path, seed=3).entries}
    assert first == {e.path: e.split for e in scan(tmp_path, seed=3).entries}
    assert 0.75 < sum(s == "train" for s in first.values()) / 200 < 0.95  # about 85 %
    assert first != {e.path: e.split for e in scan(tmp_path, seed=4).entries}

    link_videos(tmp_path, [f"fake/{n:03d}.mp4" for n in range(50)])
    after = {e.path: e.split for e in scan(tmp_path, seed=3).entries}

    assert {p: after[p] for p in first} == first


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
