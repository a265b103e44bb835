"""`ddm split`: re-splitting a dataset of any format, keeping official splits unless forced,
saying what moved, and surviving a re-ingest."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import MEDIA
from tests.ingest.trees import link_all

CLIP = MEDIA / "ff++/original_sequences/youtube/c23/videos/004.mp4"


def _ok(result) -> dict:  # noqa: ANN001
    assert result.exit_code == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def _splits(run_ddm, env: dict[str, str], dataset: str) -> dict[str, str | None]:
    videos = _ok(run_ddm("videos", "--dataset", dataset, "--json", env=env))
    return {v["path"]: v["split"] for v in videos}


@pytest.fixture
def folder(tmp_path: Path, run_ddm, db_url: str) -> tuple[dict[str, str], Path]:
    if not CLIP.exists():
        pytest.skip(f"real sample media not found at {MEDIA}")
    root = tmp_path / "mine"
    link_all(root, [f"{lab}/{n:02d}.mp4" for lab in ("real", "fake") for n in range(12)], CLIP)
    env = {"DDM_DATABASE_URL": db_url}
    _ok(run_ddm("ingest", str(root), "--json", env=env))
    return env, root


def test_help_prints_the_usage(run_ddm) -> None:
    result = run_ddm("split", "--help")
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: ddm split")
    assert "--ratios" in result.stdout and "--group-by" in result.stdout


def test_resplit_says_what_moved_and_keeps_both_labels_everywhere(run_ddm, folder) -> None:
    env, _ = folder
    before = _splits(run_ddm, env, "mine")

    change = _ok(run_ddm("split", "mine", "--seed", "11", "--json", env=env))

    after = _splits(run_ddm, env, "mine")
    moved = Counter(f"{before[p]}->{after[p]}" for p in before if before[p] != after[p])
    assert change["moved"] == dict(moved) and moved
    assert change["resplit"] == 24 and change["kept_official"] == 0
    assert change["policy"] == {
        "ratios": [70, 15, 15],
        "seed": 11,
        "group_by": None,
        "force": False,
    }
    assert change["by_split"] == {
        "train": {"real": 8, "fake": 8},
        "val": {"real": 2, "fake": 2},
        "test": {"real": 2, "fake": 2},
    }
    text = run_ddm("split", "mine", "--seed", "11", env=env)
    assert text.exit_code == 0, text.stderr
    assert "no video changed split" in text.stdout


def test_a_reingest_keeps_the_split_ddm_split_chose(run_ddm, folder) -> None:
    env, root = folder
    _ok(run_ddm("split", "mine", "--ratios", "60,20,20", "--seed", "4", "--json", env=env))
    chosen = _splits(run_ddm, env, "mine")

    _ok(run_ddm("ingest", str(root), "--rehash", "--json", env=env))

    assert _splits(run_ddm, env, "mine") == chosen
    assert Counter(chosen.values()) == {"train": 14, "val": 6, "test": 4}


def test_group_by_file_keeps_groups_together(run_ddm, folder, tmp_path: Path) -> None:
    env, _ = folder
    groups = tmp_path / "people.csv"
    lines = [f"{lab}/{n:02d}.mp4,person{n // 3}" for lab in ("real", "fake") for n in range(12)]
    groups.write_text("file,group\n" + "\n".join(lines) + "\n")

    _ok(run_ddm("split", "mine", "--group-by", str(groups), "--json", env=env))

    videos = _ok(run_ddm("videos", "--dataset", "mine", "--json", env=env))
    by_person: dict[str, set[str]] = {}
    for video in videos:
        by_person.setdefault(f"person{int(video['path'][-6:-4]) // 3}", set()).add(video["split"])
    assert all(len(splits) == 1 for splits in by_person.values()), by_person


def test_bad_ratios_and_unknown_dataset_are_one_line(run_ddm, folder) -> None:
    env, _ = folder
    bad = run_ddm("split", "mine", "--ratios", "70,30", env=env)
    assert bad.exit_code == 1 and "three whole percentages" in bad.stderr
    unknown = run_ddm("split", "nope", env=env)
    assert unknown.exit_code == 1 and "no dataset named 'nope'" in unknown.stderr


def test_official_splits_stay_unless_forced(run_ddm, tmp_path: Path, db_url: str) -> None:
    if not CLIP.exists():
        pytest.skip(f"real sample media not found at {MEDIA}")
    root = tmp_path / "Celeb-DF"
    rels = [f"Celeb-real/id{p}_{c:04d}.mp4" for p in range(12) for c in range(2)]
    rels += [f"Celeb-synthesis/id{p}_id{(p + 1) % 12}_0000.mp4" for p in range(12)]
    link_all(root, rels, CLIP)
    (root / "List_of_testing_videos.txt").write_text(
        "1 Celeb-real/id0_0000.mp4\n0 Celeb-synthesis/id3_id4_0000.mp4\n"
    )
    env = {"DDM_DATABASE_URL": db_url}
    _ok(run_ddm("ingest", str(root), "--json", env=env))

    kept = _ok(run_ddm("split", "celebdf", "--seed", "2", "--json", env=env))
    splits = _splits(run_ddm, env, "celebdf")
    assert kept["kept_official"] == 2 and kept["kept_splits"] == ["test"]
    assert [p for p, s in splits.items() if s == "test"] == [
        "Celeb-real/id0_0000.mp4",
        "Celeb-synthesis/id3_id4_0000.mp4",
    ]
    assert "test" not in kept["moved"] and not any(k.endswith("->test") for k in kept["moved"])

    forced = _ok(run_ddm("split", "celebdf", "--force", "--json", env=env))
    assert forced["kept_official"] == 0 and forced["resplit"] == len(rels)
    videos = _ok(run_ddm("videos", "--dataset", "celebdf", "--json", env=env))
    assert {v["split_source"] for v in videos} == {"derived"}
