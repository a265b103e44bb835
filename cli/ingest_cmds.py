"""`ddm ingest PATH` and `ddm videos` (CLI layer)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from cli.app import App
from cli.output import output_options, table, write_json, write_json_list
from cli.progress import progress_bar
from ddm.ingest.registry import FORMAT_NAMES
from ddm.vocab import Label, Split, values

VIDEO_COLUMNS = [
    "id",
    "dataset",
    "path",
    "label",
    "split",
    "method",
    "compression",
    "frame_count",
    "fps",
    "probe_status",
    "present",
    "cache_valid",
]


@click.command("ingest")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--format", "layout", type=click.Choice(FORMAT_NAMES), help="Override detection.")
@click.option("--name", help="Dataset name (default: ff, dfd, celebdf, dfdc, or the folder name).")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=min(8, os.cpu_count() or 1),
    show_default=True,
    help="Parallel probe threads.",
)
@click.option("--rehash", is_flag=True, help="Probe and hash files whose size and mtime match.")
@output_options
@click.pass_obj
def ingest(
    app: App,
    path: Path,
    layout: str | None,
    name: str | None,
    workers: int,
    rehash: bool,
    as_json: bool,
) -> None:
    """Scan a dataset folder (FaceForensics++, Celeb-DF, DFDC, or real/ + fake/) into the catalog.

    Re-running it is harmless: unchanged files are skipped, changed files are re-probed and
    their feature caches invalidated, vanished files are marked missing. A FaceForensics
    tree with DeepFakeDetection gives two datasets, ff and dfd (NAME-dfd under --name).

    \b
    Examples:
      ddm ingest ./FaceForensics
      ddm ingest ./Celeb-DF-v2 --name celebdf2
      ddm ingest ./my-clips --format folder --json
    """
    from ddm.services.ingest import ingest_dataset

    factory = app.session_factory
    with progress_bar(app, "probing videos") as bar:
        report = ingest_dataset(
            factory,
            path,
            format=layout,
            name=name,
            workers=workers,
            rehash=rehash,
            on_start=bar.start,
            on_advance=bar.advance,
        )
    if as_json:
        write_json(_report_json(report))
        return
    _print_report(app, report)


def _report_json(report: Any) -> dict[str, Any]:
    """The first dataset's keys at the top, and each companion's under `companions`."""
    from dataclasses import asdict

    from ddm.catalog.records import to_json

    return {
        "dataset": report.name,
        "format": report.format,
        "probed": report.probed,
        "attempts": report.attempts,
        "seconds": report.seconds,
        **asdict(report.counts),
        "summary": to_json(report.summary),
        "companions": [_report_json(companion) for companion in report.companions],
    }


def _print_report(app: App, report: Any) -> None:
    if report.companions:
        names = ", ".join(c.name for c in report.companions)
        app.out.print(
            f"{report.summary.dataset.root} holds {1 + len(report.companions)} datasets: "
            f"{report.name} and {names}",
            markup=False,
            highlight=False,
        )
    for one in (report, *report.companions):
        _print_dataset(app, one)


def _print_dataset(app: App, report: Any) -> None:
    counts, summary = report.counts, report.summary
    app.out.print(
        f"[bold]{report.name}[/] ({report.format}) at {summary.dataset.root}: "
        f"{counts.new} new, {counts.changed} changed, {counts.unchanged} unchanged, "
        f"{counts.missing} newly missing; {report.probed} probed"
    )
    for other, moved in counts.moved_in.items():
        app.out.print(
            f"moved {moved} videos from {other} to {report.name}, with their caches and history",
            markup=False,
            highlight=False,
        )
    if counts.caches_invalidated:
        app.out.print(f"{counts.caches_invalidated} feature caches invalidated (content changed)")
    table(
        app.out,
        _pivot(summary.by_label_split),
        ["label", *values(Split), "none"],
        title=f"{report.name}: videos by label and split",
    )
    table(
        app.out,
        summary.by_method_compression,
        ["method", "compression", "videos"],
        title=f"{report.name}: videos by method and compression",
    )
    if summary.unreadable:
        table(
            app.out,
            summary.unreadable,
            ["path", "probe_status", "probe_error"],
            title=f"unreadable ({len(summary.unreadable)})",
        )
    if summary.listed_missing:
        rows = [{"source": k, "listed_but_missing": v} for k, v in summary.listed_missing.items()]
        table(
            app.out, rows, ["source", "listed_but_missing"], title="listed in metadata, not on disk"
        )
    for line in summary.problems:
        app.out.print(f"[yellow]problem:[/] {line}", markup=True, highlight=False)
    for key, value in summary.notes.items():
        app.out.print(f"note: {key}: {value}", markup=False, highlight=False)


def _pivot(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    grid: dict[str, dict[str, Any]] = {}
    for row in rows:
        line = grid.setdefault(row["label"] or "unknown", {"label": row["label"] or "unknown"})
        line[row["split"] or "none"] = row["videos"]
    return list(grid.values())


@click.command("videos")
@click.option("--dataset", help="Only this dataset.")
@click.option("--label", type=click.Choice(values(Label)))
@click.option("--split", type=click.Choice(values(Split)))
@click.option("--method", help="Manipulation method, e.g. Deepfakes.")
@click.option("--compression", help="Compression, e.g. c23.")
@click.option("--present/--all", "present_only", default=False, help="Hide missing files.")
@click.option("--limit", type=click.IntRange(1), help="At most this many videos.")
@click.option("--fingerprint", help="Extractor whose caches to show (default: the latest used).")
@click.option(
    "--scores", is_flag=True, help="With each video's latest score (reads the predictions)."
)
@output_options
@click.pass_obj
def videos(
    app: App,
    dataset: str | None,
    label: str | None,
    split: str | None,
    method: str | None,
    compression: str | None,
    present_only: bool,
    limit: int | None,
    fingerprint: str | None,
    scores: bool,
    as_json: bool,
) -> None:
    """List videos of the catalog.

    \b
    Examples:
      ddm videos --dataset ff --label fake --split test
      ddm videos --dataset ff --scores --json | jq '.[] | {path, latest_score}'
      ddm videos --dataset dfdc --json | jq '.[] | select(.probe_status != "ok")'
    """
    from ddm.services.listings import video_rows

    with app.session() as session:
        rows = video_rows(
            session,
            dataset=dataset,
            label=label,
            split=split,
            method=method,
            compression=compression,
            present_only=present_only,
            fingerprint=fingerprint,
            limit=limit,
            with_scores=scores,
        )
        if as_json:
            # Streamed from the open cursor: DFDC's 128k videos never sit in memory at once.
            write_json_list(rows)
            return
        rows = list(rows)
    columns = [*VIDEO_COLUMNS, "latest_score"] if scores else VIDEO_COLUMNS
    table(app.out, rows, columns, empty="no videos match")


COMMANDS = (ingest, videos)
