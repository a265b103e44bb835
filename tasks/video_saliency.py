"""The saliency maps of a catalog video, for its page in `ddm serve` (jobs layer).

Computing them takes seconds with the small backbones and minutes with the full ones on a
CPU, so no page computes them when it is read. A server that writes offers a button that
records a `saliency` job (`submit_video_saliency`), run here when no broker is configured
and on a worker otherwise. Its run function, `run_video_saliency`, scores the video's file
as `ddm predict --explain` scores a file (`load_predictor`, the run's features of it) and
draws its saliency with the command's own `draw_saliency`, into the kept figures folder
under a name made of the video id, the run id and the file's content hash; a file that
changed since it was ingested is refused. `video_saliency` says what a page shows: the run,
the sheet and maps once they exist, and a job still computing them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from ddm.catalog import runs
from ddm.catalog.jobs import create_job, list_jobs
from ddm.catalog.video_views import video_location
from ddm.config import Settings
from ddm.db import session_scope
from ddm.errors import DdmError, InvalidInput, NotFound
from ddm.ingest.probe import fingerprint_file
from ddm.services.listings import video_file
from ddm.vocab import ACTIVE_JOB_STATUSES, JobStatus
from tasks.dispatch import Dispatched, dispatch
from tasks.evaluation import select_runs
from tasks.kinds import SALIENCY
from tasks.lifecycle import JobContext, JobOutcome
from tasks.page_figures import figures_dir, scoring_run

logger = logging.getLogger(__name__)

# Saliency jobs looked through for one still computing a video's maps (the newest first).
RECENT_JOBS = 50
_ACTIVE = {status.value for status in ACTIVE_JOB_STATUSES}


@dataclass(frozen=True)
class VideoSaliency:
    """What a video's page shows of its saliency with one run.

    Attributes:
        run_id: the run it is (or would be) computed with; None when no run can.
        sheet: the contact sheet, once computed.
        maps: the raw maps (.npz), once computed.
        job: the `saliency` job computing them now ({id, status}), if any.
    """

    video_id: int
    run_id: int | None
    sheet: Path | None = None
    maps: Path | None = None
    job: dict[str, Any] | None = None


def explained_as(settings: Settings, video_id: int, run_id: int, content_hash: str) -> Path:
    """The name `draw_saliency` draws beside (as beside `ddm predict --explain`'s
    timeline; none is drawn here), in the kept figures folder: a new file content or
    another run gets new names."""
    folder = figures_dir(settings) / "videos" / str(video_id)
    return folder / f"run{run_id}-{content_hash[:16]}.png"


def saliency_files(
    settings: Settings, video_id: int, run_id: int, content_hash: str
) -> tuple[Path, Path]:
    """The sheet and maps of a video's file with a run."""
    from tasks.predict import saliency_paths

    return saliency_paths(explained_as(settings, video_id, run_id, content_hash))


def video_saliency(
    settings: Settings, factory: sessionmaker[Session], video_id: int, run_id: int | None = None
) -> VideoSaliency:
    """The saliency of a video with `run_id`, else with the run whose timeline its page
    shows (the newest that scored it), else with the newest succeeded run. Reads the
    catalog and looks for files; computes nothing.

    Raises:
        NotFound: no such video.
    """
    with session_scope(factory) as session:
        where = video_location(session, video_id)
        chosen = _run_to_show(session, video_id, run_id)
        job = _active_job(session, video_id, chosen) if chosen is not None else None
    if chosen is None or not where.content_hash:
        return VideoSaliency(video_id, chosen, job=job)
    sheet, maps = saliency_files(settings, video_id, chosen, where.content_hash)
    if not (sheet.is_file() and maps.is_file()):
        return VideoSaliency(video_id, chosen, job=job)
    return VideoSaliency(video_id, chosen, sheet, maps, job)


def _run_to_show(session: Session, video_id: int, run_id: int | None) -> int | None:
    try:
        return scoring_run(session, video_id, run_id)
    except NotFound:
        if run_id is not None:
            return None  # a run that does not exist: nothing to show or offer
    newest = runs.list_runs(session, limit=1, status=JobStatus.SUCCEEDED.value)
    return newest[0].id if newest else None


def _active_job(session: Session, video_id: int, run_id: int) -> dict[str, Any] | None:
    """The newest queued or running saliency job of this video and run."""
    wanted = {"video_id": video_id, "run_id": run_id}
    for job in list_jobs(session, kind=SALIENCY.name, limit=RECENT_JOBS):
        if job.status in _ACTIVE and job.params == wanted:
            return {"id": job.id, "status": job.status}
    return None


def submit_video_saliency(
    settings: Settings, factory: sessionmaker[Session], video_id: int, run_id: int
) -> Dispatched:
    """Record and dispatch a `saliency` job of a video with a run; a job of the same video
    and run still queued or running is returned instead of a second one.

    Raises:
        NotFound: no such video or run.
        InvalidInput: the run has no checkpoint, or the video no content hash.
    """
    with session_scope(factory) as session:
        if not video_location(session, video_id).content_hash:
            raise InvalidInput(f"video {video_id} has no content hash: `ddm ingest` it again")
        select_runs(session, str(run_id))  # NotFound, or InvalidInput without a checkpoint
        running = _active_job(session, video_id, run_id)
        if running is not None:
            job_id, status = running["id"], running["status"]
            return Dispatched([job_id], sent=False, statuses={job_id: status})
        params = {"video_id": video_id, "run_id": run_id}
        job_id = create_job(session, SALIENCY.name, params, total=1).id
    try:
        return dispatch(settings, factory, [job_id])
    except DdmError as exc:  # no broker reachable: the job stays queued for the sweeper
        logger.warning("job_id=%s saliency of video %s: %s", job_id, video_id, exc)
        return Dispatched([job_id], sent=False)  # neither sent nor run: the sweeper sends it


def run_video_saliency(context: JobContext) -> JobOutcome:
    """The `saliency` kind: the saliency maps of one catalog video with one run, drawn
    into the kept figures folder (nothing is drawn again when both files are there)."""
    from tasks.predict import draw_saliency, explain_features, load_predictor

    video_id, run_id = int(context.params["video_id"]), int(context.params["run_id"])
    clip, content_hash = _checked_file(context.factory, video_id)
    sheet, maps = saliency_files(context.settings, video_id, run_id, content_hash)
    result: dict[str, Any] = {"video_id": video_id, "run_id": run_id}
    if sheet.is_file() and maps.is_file():
        context.advance(units=1)
        return JobOutcome(JobStatus.SUCCEEDED.value, {**result, **_names(sheet, maps)})
    predictor = load_predictor(context.settings, context.factory, str(run_id))
    context.check()
    features, source = predictor.features(clip, content_hash)  # checked just now
    explained, sources = explain_features(predictor, features)
    score = float(explained["score"])
    context.check()
    title = f"video {video_id}, run {run_id} ({predictor.run.name})"
    beside = explained_as(context.settings, video_id, run_id, content_hash)
    drawn = draw_saliency(predictor, clip, beside, title, score, sources)
    context.advance(units=1)
    result.update(score=score, source=source, frame_sources=sources)
    return JobOutcome(
        JobStatus.SUCCEEDED.value, {**result, **_names(drawn["saliency"], drawn["saliency_maps"])}
    )


def _checked_file(factory: sessionmaker[Session], video_id: int) -> tuple[Path, str]:
    """The video's file and its content hash, which it must still have.

    Raises:
        NotFound: no such video, or its file is gone or lies outside its dataset.
        InvalidInput: the video has no content hash, or its file changed since ingest.
    """
    with session_scope(factory) as session:
        content_hash = video_location(session, video_id).content_hash
        clip = video_file(session, video_id)
    if not content_hash:
        raise InvalidInput(f"video {video_id} has no content hash: `ddm ingest` it again")
    if fingerprint_file(clip).sha256 != content_hash:
        raise InvalidInput(f"video {video_id}: its file changed since it was ingested")
    return clip, content_hash


def _names(sheet: Path, maps: Path) -> dict[str, str]:
    # Names, not paths: the server finds them again from the video, run and content hash.
    return {"saliency": sheet.name, "saliency_maps": maps.name}
