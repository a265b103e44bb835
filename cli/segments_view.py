"""`--segments` of `ddm predict` and `ddm report` (CLI layer): the window options, checked
here so that a bad value is a usage error (exit 2), and the per-window tables."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from cli.app import App
from cli.output import table, write_json

F = TypeVar("F", bound=Callable[..., Any])

# tasks.segments holds the same default; it is not imported here, which would load the
# catalog for `ddm --help` (a test checks that the two agree). Strides default to half
# the window.
DEFAULT_WINDOW_SECONDS = 10.0
WINDOW_COLUMNS = ["window", "start_s", "end_s", "p_fake", "label", "fallback"]
POSITIVE = click.FloatRange(min=0, min_open=True)


@dataclass(frozen=True)
class WindowOptions:
    """The windows asked for on the command line (already checked)."""

    window_seconds: float
    stride_seconds: float

    def spec(self) -> Any:
        """As `tasks.segments.WindowSpec`."""
        from tasks.segments import WindowSpec

        return WindowSpec(self.window_seconds, self.stride_seconds)


def segment_options(func: F) -> F:
    """Add `--segments`, `--window-seconds` and `--stride-seconds`; the command receives
    them as one `segments` argument: WindowOptions, or None without `--segments`."""

    @click.option(
        "--segments",
        "with_segments",
        is_flag=True,
        help="Score each window of a long video; the verdict is the highest window score.",
    )
    @click.option(
        "--window-seconds",
        type=POSITIVE,
        help=f"Window length with --segments [default: {DEFAULT_WINDOW_SECONDS:g}].",
    )
    @click.option(
        "--stride-seconds",
        type=POSITIVE,
        help="Step between window starts, up to the window [default: half the window].",
    )
    @functools.wraps(func)
    def wrapper(
        *args: Any,
        with_segments: bool,
        window_seconds: float | None,
        stride_seconds: float | None,
        **kwargs: Any,
    ) -> Any:
        # A stream is judged in windows: the window options need no --segments there.
        with_segments = with_segments or kwargs.get("stream") is not None
        kwargs["segments"] = _window_options(with_segments, window_seconds, stride_seconds)
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _window_options(
    with_segments: bool, window_seconds: float | None, stride_seconds: float | None
) -> WindowOptions | None:
    if not with_segments:
        if window_seconds is not None or stride_seconds is not None:
            raise click.UsageError("--window-seconds and --stride-seconds need --segments")
        return None
    window = DEFAULT_WINDOW_SECONDS if window_seconds is None else window_seconds
    stride = window / 2 if stride_seconds is None else stride_seconds
    if stride > window:
        raise click.BadParameter(
            f"{stride:g} s is longer than the window ({window:g} s): frames between "
            "windows would go unjudged",
            param_hint="'--stride-seconds'",
        )
    return WindowOptions(window, stride)


def predict_windows(
    app: App,
    predictor: Any,
    videos: tuple[Path, ...],
    explain: Path | None,
    options: WindowOptions,
) -> list[Any]:
    """`tasks.segments.predict_segments` of every video, in order."""
    from tasks.segments import predict_segments, segments_paths

    spec = options.spec()
    targets = segments_paths(list(videos), explain) if explain else [None] * len(videos)
    answers = []
    with app.err.status(f"scoring windows with run {predictor.run.id} ({predictor.run.name})"):
        for path, target in zip(videos, targets, strict=True):
            answers.append(predict_segments(predictor, path, spec, target))
    return answers


def show_segments(app: App, answers: list[Any], as_json: bool) -> None:
    """A table of windows per video and its verdict line, or one JSON document."""
    if as_json:
        write_json([answer.as_json() for answer in answers])
        return
    for answer in answers:
        if answer.error is not None:
            continue
        rows = [_window_row(segment) for segment in answer.segments]
        table(app.out, rows, WINDOW_COLUMNS, title=answer.path)
        deciding = answer.segments[answer.deciding_window]
        app.out.print(
            f"{answer.path}: {answer.label} ({answer.rule}: {answer.score:.3f}, window "
            f"{deciding['index']} at {deciding['start']:.1f}-{deciding['end']:.1f} s; "
            f"{answer.flagged_windows} of {len(answer.segments)} windows flagged)",
            markup=False,
            highlight=False,
        )
        if answer.explanation:
            app.err.print(f"timeline: {answer.explanation}", markup=False, highlight=False)


def _window_row(segment: dict[str, Any]) -> dict[str, Any]:
    return {
        "window": segment["index"],
        "start_s": f"{segment['start']:.2f}",
        "end_s": f"{segment['end']:.2f}",
        "p_fake": segment["score"],
        "label": segment["label"],
        "fallback": f"{segment['fallback_frames']}/{segment['frames_sampled']}",
    }


def show_report_segments(app: App, run_id: int, segments: dict[str, Any]) -> None:
    """Per video of an evaluation with windows: how many were flagged, which parts of the
    video they cover, and the deciding window."""
    rows = [
        {
            "video": video["path"],
            "label": video["label"],
            "verdict": video["verdict"],
            "flagged": f"{video['flagged_windows']}/{video['windows']}",
            "flagged_parts": ", ".join(f"{a:.1f}-{b:.1f} s" for a, b in video["flagged_parts"]),
            "deciding": _deciding(video["deciding_window"]),
        }
        for video in segments["videos"]
    ]
    title = (
        f"run {run_id}: windows of {segments['window_seconds']:g} s every "
        f"{segments['stride_seconds']:g} s ({segments['rule']})"
    )
    columns = ["video", "label", "verdict", "flagged", "flagged_parts", "deciding"]
    table(app.out, rows, columns, title=title, empty="no video could be judged in windows")


def _deciding(window: dict[str, Any]) -> str:
    return f"{window['start']:.1f}-{window['end']:.1f} s ({window['score']:.3f})"


def default_windows() -> WindowOptions:
    """The default windows (10 s every 5 s)."""
    options = _window_options(True, None, None)
    assert options is not None
    return options


def check_sources(videos: tuple[Path, ...], stream: str | None, explain: Path | None) -> None:
    """Video files or one --stream, not both and not neither (usage errors)."""
    if stream is None and not videos:
        raise click.UsageError("name video files, or a live source with --stream SOURCE")
    if stream is not None and videos:
        raise click.UsageError("--stream scores one live source: name no video files with it")
    if stream is not None and explain is not None:
        raise click.UsageError("--explain draws figures of files; a --stream has none")


def run_stream(
    app: App, predictor: Any, source: str, options: WindowOptions, as_json: bool
) -> None:
    """Print each window as soon as it is scored (a JSON line each with --json), then a
    summary line on stderr."""
    from tasks.stream import predict_stream

    def show(window: dict[str, Any]) -> None:
        if as_json:
            click.echo(json.dumps(window))
        else:
            click.echo(
                f"window {window['index']}  {window['start']:.1f}-{window['end']:.1f} s  "
                f"p_fake {window['score']:.4f}  {window['label']}  "
                f"latency {window['latency']:.2f} s"
            )
        sys.stdout.flush()

    app.err.print(f"scoring {source} with run {predictor.run.id} ({predictor.run.name})")
    summary = predict_stream(predictor, source, options.spec(), show)
    app.err.print(_stream_line(summary), markup=False, highlight=False, soft_wrap=True)


def _stream_line(summary: dict[str, Any]) -> str:
    latency = (
        f"latency p50 {summary['latency_p50']:.2f} s, p95 {summary['latency_p95']:.2f} s"
        if summary["latency_p50"] is not None
        else "no window scored"
    )
    line = (
        f"stream ended: {summary['frames_read']} frames in {summary['seconds']:.1f} s, "
        f"{summary['windows_scored']} windows scored, {summary['windows_skipped']} skipped; "
        f"{summary['frames_dropped']} of {summary['frames_sampled']} sampled frames dropped; "
        f"{latency}"
    )
    if summary["unfinished_seconds"]:
        line += f"; the last {summary['unfinished_seconds']:.1f} s are in no complete window"
    return line
