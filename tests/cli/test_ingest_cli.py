"""`ddm ingest` and `ddm videos` on the real sample clips, end to end through the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import MEDIA
from tests.ingest.trees import DFD_VIDEOS, add_deepfakedetection, is_dfd

VIDEO_KEYS = {
    "id",
    "dataset",
    "path",
    "label",
    "split",
    "split_source",
    "method",
    "compression",
    "original_path",
    "frame_count",
    "fps",
    "width",
    "height",
    "probe_status",
    "probe_error",
    "present",
    "face_fallback",
    "cache_valid",
}


@pytest.fixture
def ingested_ff(run_ddm, db_url: str) -> dict[str, str]:
    env = {"DDM_DATABASE_URL": db_url}
    result = run_ddm("ingest", str(MEDIA / "ff++"), "--json", env=env)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["dataset"], report["new"], report["changed"]) == ("ff", 7, 0)
    assert report["attempts"] == 1
    return env


def test_ingest_summary_and_idempotent_rerun(run_ddm, ingested_ff) -> None:
    again = run_ddm("ingest", str(MEDIA / "ff++"), env=ingested_ff)
    assert again.exit_code == 0, again.stderr
    assert "0 new, 0 changed, 7 unchanged" in again.stdout
    assert "videos by label and split" in again.stdout
    assert "Deepfakes" in again.stdout


def test_videos_json_is_the_documented_interface(run_ddm, ingested_ff) -> None:
    result = run_ddm("videos", "--json", env=ingested_ff)
    assert result.exit_code == 0, result.stderr
    videos = json.loads(result.stdout)
    assert len(videos) == 7
    for video in videos:
        assert set(video) >= VIDEO_KEYS
        assert video["dataset"] == "ff" and video["probe_status"] == "ok"
        assert video["present"] is True and video["cache_valid"] is False
        assert video["face_fallback"] is None
        assert video["frame_count"] > 0 and video["width"] > 0 and video["fps"] > 0
        assert "\\" not in video["path"]
    by_path = {video["path"]: video for video in videos}
    fake = by_path["manipulated_sequences/NeuralTextures/c23/videos/004_982.mp4"]
    assert (fake["label"], fake["split"], fake["split_source"]) == ("fake", "val", "official")
    assert (fake["method"], fake["compression"]) == ("NeuralTextures", "c23")
    assert fake["original_path"] == "original_sequences/youtube/c23/videos/004.mp4"
    orphan = by_path["manipulated_sequences/Face2Face/c23/videos/750_743.mp4"]
    assert orphan["original_path"] is None


def test_videos_json_streams_the_same_document_as_the_catalog_list(run_ddm, ingested_ff) -> None:
    from ddm.catalog.records import to_json
    from ddm.catalog.videos import list_videos
    from ddm.db import create_db_engine, make_session_factory, session_scope

    result = run_ddm("videos", "--json", env=ingested_ff)
    assert result.exit_code == 0, result.stderr
    engine = create_db_engine(ingested_ff["DDM_DATABASE_URL"])
    with session_scope(make_session_factory(engine)) as session:
        expected = [to_json(record) for record in list_videos(session)]
    engine.dispose()
    with_scores = run_ddm("videos", "--json", "--scores", env=ingested_ff)
    assert with_scores.stdout == json.dumps(expected, indent=2, default=str) + "\n"
    # Without --scores the latest scores are not read, and not said.
    unscored = ("latest_score", "latest_evaluation_id")
    expected = [{k: v for k, v in row.items() if k not in unscored} for row in expected]
    assert result.stdout == json.dumps(expected, indent=2, default=str) + "\n"
    empty = run_ddm("videos", "--json", "--method", "NoSuchMethod", env=ingested_ff)
    assert empty.exit_code == 0, empty.stderr
    assert empty.stdout == "[]\n"


def test_videos_filters(run_ddm, ingested_ff) -> None:
    def paths(*args: str) -> list[str]:
        result = run_ddm("videos", "--json", *args, env=ingested_ff)
        assert result.exit_code == 0, result.stderr
        return [video["path"] for video in json.loads(result.stdout)]

    assert paths("--label", "fake", "--split", "test") == [
        "manipulated_sequences/FaceSwap/c23/videos/634_660.mp4"
    ]
    assert len(paths("--label", "real")) == 3
    assert paths("--method", "Deepfakes") == [
        "manipulated_sequences/Deepfakes/c23/videos/519_515.mp4"
    ]
    assert len(paths("--dataset", "ff", "--limit", "2")) == 2
    table = run_ddm("videos", "--split", "val", env=ingested_ff)
    assert "004_982.mp4" in table.stdout and "519.mp4" not in table.stdout


def test_datasets_lists_the_counts(run_ddm, ingested_ff) -> None:
    result = run_ddm("datasets", "--json", env=ingested_ff)
    [dataset] = json.loads(result.stdout)
    assert (dataset["name"], dataset["format"], dataset["videos"]) == ("ff", "ffpp", 7)
    assert (dataset["real"], dataset["fake"], dataset["unreadable"]) == (3, 4, 0)
    assert (dataset["listed_missing"], dataset["root"]) == (0, str(MEDIA / "ff++"))


def test_dfdc_reports_listed_but_missing_videos(run_ddm) -> None:
    result = run_ddm("ingest", str(MEDIA / "dfdc"), "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["dataset"], report["format"], report["new"]) == ("dfdc", "dfdc", 3)
    assert report["summary"]["listed_missing"] == {
        "dfdc_train_part_0": 1333,
        "dfdc_train_part_1": 1699,
        "dfdc_train_part_10": 3190,
    }
    table = run_ddm("ingest", str(MEDIA / "dfdc"))
    assert "listed in metadata, not on disk" in table.stdout


def test_a_faceforensics_tree_with_dfd_gives_two_datasets(run_ddm, tmp_path: Path) -> None:
    root = tmp_path / "FaceForensics"
    shutil.copytree(MEDIA / "ff++", root)
    add_deepfakedetection(root, MEDIA / "ff++/original_sequences/youtube/c23/videos/004.mp4")

    report = json.loads(run_ddm("ingest", str(root), "--json").stdout)

    assert (report["dataset"], report["new"], report["moved_out"]) == ("ff", 7, {})
    [dfd] = report["companions"]
    assert (dfd["dataset"], dfd["format"], dfd["new"]) == ("dfd", "dfd", len(DFD_VIDEOS))
    assert (dfd["summary"]["dataset"]["real"], dfd["summary"]["dataset"]["fake"]) == (2, 3)
    assert dfd["companions"] == []
    ff_test = json.loads(run_ddm("videos", "--dataset", "ff", "--split", "test", "--json").stdout)
    assert sorted(v["path"] for v in ff_test) == [
        "manipulated_sequences/FaceSwap/c23/videos/634_660.mp4",
        "original_sequences/youtube/c23/videos/634.mp4",
    ]
    assert not [
        v
        for v in json.loads(run_ddm("videos", "--json").stdout)
        if is_dfd(v["path"]) and v["dataset"] != "dfd"
    ]
    text = run_ddm("ingest", str(root)).stdout
    assert f"{root} holds 2 datasets: ff and dfd" in text
    assert "dfd (dfd) at" in text and "0 new, 0 changed, 5 unchanged" in text
    assert "dfd: videos by label and split" in text


def test_unknown_dataset_name_is_a_domain_error(run_ddm) -> None:
    result = run_ddm("videos", "--dataset", "nope")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no dataset named 'nope'")


@pytest.mark.parametrize("case", ["missing", "empty", "file"])
def test_bad_ingest_paths_get_one_line_and_exit_1(run_ddm, tmp_path: Path, case: str) -> None:
    path = tmp_path / case
    if case == "empty":
        path.mkdir()
    elif case == "file":
        path.write_text("not a dataset")
    result = run_ddm("ingest", str(path))
    assert result.exit_code == 1, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("error: ")
    assert run_ddm("datasets", "--json").stdout.strip() == "[]"


def test_a_corrupt_file_is_recorded_and_the_rest_ingested(run_ddm, tmp_path: Path) -> None:
    root = tmp_path / "clips"
    (root / "real").mkdir(parents=True)
    (root / "fake").mkdir()
    shutil.copyfile(MEDIA / "samples" / "lynaeydofd.mp4", root / "fake" / "good clip é.mp4")
    (root / "real" / "empty.mp4").write_bytes(b"")
    (root / "real" / "notes.mp4").write_text("this is text, not a video\n" * 50)
    result = run_ddm("ingest", str(root), "--format", "folder", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)["summary"]
    bad = {row["path"]: row["probe_status"] for row in summary["unreadable"]}
    assert set(bad) == {"real/empty.mp4", "real/notes.mp4"}
    videos = json.loads(run_ddm("videos", "--json", "--dataset", "clips").stdout)
    good = [video for video in videos if video["probe_status"] == "ok"]
    assert [video["path"] for video in good] == ["fake/good clip é.mp4"]
    assert good[0]["frame_count"] == 300


@pytest.mark.parametrize("layout", ["celebdf", "dfdc", "folder"])
def test_a_forced_format_that_is_not_the_tree_is_one_line_and_exit_1(run_ddm, layout) -> None:
    result = run_ddm("ingest", str(MEDIA / "ff++"), "--format", layout)
    assert result.exit_code == 1, result.stdout
    assert result.stderr.startswith(f"error: {MEDIA / 'ff++'}: not a {layout} dataset")
    assert len(result.stderr.strip().splitlines()) == 1
    assert run_ddm("datasets", "--json").stdout.strip() == "[]"


def test_pathologically_nested_metadata_is_a_problem_of_its_file(run_ddm, tmp_path) -> None:
    root = tmp_path / "dfdc"
    shutil.copytree(MEDIA / "dfdc", root)
    (root / "dfdc_train_part_1/metadata.json").write_text("[" * 200_000 + "]" * 200_000)
    result = run_ddm("ingest", str(root), "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["new"] == 3
    [problem] = report["summary"]["problems"]
    assert problem.startswith("dfdc_train_part_1/metadata.json: malformed JSON")


def test_two_ingest_processes_at_once_both_succeed(ddm_env, db_url: str, tmp_path) -> None:
    root = tmp_path / "FaceForensics"
    shutil.copytree(MEDIA / "ff++", root)
    env = {**os.environ, **ddm_env, "DDM_DATABASE_URL": db_url}
    command = [sys.executable, "-m", "cli.main", "ingest", str(root), "--json"]
    runs = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=120) for run in runs]
    for run, (_stdout, stderr) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, stderr
    reports = [json.loads(stdout) for stdout, _stderr in outputs]
    assert sorted(report["new"] for report in reports) == [0, 7]
    assert all(report["summary"]["dataset"]["videos"] == 7 for report in reports)
    # Whoever recorded second (if they overlapped) says so in one line, and nothing else.
    for report, (_stdout, stderr) in zip(reports, outputs, strict=True):
        assert len(stderr.strip().splitlines()) == report["attempts"] - 1, stderr
