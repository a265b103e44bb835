"""The documents the read commands print with `--json` and `ddm serve` returns under
`/api/`, composed in one place so that both faces give the same keys (services layer).

Each function takes an open session: a listing is one read, and `video_rows` streams from
the session's cursor while the caller writes it out.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy.orm import Session

from ddm.catalog.records import to_json
from ddm.errors import NotFound


def dataset_rows(session: Session) -> list[dict[str, Any]]:
    """`ddm datasets --json`: every dataset with its counts, by name."""
    from ddm.catalog.datasets import list_datasets

    return [to_json(record) for record in list_datasets(session)]


def dataset_overviews(session: Session) -> list[dict[str, Any]]:
    """Each dataset's counts as `ddm ingest` prints them (by label and split, by method and
    compression, unreadable files), its split balance, and the share of sampled frames that
    fell back to a centre crop over its valid caches; by name."""
    from ddm.catalog.datasets import list_datasets, split_balance, summarize_dataset
    from ddm.catalog.stats import fallback_frame_rate

    overviews = []
    for record in list_datasets(session):
        summary = to_json(summarize_dataset(session, record.name))
        overviews.append(
            {
                **summary,
                "split_balance": split_balance(summary["by_label_split"]),
                "fallback_frame_rate": fallback_frame_rate(session, [record.name]),
            }
        )
    return overviews


def video_rows(
    session: Session,
    *,
    dataset: str | None = None,
    fingerprint: str | None = None,
    with_scores: bool = False,
    **filters: Any,
) -> Iterator[dict[str, Any]]:
    """`ddm videos --json`: the videos matching `filters` (those of `iter_videos`), with
    the caches of `fingerprint`, by default the latest one used (of `dataset`), and with
    `with_scores` (`ddm videos --scores`, the web table) each one's latest score.

    Raises:
        NotFound: `dataset` names no dataset (an error, not an empty list).
    """
    from ddm.catalog.caches import latest_fingerprint
    from ddm.catalog.datasets import get_dataset
    from ddm.catalog.videos import iter_videos

    if dataset is not None:
        get_dataset(session, dataset)
    fingerprint = fingerprint or latest_fingerprint(session, dataset)
    records = iter_videos(
        session, dataset=dataset, fingerprint=fingerprint, with_scores=with_scores, **filters
    )
    if with_scores:
        return (to_json(record) for record in records)
    return (_without_scores(to_json(record)) for record in records)


def _without_scores(row: dict[str, Any]) -> dict[str, Any]:
    # Not read, so not said: a None here would read as "never scored".
    del row["latest_score"], row["latest_evaluation_id"]
    return row


def run_rows(session: Session, *, limit: int = 50) -> list[dict[str, Any]]:
    """`ddm runs list --json`: the most recent runs first."""
    from ddm.catalog.runs import list_runs

    return [to_json(run) for run in list_runs(session, limit=limit)]


def run_document(session: Session, run: int | str) -> dict[str, Any]:
    """`ddm runs show --json`: one run (by id or name) with its training curve and how
    many videos of each dataset, role and label it trained and validated on."""
    from ddm.catalog.runs import get_run, membership_counts, run_epochs

    record = get_run(session, run)
    epochs = [to_json(epoch) for epoch in run_epochs(session, record.id)]
    membership = membership_counts(session, record.id)
    return {**to_json(record), "epochs": epochs, "membership": membership}


def job_rows(
    session: Session, *, status: str | None = None, kind: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """`ddm jobs list --json`: the most recent jobs first."""
    from ddm.catalog.jobs import list_jobs

    return [to_json(job) for job in list_jobs(session, status=status, kind=kind, limit=limit)]


def video_document(session: Session, video_id: int) -> dict[str, Any]:
    """One video: its `ddm videos --json` row, every feature cache of it and every stored
    score of it.

    Raises:
        NotFound: no such video.
    """
    from ddm.catalog.video_views import video_caches, video_scores

    caches = video_caches(session, video_id)
    fingerprint = next((c.fingerprint for c in caches if c.is_valid), None)
    fingerprint = fingerprint or (caches[0].fingerprint if caches else None)
    rows = list(video_rows(session, fingerprint=fingerprint, video_id=video_id))
    if not rows:
        raise NotFound(f"no video with id {video_id}")
    return {
        "video": rows[0],
        "caches": [to_json(cache) for cache in caches],
        "scores": [to_json(score) for score in video_scores(session, video_id)],
    }


def video_file(session: Session, video_id: int) -> Path:
    """The file of a video, found by its catalog id alone, and only inside its dataset's
    root: a recorded path that climbs out (`..`, an absolute path) or a symlink that
    points elsewhere is refused, as is a file that is gone.

    Raises:
        NotFound: no such video, or its file is missing, refused or not a regular file.
    """
    from ddm.catalog.video_views import video_location

    where = video_location(session, video_id)
    relative = PurePosixPath(where.path)
    if relative.is_absolute() or ".." in relative.parts or "\\" in where.path:
        raise NotFound(f"video {video_id}: its recorded path leaves its dataset's root")
    root = Path(where.root).resolve()
    try:
        real = Path(os.path.realpath(root / relative, strict=True))
    except OSError as exc:
        raise NotFound(f"video {video_id}: its file is gone ({exc.strerror})") from exc
    if not real.is_relative_to(root):
        raise NotFound(f"video {video_id}: its file links outside its dataset's root")
    if not real.is_file():
        raise NotFound(f"video {video_id}: not a regular file")
    return real
