"""`ddm cache verify|gc` through the CLI, on both dialects: the output users and scripts read."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from ddm.catalog.models import Dataset, FeatureCache, Video
from ddm.db import session_scope
from ddm.fs import atomic_write, cache_path, sha256_of
from ddm.vocab import CacheError, ProbeStatus
from tests.cli.conftest import ok_json, one_error_line

FP = "fp-" + "a" * 20


def _cached_video(factory, cache_dir: Path, name: str) -> tuple[int, Path]:
    """A video of dataset `ff` with a valid cache file and row; returns (row id, file)."""
    content_hash = name * 16
    target = cache_path(cache_dir, FP, content_hash)
    with atomic_write(target) as handle:
        handle.write(name.encode() * 100)
    with session_scope(factory) as session:
        dataset = session.scalars(select(Dataset).where(Dataset.name == "ff")).one_or_none()
        if dataset is None:
            dataset = Dataset(name="ff", format="ffpp", root_path="/data/ff")
            session.add(dataset)
            session.flush()
        video = Video(
            dataset_id=dataset.id,
            path=f"{name}.mp4",
            content_hash=content_hash,
            probe_status=ProbeStatus.OK,
        )
        session.add(video)
        session.flush()
        row = FeatureCache(
            video_id=video.id,
            fingerprint=FP,
            is_valid=True,
            path=target.relative_to(cache_dir).as_posix(),
            checksum=sha256_of(target),
            bytes=target.stat().st_size,
            video_hash=content_hash,
        )
        session.add(row)
        session.flush()
        return row.id, target


def test_cache_verify(run_ddm, env, factory) -> None:
    cache_dir = Path(env["DDM_CACHE_DIR"])
    _cached_video(factory, cache_dir, "aa")
    broken, file = _cached_video(factory, cache_dir, "bb")
    file.write_bytes(b"x")

    report = ok_json(run_ddm("cache", "verify", "--json", env=env))
    assert {k: report[k] for k in ("checked", "ok", "invalidated", "revalidated")} == {
        "checked": 2,
        "ok": 1,
        "invalidated": 1,
        "revalidated": 0,
    }
    assert [(p["cache_id"], p["error"]) for p in report["problems"]] == [
        (broken, CacheError.SIZE_MISMATCH)
    ]
    with session_scope(factory) as session:
        assert session.get(FeatureCache, broken).is_valid is False

    table = run_ddm("cache", "verify", "--dataset", "ff", env=env)
    assert table.exit_code == 0, table.stderr
    assert "size mismatch" in table.stdout and "still invalid" in table.stdout
    one_error_line(
        run_ddm("cache", "verify", "--dataset", "nope", env=env), 1, "no dataset named 'nope'"
    )
    assert run_ddm("cache", "verify", "--bogus", env=env).exit_code == 2


def test_cache_verify_json_keys_are_stable(run_ddm, env, factory) -> None:
    """Scripts read these keys: renaming one is a breaking change."""
    _, file = _cached_video(factory, Path(env["DDM_CACHE_DIR"]), "aa")
    file.unlink()
    report = ok_json(run_ddm("cache", "verify", "--json", env=env))
    assert list(report) == [
        "checked",
        "ok",
        "invalidated",
        "revalidated",
        "still_invalid",
        "changed_meanwhile",
        "problems",
    ]
    assert list(report["problems"][0]) == [
        "cache_id",
        "video_id",
        "fingerprint",
        "path",
        "error",
        "action",
    ]


def test_cache_verify_table_says_what_to_do(run_ddm, env, factory) -> None:
    _, file = _cached_video(factory, Path(env["DDM_CACHE_DIR"]), "aa")
    clean = run_ddm("cache", "verify", env=env)
    assert clean.exit_code == 0, clean.stderr
    assert "no problems found" in clean.stdout and clean.stderr == ""

    file.unlink()
    result = run_ddm("cache", "verify", env=env)
    assert "problems (1)" in result.stdout and "file missing" in result.stdout
    last = result.stderr.strip().splitlines()[-1]  # after the log's warning for the row
    assert last == "1 caches invalidated; `ddm extract` redoes them"


def test_cache_gc(run_ddm, env, factory) -> None:
    cache_dir = Path(env["DDM_CACHE_DIR"])
    _, kept = _cached_video(factory, cache_dir, "aa")
    orphan = cache_path(cache_dir, "fp-old", "cc" * 16)
    with atomic_write(orphan) as handle:
        handle.write(b"z" * 2048)

    dry = ok_json(run_ddm("cache", "gc", "--dry-run", "--json", env=env))
    assert dry["dry_run"] is True
    assert dry["files_removed"] == [orphan.relative_to(cache_dir).as_posix()]
    assert dry["bytes_freed"] == 2048 and orphan.exists()

    table = run_ddm("cache", "gc", "--dry-run", env=env)
    assert "cache gc (dry run)" in table.stdout
    assert "1 files, 2.0 KiB would free" in table.stderr and orphan.exists()

    result = run_ddm("cache", "gc", env=env)
    assert result.exit_code == 0, result.stderr
    assert "1 files, 2.0 KiB freed" in result.stderr
    assert not orphan.exists() and not (cache_dir / "fp-old").exists() and kept.exists()
    assert ok_json(run_ddm("cache", "gc", "--json", env=env))["files_removed"] == []
    assert run_ddm("cache", "gc", "extra-arg", env=env).exit_code == 2
