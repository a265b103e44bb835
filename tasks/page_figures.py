"""The figures `ddm serve`'s pages show, drawn on demand and kept under `<home>/figures`
(jobs layer: catalog rows, cache files and video files in; model/figures.py and
model/face_figures.py draw).

Every figure is found by catalog ids alone, never by a path from a request. Its file name
carries what it was drawn from (the cache's checksum, the run's epoch count), so a changed
input draws a new file while an unchanged one is served from disk; each is written
atomically, so a reader never sees half a PNG.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from ddm.catalog import runs
from ddm.catalog.records import CacheRow, to_json
from ddm.catalog.video_views import video_caches, video_location, video_scores
from ddm.config import Settings
from ddm.db import session_scope
from ddm.errors import DdmError, NotFound
from ddm.fs import sha256_of
from ddm.services.listings import video_file

logger = logging.getLogger(__name__)

# Two requests for a figure not yet drawn: one draws it, the other then finds it (model's
# PYPLOT_LOCK already keeps two figures from being drawn at once).
_DRAWING = threading.Lock()


def figures_dir(settings: Settings) -> Path:
    return Path(settings.home) / "figures"


def _kept(target: Path, draw: Callable[[Path], Any], replaces: str | None = None) -> Path:
    """`target`, drawn by `draw(target)` unless an earlier request already drew it; once
    drawn, the figures of its folder matching the glob `replaces` (its older versions)
    are removed, so that a figure redrawn as its data grows does not pile up."""
    if target.is_file():
        return target
    with _DRAWING:
        if not target.is_file():
            draw(target)
            logger.info("figure drawn: %s", target.name)
            for older in target.parent.glob(replaces) if replaces else ():
                if older != target:
                    older.unlink(missing_ok=True)
    return target


# --------------------------------------------------------------------------- runs


def training_curves(settings: Settings, factory: sessionmaker[Session], run_id: int) -> Path:
    """A run's loss, accuracy and learning rate per epoch, from its stored epochs.

    Raises:
        NotFound: no such run, or no epoch finished yet.
    """
    from model.figures import training_curves_figure

    with session_scope(factory) as session:
        run = runs.get_run(session, run_id)
        epochs = [to_json(epoch) for epoch in runs.run_epochs(session, run_id)]
    if not epochs:
        raise NotFound(f"run {run_id} has no finished epoch yet")
    target = figures_dir(settings) / "runs" / f"{run.id}-curves-{len(epochs)}-{run.status}.png"
    title = f"run {run.id} ({run.name}) training"
    # A running run's page redraws its curves at each new epoch: one file per run is kept.
    draw = lambda path: training_curves_figure(path, epochs, title)  # noqa: E731
    return _kept(target, draw, replaces=f"{run.id}-curves-*.png")


# --------------------------------------------------------------------------- evaluations


def evaluation_figure(
    settings: Settings, factory: sessionmaker[Session], evaluation_id: int, kind: str
) -> Path:
    """An evaluation's `roc` or `confusion` figure, as `ddm report --out` draws it, over
    the videos its headline covers (held out where the run saw some).

    Raises:
        NotFound: no such evaluation, or a kind other than roc and confusion.
    """
    from tasks.report import evaluation_document

    if kind not in ("roc", "confusion"):
        raise NotFound(f"no {kind!r} figure of an evaluation")
    target = figures_dir(settings) / "evaluations" / f"{evaluation_id}-{kind}.png"
    if target.is_file():  # a stored evaluation never changes
        return target
    with session_scope(factory) as session:
        entry = evaluation_document(session, evaluation_id)
    return _kept(target, lambda path: _draw_evaluation(path, entry, kind))


def _draw_evaluation(path: Path, entry: dict[str, Any], kind: str) -> Path:
    from model import figures
    from tasks.report_files import curve_points, entry_title

    title = entry_title(entry, entry["eval_dataset"])
    if kind == "roc":
        curve = (f"run {entry['run_id']}", *curve_points(entry))
        return figures.roc_figure(path, [curve], f"ROC: {title}")
    confusion = entry["confusion"] or entry["pooled"]["confusion"]
    return figures.confusion_figure(path, confusion, title)


# --------------------------------------------------------------------------- videos


def face_strip(settings: Settings, factory: sessionmaker[Session], video_id: int) -> Path:
    """The sampled frames of a video with each frame's face box and source, from its
    newest valid cache that recorded them and its file.

    Raises:
        NotFound: no such video, no cache with face boxes, or its file is gone or changed.
    """
    from model.face_figures import face_strip_figure

    with session_scope(factory) as session:
        cache = _cache_with_boxes(session, video_id)
        title = f"video {video_id}: sampled frames and face boxes"
        name = f"strip-{(cache.checksum or '')[:16]}.png"
        target = figures_dir(settings) / "videos" / str(video_id) / name
        if target.is_file():
            return target
        clip = video_file(session, video_id)
    track = _face_track(settings, clip, cache)
    return _kept(target, lambda path: face_strip_figure(path, *track, title))


def face_thumbnail(settings: Settings, factory: sessionmaker[Session], video_id: int) -> Path:
    """The face crop of a video's first frame whose face was detected (else its middle
    frame), cut from its file with the box its cache recorded; a grey square when there
    is no such cache or no readable file.

    Raises:
        NotFound: no such video.
    """
    from model import face_figures

    folder = figures_dir(settings) / "videos" / str(video_id)
    with session_scope(factory) as session:
        video_location(session, video_id)  # NotFound: no such video
    try:
        with session_scope(factory) as session:
            cache = _cache_with_boxes(session, video_id)
            target = folder / f"face-{(cache.checksum or '')[:16]}.png"
            if target.is_file():
                return target
            clip = video_file(session, video_id)
        crop = _first_face(settings, clip, cache)
    except NotFound as exc:
        logger.debug("video_id=%s thumbnail left blank: %s", video_id, exc)
        return _kept(folder / "face-none.png", face_figures.blank_thumbnail)
    return _kept(target, lambda path: face_figures.face_thumbnail(path, *crop))


def _first_face(settings: Settings, clip: Path, cache: CacheRow) -> tuple[np.ndarray, np.ndarray]:
    """(frame, box) of the cache's first detected face (else its middle frame), decoded
    from the file only up to that frame: an evaluation page shows 200 of them."""
    from model.errors import UnreadableVideo
    from model.faces import read_sampled_frame

    stored, boxes = _recorded_boxes(settings, cache)
    sources = cache.frame_sources or ""
    chosen = sources.find("d") if "d" in sources else len(sources) // 2
    try:
        frame = read_sampled_frame(clip, stored, chosen)
    except UnreadableVideo as exc:
        raise NotFound(f"video {cache.video_id}: {exc}") from exc
    return frame, boxes[chosen]


def _cache_with_boxes(session: Session, video_id: int) -> CacheRow:
    caches = [c for c in video_caches(session, video_id) if c.is_valid and c.frame_sources]
    if not caches:
        video_location(session, video_id)  # NotFound for an unknown video, said as such
        raise NotFound(f"video {video_id} has no valid cache with face boxes")
    return caches[0]


def _face_track(
    settings: Settings, clip: Path, cache: CacheRow
) -> tuple[np.ndarray, np.ndarray, str, list[int]]:
    """(frames, boxes, sources, frame numbers) of a cache: its boxes and sources, and the
    frames it sampled decoded again from the file (the same uniform sampling)."""
    from model.errors import UnreadableVideo
    from model.faces import read_frames

    stored, boxes = _recorded_boxes(settings, cache)
    try:
        frames, indices, _ = read_frames(clip, len(stored))
    except UnreadableVideo as exc:
        raise NotFound(f"video {cache.video_id}: {exc}") from exc
    if [int(i) for i in indices] != stored:
        raise NotFound(f"video {cache.video_id}: its file changed since it was extracted")
    return frames, boxes, cache.frame_sources or "", stored


def _recorded_boxes(settings: Settings, cache: CacheRow) -> tuple[list[int], np.ndarray]:
    """The frame numbers a cache sampled and the face box it cut from each."""
    features = _features(settings, cache)
    if "boxes" not in features or "frame_indices" not in features:
        raise NotFound(f"video {cache.video_id}: its cache recorded no face boxes")
    stored = [int(i) for i in features["frame_indices"]]
    return stored, np.asarray(features["boxes"], dtype=np.int64)


def _features(settings: Settings, cache: CacheRow) -> dict[str, Any]:
    """The cache's feature file, found by its catalog row, inside the cache folder only."""
    from model.features import load_features

    root = Path(settings.cache_dir or "").resolve()
    path = (root / (cache.path or "")).resolve()
    if not cache.path or not path.is_relative_to(root) or not path.is_file():
        raise NotFound(f"video {cache.video_id}: its cache file is gone")
    if cache.checksum and sha256_of(path) != cache.checksum:  # as `ddm predict` checks
        raise NotFound(f"video {cache.video_id}: its cache file changed; `ddm cache verify`")
    try:
        return load_features(path)
    except DdmError as exc:
        raise NotFound(f"video {cache.video_id}: {exc}") from exc


def scoring_run(session: Session, video_id: int, run_id: int | None = None) -> int:
    """The run whose timeline a video's page shows: `run_id` when given, else the run of
    the newest evaluation that scored the video.

    Raises:
        NotFound: no run has scored the video and none was given.
    """
    if run_id is not None:
        return runs.get_run(session, run_id).id
    scores = video_scores(session, video_id)
    if not scores:
        raise NotFound(f"no run has scored video {video_id} yet")
    return scores[-1].run_id


def timeline(
    settings: Settings, factory: sessionmaker[Session], video_id: int, run_id: int | None = None
) -> Path:
    """The style-flow and attention timeline `ddm predict --explain` draws, of the video's
    cached features with `scoring_run`'s model.

    Raises:
        NotFound: no such video or run, no run scored it, or no valid cache of the run's
            extractor.
        InvalidInput: the run has no checkpoint.
    """
    from ddm.catalog.caches import cache_entry
    from tasks.predict import draw_timeline, explain_features, load_predictor

    with session_scope(factory) as session:
        chosen = scoring_run(session, video_id, run_id)
        run = runs.get_run(session, chosen)
        cache = cache_entry(session, video_id, run.fingerprint or "")
    if cache is None or not cache.is_valid:
        raise NotFound(f"video {video_id} has no valid cache of run {run.id}'s extractor")
    name = f"timeline-run{run.id}-{(cache.checksum or '')[:16]}.png"
    target = figures_dir(settings) / "videos" / str(video_id) / name
    if target.is_file():
        return target
    features = _features(settings, cache)
    predictor = load_predictor(settings, factory, str(run.id))
    explained, sources = explain_features(predictor, features)
    title = f"video {video_id}, run {run.id} ({run.name})"
    score = float(explained["score"])
    return _kept(target, lambda path: draw_timeline(path, title, explained, sources, score))
