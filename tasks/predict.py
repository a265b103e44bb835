"""`ddm predict`: score video files with a run's best checkpoint, no catalog rows needed
(jobs layer).

Features come from the run's own extractor: a file the catalog already knows (by content
hash) is scored from its valid cache, any other is extracted here. Each video is answered
on its own: an unreadable file gets its one-line error and the others are still scored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from ddm.catalog import caches, jobs, runs
from ddm.config import Settings
from ddm.db import session_scope
from ddm.errors import DdmError, InvalidInput
from ddm.fs import sha256_of
from ddm.ingest.probe import fingerprint_file, image_kind
from tasks.evaluation import LATEST, predicted_label, select_runs
from tasks.kinds import EXTRACT

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoPrediction:
    """One video's answer: a score, or the error that prevented one."""

    path: str
    score: float | None = None
    logit: float | None = None  # the detector's raw output; `score` is its sigmoid
    label: str | None = None
    frames_sampled: int | None = None
    fallback_frames: int | None = None
    frame_sources: str | None = None
    source: str | None = None  # "cache" (a known file) or "extracted"
    distinct_frames: int | None = None  # different source frames among those sampled
    warning: str | None = None  # the score stands, but is not what it seems
    explanation: str | None = None  # the timeline figure, with --explain
    saliency: str | None = None  # the contact sheet of saliency maps, with --explain
    saliency_maps: str | None = None  # the raw maps (.npz), with --explain
    explanation_error: str | None = None  # a figure could not be written; the score stands
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items()}


@dataclass
class Predictor:
    """A run's detector and, built on first need, its extractor."""

    run: Any  # RunRecord
    settings: Settings
    factory: sessionmaker[Session]
    model: Any = None
    extractor: Any = None
    extractor_params: dict[str, Any] | None = field(default=None, repr=False)

    def features(self, path: Path, content_hash: str | None = None) -> tuple[dict[str, Any], str]:
        """The video's features and where they came from: its cache, or extracted now.
        `content_hash`: the file's, when the caller has just computed it."""
        from model.features import load_features

        content_hash = content_hash or fingerprint_file(path).sha256
        cached = self._cached(content_hash)
        if cached is not None:
            return load_features(cached), "cache"
        return self._extractor().extract(path), "extracted"

    def file_extractor(self) -> Any:
        """The run's extractor, built on first need, for files the cache cannot answer."""
        return self._extractor()

    def _cached(self, content_hash: str) -> Path | None:
        with session_scope(self.factory) as session:
            twin = caches.valid_twin(session, self.run.fingerprint, content_hash)
        if twin is None or twin.path is None:
            return None
        path = Path(self.settings.cache_dir or "") / twin.path
        return path if path.is_file() and sha256_of(path) == twin.checksum else None

    def _extractor(self) -> Any:
        from tasks.extraction import compile_as_set, extractor_for

        if self.extractor is None:
            self.extractor = extractor_for(self._extractor_params(), self.settings.weights_dir)
            # Files come one at a time here: "auto" leaves the network eager, "on" compiles.
            compile_as_set(self.extractor, self.settings.compile, videos=1)
        return self.extractor

    def _extractor_params(self) -> dict[str, Any]:
        with session_scope(self.factory) as session:
            params = jobs.latest_job_params(session, EXTRACT.name, fingerprint=self.run.fingerprint)
        if params is None:
            raise InvalidInput(
                f"the catalog has no extract job of run {self.run.id}'s extractor "
                f"{(self.run.fingerprint or '')[:19]}, so its settings are unknown"
            )
        return params


def load_predictor(
    settings: Settings, factory: sessionmaker[Session], run_ref: str | None = None
) -> Predictor:
    """The run to predict with: the given one, or the newest succeeded run.

    Raises:
        NotFound: no such run.
        InvalidInput: no run has succeeded yet, or the run has no checkpoint.
    """
    from model.checkpoint import model_from_checkpoint
    from tasks.devices import scoring_device

    with session_scope(factory) as session:
        (run,) = select_runs(session, run_ref or LATEST)
        run = runs.get_run(session, run.id)
    if not run.checkpoint_path or not Path(run.checkpoint_path).is_file():
        raise InvalidInput(f"run {run.id}'s checkpoint {run.checkpoint_path} is missing")
    device = scoring_device()  # not the run's training device: any machine may score it
    model, _ = model_from_checkpoint(run.checkpoint_path, device=device)
    return Predictor(run, settings, factory, model=model)


def predict_video(
    predictor: Predictor,
    path: Path,
    explain_as: Path | None = None,
    *,
    allow_stills: bool = False,
    title: str | None = None,
    saliency: bool = False,
) -> VideoPrediction:
    """Score one file (and draw its timeline to `explain_as`, titled `title` or the file's
    name, with its saliency maps beside it when `saliency`); a problem with the file
    becomes its `error`, not an exception, and one with a figure its `explanation_error`,
    the score standing.

    A still image is refused unless `allow_stills`: a temporal detector given one frame
    has no motion to judge, and its score is not a video's.
    """
    try:
        if not path.is_file():
            raise InvalidInput("no such file")
        still = image_kind(path)
        if still is not None and not allow_stills:
            raise InvalidInput(
                f"a {still} image, not a video: the detector judges motion over time "
                "(--allow-stills scores it anyway)"
            )
        return _predict(predictor, path, explain_as, title or path.name, saliency)
    except (DdmError, OSError) as exc:
        return VideoPrediction(str(path), error=str(exc).splitlines()[0] or type(exc).__name__)


def explain_features(
    predictor: Predictor, features: dict[str, Any]
) -> tuple[dict[str, Any], str | None]:
    """`model.explain.explain_video` of one video's features with the predictor's model,
    and each sampled frame's box source (None for caches saved before sources were kept)."""
    from model.explain import explain_video
    from tasks.extraction import frame_source_letters

    content, style = features["content"].float(), features["style"].float()
    explained = explain_video(predictor.model, content, style, device=_device(predictor.model))
    return explained, frame_source_letters(features)


def _predict(
    predictor: Predictor, path: Path, explain_as: Path | None, title: str, saliency: bool
) -> VideoPrediction:
    features, source = predictor.features(path)
    style = features["style"].float()
    explained, sources = explain_features(predictor, features)
    score = float(explained["score"])
    figures: dict[str, Path] = {}
    figure_error = None
    if explain_as is not None:
        try:
            figures["explanation"] = draw_timeline(explain_as, title, explained, sources, score)
            if saliency:
                figures.update(draw_saliency(predictor, path, explain_as, title, score, sources))
        except OSError as exc:
            figure_error = f"cannot write {explain_as}: {(exc.strerror or str(exc)).lower()}"
    distinct = _distinct_frames(features)
    return VideoPrediction(
        path=str(path),
        score=score,
        logit=float(explained["logit"]),
        label=predicted_label(score),
        frames_sampled=int(style.shape[0]),
        fallback_frames=sources.count("f") if sources else None,
        frame_sources=sources,
        source=source,
        distinct_frames=distinct,
        warning=_few_frames_warning(distinct, int(style.shape[0])),
        explanation_error=figure_error,
        **{name: str(figure) for name, figure in figures.items()},
    )


def _distinct_frames(features: dict[str, Any]) -> int | None:
    indices = features.get("frame_indices")
    return None if indices is None else len({int(i) for i in indices})


def _few_frames_warning(distinct: int | None, sampled: int) -> str | None:
    """Said when the video has fewer frames than are sampled: the repeats make the style
    flow zero between them, so the score judges a still, not motion."""
    if distinct is None or distinct >= sampled:
        return None
    return (
        f"only {distinct} distinct frame(s) for the {sampled} sampled: the detector judges "
        "motion over time, so this score is not a video's"
    )


def _device(model: Any) -> Any:
    return next(model.parameters()).device


def draw_timeline(
    target: Path, title: str, explained: dict[str, Any], sources: str | None, score: float
) -> Path:
    """The timeline `--explain` draws: style-flow magnitude with fallback and interpolated
    frames marked, and each content clip's attention over the steps."""
    from model.figures import timeline_figure

    target.parent.mkdir(parents=True, exist_ok=True)
    # matplotlib reads the text between two $ as mathematics: a file name is shown as it is.
    shown = title.replace("$", r"\$")
    return timeline_figure(
        target, explained["flow_magnitude"], explained["attention"], sources or "", shown, score
    )


def draw_saliency(
    predictor: Predictor,
    path: Path,
    explain_as: Path,
    title: str,
    score: float,
    sources: str | None,
) -> dict[str, Path]:
    """The saliency maps of the video's face crops, beside its timeline: a contact sheet
    (`<name>-saliency.png`) and the raw maps with the crops (`<name>-saliency.npz`)."""
    from model.figures import saliency_sheet
    from model.saliency import saliency_maps, save_saliency

    extractor = predictor.file_extractor()
    track = extractor.face_track(path)
    saliency = saliency_maps(predictor.model, extractor, track.crops)
    logger.info("path=%s saliency method=%s seconds=%.1f", path, saliency.method, saliency.seconds)
    sheet_path, maps_path = saliency_paths(explain_as)
    shown = title.replace("$", r"\$")
    sheet = saliency_sheet(
        sheet_path,
        track.crops,
        saliency.maps,
        shown,
        score,
        sources or "",
    )
    maps = save_saliency(
        maps_path,
        saliency,
        crops=track.crops,
        boxes=track.boxes,
        frame_indices=track.frame_indices,
    )
    return {"saliency": sheet, "saliency_maps": maps}


def saliency_paths(explain_as: Path) -> tuple[Path, Path]:
    """Where `draw_saliency` writes beside the timeline `explain_as`: the contact sheet
    and the raw maps."""
    stem = explain_as.with_suffix("").name
    return (
        explain_as.with_name(f"{stem}-saliency.png"),
        explain_as.with_name(f"{stem}-saliency.npz"),
    )


def explanation_paths(paths: list[Path], explain_dir: Path) -> list[Path]:
    """One PNG per video, named after it; repeated names are numbered, never overwritten."""
    seen: dict[str, int] = {}
    targets = []
    for path in paths:
        count = seen[path.stem] = seen.get(path.stem, 0) + 1
        suffix = "" if count == 1 else f"-{count}"
        targets.append(explain_dir / f"{path.stem}{suffix}.png")
    return targets
