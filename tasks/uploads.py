"""Scoring an uploaded clip as `ddm predict --explain` scores a file (jobs layer).

`pick_run` picks the run the way `ddm predict` does (the newest succeeded run, or the one
named); `submit_upload_prediction` records a `predict` job for the upload, and dispatches it: run
here when no broker is configured, else sent to a worker. The job's run function calls
the very functions the command calls (`load_predictor`, `predict_video`), draws the
timeline and the saliency maps into the upload's folder, as `ddm predict --explain` does,
and keeps the command's JSON answer as the job's result.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from ddm.catalog.jobs import create_job, get_job
from ddm.config import Settings
from ddm.db import session_scope
from ddm.errors import DdmError, InvalidInput
from ddm.uploads import Upload, clip_path, figure_path, get_upload, save_upload, uploads_root
from ddm.vocab import JobStatus
from tasks.dispatch import dispatch
from tasks.evaluation import LATEST, select_runs
from tasks.kinds import PREDICT
from tasks.lifecycle import JobContext, JobOutcome

logger = logging.getLogger(__name__)


def pick_run(factory: sessionmaker[Session], run_ref: str | None) -> int:
    """The run `ddm predict --run` would take: the newest succeeded run by default.

    Raises:
        NotFound: no such run.
        InvalidInput: no run has succeeded yet, the run has no checkpoint, or `run_ref`
            names more than one run.
    """
    with session_scope(factory) as session:
        found = select_runs(session, (run_ref or "").strip() or LATEST)
    if len(found) != 1:
        raise InvalidInput("name one run, by id or name")
    return int(found[0].id)


def submit_upload_prediction(
    settings: Settings,
    factory: sessionmaker[Session],
    upload: Upload,
    run_id: int,
    *,
    saliency: bool = True,
) -> Upload:
    """Record and dispatch the prediction job of a stored upload with run `run_id` (see
    `pick_run`), with its saliency maps unless `saliency` is False (`ddm predict --explain
    --no-saliency`: they cost minutes with the full backbones on a CPU); returns the upload
    with its job and run. A job that fails inline keeps its error on its row (the page
    shows it)."""
    with session_scope(factory) as session:
        params = {"upload_id": upload.id, "run_id": run_id, "saliency": saliency}
        job_id = create_job(session, PREDICT.name, params, total=1).id
    upload = replace(upload, job_id=job_id, run_id=run_id)
    save_upload(uploads_root(settings.home), upload)
    try:
        dispatch(settings, factory, [job_id])
    except DdmError as exc:
        logger.warning("job_id=%s for upload %s: %s", job_id, upload.id, exc)
    return upload


def run_upload_prediction(context: JobContext) -> JobOutcome:
    """The `predict` kind: score one upload with one run, and draw its timeline and, unless
    the upload form said not to, its saliency maps."""
    from tasks.predict import load_predictor, predict_video

    root = uploads_root(context.settings.home)
    upload = get_upload(root, context.params["upload_id"])
    predictor = load_predictor(context.settings, context.factory, str(context.params["run_id"]))
    context.check()
    timeline = figure_path(root, upload.id, "timeline")
    clip = clip_path(root, upload)
    saliency = bool(context.params.get("saliency", True))  # jobs recorded before the choice
    answer = predict_video(predictor, clip, timeline, title=upload.name, saliency=saliency)
    context.advance(units=1)
    if answer.error:
        return JobOutcome(JobStatus.FAILED.value, answer.as_json(), error=answer.error)
    return JobOutcome(JobStatus.SUCCEEDED.value, answer.as_json())


def upload_prediction(
    settings: Settings, factory: sessionmaker[Session], upload_id: str
) -> dict[str, Any]:
    """An upload, its job's state and, once the job is done, the prediction: the document
    the upload's page and its JSON twin show.

    Raises:
        NotFound: no such upload.
    """
    root = uploads_root(settings.home)
    upload = get_upload(root, upload_id)
    document: dict[str, Any] = {"upload": upload.as_json(), "job": None, "prediction": None}
    if upload.job_id is None:
        return document
    with session_scope(factory) as session:
        job = get_job(session, upload.job_id)
    document["job"] = {"id": job.id, "status": job.status, "error": job.error}
    if job.result is not None:
        document["prediction"] = _shown(job.result, upload, root)
    return document


# The answer's keys that hold a figure's path, and the upload's figure each one is.
_FIGURE_KEYS = {"explanation": "timeline", "saliency": "saliency", "saliency_maps": "saliency_maps"}


def _shown(result: dict[str, Any], upload: Upload, root: Path) -> dict[str, Any]:
    """The command's answer with the client's file name for the server's path, and each
    figure (timeline, saliency sheet and maps) by its name in `FIGURES`, only when drawn."""
    shown = {**result, "path": upload.name}
    for key, figure in _FIGURE_KEYS.items():
        drawn = result.get(key) and figure_path(root, upload.id, figure).is_file()
        shown[key] = figure if drawn else None
    return shown
