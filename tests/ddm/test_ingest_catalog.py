"""Ingest into a real catalog: idempotent re-runs, changed and vanished files, on both dialects."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from ddm.catalog.models import FeatureCache, Video
from ddm.catalog.videos import list_videos
from ddm.db import session_scope
from ddm.errors import InvalidInput
from ddm.services.ingest import ingest_dataset
from tests.conftest import MEDIA
from tests.ddm.conftest import FF_REAL


def test_first_ingest_then_a_second_changes_nothing(factory, ff_copy: Path) -> None:
    first = ingest_dataset(factory, ff_copy, workers=2)
    assert (first.name, first.format) == ("ff", "ffpp")
    assert (first.counts.new, first.counts.changed, first.counts.missing) == (7, 0, 0)
    assert first.summary.dataset.videos == 7
    assert set(first.seconds) == {"scan", "stat", "probe", "record"}
    assert (first.summary.dataset.real, first.summary.dataset.fake) == (3, 4)

    second = ingest_dataset(factory, ff_copy, workers=2)
    assert (second.counts.new, second.counts.changed, second.counts.unchanged) == (0, 0, 7)
    assert second.probed == 0  # size and mtime unchanged: nothing is re-read

    rehashed = ingest_dataset(factory, ff_copy, workers=2, rehash=True)
    assert (rehashed.counts.new, rehashed.counts.changed, rehashed.probed) == (0, 0, 7)


def test_changed_content_updates_the_row_and_invalidates_its_caches(factory, ff_copy) -> None:
    ingest_dataset(factory, ff_copy, workers=2)
    with session_scope(factory) as session:
        video = session.scalars(select(Video).where(Video.path == f"{FF_REAL}/004.mp4")).one()
        old_hash, old_frames = video.content_hash, video.frame_count
        session.add(FeatureCache(video_id=video.id, fingerprint="f" * 64, is_valid=True))

    shutil.copyfile(ff_copy / FF_REAL / "634.mp4", ff_copy / FF_REAL / "004.mp4")
    report = ingest_dataset(factory, ff_copy, workers=2)
    assert (report.counts.new, report.counts.changed) == (0, 1)
    assert report.counts.content_changed == [f"{FF_REAL}/004.mp4"]
    assert report.counts.caches_invalidated == 1
    with session_scope(factory) as session:
        video = session.scalars(select(Video).where(Video.path == f"{FF_REAL}/004.mp4")).one()
        cache = session.scalars(select(FeatureCache)).one()
        assert video.content_hash != old_hash
        twin = session.scalars(select(Video).where(Video.path == f"{FF_REAL}/634.mp4")).one()
        assert (video.content_hash, video.frame_count) == (twin.content_hash, twin.frame_count)
        assert old_frames is not None
        assert cache.is_valid is False


def test_vanished_file_is_marked_missing_and_comes_back(factory, ff_copy: Path) -> None:
    ingest_dataset(factory, ff_copy, workers=2)
    moved = ff_copy.parent / "519.mp4"
    shutil.move(ff_copy / FF_REAL / "519.mp4", moved)
    report = ingest_dataset(factory, ff_copy, workers=2)
    assert (report.counts.missing, report.summary.dataset.missing) == (1, 1)
    with session_scope(factory) as session:
        videos = {v.path: v for v in list_videos(session, dataset="ff")}
        assert len(videos) == 7  # kept with its history, never deleted
        assert videos[f"{FF_REAL}/519.mp4"].present is False
        fake = videos["manipulated_sequences/Deepfakes/c23/videos/519_515.mp4"]
        assert fake.original_path == f"{FF_REAL}/519.mp4"  # the link survives

    shutil.move(moved, ff_copy / FF_REAL / "519.mp4")
    back = ingest_dataset(factory, ff_copy, workers=2)
    assert (back.counts.changed, back.summary.dataset.missing) == (1, 0)


def test_a_name_taken_by_another_format_is_refused(factory, ff_copy: Path, tmp_path) -> None:
    ingest_dataset(factory, ff_copy, workers=2)
    folder = tmp_path / "clips"
    (folder / "real").mkdir(parents=True)
    (folder / "fake").mkdir()
    shutil.copyfile(MEDIA / "samples" / "lynaeydofd.mp4", folder / "fake" / "a.mp4")
    with pytest.raises(InvalidInput, match="choose another name with --name"):
        ingest_dataset(factory, folder, name="ff", workers=1)


def test_bad_names_are_refused(factory, ff_copy: Path) -> None:
    with pytest.raises(InvalidInput, match="--name"):
        ingest_dataset(factory, ff_copy, name="../evil", workers=1)


def test_a_broken_symlink_is_not_present(factory, ff_copy: Path) -> None:
    link = ff_copy / FF_REAL / "998.mp4"
    link.symlink_to(ff_copy / "nowhere.mp4")
    report = ingest_dataset(factory, ff_copy, workers=2)
    assert (report.counts.new, report.summary.dataset.videos) == (8, 7)
    assert report.summary.dataset.missing == 1
    with session_scope(factory) as session:
        video = {v.path: v for v in list_videos(session, dataset="ff")}[f"{FF_REAL}/998.mp4"]
    assert (video.present, video.probe_status) == (False, "missing")
    assert "broken symlink" in (video.probe_error or "")

    link.unlink()
    shutil.copyfile(ff_copy / FF_REAL / "004.mp4", link)
    repaired = ingest_dataset(factory, ff_copy, workers=2)
    assert (repaired.counts.changed, repaired.summary.dataset.missing) == (1, 0)
    assert repaired.summary.dataset.videos == 8
