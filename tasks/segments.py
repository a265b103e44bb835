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
from tasks.evaluation import THRESHOLD

# Ten seconds hold 250 frames at 25 fps, sampled every ~8 frames at T = 32: about as
# densely as a 10 to 20 s FF++ training video is. Half-overlapping windows judge every
# moment twice (but the first and last half windows), once near a window's middle.
DEFAULT_WINDOW_SECONDS, DEFAULT_STRIDE_SECONDS = 10.0, 5.0
RULE = "max over windows"


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
        label=_label(deciding.score),
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
        "label": _label(scored.score),
        "frames_sampled": sampled,
        "distinct_frames": scored.distinct_frames,
        "fallback_frames": scored.fallback_frames,
        "fallback_share": scored.fallback_frames / sampled,
        "frame_sources": source_letters(scored.source_per_frame),
    }


def _label(score: float) -> str:
    return Label.FAKE.value if score >= THRESHOLD else Label.REAL.value


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
