"""`ddm predict --segments`: a long video scored window by window with a run's extractor
and detector, its verdict the highest window score (jobs layer).

The windows come from `model.segments`, which runs the extractor's own face pipeline and
encoders; here they become plain answers, a verdict and the timeline figure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ddm.errors import DdmError, InvalidInput
from ddm.vocab import Label
from tasks.evaluation import THRESHOLD, predicted_label

# Ten seconds hold 250 frames at 25 fps, sampled every ~8 frames at T = 32: about as
# densely as a 10 to 20 s FF++ training video is. Half-overlapping windows judge every
# moment twice (but the first and last half windows), once near a window's middle.
DEFAULT_WINDOW_SECONDS, DEFAULT_STRIDE_SECONDS = 10.0, 5.0
RULE = "max over windows"
MAX_FAILURES_SHOWN = 20  # videos without windows named in an evaluation job's summary


@dataclass(frozen=True)
class WindowSpec:
    """How a video is cut into windows: their length and the step between their starts."""

    window_seconds: float = DEFAULT_WINDOW_SECONDS
    stride_seconds: float = DEFAULT_STRIDE_SECONDS

    def __post_init__(self) -> None:
        if not (self.window_seconds > 0 and self.stride_seconds > 0):
            raise InvalidInput(
                f"windows need a positive length and stride, got {self.window_seconds} s "
                f"and {self.stride_seconds} s"
            )
        if self.stride_seconds > self.window_seconds:
            raise InvalidInput(
                f"a stride of {self.stride_seconds} s over windows of {self.window_seconds} s "
                "would leave parts of the video unjudged: use a stride up to the window"
            )

    def as_json(self) -> dict[str, float]:
        return {"window_seconds": self.window_seconds, "stride_seconds": self.stride_seconds}


@dataclass(frozen=True)
class SegmentedPrediction:
    """One video judged over time, or the error that prevented it."""

    path: str
    score: float | None = None  # the deciding window's: the verdict's score
    logit: float | None = None
    label: str | None = None
    rule: str = RULE
    deciding_window: int | None = None  # index into `segments`
    window_seconds: float | None = None
    stride_seconds: float | None = None
    fps: float | None = None
    duration: float | None = None  # seconds
    frames_per_window: int | None = None  # T, the run's extractor's
    flagged_windows: int | None = None  # windows with score >= threshold
    segments: list[dict[str, Any]] = field(default_factory=list)
    warning: str | None = None
    explanation: str | None = None  # the score-over-time figure, with --explain
    explanation_error: str | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def predict_segments(
    predictor: Any, path: Path, spec: WindowSpec, explain_as: Path | None = None
) -> SegmentedPrediction:
    """Score one file window by window (and draw its score over time to `explain_as`); a
    problem with the file becomes its `error`, one with the figure its `explanation_error`.
    """
    try:
        if not path.is_file():
            raise InvalidInput("no such file")
        judged = score_file_windows(predictor.file_extractor(), predictor.model, path, spec)
    except (DdmError, OSError) as exc:
        return SegmentedPrediction(str(path), error=str(exc).splitlines()[0] or type(exc).__name__)
    answer = segmented_answer(str(path), judged, spec)
    if explain_as is None:
        return answer
    try:
        figure = _timeline(explain_as, path.name, answer)
    except OSError as exc:
        problem = f"cannot write {explain_as}: {(exc.strerror or str(exc)).lower()}"
        return SegmentedPrediction(**{**answer.__dict__, "explanation_error": problem})
    return SegmentedPrediction(**{**answer.__dict__, "explanation": str(figure)})


def score_file_windows(extractor: Any, model: Any, path: Path, spec: WindowSpec) -> Any:
    """`model.segments.score_video_windows` on the detector's device.

    Raises:
        UnreadableVideo: the file cannot be decoded or has no frame rate.
    """
    from model.segments import score_video_windows

    device = next(model.parameters()).device
    return score_video_windows(
        path, extractor, model, spec.window_seconds, spec.stride_seconds, device=device
    )


def segmented_answer(path: str, judged: Any, spec: WindowSpec) -> SegmentedPrediction:
    """The answer for one video from its `model.segments.VideoWindows`."""
    segments = [window_json(scored, judged.fps) for scored in judged.windows]
    deciding = judged.deciding()
    samples = len(deciding.window.samples)
    return SegmentedPrediction(
        path=path,
        score=deciding.score,
        logit=deciding.logit,
        label=predicted_label(deciding.score),
        deciding_window=deciding.window.index,
        window_seconds=spec.window_seconds,
        stride_seconds=spec.stride_seconds,
        fps=judged.fps,
        duration=judged.num_video_frames / judged.fps,
        frames_per_window=samples,
        flagged_windows=sum(segment["label"] == Label.FAKE.value for segment in segments),
        segments=segments,
        warning=_short_windows_warning(segments, samples),
    )


def window_json(scored: Any, fps: float) -> dict[str, Any]:
    """One window as `--json` gives it; times in seconds from the video's first frame."""
    from tasks.extraction import source_letters

    window = scored.window
    sampled = len(window.samples)
    return {
        "index": window.index,
        "start": window.start_frame / fps,
        "end": window.end_frame / fps,
        "start_frame": window.start_frame,
        "end_frame": window.end_frame,
        "score": scored.score,
        "logit": scored.logit,
        "label": predicted_label(scored.score),
        "frames_sampled": sampled,
        "distinct_frames": scored.distinct_frames,
        "fallback_frames": scored.fallback_frames,
        "fallback_share": scored.fallback_frames / sampled,
        "frame_sources": source_letters(scored.source_per_frame),
    }


def _short_windows_warning(segments: list[dict[str, Any]], sampled: int) -> str | None:
    """Said when a window has fewer frames than it samples: the repeats make the style flow
    zero between them, so that window's score judges a still, not motion."""
    short = [s["index"] for s in segments if s["distinct_frames"] < sampled]
    if not short:
        return None
    return (
        f"{len(short)} window(s) (first: {short[0]}) hold fewer frames than the {sampled} "
        "sampled: their scores judge repeated frames, not motion"
    )


def _timeline(target: Path, title: str, answer: SegmentedPrediction) -> Path:
    from model.figures import segments_figure

    target.parent.mkdir(parents=True, exist_ok=True)
    windows = [(s["start"], s["end"], s["score"]) for s in answer.segments]
    return segments_figure(
        target,
        windows,
        answer.duration or 0.0,
        THRESHOLD,
        answer.deciding_window or 0,
        f"{title}: P(fake) per {answer.window_seconds:g} s window ({RULE} = {answer.score:.3f})",
    )


def segments_paths(paths: list[Path], explain_dir: Path) -> list[Path]:
    """One score-over-time PNG per video, named `<stem>-segments.png` (repeated names
    numbered, never overwritten)."""
    from tasks.predict import explanation_paths

    return [
        target.with_name(f"{target.stem}-segments.png")
        for target in explanation_paths(paths, explain_dir)
    ]


def record_evaluation_windows(
    context: Any, run: Any, evaluation_id: int, spec: WindowSpec
) -> dict[str, Any]:
    """Judge every video of a stored evaluation window by window with its run, and store
    the windows (the `evaluate` job, asked for segments). A video that cannot be decoded
    is named in the summary and left without windows; the others are stored.

    Returns:
        The job summary's part: windows stored, videos judged, and those that failed.
    """
    from ddm.catalog import evaluations, windows
    from ddm.catalog.video_views import video_location
    from ddm.db import session_scope
    from tasks.predict import load_predictor

    predictor = load_predictor(context.settings, context.factory, str(run.id))
    extractor = predictor.file_extractor()
    with session_scope(context.factory) as session:
        videos = [
            (p.video_id, p.path, video_location(session, p.video_id))
            for p in evaluations.evaluation_predictions(session, evaluation_id)
        ]
    rows: list[Any] = []
    failed: list[dict[str, Any]] = []
    for video_id, path, location in videos:
        context.check()
        try:
            judged = score_file_windows(
                extractor, predictor.model, Path(location.root) / location.path, spec
            )
        except (DdmError, OSError) as exc:
            failed.append({"video_id": video_id, "path": path, "error": str(exc).splitlines()[0]})
        else:
            rows.extend(_window_rows(video_id, judged))
        context.advance(units=1)
    with session_scope(context.factory) as session:
        stored = windows.record_windows(
            session, evaluation_id, spec.window_seconds, spec.stride_seconds, rows
        )
    return {"windows": stored, "windows_failed": failed[:MAX_FAILURES_SHOWN]}


def _window_rows(video_id: int, judged: Any) -> list[Any]:
    from ddm.catalog.windows import WindowRow

    return [
        WindowRow(
            video_id=video_id,
            index=scored.window.index,
            start_frame=scored.window.start_frame,
            end_frame=scored.window.end_frame,
            start_seconds=scored.window.start_frame / judged.fps,
            end_seconds=scored.window.end_frame / judged.fps,
            score=scored.score,
            logit=scored.logit,
            frames_sampled=len(scored.window.samples),
            fallback_frames=scored.fallback_frames,
        )
        for scored in judged.windows
    ]


def segments_entry(stored: Any, predictions: list[Any], threshold: float) -> dict[str, Any]:
    """Which part of each video a run flagged, for `ddm report`: per video its windows, the
    flagged ones and the parts of the video they cover, and the deciding window; over the
    fakes, how many were caught by some window and what share of their windows was.

    Args:
        stored: a `ddm.catalog.windows.StoredWindows`.
        predictions: the evaluation's `PredictionRecord`s (labels, paths, whole scores).
        threshold: the evaluation's threshold.
    """
    by_video: dict[int, list[Any]] = {}
    for row in stored.rows:
        by_video.setdefault(row.video_id, []).append(row)
    videos = [
        _video_windows(p, by_video[p.video_id], threshold)
        for p in predictions
        if p.video_id in by_video
    ]
    return {
        "window_seconds": stored.window_seconds,
        "stride_seconds": stored.stride_seconds,
        "rule": RULE,
        "threshold": threshold,
        "n_videos": len(videos),
        "without_windows": len(predictions) - len(videos),
        **_caught(videos, Label.FAKE.value, "fakes"),
        **_caught(videos, Label.REAL.value, "reals"),
        "videos": videos,
    }


def _video_windows(prediction: Any, rows: list[Any], threshold: float) -> dict[str, Any]:
    deciding = max(rows, key=lambda row: (row.logit, -row.index))
    flagged = [row for row in rows if row.score >= threshold]
    return {
        "video_id": prediction.video_id,
        "path": prediction.path,
        "label": prediction.label,
        "whole_video_score": prediction.score,
        "windows": len(rows),
        "flagged_windows": len(flagged),
        "flagged_share": len(flagged) / len(rows),
        "flagged_parts": _parts(flagged),
        "verdict": predicted_label(deciding.score, threshold),
        "deciding_window": {
            "index": deciding.index,
            "start": deciding.start_seconds,
            "end": deciding.end_seconds,
            "score": deciding.score,
        },
    }


def _parts(flagged: list[Any]) -> list[list[float]]:
    """The flagged windows merged where they overlap or touch: [start, end] seconds."""
    parts: list[list[float]] = []
    for row in sorted(flagged, key=lambda r: r.start_seconds):
        if parts and row.start_seconds <= parts[-1][1]:
            parts[-1][1] = max(parts[-1][1], row.end_seconds)
        else:
            parts.append([row.start_seconds, row.end_seconds])
    return parts


def _caught(videos: list[dict[str, Any]], label: str, name: str) -> dict[str, Any]:
    of_label = [v for v in videos if v["label"] == label]
    shares = [v["flagged_share"] for v in of_label]
    return {
        f"n_{name}": len(of_label),
        f"{name}_flagged": sum(v["verdict"] == Label.FAKE.value for v in of_label),
        f"{name}_mean_flagged_share": sum(shares) / len(shares) if shares else None,
    }


def segments_sentence(run_id: int, entry: dict[str, Any]) -> str:
    """One line on what the windows caught, for the report's sentences."""
    fakes = f"{entry['fakes_flagged']} of {entry['n_fakes']} fake videos have a flagged window" + (
        f" ({entry['fakes_mean_flagged_share']:.0%} of their windows on average)"
        if entry["n_fakes"]
        else ""
    )
    return (
        f"run {run_id}, windows of {entry['window_seconds']:g} s every "
        f"{entry['stride_seconds']:g} s: {fakes}; {entry['reals_flagged']} of "
        f"{entry['n_reals']} real videos do too"
    )
