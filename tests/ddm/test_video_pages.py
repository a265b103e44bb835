"""`iter_videos` as pages: sort orders, offsets, the cache-status filter and one video by id
(what `ddm serve`'s video table asks of the catalog), on both dialects."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ddm.catalog.models import Dataset, FeatureCache, Video
from ddm.catalog.videos import VIDEO_SORTS, iter_videos
from ddm.errors import InvalidInput

FP = "f" * 40


@pytest.fixture
def filled(session):
    dataset = Dataset(name="d", format="folder", root_path="/data/d")
    session.add(dataset)
    session.flush()
    frames = [30, None, 10, 20, None, 40]
    videos = []
    for index, count in enumerate(frames):
        video = Video(
            dataset_id=dataset.id,
            path=f"v{5 - index}.mp4",  # paths in the reverse order of ids
            label="fake" if index % 2 else "real",
            probe_status="ok",
            frame_count=count,
        )
        session.add(video)
        videos.append(video)
    session.flush()
    # v0 (id order) has a valid cache, v1 an invalid one, the others none.
    session.add(FeatureCache(video_id=videos[0].id, fingerprint=FP, is_valid=True))
    session.add(FeatureCache(video_id=videos[1].id, fingerprint=FP, is_valid=False))
    session.flush()
    return [video.id for video in videos]


def _ids(session, **options) -> list[int]:
    return [record.id for record in iter_videos(session, fingerprint=FP, **options)]


def test_pages_follow_each_order_without_overlap(session, filled) -> None:
    assert _ids(session) == filled[::-1]  # by path
    assert _ids(session, sort="id") == filled
    assert _ids(session, sort="id", descending=True) == filled[::-1]
    # NULL frame counts last in both directions, ties by id.
    assert _ids(session, sort="frame_count") == [filled[i] for i in (2, 3, 0, 5, 1, 4)]
    assert _ids(session, sort="frame_count", descending=True)[:4] == [
        filled[i] for i in (5, 0, 3, 2)
    ]
    for sort in VIDEO_SORTS:
        whole = _ids(session, sort=sort)
        pages = [_ids(session, sort=sort, limit=4, offset=o) for o in (0, 4)]
        assert pages[0] + pages[1] == whole and len(set(whole)) == len(filled)


def test_the_cache_status_filter_and_one_video_by_id(session, filled) -> None:
    assert _ids(session, sort="id", cache_status="valid") == filled[:1]
    assert _ids(session, sort="id", cache_status="invalid") == filled[1:2]
    assert _ids(session, sort="id", cache_status="none") == filled[2:]
    (record,) = iter_videos(session, fingerprint=FP, video_id=filled[1])
    assert (record.path, record.cache_valid) == ("v4.mp4", False)
    with pytest.raises(InvalidInput, match="one of"):
        _ids(session, cache_status="stale")
    with pytest.raises(InvalidInput, match="cannot sort"):
        _ids(session, sort="path; DROP TABLE videos")


@pytest.fixture
def two_datasets(session, filled):
    """A second dataset, created after `d` but first by name, with its own cached videos."""
    dataset = Dataset(name="a", format="folder", root_path="/data/a")
    session.add(dataset)
    session.flush()
    for index in range(7):
        video = Video(
            dataset_id=dataset.id,
            path=f"clips/{index % 3}/w{index}.mp4",
            label="fake" if index % 3 else "real",
            split="train" if index < 4 else "test",
            probe_status="ok",
            frame_count=None if index == 2 else 10 * (index % 4),
            original_video_id=filled[0] if index == 5 else None,
        )
        session.add(video)
        session.flush()
        session.add(FeatureCache(video_id=video.id, fingerprint=FP, is_valid=index != 3))
    session.flush()


def test_a_page_is_the_slice_of_the_whole_listing(session, two_datasets) -> None:
    # A limited listing reads its page's ids first, then their rows (and, by path, walks
    # one dataset at a time): every page must be the very rows of the whole listing's slice.
    queries = [{}, {"label": "fake"}, {"dataset": "d"}, {"cache_status": "valid"}]
    queries += [{"dataset": "a", "split": "train", "cache_status": "none"}]
    for sort in VIDEO_SORTS:
        for descending in (False, True):
            for query in queries:
                options = {"fingerprint": FP, "sort": sort, "descending": descending, **query}
                whole = list(iter_videos(session, **options))
                for offset in (0, 3, 6, 7, 13, 20):
                    for limit in (2, 50):
                        page = list(iter_videos(session, limit=limit, offset=offset, **options))
                        assert page == whole[offset : offset + limit], (options, offset, limit)


def test_computed_orders_and_the_compression_and_resolution_filters(session, filled) -> None:
    facts = [(640, 480, "c23"), (1920, 1080, "c40"), (320, 240, "c23")]  # the rest: unknown
    for video_id, (width, height, compression) in zip(filled, facts, strict=False):
        video = session.get(Video, video_id)
        video.width, video.height, video.compression = width, height, compression
    cache = session.scalars(select(FeatureCache).where(FeatureCache.video_id == filled[0])).one()
    cache.fallback_frames, cache.frames_sampled = 2, 8
    other = session.scalars(select(FeatureCache).where(FeatureCache.video_id == filled[1])).one()
    other.fallback_frames, other.frames_sampled = 0, 8
    session.flush()
    assert _ids(session, sort="id", fallback="any") == filled[:1]
    assert _ids(session, sort="id", fallback="none") == filled[1:2]  # not the uncached
    with pytest.raises(InvalidInput, match="fallback is one of"):
        _ids(session, fallback="some")
    assert _ids(session, sort="resolution")[:3] == [filled[2], filled[0], filled[1]]
    assert _ids(session, sort="resolution", descending=True)[:3] == [
        filled[1],
        filled[0],
        filled[2],
    ]
    # Valid, then invalid, then no cache; ties by id.
    assert _ids(session, sort="cache") == filled
    assert _ids(session, sort="fallback_share")[:2] == [filled[1], filled[0]]  # 0/8, 2/8
    assert _ids(session, sort="fallback_share", descending=True)[:2] == filled[:2]
    assert _ids(session, sort="dataset") == filled
    assert _ids(session, sort="id", compression="c23") == [filled[0], filled[2]]
    assert _ids(session, resolution="1920x1080") == [filled[1]]
    with pytest.raises(InvalidInput, match="WIDTHxHEIGHT"):
        _ids(session, resolution="big")
