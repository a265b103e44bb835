"""`ddm cache verify|gc` as the library runs them, on real files and real rows, on both dialects.

The entry points take a session factory; here it is bound to the test's connection, so each
of their units of work is a savepoint inside the test's transaction, rolled back at the end.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from ddm.catalog.jobs import create_job
from ddm.catalog.models import Dataset, FeatureCache, Video
from ddm.errors import NotFound
from ddm.fs import TEMP_PREFIX, atomic_write, cache_path, sha256_of
from ddm.services.caches import collect_cache_garbage, verify_caches
from ddm.vocab import CacheError, ProbeStatus

FP = "fp-" + "a" * 20
OTHER_FP = "fp-" + "b" * 20
PAYLOAD = b"features " * 100


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def factory(session: Session) -> sessionmaker[Session]:
    """Sessions that see the test's uncommitted rows; their commits release savepoints."""
    return sessionmaker(bind=session.connection(), join_transaction_mode="create_savepoint")


def make_video(session: Session, name: str, *, dataset: str = "ds") -> Video:
    owner = session.scalars(select(Dataset).where(Dataset.name == dataset)).one_or_none()
    if owner is None:
        owner = Dataset(name=dataset, format="folder", root_path=f"/data/{dataset}")
        session.add(owner)
        session.flush()
    video = Video(
        dataset_id=owner.id,
        path=f"{name}.mp4",
        content_hash=f"{name}" * 8,
        probe_status=ProbeStatus.OK,
    )
    session.add(video)
    session.flush()
    return video


def make_cache(
    session: Session,
    cache_dir: Path,
    video: Video,
    *,
    fingerprint: str = FP,
    data: bytes = PAYLOAD,
    is_valid: bool = True,
    error: str | None = None,
) -> FeatureCache:
    """A cache file written as a worker writes it, then its row."""
    assert video.content_hash is not None
    target = cache_path(cache_dir, fingerprint, video.content_hash)
    with atomic_write(target) as handle:
        handle.write(data)
    row = FeatureCache(
        video_id=video.id,
        fingerprint=fingerprint,
        path=target.relative_to(cache_dir).as_posix(),
        is_valid=is_valid,
        checksum=sha256_of(target),
        bytes=len(data),
        video_hash=video.content_hash,
        error=error,
    )
    session.add(row)
    session.flush()
    return row


def state(session: Session, row: FeatureCache) -> tuple[bool, str | None]:
    query = select(FeatureCache.is_valid, FeatureCache.error).where(FeatureCache.id == row.id)
    return tuple(session.execute(query).one())


def file_of(cache_dir: Path, row: FeatureCache) -> Path:
    assert row.path is not None
    return cache_dir / row.path


# --------------------------------------------------------------------------- verify


def test_good_files_are_ok(
    session: Session, factory: sessionmaker[Session], cache_dir: Path
) -> None:
    rows = [make_cache(session, cache_dir, make_video(session, name)) for name in ("v1", "v2")]
    report = verify_caches(factory, cache_dir)
    assert (report.checked, report.ok, report.invalidated, report.revalidated) == (2, 2, 0, 0)
    assert report.problems == ()
    assert [state(session, row) for row in rows] == [(True, None), (True, None)]


def _delete(file: Path) -> None:
    file.unlink()


def _truncate(file: Path) -> None:
    file.write_bytes(file.read_bytes()[:10])


def _flip_a_byte(file: Path) -> None:
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    file.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "error"),
    [
        (_delete, CacheError.FILE_MISSING),
        (_truncate, CacheError.SIZE_MISMATCH),
        (_flip_a_byte, CacheError.CHECKSUM_MISMATCH),
    ],
    ids=["deleted", "truncated", "same-size-modified"],
)
def test_a_damaged_file_invalidates_only_its_row(
    session, factory, cache_dir, damage, error
) -> None:
    good = make_cache(session, cache_dir, make_video(session, "v1"))
    bad = make_cache(session, cache_dir, make_video(session, "v2"))
    damage(file_of(cache_dir, bad))

    report = verify_caches(factory, cache_dir)

    assert (report.checked, report.ok, report.invalidated) == (2, 1, 1)
    [problem] = report.problems
    assert (problem.cache_id, problem.error, problem.action) == (bad.id, error, "invalidated")
    assert state(session, bad) == (False, error)
    assert state(session, good) == (True, None)
    again = verify_caches(factory, cache_dir)  # nothing new to flip
    assert (again.ok, again.invalidated, again.still_invalid) == (1, 0, 1)


def test_a_path_that_its_fingerprint_does_not_derive_is_invalid(
    session, factory, cache_dir
) -> None:
    moved = make_cache(session, cache_dir, make_video(session, "v1"), fingerprint=OTHER_FP)
    escaping = make_cache(session, cache_dir, make_video(session, "v2"))
    # The file exists and matches its checksum, but the row claims another extractor.
    session.execute(update(FeatureCache).where(FeatureCache.id == moved.id).values(fingerprint=FP))
    outside = cache_dir.parent / "outside.pt"
    outside.write_bytes(PAYLOAD)
    session.execute(
        update(FeatureCache).where(FeatureCache.id == escaping.id).values(path="../outside.pt")
    )

    report = verify_caches(factory, cache_dir)

    assert report.invalidated == 2
    assert state(session, moved) == (False, CacheError.PATH_MISMATCH)
    assert state(session, escaping) == (False, CacheError.PATH_MISMATCH)


def test_a_row_whose_video_changed_is_invalidated(session, factory, cache_dir) -> None:
    video = make_video(session, "v1")
    row = make_cache(session, cache_dir, video)
    video.content_hash = "c" * 64  # re-ingested with new bytes after the extraction
    session.flush()
    report = verify_caches(factory, cache_dir)
    assert report.invalidated == 1
    assert state(session, row) == (False, CacheError.CONTENT_CHANGED)


def test_only_rows_that_verify_invalidated_are_revalidated(session, factory, cache_dir) -> None:
    restored = make_cache(session, cache_dir, make_video(session, "v1"))
    changed = make_cache(
        session,
        cache_dir,
        make_video(session, "v2"),
        is_valid=False,
        error=CacheError.CONTENT_CHANGED,
    )
    failed = make_cache(
        session,
        cache_dir,
        make_video(session, "v3"),
        is_valid=False,
        error="RuntimeError: decoder crashed",
    )
    file = file_of(cache_dir, restored)
    backup = file.with_name("backup")
    file.rename(backup)
    assert verify_caches(factory, cache_dir).invalidated == 1
    assert state(session, restored) == (False, CacheError.FILE_MISSING)

    backup.rename(file)  # the disk comes back
    report = verify_caches(factory, cache_dir)

    assert (report.checked, report.revalidated, report.still_invalid) == (3, 1, 2)
    assert report.problems == ()
    assert state(session, restored) == (True, None)
    # Their files check out too, but only a new extraction may make these valid.
    assert state(session, changed) == (False, CacheError.CONTENT_CHANGED)
    assert state(session, failed) == (False, "RuntimeError: decoder crashed")


def test_a_still_failing_row_gets_its_latest_reason(session, factory, cache_dir) -> None:
    row = make_cache(session, cache_dir, make_video(session, "v1"))
    _truncate(file_of(cache_dir, row))
    verify_caches(factory, cache_dir)
    _delete(file_of(cache_dir, row))
    report = verify_caches(factory, cache_dir)
    assert report.still_invalid == 1
    assert [(p.error, p.action) for p in report.problems] == [
        (CacheError.FILE_MISSING, "still invalid")
    ]
    assert state(session, row) == (False, CacheError.FILE_MISSING)


def test_dataset_filter(session, factory, cache_dir) -> None:
    mine = make_cache(session, cache_dir, make_video(session, "v1", dataset="a"))
    theirs = make_cache(session, cache_dir, make_video(session, "v2", dataset="b"))
    _delete(file_of(cache_dir, mine))
    _delete(file_of(cache_dir, theirs))
    report = verify_caches(factory, cache_dir, dataset="a")
    assert (report.checked, report.invalidated) == (1, 1)
    assert state(session, theirs) == (True, None)
    with pytest.raises(NotFound, match="no dataset named 'nope'"):
        verify_caches(factory, cache_dir, dataset="nope")


def test_progress_hooks_count_the_rows_checked(session, factory, cache_dir) -> None:
    for name in ("v1", "v2", "v3"):
        make_cache(session, cache_dir, make_video(session, name))
    totals: list[int] = []
    steps: list[int] = []
    verify_caches(factory, cache_dir, on_start=totals.append, on_advance=steps.append)
    assert (totals, steps) == ([3], [1, 1, 1])


def test_a_row_rewritten_while_verifying_is_left_alone(session, factory, cache_dir) -> None:
    row = make_cache(session, cache_dir, make_video(session, "v1"))
    _truncate(file_of(cache_dir, row))

    def worker_re_extracts(_: int) -> None:
        # Runs between hashing and recording, when verify holds no session.
        session.execute(
            update(FeatureCache)
            .where(FeatureCache.id == row.id)
            .values(checksum="0" * 64, bytes=10)
        )

    report = verify_caches(factory, cache_dir, on_advance=worker_re_extracts)

    assert (report.checked, report.invalidated, report.changed_meanwhile) == (1, 0, 1)
    assert state(session, row) == (True, None)


# --------------------------------------------------------------------------- gc


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def _temporary_of(final: Path) -> Path:
    """The name `atomic_write` gives the temporary of `final`."""
    return final.with_name(f"{TEMP_PREFIX}{final.name}.k3j2x9")


@pytest.fixture
def littered(session: Session, cache_dir: Path, tmp_path: Path) -> dict[str, Path]:
    """A cache holding every kind of file gc must tell apart."""
    valid = make_cache(session, cache_dir, make_video(session, "v1"))
    invalid = make_cache(
        session, cache_dir, make_video(session, "v2"), is_valid=False, error="RuntimeError: boom"
    )
    # An extraction in flight: its file has landed, its row has a lease and no path yet.
    video = make_video(session, "v3")
    job = create_job(session, "extract", {"video_ids": [video.id]})
    session.add(FeatureCache(video_id=video.id, fingerprint=FP, claimed_by_job_id=job.id))
    session.flush()
    files = {
        "valid": file_of(cache_dir, valid),
        "invalid": file_of(cache_dir, invalid),
        "in_flight": cache_path(cache_dir, FP, "v3" * 8),
        "orphan": cache_path(cache_dir, OTHER_FP, "v9" * 8),
        "old_temp": _temporary_of(cache_path(cache_dir, FP, "v7" * 8)),
        "young_temp": _temporary_of(cache_path(cache_dir, FP, "v8" * 8)),
    }
    # Not where the layout puts anything: a cache folder set to the wrong place loses nothing.
    files["notes"] = cache_dir / "notes.txt"
    files["wrong_shard"] = cache_dir / OTHER_FP / "zz" / f"{'v9' * 8}.pt"
    files["too_deep"] = cache_dir / "deep" / "a" / "b" / "c.pt"
    made = ("in_flight", "orphan", "old_temp", "young_temp", "notes", "wrong_shard", "too_deep")
    for name in made:
        files[name].parent.mkdir(parents=True, exist_ok=True)
        files[name].write_bytes(name.encode() * 10)
        _age(files[name], 2 * 3600)
    _age(files["young_temp"], 0)
    (cache_dir / "empty" / "nested").mkdir(parents=True)
    # Links out of the cache: never followed, never removed.
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    files["outside_file"] = outside / "precious.pt"
    files["outside_deep"] = outside / "deep" / "also.pt"
    files["outside_file"].write_bytes(b"keep me")
    files["outside_deep"].write_bytes(b"keep me too")
    (cache_dir / "link.pt").symlink_to(files["outside_file"])
    (cache_dir / "linked_dir").symlink_to(outside / "deep", target_is_directory=True)
    return files


def test_gc_dry_run_removes_nothing(factory, cache_dir, littered) -> None:
    report = collect_cache_garbage(factory, cache_dir, dry_run=True)
    orphan = littered["orphan"].relative_to(cache_dir).as_posix()
    old_temp = littered["old_temp"].relative_to(cache_dir).as_posix()
    assert report.dry_run is True
    assert sorted(report.files_removed) == sorted([orphan, old_temp])
    assert report.bytes_freed == len(b"orphan") * 10 + len(b"old_temp") * 10
    assert report.directories_removed == 4  # empty/nested, empty, FP/v7, OTHER_FP/v9
    assert all(path.exists() for path in littered.values())
    assert (cache_dir / "empty" / "nested").is_dir()


def test_gc_removes_unreferenced_files_old_temporaries_and_empty_folders(
    factory, cache_dir, littered
) -> None:
    report = collect_cache_garbage(factory, cache_dir)

    assert report.dry_run is False
    assert (len(report.files_removed), report.temporaries_removed) == (2, 1)
    assert report.bytes_freed == len(b"orphan") * 10 + len(b"old_temp") * 10
    assert (report.temporaries_kept, report.links_skipped) == (1, 2)
    assert (report.files_kept, report.foreign_kept) == (3, 3)  # valid, invalid, in flight
    assert {name for name, path in littered.items() if not path.exists()} == {"orphan", "old_temp"}
    assert not (cache_dir / OTHER_FP / "v9").exists() and not (cache_dir / "empty").exists()
    assert (cache_dir / "deep" / "a" / "b").is_dir()
    assert (cache_dir / "link.pt").is_symlink() and (cache_dir / "linked_dir").is_symlink()
    assert verify_caches(factory, cache_dir).invalidated == 0

    again = collect_cache_garbage(factory, cache_dir)
    assert (again.files_removed, again.directories_removed) == ((), 0)


def test_gc_temporary_grace_is_a_parameter(factory, cache_dir, littered) -> None:
    report = collect_cache_garbage(factory, cache_dir, temp_grace=timedelta(0))
    assert (report.temporaries_removed, report.temporaries_kept) == (2, 0)
    assert not littered["young_temp"].exists()


def test_gc_of_a_missing_cache_folder_is_a_no_op(factory, tmp_path) -> None:
    report = collect_cache_garbage(factory, tmp_path / "nowhere")
    assert (report.files_removed, report.bytes_freed, report.directories_removed) == ((), 0, 0)


def test_gc_recognises_the_temporaries_atomic_write_really_makes(factory, cache_dir) -> None:
    final = cache_path(cache_dir, FP, "v5" * 8)
    with atomic_write(final) as handle:
        handle.write(b"half written")
        [temporary] = final.parent.iterdir()
        young = collect_cache_garbage(factory, cache_dir, dry_run=True)
        old = collect_cache_garbage(factory, cache_dir, dry_run=True, temp_grace=timedelta(0))
    assert (young.temporaries_kept, young.foreign_kept, young.files_removed) == (1, 0, ())
    assert old.files_removed == (temporary.relative_to(cache_dir).as_posix(),)
