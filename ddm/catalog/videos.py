"""Query and command functions over videos, including recording an ingest (catalog layer)."""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from sqlalchemy import Float, Select, and_, case, cast, func, null, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from ddm.catalog.models import Dataset, FeatureCache, Video
from ddm.catalog.records import VideoRecord, from_values
from ddm.errors import InvalidInput, StaleIngest
from ddm.ingest.records import (
    NOT_PROBED,
    Adoption,
    FileFacts,
    FileFingerprint,
    LayoutScan,
    ProbeResult,
    VideoEntry,
)
from ddm.ingest.resplit import SplitPolicy
from ddm.vocab import CacheError, Label, ProbeStatus

_BATCH = 500
# The dataset note where `ddm split` keeps its policy; an ingest carries it over.
SPLIT_POLICY_NOTE = "split_policy"
# A scan entry's fields are its video's columns, by the same names; the path is the key,
# `original_path` becomes a link to another row and `unread_fields` says which to keep.
ENTRY_COLUMNS = tuple(
    f.name for f in fields(VideoEntry) if f.name not in ("path", "original_path", "unread_fields")
)


@dataclass(slots=True)  # not frozen: one per stored file, read by the 100,000
class StoredFile:
    """What the catalog already knows of a file, to decide whether it needs probing again."""

    size_bytes: int | None
    mtime: float | None
    is_present: bool


@dataclass
class IngestCounts:
    """What one ingest changed in the catalog."""

    new: int = 0
    changed: int = 0
    unchanged: int = 0
    missing: int = 0
    content_changed: list[str] = field(default_factory=list)
    caches_invalidated: int = 0
    # Rows re-parented between datasets of one tree (see `LayoutScan.adoption`), by the
    # other dataset's name: they keep their ids, so their caches and history follow.
    moved_in: dict[str, int] = field(default_factory=dict)
    moved_out: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredDataset:
    """What an ingest read of its dataset before probing.

    Attributes:
        version: the dataset's `ingest_version`; None when it has never been ingested.
        files: every known file by relative path, including the rows this dataset will
            adopt from `donors` (so that unchanged ones are not probed again).
        donors: the `ingest_version` of each dataset whose rows this one adopts, by name.
        split_policy: what `ddm split` chose for the dataset: the ingest applies it to its
            scan, so a re-ingest keeps that split.
    """

    version: int | None
    files: dict[str, StoredFile]
    donors: dict[str, int] = field(default_factory=dict)
    split_policy: SplitPolicy | None = None


@dataclass(frozen=True)
class DatasetIngest:
    """One dataset's share of an ingest: its scan, the probes, and what was read before.

    Attributes:
        facts: probe results for the files that were (re)probed; files absent here are
            unchanged on disk since the last ingest.
        stored: `stored_dataset(...)` as read before the scan was probed.
    """

    name: str
    scan: LayoutScan
    facts: Mapping[str, FileFacts]
    stored: StoredDataset


def stored_dataset(
    session: Session,
    dataset_name: str,
    scan: LayoutScan | None = None,
    *,
    parent: str | None = None,
) -> StoredDataset:
    """The dataset's ingest version and known files (None and empty for a new dataset).

    Args:
        scan: when it declares an `adoption`, the datasets that may hold its rows are
            found: those of the adoption's format at the same root, and `parent`.
        parent: the dataset the scan was found beside (FF++ for DeepFakeDetection), a
            donor even when its tree has moved since it was last ingested.
    """
    found = session.execute(
        select(Dataset.ingest_version, Dataset.notes).where(Dataset.name == dataset_name)
    ).one_or_none()
    version, notes = found if found is not None else (None, None)
    recorded = (notes or {}).get(SPLIT_POLICY_NOTE)
    policy = SplitPolicy.from_json(recorded) if recorded else None
    query = (
        select(Video.path, Video.size_bytes, Video.mtime, Video.is_present)
        .join(Dataset)
        .where(Dataset.name == dataset_name)
    )
    files = {
        path: StoredFile(size, mtime, present)
        for path, size, mtime, present in session.connection().execute(query)
    }
    adoption = scan.adoption if scan is not None else None
    if adoption is None:
        return StoredDataset(version, files, split_policy=policy)
    donors = _donors(session, dataset_name, adoption, str(scan.root) if scan else "", parent)
    if donors:
        for path, size, mtime, present, *_ in session.execute(_adoptable(adoption, donors)):
            files.setdefault(path, StoredFile(size, mtime, present))
    return StoredDataset(version, files, donors, policy)


def _donors(
    session: Session, name: str, adoption: Adoption, root: str, parent: str | None
) -> dict[str, int]:
    same_tree = Dataset.root_path == root
    if parent is not None:
        same_tree = or_(same_tree, Dataset.name == parent)
    query = select(Dataset.name, Dataset.ingest_version).where(
        Dataset.format == adoption.from_format, Dataset.name != name, same_tree
    )
    return {donor: version for donor, version in session.execute(query)}


def _adoptable(adoption: Adoption, donors: Iterable[str]) -> Select[Any]:
    """The donors' rows under the adoption's prefixes, first donor (by name) first."""
    under = [Video.path.startswith(prefix, autoescape=True) for prefix in adoption.path_prefixes]
    columns = (Video.path, Video.size_bytes, Video.mtime, Video.is_present, Video.id)
    return (
        select(*columns, Dataset.name)
        .join(Dataset)
        .where(Dataset.name.in_(list(donors)), or_(*under))
        .order_by(Dataset.name, Video.path)
    )


def record_ingest(
    session: Session,
    name: str,
    scan: LayoutScan,
    facts: Mapping[str, FileFacts],
    *,
    seen_version: int | None,
) -> IngestCounts:
    """`record_ingests` for one dataset that adopts no rows."""
    part = DatasetIngest(name, scan, facts, StoredDataset(seen_version, {}))
    return record_ingests(session, [part])[name]


def record_ingests(session: Session, parts: Sequence[DatasetIngest]) -> dict[str, IngestCounts]:
    """Bring the catalog in line with one ingest's scans, in the caller's transaction.

    Videos are matched on their relative path. A file whose content hash changed is
    updated and its feature caches are marked invalid; a file no longer on disk (or a
    dangling symlink) is marked missing, never deleted, so its history (caches,
    predictions) stays. Fields a scan could not read (`VideoEntry.unread_fields`) keep
    their recorded values. Rows a dataset adopts (`StoredDataset.donors`) are first moved
    to it, keeping their ids, then reconciled like its own.

    Two ingests of one dataset may scan and probe at once, but only one records per
    version: the first writes here bump `ingest_version` of every dataset involved (the
    scanned ones and their donors, in name order) from the version read before probing,
    and those row locks (PostgreSQL) or the write lock (SQLite) hold until commit. A scan
    older than the last recorded ingest would mark that ingest's new files missing, so it
    is refused.

    Returns:
        what changed, by dataset name (the scanned datasets only).

    Raises:
        InvalidInput: a dataset of a scanned name exists with another format.
        StaleIngest: another ingest recorded one of the datasets since it was read; the
            session must be rolled back and the scans redone.
    """
    datasets = _claim_datasets(session, parts)
    counts = {part.name: IngestCounts() for part in parts}
    for part in parts:
        _adopt(session, datasets, part, counts)
    for part in parts:
        _reconcile(session, datasets[part.name], part, counts[part.name])
    for name, dataset in datasets.items():
        if name not in counts:  # a donor this ingest did not scan: only its counts change
            _refresh_counts(session, dataset)
    return counts


def _reconcile(
    session: Session, dataset: Dataset, part: DatasetIngest, counts: IngestCounts
) -> None:
    # Every row is read as plain columns; only the rows this ingest writes (new, probed,
    # relabelled, gone or relinked files) become ORM objects. A re-scan of DFDC's 128,000
    # unchanged files is then one read and a comparison per file, not 128,000 objects.
    scan, facts = part.scan, part.facts
    query = select(*(getattr(Video, name) for name in _STORED_COLUMNS))
    rows = session.connection().execute(query.where(Video.dataset_id == dataset.id))  # Core: faster
    stored = {row.path: row for row in rows}
    written: dict[str, Video] = {}  # by path
    to_update: dict[int, VideoEntry] = {}  # by video id
    for entry in scan.entries:
        row = stored.get(entry.path)
        if row is None:
            written[entry.path] = _insert(session, dataset.id, entry, facts.get(entry.path))
            counts.new += 1
        elif entry.path in facts or not row.is_present or _scan_differs(row, entry):
            to_update[row.id] = entry
        else:
            counts.unchanged += 1
    invalidate: list[int] = []
    for video in _load_videos(session, to_update):
        written[video.path] = video
        if _update(video, to_update[video.id], facts.get(video.path), invalidate):
            counts.changed += 1
        else:
            counts.unchanged += 1
    session.flush()
    on_disk = {entry.path for entry in scan.entries}
    gone = [row.id for path, row in stored.items() if row.is_present and path not in on_disk]
    for video in _load_videos(session, gone):
        video.is_present = False
        written[video.path] = video
    counts.missing = sum(
        1
        for path, video in written.items()
        if path in stored and stored[path].is_present and not video.is_present
    )
    _link_originals(session, scan.entries, stored, written)
    counts.content_changed = sorted(v.path for v in written.values() if v.id in invalidate)
    counts.caches_invalidated = _invalidate_caches(session, invalidate)
    session.flush()
    _refresh_counts(session, dataset)
    _record_notes(dataset, scan)


# What `_reconcile` reads of every row: enough to tell an unchanged file from one to write.
_STORED_COLUMNS = ("id", "path", "is_present", "original_video_id", *ENTRY_COLUMNS)
_SCAN_VALUES = operator.attrgetter(*ENTRY_COLUMNS)
_SCAN_AT = len(_STORED_COLUMNS) - len(ENTRY_COLUMNS)


def _scan_differs(row: Any, entry: VideoEntry) -> bool:
    """Whether the scan gives a stored row other values (those it could read)."""
    if not entry.unread_fields:
        return bool(row[_SCAN_AT:] != _SCAN_VALUES(entry))
    return any(
        name not in entry.unread_fields and stored != getattr(entry, name)
        for name, stored in zip(ENTRY_COLUMNS, row[_SCAN_AT:], strict=True)
    )


def _load_videos(session: Session, ids: Iterable[int]) -> Iterator[Video]:
    """The videos of `ids` as ORM objects, read in batches (SQLite caps a statement's
    parameters)."""
    ids = list(ids)
    for start in range(0, len(ids), _BATCH):
        yield from session.scalars(select(Video).where(Video.id.in_(ids[start : start + _BATCH])))


def _claim_datasets(session: Session, parts: Sequence[DatasetIngest]) -> dict[str, Dataset]:
    """Every dataset the parts record or adopt from, claimed at the version read before."""
    seen: dict[str, int | None] = {}
    scans = {part.name: part.scan for part in parts}
    for name, version in [
        *((part.name, part.stored.version) for part in parts),
        *(donor for part in parts for donor in part.stored.donors.items()),
    ]:
        if seen.setdefault(name, version) != version:
            # Read twice while another ingest recorded it: this scan is already outdated.
            raise StaleIngest(f"another ingest of dataset {name!r} recorded first")
    # One order for every ingest, so that two claiming the same datasets cannot deadlock.
    return {
        name: _claim_dataset(session, name, scans.get(name), seen[name]) for name in sorted(seen)
    }


def _adopt(
    session: Session,
    datasets: Mapping[str, Dataset],
    part: DatasetIngest,
    counts: Mapping[str, IngestCounts],
) -> None:
    adoption = part.scan.adoption
    if adoption is None or not part.stored.donors:
        return
    target = datasets[part.name]
    own = set(session.scalars(select(Video.path).where(Video.dataset_id == target.id)))
    moved: dict[str, list[int]] = {}
    for path, *_, video_id, donor in session.execute(_adoptable(adoption, part.stored.donors)):
        if path not in own:  # the dataset's own row wins, then the first donor's
            own.add(path)
            moved.setdefault(donor, []).append(video_id)
    for donor, ids in moved.items():
        # Re-parent, never copy: caches, run members and predictions point at the id. In
        # batches: DFD has about 10,000 videos over three compressions, and SQLite caps
        # the parameters of one statement.
        for start in range(0, len(ids), _BATCH):
            batch = ids[start : start + _BATCH]
            session.execute(update(Video).where(Video.id.in_(batch)).values(dataset_id=target.id))
        counts[part.name].moved_in[donor] = len(ids)
        if donor in counts:
            counts[donor].moved_out[part.name] = len(ids)


def _claim_dataset(
    session: Session, name: str, scan: LayoutScan | None, seen_version: int | None
) -> Dataset:
    # A write first, so that SQLite takes its write lock before this transaction reads
    # anything: a read first would pin a snapshot that the other writer may outdate.
    if seen_version is None:
        assert scan is not None, "only a scanned dataset can be new"
        return _create_dataset(session, name, scan)
    claimed = session.execute(
        update(Dataset)
        .where(Dataset.name == name, Dataset.ingest_version == seen_version)
        .values(ingest_version=Dataset.ingest_version + 1)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        raise StaleIngest(f"another ingest of dataset {name!r} recorded first")
    fresh = select(Dataset).where(Dataset.name == name).execution_options(populate_existing=True)
    dataset = session.scalars(fresh).one()
    if scan is None:
        return dataset  # a donor: its format and root are its own
    if dataset.format != scan.format:
        raise InvalidInput(
            f"dataset {name!r} is in the catalog as format {dataset.format!r} but "
            f"{scan.root} looks like {scan.format!r}; choose another name with --name"
        )
    dataset.root_path = str(scan.root)
    return dataset


def _create_dataset(session: Session, name: str, scan: LayoutScan) -> Dataset:
    dataset = Dataset(name=name, format=scan.format, root_path=str(scan.root), ingest_version=1)
    session.add(dataset)
    try:
        session.flush()
    except IntegrityError:
        # The name is the only unique key: another first ingest of it committed meanwhile
        # (SQLite made this insert wait for that commit, PostgreSQL its unique index).
        session.rollback()
        raise StaleIngest(f"another ingest of dataset {name!r} created it first") from None
    return dataset


def _insert(session: Session, dataset_id: int, entry: VideoEntry, facts: FileFacts | None) -> Video:
    facts = facts or NOT_PROBED
    row = Video(
        dataset_id=dataset_id,
        path=entry.path,
        is_present=_is_on_disk(facts),
        **{name: getattr(entry, name) for name in ENTRY_COLUMNS},
        **_probe_columns(facts.probe),
        **_fingerprint_columns(facts.fingerprint),
    )
    session.add(row)
    return row


def _update(row: Video, entry: VideoEntry, facts: FileFacts | None, invalidate: list[int]) -> bool:
    changed = False
    for name in ENTRY_COLUMNS:
        if name not in entry.unread_fields and getattr(row, name) != getattr(entry, name):
            setattr(row, name, getattr(entry, name))
            changed = True
    if row.is_present != _is_on_disk(facts):
        row.is_present = _is_on_disk(facts)
        changed = True
    if facts is not None:
        probed = _probe_columns(facts.probe)
        if facts.content_hash != row.content_hash:
            invalidate.append(row.id)
            changed = True
        elif any(getattr(row, name) != value for name, value in probed.items()):
            changed = True
        # Same content, new mtime (a copy or a touch): refresh the stat so the next
        # ingest can skip the file again, without calling it a change.
        for name, value in (probed | _fingerprint_columns(facts.fingerprint)).items():
            setattr(row, name, value)
    return changed


def _is_on_disk(facts: FileFacts | None) -> bool:
    # Scanners list dangling symlinks so that their rows say why (probe_status 'missing');
    # the file is no more there than a deleted one. No facts means unchanged since a stat.
    return facts is None or facts.probe.status != ProbeStatus.MISSING


def _probe_columns(probe: ProbeResult) -> dict[str, Any]:
    # Ingest alone writes these: extraction records what it learned on its cache row.
    return {
        "probe_status": probe.status,
        "probe_error": probe.error,
        "frame_count": probe.frame_count,
        "fps": probe.fps,
        "width": probe.width,
        "height": probe.height,
        "duration_s": probe.duration_s,
    }


def _fingerprint_columns(fingerprint: FileFingerprint | None) -> dict[str, Any]:
    return {
        "content_hash": fingerprint.sha256 if fingerprint else None,
        "hash_method": fingerprint.method if fingerprint else None,
        "size_bytes": fingerprint.size if fingerprint else None,
        "mtime": fingerprint.mtime if fingerprint else None,
    }


def _link_originals(
    session: Session,
    entries: tuple[VideoEntry, ...],
    stored: Mapping[str, Any],
    written: dict[str, Video],
) -> None:
    """Point each fake at its original's row as the scan says; `written` gains the rows
    whose link changes."""
    is_present: dict[int, bool] = {}  # by id, filled when first needed

    def id_of(path: str) -> int | None:
        row = written.get(path) or stored.get(path)
        return None if row is None else row.id

    relink: dict[int, int | None] = {}  # video id -> its new original's
    for entry in entries:
        if "original_path" in entry.unread_fields:
            continue  # the file that names it is unreadable: keep the link it gave
        video = written.get(entry.path)
        row = video if video is not None else stored[entry.path]
        linked = row.original_video_id
        original = id_of(entry.original_path) if entry.original_path else None
        # Scanners link only to originals on disk; an original that has since gone missing
        # keeps its row, and the fake keeps its link to it.
        if original is None and linked is not None:
            if not is_present:
                is_present.update((row.id, row.is_present) for row in stored.values())
                is_present.update((video.id, video.is_present) for video in written.values())
            if is_present.get(linked) is False:
                original = linked
        if original == linked:
            continue
        if video is not None:
            video.original_video_id = original
        else:
            relink[row.id] = original
    for video in _load_videos(session, relink):
        video.original_video_id = relink[video.id]
        written[video.path] = video


def _invalidate_caches(session: Session, video_ids: list[int]) -> int:
    if not video_ids:
        return 0
    result = session.execute(
        update(FeatureCache)
        .where(FeatureCache.video_id.in_(video_ids), FeatureCache.is_valid.is_(True))
        .values(is_valid=False, error=CacheError.CONTENT_CHANGED.value)
    )
    return result.rowcount or 0


def _refresh_counts(session: Session, dataset: Dataset) -> None:
    """The dataset's counts from its rows, counted by the database (after a flush)."""
    present = Video.is_present.is_(True)
    query = select(
        func.count(),
        func.count().filter(present),
        func.count().filter(present, Video.label == Label.REAL.value),
        func.count().filter(present, Video.label == Label.FAKE.value),
        func.count().filter(present, Video.probe_status != ProbeStatus.OK.value),
    ).where(Video.dataset_id == dataset.id)
    known, on_disk, real, fake, unreadable = session.execute(query).one()
    dataset.video_count = on_disk
    dataset.real_count = real
    dataset.fake_count = fake
    dataset.missing_count = known - on_disk
    dataset.unreadable_count = unreadable


def _record_notes(dataset: Dataset, scan: LayoutScan) -> None:
    dataset.listed_missing_count = sum(scan.listed_missing.values())
    policy = (dataset.notes or {}).get(SPLIT_POLICY_NOTE)
    dataset.notes = {
        "listed_missing": dict(scan.listed_missing),
        "problems": list(scan.problems),
        **scan.notes,
        **({SPLIT_POLICY_NOTE: policy} if policy else {}),
    }


# --------------------------------------------------------------------------- queries


def list_videos(
    session: Session,
    *,
    dataset: str | None = None,
    label: str | None = None,
    split: str | None = None,
    method: str | None = None,
    present_only: bool = False,
    fingerprint: str | None = None,
    limit: int | None = None,
) -> list[VideoRecord]:
    """Videos matching every given filter, by dataset and path (`iter_videos` as a list)."""
    return list(
        iter_videos(
            session,
            dataset=dataset,
            label=label,
            split=split,
            method=method,
            present_only=present_only,
            fingerprint=fingerprint,
            limit=limit,
        )
    )


def iter_videos(
    session: Session,
    *,
    dataset: str | None = None,
    label: str | None = None,
    split: str | None = None,
    method: str | None = None,
    present_only: bool = False,
    fingerprint: str | None = None,
    limit: int | None = None,
    offset: int = 0,
    cache_status: str | None = None,
    sort: str = "path",
    descending: bool = False,
    video_id: int | None = None,
    compression: str | None = None,
    resolution: str | None = None,
    with_scores: bool = False,
    fallback: str | None = None,
    score_range: tuple[float | None, float | None] = (None, None),
) -> Iterator[VideoRecord]:
    """Videos matching every given filter, by dataset and path, read in batches while the
    caller consumes them (a server-side cursor on PostgreSQL): memory stays the same
    whether the dataset has a hundred videos or DFDC's 128k.

    Args:
        fingerprint: the extractor whose cache rows fill `cache_valid`, `face_fallback`,
            `fallback_frames`, `interpolated_frames`, `frame_sources` and `frames_sampled`;
            with None they say "no cache".
        cache_status: only videos whose cache of `fingerprint` is `valid`, `invalid` (a
            row that is not valid) or `none` (no row): one of `CACHE_STATUSES`.
        sort: one of `VIDEO_SORTS` (ties by id); `offset` skips that many of the order.
        resolution: only videos of this `WIDTHxHEIGHT` (e.g. `1920x1080`).
        fallback: only videos whose cache of `fingerprint` has `any` fallback frame, or
            `none` (a cache without one).
        score_range: only videos whose latest score lies in [low, high] (None: unbounded).
        with_scores: fill each record's latest score: that of the newest evaluation
            (highest id) that scored the video, with that evaluation's id (stored on the
            video, `catalog.latest_scores`).
    """
    original = aliased(Video)
    cache = aliased(FeatureCache)
    on_cache = and_(cache.video_id == Video.id, cache.fingerprint == (fingerprint or ""))
    columns = _record_columns(original, cache, with_scores)
    query = (
        select(*(columns[name] for name in _RECORD_FIELDS if name not in _NOT_COLUMNS))
        .join(Dataset, Video.dataset_id == Dataset.id)
        .outerjoin(original, Video.original_video_id == original.id)
        .outerjoin(cache, on_cache)
    )
    given = _given(label, split, method, compression)
    conditions = [(getattr(Video, c) == v) for c, v in given.items()]
    if dataset is not None:
        conditions.append(Dataset.name == dataset)
    if video_id is not None:
        conditions.append(Video.id == video_id)
    if present_only:
        conditions.append(Video.is_present.is_(True))
    if resolution is not None:
        width, height = _resolution(resolution)
        conditions += [Video.width == width, Video.height == height]
    if cache_status is not None:
        conditions.append(_cache_is(cache, cache_status))
    if fallback is not None:
        conditions.append(_fallback_is(cache, fallback))
    low, high = score_range
    if low is not None:
        conditions.append(Video.latest_score >= low)
    if high is not None:
        conditions.append(Video.latest_score <= high)
    order = _order(sort, descending, cache)
    if limit is not None and limit <= _PAGE_AT_MOST:
        narrow = select(Video.id)
        if dataset is not None or sort == "dataset":
            # Only then: every video has its dataset, and without the join a page by an
            # indexed column (the latest score) is read from that index alone.
            narrow = narrow.join(Dataset, Video.dataset_id == Dataset.id)
        if cache_status is not None or fallback is not None or sort in _CACHE_SORTS:
            narrow = narrow.outerjoin(cache, on_cache)
        narrow = narrow.where(*conditions)
        page = _page_ids(session, narrow, dataset, (sort, descending), limit, offset, order)
        rows: Iterable[Any] = _rows_by_id(session, query, page)
    else:
        query = query.where(*conditions).order_by(*order)
        if offset:
            query = query.offset(offset)
        if limit is not None:
            query = query.limit(limit)
        # A Core execution: the ORM's handling of plain-column rows cost a quarter of the time.
        streamed = {"stream_results": True, "max_row_buffer": _STREAM_BATCH}
        rows = session.connection().execute(query, execution_options=streamed)
    for row in rows:
        # By position, in the record's field order: reading 35 columns by name cost more
        # than the query itself over DFDC.
        values = list(row)
        values[_CACHE_VALID_AT] = bool(values[_CACHE_VALID_AT])  # NULL: no cache row
        values.insert(_FINGERPRINT_AT, fingerprint)
        yield from_values(VideoRecord, values)


def _given(
    label: str | None, split: str | None, method: str | None, compression: str | None
) -> dict[str, str]:
    given = {"label": label, "split": split, "method": method, "compression": compression}
    return {column: value for column, value in given.items() if value is not None}


def _page_ids(
    session: Session,
    narrow: Select[Any],
    dataset: str | None,
    order: tuple[str, bool],
    limit: int,
    offset: int,
    sorted_by: list[Any],
) -> list[int]:
    """The ids of one page, in its order, found from the matching rows' ids alone: sorting
    and skipping narrow rows, and joining only the page's to their caches and originals,
    keeps a page of DFDC's 115,000 videos (or one 100,000 deep) a fraction of a second."""
    sort, descending = order
    if sort == "latest_score":
        return _score_page_ids(session, narrow, descending, limit, offset)
    if sort != "path":
        query = narrow.order_by(*sorted_by).offset(offset).limit(limit)
        return list(session.scalars(query))
    # By dataset name, then path: one dataset at a time, its paths read alone along its
    # (dataset_id, path) index (an index-only walk past a deep offset), then their ids.
    datasets = select(Dataset.id).order_by(Dataset.name.desc() if descending else Dataset.name)
    if dataset is not None:
        datasets = datasets.where(Dataset.name == dataset)
    ids: list[int] = []
    for dataset_id in session.scalars(datasets).all():
        of_dataset = narrow.where(Video.dataset_id == dataset_id)
        paths = _paths_page(session, of_dataset, descending, limit - len(ids), offset)
        if not paths and offset:  # the offset lies past this dataset's matching videos
            offset -= session.scalar(select(func.count()).select_from(of_dataset.subquery())) or 0
            continue
        ids += _ids_of_paths(session, dataset_id, paths)
        offset = 0
        if len(ids) == limit:
            break
    return ids


def _score_page_ids(
    session: Session, narrow: Select[Any], descending: bool, limit: int, offset: int
) -> list[int]:
    """A page by latest score: the scored videos from their score's index (ascending or
    descending, ties by id), then the unscored ones by id. Read apart, NULLs last needs
    no NULLS LAST in an index, which SQLite's indexes cannot say."""
    score = Video.latest_score
    scored = narrow.where(score.is_not(None))
    by_score = scored.order_by(score.desc() if descending else score.asc(), Video.id)
    ids = list(session.scalars(by_score.offset(offset).limit(limit)))
    if len(ids) == limit:
        return ids
    if ids or not offset:
        offset = 0  # the page reaches past the last scored video
    else:  # the offset lies past every scored video
        offset -= session.scalar(select(func.count()).select_from(scored.subquery())) or 0
    unscored = narrow.where(score.is_(None)).order_by(Video.id)
    return ids + list(session.scalars(unscored.offset(offset).limit(limit - len(ids))))


def _paths_page(
    session: Session, of_dataset: Select[Any], descending: bool, limit: int, offset: int
) -> list[str]:
    query = of_dataset.with_only_columns(Video.path)
    path = Video.path.desc() if descending else Video.path
    return list(session.scalars(query.order_by(path).offset(offset).limit(limit)))


def _ids_of_paths(session: Session, dataset_id: int, paths: list[str]) -> list[int]:
    by_path: dict[str, int] = {}
    for start in range(0, len(paths), _BATCH):  # SQLite caps a statement's parameters
        batch = paths[start : start + _BATCH]
        query = select(Video.path, Video.id).where(
            Video.dataset_id == dataset_id, Video.path.in_(batch)
        )
        by_path.update((path, video_id) for path, video_id in session.execute(query))
    return [by_path[path] for path in paths]


def _rows_by_id(session: Session, query: Select[Any], ids: list[int]) -> list[Any]:
    """The rows of `query` for `ids`, in that order (read in batches: SQLite caps a
    statement's parameters)."""
    connection = session.connection()
    by_id = {}
    for start in range(0, len(ids), _BATCH):
        batch = query.where(Video.id.in_(ids[start : start + _BATCH]))
        by_id.update((row[_ID_AT], row) for row in connection.execute(batch))
    return [by_id[video_id] for video_id in ids]


_STREAM_BATCH = 2000
# A limit up to this reads a page: its ids first, then its rows (`_page_ids`); a larger
# one (`ddm videos --limit`) streams the one query, as a whole listing does.
_PAGE_AT_MOST = 5000
# Orders that read the video's cache row, which a page's ids are then joined to.
_CACHE_SORTS = ("cache", "fallback_share")
_RECORD_FIELDS = tuple(f.name for f in fields(VideoRecord))
_ID_AT = _RECORD_FIELDS.index("id")  # before the fingerprint: the same in a query's row
_CACHE_VALID_AT = _RECORD_FIELDS.index("cache_valid")
_FINGERPRINT_AT = _RECORD_FIELDS.index("fingerprint")  # not a column: the one asked for
# Not a column of the listing's query: the fingerprint asked for.
_NOT_COLUMNS = ("fingerprint",)


# The orders `iter_videos` offers. `path` (dataset, then path) is unique and its own; the
# others end in the id, so that pages never overlap, and sort only the matching rows.
VIDEO_SORTS = (
    "path",
    "id",
    "dataset",
    "label",
    "split",
    "method",
    "compression",
    "frame_count",
    "duration_s",
    "size",
    "resolution",
    "cache",
    "fallback_share",
    "latest_score",
)
CACHE_STATUSES = ("valid", "invalid", "none")
FALLBACK_FILTERS = ("any", "none")


def _order(sort: str, descending: bool, cache: Any) -> list[Any]:
    if sort not in VIDEO_SORTS:
        raise InvalidInput(f"cannot sort videos by {sort!r}; one of: {', '.join(VIDEO_SORTS)}")
    if sort in ("path", "id"):  # never NULL, and unique: the index gives the order
        columns = (Dataset.name, Video.path) if sort == "path" else (Video.id,)
        return [c.desc() if descending else c for c in columns]
    column = _sort_column(sort, cache)
    # NULLs last either way, on both dialects (SQLite would put them first).
    return [(column.desc() if descending else column.asc()).nulls_last(), Video.id]


def _sort_column(sort: str, cache: Any) -> Any:
    if sort in ("label", "split", "method", "compression", "frame_count", "duration_s"):
        return getattr(Video, sort)
    computed = {
        "dataset": lambda: Dataset.name,
        "size": lambda: Video.size_bytes,
        "resolution": lambda: Video.width * Video.height,  # by pixels per frame
        # Valid first, then invalid, then none.
        "cache": lambda: case((cache.id.is_(None), 2), (cache.is_valid.is_(True), 0), else_=1),
        "fallback_share": lambda: (
            cast(cache.fallback_frames, Float) / func.nullif(cache.frames_sampled, 0)
        ),
        "latest_score": lambda: Video.latest_score,
    }
    return computed[sort]()


def _fallback_is(cache: Any, fallback: str) -> Any:
    if fallback not in FALLBACK_FILTERS:
        raise InvalidInput(f"fallback is one of {', '.join(FALLBACK_FILTERS)}, not {fallback!r}")
    if fallback == "any":
        return cache.fallback_frames > 0
    return cache.fallback_frames == 0


def _resolution(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit()):
        raise InvalidInput(f"a resolution is WIDTHxHEIGHT, e.g. 1920x1080, not {text!r}")
    return int(width), int(height)


def _cache_is(cache: Any, status: str) -> Any:
    if status not in CACHE_STATUSES:
        raise InvalidInput(f"no cache status {status!r}; one of: {', '.join(CACHE_STATUSES)}")
    if status == "none":
        return cache.id.is_(None)
    return cache.is_valid.is_(status == "valid")


def _record_columns(original: Any, cache: Any, with_scores: bool) -> dict[str, Any]:
    """Each `VideoRecord` field's column (plain columns, not ORM objects: loading DFDC's
    videos as objects costs seconds). The cache's are NULL where the video has no cache
    row of the fingerprint; the latest score's unless `with_scores`."""
    own = (
        "id",
        "path",
        "label",
        "split",
        "split_source",
        "method",
        "compression",
        "frame_count",
        "fps",
        "width",
        "height",
        "duration_s",
        "probe_status",
        "probe_error",
        "target_identity",
        "source_identity",
        "identity_group",
        "part",
        "raw_label",
        "metadata_error",
        "content_hash",
        "size_bytes",
    )
    cached = (
        "face_fallback",
        "fallback_frames",
        "interpolated_frames",
        "frame_sources",
        "frames_sampled",
    )
    return {
        **{name: getattr(Video, name) for name in own},
        **{name: getattr(cache, name) for name in cached},
        "dataset": Dataset.name,
        "original_path": original.path,
        "present": Video.is_present,
        "cache_valid": cache.is_valid,
        "cache_error": cache.error,
        "latest_score": Video.latest_score if with_scores else null(),
        "latest_evaluation_id": Video.latest_evaluation_id if with_scores else null(),
    }
