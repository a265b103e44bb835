"""`ddm extract` inline (no broker), end to end through the CLI, with cache verification."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from ddm.config import load_settings
from ddm.db import session_scope
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
        sources = video["frame_sources"]
        assert len(sources) == FRAMES and set(sources) <= set("dif")
        assert sources.count("f") == video["fallback_frames"]
        assert sources.count("i") == video["interpolated_frames"]

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


def _factory(ddm_env):
    from tasks.context import session_factory

    return session_factory(load_settings(home=ddm_env["DDM_HOME"]).db_url)


def test_a_cache_folder_that_cannot_be_written_fails_at_once_with_one_line(
    run_ddm, clips_env, tmp_path
) -> None:
    not_a_folder = tmp_path / "cache-is-a-file"
    not_a_folder.write_text("")
    result = run_ddm(*EXTRACT, env={"DDM_CACHE_DIR": str(not_a_folder)})
    assert result.exit_code == 3, result.stderr
    [line] = result.stderr.strip().splitlines()[-1:]
    assert f"DDM_CACHE_DIR {not_a_folder} is not a writable folder" in line
    jobs = json.loads(run_ddm("jobs", "list", "--json").stdout)
    assert [job["status"] for job in jobs] == ["failed"]
    # Nothing was extracted first: the check comes before the first video.
    videos = _videos(run_ddm).values()
    assert all(not video["cache_valid"] and video["cache_error"] is None for video in videos)


def test_failed_videos_make_extract_exit_1_with_the_count(run_ddm, tmp_path) -> None:
    root = make_clips(tmp_path / "clips")
    assert run_ddm("ingest", str(root), "--format", "folder").exit_code == 0
    (root / "fake/634_660.mp4").unlink()  # gone after ingest: its extraction fails
    result = run_ddm(*EXTRACT, "--json")
    assert result.exit_code == 1, result.stderr
    report = json.loads(result.stdout)
    assert (report["extracted"], report["failed"]) == (2, 1)
    assert result.stderr.strip().splitlines()[-1] == (
        "error: extraction incomplete: 1 of 3 videos failed; see `ddm videos --json` (cache_error)"
    )


def test_a_job_cancelled_while_extracting_inline_makes_extract_exit_1(
    run_ddm, clips_env, ddm_env
) -> None:
    from ddm.catalog.jobs import cancel_job, list_jobs

    factory = _factory(ddm_env)
    cancelled: list[int] = []

    def cancel_the_running_job() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not cancelled:
            with session_scope(factory) as session:
                for job in list_jobs(session, status="running"):
                    cancel_job(session, job.id)
                    cancelled.append(job.id)
            time.sleep(0.05)

    canceller = threading.Thread(target=cancel_the_running_job)
    canceller.start()
    result = run_ddm(*EXTRACT, env={"DDM_HEARTBEAT_SECONDS": "0.2", "DDM_STALE_AFTER_SECONDS": "5"})
    canceller.join()
    assert cancelled, "the job was never seen running"
    assert result.exit_code == 1, result.stderr
    assert f"job {cancelled[0]} cancelled" in result.stderr.strip().splitlines()[-1]


def test_a_video_leased_by_a_live_job_is_left_out_of_the_plan_and_said_so(
    run_ddm, clips_env, ddm_env
) -> None:
    from datetime import timedelta

    from ddm.catalog.caches import claim_video
    from ddm.catalog.jobs import claim_job, create_job
    from ddm.catalog.models import Video

    plan = json.loads(run_ddm(*EXTRACT, "--limit", "1", "--json").stdout)
    fingerprint = plan["fingerprint"]
    factory = _factory(ddm_env)
    # What an inline run killed mid-video leaves: its job running, its lease fresh.
    with session_scope(factory) as session:
        leased_id, leased_path = session.execute(
            select(Video.id, Video.path).order_by(Video.id.desc()).limit(1)
        ).one()
        job_id = create_job(session, "extract", {}).id
        assert claim_job(session, job_id, "killed-run", 3)
        assert claim_video(session, leased_id, fingerprint, job_id, stale_after=timedelta(60))

    result = run_ddm(*EXTRACT, "--limit", "1", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["videos"] == 1 and report["extracted"] == 1 and report["skipped"] == 0
    assert [video["video_id"] for video in report["results"]] != [leased_id]
    assert [video["video_id"] for video in report["leased"]] == [leased_id]
    assert f"not planned: {leased_path} is being extracted by job {job_id}" in result.stderr
    assert "lease lapses at" in result.stderr


def test_identical_files_are_extracted_once_and_recorded_for_both(
    run_ddm, tmp_path, ddm_env
) -> None:
    root = make_clips(tmp_path / "clips")
    shutil.copyfile(root / "real/004.mp4", root / "real/004-copy.mp4")
    assert run_ddm("ingest", str(root), "--format", "folder").exit_code == 0
    result = run_ddm(*EXTRACT, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["extracted"], report["reused"], report["failed"]) == (3, 1, 0)
    videos = _videos(run_ddm)
    assert videos["real/004-copy.mp4"]["cache_valid"] and videos["real/004.mp4"]["cache_valid"]
    files = list((Path(ddm_env["DDM_HOME"]) / "cache").rglob("*.pt"))
    assert len(files) == 3


def test_bf16_caches_live_beside_the_fp32_ones_under_their_own_fingerprint(
    run_ddm, clips_env
) -> None:
    fp32 = run_ddm(*EXTRACT, "--json")
    assert fp32.exit_code == 0, fp32.stderr
    bf16 = run_ddm(*EXTRACT, "--precision", "bf16", "--json")
    assert bf16.exit_code == 0, bf16.stderr
    fp32_report, bf16_report = json.loads(fp32.stdout), json.loads(bf16.stdout)
    # A different extractor: nothing of the fp32 run is reused, every video is extracted.
    assert bf16_report["fingerprint"] != fp32_report["fingerprint"]
    assert bf16_report["extracted"] == fp32_report["extracted"] == 3
    assert "nothing to extract" in run_ddm(*EXTRACT).stdout


def test_an_unknown_precision_is_a_usage_error(run_ddm, clips_env) -> None:
    result = run_ddm(*EXTRACT, "--precision", "fp8")
    assert result.exit_code == 2 and "fp8" in result.stderr
