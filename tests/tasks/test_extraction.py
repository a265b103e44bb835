"""Extraction jobs run through the plain functions, against real catalogs and real clips."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch
from sqlalchemy import select

from ddm.catalog.caches import cache_rows
from ddm.catalog.jobs import get_job
from ddm.catalog.models import FeatureCache, Video
from ddm.db import session_scope
from ddm.errors import SetupError
from ddm.fs import TEMP_PREFIX, sha256_of
from model.compiled import compile_backend_available
from tasks.dispatch import run_inline
from tasks.extraction import extractor_cfg, plan_extraction
from tasks.lifecycle import run_job
from tests.tasks.conftest import FRAMES


def _plan(factory, settings, dataset, **kwargs):
    return plan_extraction(
        factory,
        settings,
        dataset,
        cfg=extractor_cfg(FRAMES),
        weights_dir=settings.weights_dir,
        allow_random=True,
        **kwargs,
    )


def _files(settings) -> list[Path]:
    return sorted(p for p in Path(settings.cache_dir).rglob("*") if p.is_file())


def test_extract_fills_a_verified_cache_and_a_second_run_has_nothing_to_do(
    factory, job_settings, clips
) -> None:
    plan = _plan(factory, job_settings, clips)
    assert plan.random_weights and plan.fingerprint.startswith("random-")
    assert (plan.videos, len(plan.job_ids)) == (3, 2)  # batches of two
    statuses = run_inline(job_settings, factory, plan.job_ids)
    assert set(statuses.values()) == {"succeeded"}

    with session_scope(factory) as session:
        rows = cache_rows(session)
        videos = session.scalars(select(Video)).all()
    frame_counts = {video.id: video.frame_count for video in videos}
    assert len(rows) == 3 and all(row.is_valid for row in rows)
    for row in rows:
        path = Path(job_settings.cache_dir) / row.path
        assert row.path.startswith(f"{plan.fingerprint}/{row.video_hash[:2]}/")
        assert sha256_of(path) == row.checksum and path.stat().st_size == row.bytes
        features = torch.load(path, weights_only=True)
        assert features["style"].shape == (FRAMES, 1, 512)
        assert features["content"].shape == (1, 2048)
        assert features["fingerprint"] == plan.fingerprint
        assert features["video_hash"] == row.video_hash
        assert (row.frames_sampled, row.faces_detected + row.fallback_frames) == (FRAMES, FRAMES)
        assert features["frame_source"].shape == (FRAMES,)
        assert row.interpolated_frames == features["num_interpolated"]
        assert len(row.frame_sources) == FRAMES
    # What extraction learned is on the cache rows; the videos' columns are ingest's.
    assert {v.id: v.frame_count for v in videos} == frame_counts
    assert all(row.face_fallback is (row.fallback_frames > 0) for row in rows)
    assert not [p for p in _files(job_settings) if p.name.startswith(TEMP_PREFIX)]

    again = _plan(factory, job_settings, clips)
    assert (again.videos, again.job_ids) == (0, [])


def test_a_corrupt_video_is_recorded_and_the_batch_goes_on(
    factory, job_settings, clips, tmp_path
) -> None:
    broken = tmp_path / "clips" / "fake" / "004_982.mp4"
    broken.write_bytes(b"\0" * broken.stat().st_size)  # same size: the catalog still says ok
    plan = _plan(factory, job_settings, clips)
    statuses = run_inline(job_settings, factory, plan.job_ids)
    assert set(statuses.values()) == {"succeeded"}
    with session_scope(factory) as session:
        jobs = [get_job(session, job_id) for job_id in plan.job_ids]
        rows = {row.video_id: row for row in cache_rows(session)}
        failed = session.scalars(select(FeatureCache).where(FeatureCache.is_valid.is_(False))).one()
    assert sum(job.result["failed"] for job in jobs) == 1
    assert sum(job.result["extracted"] for job in jobs) == 2
    assert failed.error and failed.path is None and failed.claimed_by_job_id is None
    assert len(rows) == 2  # cache_rows lists rows with files only


def test_a_batch_where_every_video_fails_fails(factory, job_settings, clips, tmp_path) -> None:
    for clip in (tmp_path / "clips").rglob("*.mp4"):
        clip.write_bytes(b"\0" * clip.stat().st_size)
    plan = _plan(factory, job_settings, clips)
    statuses = run_inline(job_settings, factory, plan.job_ids)
    assert set(statuses.values()) == {"failed"}
    with session_scope(factory) as session:
        job = get_job(session, plan.job_ids[0])
    assert job.status == "failed" and job.error == "all 2 videos failed"


def test_a_second_delivery_of_a_finished_job_is_a_no_op(factory, job_settings, clips) -> None:
    plan = _plan(factory, job_settings, clips, limit=1)
    [job_id] = plan.job_ids
    assert run_job(job_id, job_settings, factory, "w1") == "succeeded"
    before = _files(job_settings)
    assert run_job(job_id, job_settings, factory, "w2") == "skipped"
    with session_scope(factory) as session:
        job = get_job(session, job_id)
    assert (job.status, job.attempts, job.worker) == ("succeeded", 1, "w1")
    assert _files(job_settings) == before


def test_a_job_delivered_twice_at_once_runs_once(factory, job_settings, clips) -> None:
    plan = _plan(factory, job_settings, clips, limit=1)
    [job_id] = plan.job_ids
    results: dict[str, str] = {}
    barrier = threading.Barrier(2)

    def deliver(worker: str) -> None:
        barrier.wait()
        results[worker] = run_job(job_id, job_settings, factory, worker)

    threads = [threading.Thread(target=deliver, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results.values()) == ["skipped", "succeeded"]
    with session_scope(factory) as session:
        assert get_job(session, job_id).attempts == 1
        assert len(cache_rows(session)) == 1


def test_two_extract_runs_for_one_dataset_extract_each_video_once(
    factory, job_settings, clips
) -> None:
    first = _plan(factory, job_settings, clips)
    second = _plan(factory, job_settings, clips)  # planned before the first ran: same videos
    outcomes: list = []
    runs = [
        threading.Thread(
            target=run_inline, args=(job_settings, factory, plan.job_ids, outcomes.append)
        )
        for plan in (first, second)
    ]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    extracted = [o.video_id for o in outcomes if o.status == "extracted"]
    assert sorted(extracted) == sorted(set(extracted)) and len(extracted) == 3
    assert sum(o.status == "skipped" for o in outcomes) == 3
    assert len([p for p in _files(job_settings) if p.suffix == ".pt"]) == 3


def test_another_configuration_is_another_fingerprint(factory, job_settings, clips) -> None:
    first = _plan(factory, job_settings, clips, limit=1)
    run_inline(job_settings, factory, first.job_ids)
    other = plan_extraction(
        factory,
        job_settings,
        clips,
        cfg=extractor_cfg(FRAMES + 1),
        weights_dir=job_settings.weights_dir,
        allow_random=True,
    )
    assert other.fingerprint != first.fingerprint and other.videos == 3
    with session_scope(factory) as session:
        [old] = cache_rows(session)
    assert old.is_valid and old.fingerprint == first.fingerprint  # kept until gc


def test_missing_weights_name_the_files_and_where_they_go(factory, job_settings, clips) -> None:
    with pytest.raises(SetupError) as error:
        plan_extraction(
            factory,
            job_settings,
            clips,
            cfg=extractor_cfg(FRAMES),
            weights_dir=job_settings.weights_dir,
            allow_random=False,
        )
    message = str(error.value)
    assert "psp_ffhq_encode.pt" in message and "SLOW_8x8_R50.pyth" in message
    assert str(job_settings.weights_dir) in message and "--allow-random-weights" in message


def test_a_cancelled_job_stops_at_its_next_heartbeat(factory, job_settings, clips) -> None:
    from ddm.catalog.jobs import cancel_job

    plan = _plan(factory, job_settings, clips)
    first = plan.job_ids[0]  # two videos

    def cancel_after_the_first_video(outcome) -> None:
        with session_scope(factory) as session:
            cancel_job(session, first)
        threading.Event().wait(job_settings.heartbeat_seconds * 3)  # let a beat notice

    status = run_job(first, job_settings, factory, "w1", on_event=cancel_after_the_first_video)
    assert status == "cancelled"
    with session_scope(factory) as session:
        job = get_job(session, first)
        rows = session.scalars(select(FeatureCache)).all()
    assert job.status == "cancelled"
    assert len(rows) == 1 and rows[0].is_valid  # the second video was never started
    assert all(row.claimed_by_job_id is None for row in rows)


def test_inline_jobs_after_a_failed_one_are_cancelled_not_left_queued(
    factory, job_settings, clips
) -> None:
    from ddm.errors import DdmError

    plan = _plan(factory, job_settings, clips)
    assert len(plan.job_ids) == 2
    weights = Path(job_settings.weights_dir)
    weights.mkdir(parents=True)
    (weights / "psp_ffhq_encode.pt").write_bytes(b"not a checkpoint")  # appears after planning
    with pytest.raises(DdmError):
        run_inline(job_settings, factory, plan.job_ids)
    with session_scope(factory) as session:
        first, second = (get_job(session, job_id) for job_id in plan.job_ids)
    assert first.status == "failed" and "psp_ffhq_encode.pt" in first.error
    assert second.status == "cancelled" and second.error.startswith("not run:")


def test_decode_workers_none_beside_a_cpu_more_beside_a_gpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ddm.config import Settings
    from tasks.extraction import decode_workers

    monkeypatch.setattr("os.cpu_count", lambda: 16)
    auto = Settings(home=Path("/nonexistent"))
    assert decode_workers(auto, is_gpu=False) == 0
    assert decode_workers(auto, is_gpu=True) == 8
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    assert decode_workers(auto, is_gpu=True) == 3
    pinned = Settings(home=Path("/nonexistent"), decode_workers=5)
    assert decode_workers(pinned, is_gpu=False) == decode_workers(pinned, is_gpu=True) == 5
    off = Settings(home=Path("/nonexistent"), decode_workers=0)
    assert decode_workers(off, is_gpu=True) == 0


@pytest.mark.parametrize(
    "fault",
    [
        torch.AcceleratorError("CUDA error: an illegal memory access was encountered"),
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    ],
    ids=["accelerator error", "out of memory"],
)
def test_a_device_fault_is_retried_not_recorded_as_a_bad_video(
    factory, job_settings, clips, monkeypatch, fault
) -> None:
    from tasks import extraction
    from tasks.devices import DeviceFault

    plan = _plan(factory, job_settings, clips)
    job_id = plan.job_ids[0]

    def broken_device(*args, **kwargs):
        raise fault

    with monkeypatch.context() as patched:
        patched.setattr(extraction, "_extract_to_cache", broken_device)
        with pytest.raises(DeviceFault, match=str(fault).split(".")[0]):
            run_job(job_id, job_settings, factory, "w1", retryable=(DeviceFault,))
    with session_scope(factory) as session:
        assert get_job(session, job_id).status == "running"  # left for the task's retry
        rows = cache_rows(session)
    assert not any(row.error for row in rows) and not any(row.is_valid for row in rows)

    # The retry, on a fresh pool child with a working device, takes the job over.
    assert run_job(job_id, job_settings, factory, "w2", resume_from="w1") == "succeeded"
    with session_scope(factory) as session:
        assert get_job(session, job_id).result["extracted"] == 2


def test_non_finite_features_are_refused_and_the_cache_row_says_why(
    factory, job_settings, clips, monkeypatch
) -> None:
    from model.features import FeatureExtractor

    encode_style = FeatureExtractor.encode_style

    def style_with_nan(self, crops):
        style = encode_style(self, crops).clone()
        style[0, 0, :5] = float("nan")  # as a backbone that overflowed would give
        return style

    monkeypatch.setattr(FeatureExtractor, "encode_style", style_with_nan)
    plan = _plan(factory, job_settings, clips)
    statuses = run_inline(job_settings, factory, plan.job_ids)
    assert set(statuses.values()) == {"failed"}  # every video of each batch failed
    with session_scope(factory) as session:
        rows = session.scalars(select(FeatureCache)).all()
    assert len(rows) == 3 and not any(row.is_valid for row in rows)
    for row in rows:
        assert row.path is None and row.checksum is None
        assert "'style' holds 5 non-finite values (NaN or inf)" in row.error
    assert _files(job_settings) == []  # nothing was cached


def test_ddm_compile_auto_compiles_the_full_network_in_bf16_on_a_cpu_for_several_videos() -> None:
    from tasks.extraction import COMPILE_MIN_VIDEOS, compiles_style

    cpu, many = torch.device("cpu"), COMPILE_MIN_VIDEOS
    full, fp32 = extractor_cfg(precision="bf16"), extractor_cfg(precision="fp32")
    small = extractor_cfg(backbones="small", precision="bf16")
    assert compiles_style("auto", full, cpu, many) is compile_backend_available(cpu)
    assert not compiles_style("auto", full, cpu, many - 1)
    assert not compiles_style("auto", fp32, cpu, 1000)  # measured no faster compiled
    assert not compiles_style("auto", small, cpu, 1000)  # the CPU-sized network neither
    assert not compiles_style("auto", full, torch.device("cuda"), 1000)  # not measured yet
    assert compiles_style("on", small, cpu, 1) and not compiles_style("off", full, cpu, 1000)


@pytest.mark.skipif(
    not compile_backend_available(torch.device("cpu")), reason="no C++ compiler for inductor"
)
def test_ddm_compile_on_makes_the_job_compile_its_style_network(
    factory, job_settings, clips
) -> None:
    from tasks.extraction import _build_extractor

    cfg = extractor_cfg(8, "small")  # batches of 8 crops of 128 px, as tests/model compile
    styles = {}
    try:
        for mode in ("off", "on"):
            _build_extractor.cache_clear()  # the process's extractor, as a new worker's
            settings = job_settings.model_copy(update={"compile": mode})
            plan = plan_extraction(
                factory,
                settings,
                clips,
                cfg=cfg,
                weights_dir=settings.weights_dir,
                allow_random=True,
                force=True,
            )
            assert set(run_inline(settings, factory, plan.job_ids).values()) == {"succeeded"}
            extractor = _build_extractor(cfg, str(settings.weights_dir), True)
            assert extractor.style_is_compiled is (mode == "on")
            with session_scope(factory) as session:
                rows = [r for r in cache_rows(session) if r.fingerprint == plan.fingerprint]
            styles[mode] = {
                r.video_id: torch.load(Path(settings.cache_dir) / r.path, weights_only=True)[
                    "style"
                ]
                for r in rows
            }
    finally:
        _build_extractor.cache_clear()
    assert styles["on"].keys() == styles["off"].keys() and len(styles["on"]) == 3
    for video_id, style in styles["on"].items():
        torch.testing.assert_close(style, styles["off"][video_id], rtol=1e-4, atol=1e-5)
