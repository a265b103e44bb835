"""`ddm extract` inline (no broker), end to end through the CLI, with cache verification."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.tasks.conftest import FRAMES, make_clips

EXTRACT = ("extract", "--dataset", "clips", "--frames", str(FRAMES), "--allow-random-weights")


@pytest.fixture
def clips_env(run_ddm, tmp_path: Path) -> dict[str, str]:
    result = run_ddm("ingest", str(make_clips(tmp_path / "clips")), "--format", "folder")
    assert result.exit_code == 0, result.stderr
    return {}


def _videos(run_ddm) -> dict[str, dict]:
    result = run_ddm("videos", "--json", "--dataset", "clips")
    assert result.exit_code == 0, result.stderr
    return {video["path"]: video for video in json.loads(result.stdout)}


def test_extract_then_nothing_left(run_ddm, clips_env) -> None:
    result = run_ddm(*EXTRACT, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["extracted"], report["failed"], report["skipped"]) == (3, 0, 0)
    assert set(report["jobs"].values()) == {"succeeded"}
    assert "random weights" in result.stderr
    for video in _videos(run_ddm).values():
        assert video["cache_valid"] is True and video["frames_sampled"] == FRAMES
        assert video["face_fallback"] is (video["fallback_frames"] > 0)
        assert video["fingerprint"] == report["fingerprint"]

    again = run_ddm(*EXTRACT)
    assert again.exit_code == 0, again.stderr
    assert "nothing to extract" in again.stdout


def test_a_cache_file_deleted_or_truncated_behind_the_catalog_is_redone(
    run_ddm, clips_env, ddm_env
) -> None:
    assert run_ddm(*EXTRACT).exit_code == 0
    cache_dir = Path(ddm_env["DDM_HOME"]) / "cache"
    deleted, truncated, kept = sorted(cache_dir.rglob("*.pt"))
    deleted.unlink()
    truncated.write_bytes(truncated.read_bytes()[:100])

    verify = run_ddm("cache", "verify", "--json")
    assert verify.exit_code == 0, verify.stderr
    report = json.loads(verify.stdout)
    assert (report["checked"], report["ok"], report["invalidated"]) == (3, 1, 2)
    assert sum(v["cache_valid"] for v in _videos(run_ddm).values()) == 1

    kept_bytes = kept.read_bytes()
    redo = run_ddm(*EXTRACT, "--json")
    assert redo.exit_code == 0, redo.stderr
    assert json.loads(redo.stdout)["extracted"] == 2
    assert kept.read_bytes() == kept_bytes  # the good one was not touched
    assert all(v["cache_valid"] for v in _videos(run_ddm).values())
    assert json.loads(run_ddm("cache", "verify", "--json").stdout)["ok"] == 3


def test_missing_weights_is_a_setup_error_naming_the_files(run_ddm, clips_env, ddm_env) -> None:
    result = run_ddm("extract", "--dataset", "clips")
    assert result.exit_code == 3
    [line] = result.stderr.strip().splitlines()
    assert "psp_ffhq_encode.pt" in line and "SLOW_8x8_R50.pyth" in line
    assert str(Path(ddm_env["DDM_HOME"]) / "weights") in line


def test_unknown_dataset_is_a_domain_error(run_ddm) -> None:
    result = run_ddm("extract", "--dataset", "nope", "--allow-random-weights")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no dataset named 'nope'")


def test_a_broker_that_cannot_be_reached_keeps_the_jobs_queued(run_ddm, clips_env) -> None:
    result = run_ddm(*EXTRACT, env={"DDM_BROKER_URL": "redis://127.0.0.1:1/0"})
    assert result.exit_code == 3
    assert "cannot reach the broker" in result.stderr
    jobs = json.loads(run_ddm("jobs", "list", "--json").stdout)
    assert [job["status"] for job in jobs] == ["queued"]  # one batch of three
