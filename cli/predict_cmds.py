"""`ddm predict VIDEO...` (CLI layer): the probability that each file is fake."""

from __future__ import annotations

import functools
from pathlib import Path

import click

from cli.app import App
from cli.output import output_options, table, write_json
from cli.segments_view import (
    WindowOptions,
    check_sources,
    default_windows,
    predict_windows,
    run_stream,
    segment_options,
    show_segments,
)
from ddm.errors import DdmError, SetupError

COLUMNS = ["video", "p_fake", "label", "frames", "fallback", "features"]


class SomeVideosFailed(DdmError):
    """At least one video could not be scored; the others were."""


class SomeExplanationsFailed(SetupError):
    """Every video was scored, but a figure could not be written (exit 3)."""


@click.command("predict")
@click.argument("videos", nargs=-1, type=click.Path(path_type=Path))
@click.option("--run", "run_ref", help="Run id or name [default: the newest succeeded run].")
@click.option(
    "--explain",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write per video here: a timeline PNG (style flow, attention, fallback frames) and "
    "the saliency maps of its face crops (NAME-saliency.png contact sheet, NAME-saliency.npz).",
)
@click.option(
    "--saliency/--no-saliency",
    default=True,
    show_default=True,
    help="With --explain, also compute the saliency maps (the costly part: see the README).",
)
@click.option("--allow-stills", is_flag=True, help="Score still images too (one frame).")
@segment_options
@click.option(
    "--stream",
    metavar="SOURCE",
    help="Score a live source window by window as it plays: - (standard input), a camera "
    "number or device, or a URL.",
)
@output_options
@click.pass_obj
def predict(
    app: App,
    videos: tuple[Path, ...],
    run_ref: str | None,
    explain: Path | None,
    saliency: bool,
    allow_stills: bool,
    segments: WindowOptions | None,
    stream: str | None,
    as_json: bool,
) -> None:
    """Score video files with a trained run: probability of fake and label.

    A file the catalog knows is scored from its feature cache; any other is extracted
    with the run's extractor first. An unreadable file gets one line of error and exit
    status 1 at the end; the other files are still scored.

    With --segments each file is judged window by window (10 s windows every 5 s by
    default), its verdict the highest window score; --stream does the same on a live
    source as it plays, printing each window as it is scored.

    \b
    Examples:
      ddm predict suspicious.mp4
      ddm predict clips/*.mp4 --run ff-1 --json
      ddm predict clip.mp4 --explain explain/
      ddm predict interview.mp4 --segments --window-seconds 8 --stride-seconds 4 --json
      ffmpeg -i rtsp://camera/live -f mpegts - | ddm predict --stream - --json
    """
    from tasks.predict import explanation_paths, load_predictor, predict_video

    check_sources(videos, stream, explain)
    predictor = load_predictor(app.settings, app.session_factory, run_ref)
    if stream is not None:
        run_stream(app, predictor, stream, segments or default_windows(), as_json)
        return
    if segments is not None:
        answers = predict_windows(app, predictor, videos, explain, segments)
        show_segments(app, answers, as_json)
        _say_problems(app, answers)
        return
    targets = explanation_paths(list(videos), explain) if explain else [None] * len(videos)
    answers = []
    with app.err.status(f"scoring with run {predictor.run.id} ({predictor.run.name})"):
        for path, target in zip(videos, targets, strict=True):
            answers.append(
                predict_video(predictor, path, target, allow_stills=allow_stills, saliency=saliency)
            )
    _show(app, answers, as_json)
    _say_problems(app, answers)


def _say_problems(app: App, answers: list) -> None:
    """A line per warning and per failure; exit 1 if a video went unscored, else 3 if only
    a figure could not be written (a folder problem, the scores stand)."""
    say = functools.partial(app.err.print, markup=False, highlight=False)
    for answer in answers:
        if answer.warning:
            say(f"warning: {answer.path}: {answer.warning}")
        if answer.explanation_error:
            say(f"error: {answer.path}: explanation not written: {answer.explanation_error}")
    failed = [answer for answer in answers if answer.error]
    for answer in failed:
        say(f"error: {answer.path}: {answer.error}")
    if failed:
        raise SomeVideosFailed(f"{len(failed)} of {len(answers)} videos could not be scored")
    unexplained = [answer for answer in answers if answer.explanation_error]
    if unexplained:
        first = unexplained[0].explanation_error
        raise SomeExplanationsFailed(f"{len(unexplained)} explanation(s) not written: {first}")


def _show(app: App, answers: list, as_json: bool) -> None:
    if as_json:
        write_json([answer.as_json() for answer in answers])
        return
    rows = [
        {
            "video": answer.path,
            "p_fake": answer.score,
            "label": answer.label,
            "frames": answer.frames_sampled,
            "fallback": answer.fallback_frames,
            "features": answer.source,
        }
        for answer in answers
        if answer.error is None
    ]
    table(app.out, rows, COLUMNS, empty="no video could be scored")
    for answer in answers:
        for what, figure in (("timeline", answer.explanation), ("saliency", answer.saliency)):
            if figure:
                app.err.print(f"{what}: {figure}", markup=False, highlight=False)


COMMANDS = (predict,)
