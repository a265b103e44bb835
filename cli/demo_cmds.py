"""`ddm demo` (CLI layer): the whole system on generated face clips, with progress bars."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import click

from cli.app import App
from cli.output import table, write_json

SIZES = ("default", "small")


@click.command("demo")
@click.option("--size", type=click.Choice(SIZES), default="default", show_default=True)
@click.option("--keep", is_flag=True, help="Reuse DDM_HOME/demo instead of starting afresh.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@click.pass_obj
def demo(app: App, size: str, keep: bool, as_json: bool) -> None:
    """Run everything end to end on generated face clips: SQLite, no broker, CPU.

    Generates an FF++-style and a DFDC-style dataset of face clips with deepfake-like
    artefacts, ingests and extracts them (small backbones, random weights), trains on the
    FF++-style one and reports in-domain (its test split) and cross-domain (the DFDC-style
    one, whose manipulation training never saw).

    \b
    Examples:
      ddm demo
      ddm demo --json | jq '{accuracy, auc, cross_dataset}'
    """
    from tasks.demo import SIZES as PRESETS
    from tasks.demo import rerun_commands, run_demo, summary

    preset = PRESETS[size]
    _announce(app, preset)
    with _step_progress(app) as hooks:
        result = run_demo(app.settings, preset, keep=keep, hooks=hooks)
    document = summary(result)
    if as_json:
        write_json(document)
        return
    _show(app, result, document, rerun_commands(result, preset))


def _announce(app: App, preset: Any) -> None:
    app.err.print(
        "ddm demo: generated face clips, CPU-sized pSp and Slow R50 variants with random "
        "weights (pretrained weights cannot ship); every other part is the production "
        f"pipeline. Size {preset.name}: T = {preset.frames} frames per video, "
        f"{preset.epochs} epochs.",
        markup=False,
        highlight=False,
    )


@contextlib.contextmanager
def _step_progress(app: App) -> Iterator[Any]:
    """Hooks drawing one Rich bar per step on stderr (one line per step without a terminal)."""
    from tasks.demo import DemoHooks

    if app.quiet or not app.err.is_terminal:
        yield DemoHooks(start=lambda step, total: _line(app, step, total))
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=app.err) as progress:
        current: dict[str, Any] = {}

        def start(step: str, total: int) -> None:
            if "task" in current:
                progress.update(current["task"], completed=progress.tasks[-1].total)
            current["task"] = progress.add_task(step, total=total)

        yield DemoHooks(start=start, advance=lambda: progress.advance(current["task"]))


def _line(app: App, step: str, total: int) -> None:
    if not app.quiet:
        app.err.print(f"{step} ({total})", markup=False, highlight=False)


def _show(app: App, result: Any, document: dict[str, Any], commands: list[str]) -> None:
    from cli.report_cmds import render_catalog_bias, render_matrix
    from tasks.demo import serve_command

    say = app.out.print
    rows = [
        _result_row("in-domain: demo-ff test split (held out)", result.in_domain),
        _result_row("cross-domain: demo-dfdc (unseen manipulation)", result.cross_domain),
    ]
    columns = ["evaluation", "videos", "accuracy", "auc", "precision", "recall", "f1"]
    table(app.out, rows, columns, title=f"run {result.run_id}: trained on demo-ff")
    render_matrix(app, result.cross_domain["cross_dataset"])
    render_catalog_bias(app, result.cross_domain["bias"]["catalog"])
    sentences = result.in_domain["bias"]["sentences"] + result.cross_domain["bias"]["sentences"]
    for sentence in dict.fromkeys(sentences):  # the catalog's appear in both reports
        say(f"• {sentence}", markup=False, highlight=False)
    rate = document["fallback_rate"]
    say(f"face detection fell back to a centre crop on {rate:.1%} of sampled frames")
    for name, path in result.reports.items():
        say(f"report and figures for {name}: {path}", markup=False, highlight=False)
    say("\nEach step by hand:", markup=False)
    for command in commands:
        say(f"  {command}", markup=False, highlight=False)
    say(_REAL_DATA, markup=False, highlight=False)
    steps = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in result.steps.items())
    say(f"total {result.seconds:.0f} s ({steps})", markup=False, highlight=False)
    say(
        f"open the results in a browser: {serve_command(result)} (then http://127.0.0.1:8765/)",
        markup=False,
        highlight=False,
    )


def _result_row(name: str, report: dict[str, Any]) -> dict[str, Any]:
    (entry,) = report["runs"]
    keys = ("accuracy", "auc", "precision", "recall", "f1")
    return {"evaluation": name, "videos": entry["n_videos"], **{k: entry[k] for k in keys}}


_REAL_DATA = """
On real data: `ddm ingest /path/to/FaceForensics` (and Celeb-DF, DFDC), put the published
weights psp_ffhq_encode.pt and SLOW_8x8_R50.pyth in DDM_WEIGHTS_DIR (`ddm weights` checks
them), then `ddm extract --dataset ff`, `ddm train --datasets ff,celebdf` and
`ddm report --eval dfdc`."""


COMMANDS = (demo,)
