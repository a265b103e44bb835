"""`latest_fingerprint`: the extractor of the newest valid cache, of the whole catalog or of
one dataset, whether every valid cache is of one extractor or not; on both dialects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ddm.catalog.caches import latest_fingerprint
from ddm.catalog.models import Dataset, FeatureCache, Video

START = datetime(2026, 1, 1, tzinfo=UTC)


def _videos(session, name: str, count: int) -> list[int]:
    dataset = Dataset(name=name, format="folder", root_path=f"/data/{name}")
    session.add(dataset)
    session.flush()
    videos = [Video(dataset_id=dataset.id, path=f"v{i}.mp4") for i in range(count)]
    session.add_all(videos)
    session.flush()
    return [video.id for video in videos]


def _cache(session, video_id: int, fingerprint: str, minute: int, valid: bool = True) -> None:
    when = START + timedelta(minutes=minute)
    session.add(
        FeatureCache(video_id=video_id, fingerprint=fingerprint, is_valid=valid, updated_at=when)
    )
    session.flush()


def test_one_extractor_everywhere(session) -> None:
    older, newer, bare = (
        _videos(session, "a", 2),
        _videos(session, "b", 2),
        _videos(session, "c", 1),
    )
    assert latest_fingerprint(session) is None and latest_fingerprint(session, "a") is None
    for minute, video_id in enumerate([*older, *newer]):
        _cache(session, video_id, "f1", minute)
    _cache(session, bare[0], "f1", 9, valid=False)
    assert latest_fingerprint(session) == "f1"
    assert latest_fingerprint(session, "a") == "f1" and latest_fingerprint(session, "b") == "f1"
    assert latest_fingerprint(session, "c") is None  # only an invalid cache


def test_each_dataset_gets_its_own_newest(session) -> None:
    a, b = _videos(session, "a", 2), _videos(session, "b", 2)
    _cache(session, a[0], "f2", 1)
    _cache(session, a[1], "f1", 2)  # a's newest: f1
    _cache(session, b[0], "f1", 3)
    _cache(session, b[1], "f2", 4)  # b's newest and the catalog's: f2
    _cache(session, a[0], "f3", 5, valid=False)  # newer, but not valid
    assert latest_fingerprint(session) == "f2"
    assert latest_fingerprint(session, "b") == "f2"
    assert latest_fingerprint(session, "a") == "f1"
