"""`ddm cache verify|gc`: keep the feature cache and its catalog rows in agreement (CLI layer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cli.app import App
from cli.output import output_options, table, write_json
from cli.progress import progress_bar

VERIFY_COUNTS = [
    "checked",
    "ok",
    "invalidated",
    "revalidated",
    "still_invalid",
    "changed_meanwhile",
]
GC_COUNTS = [
    "files_removed",
    "bytes_freed",
    "temporaries_removed",
    "temporaries_kept",
    "directories_removed",
    "files_kept",
    "foreign_kept",
    "links_skipped",
]


@click.group("cache")
def cache_group() -> None:
    """Verify the feature cache against the catalog, or collect its garbage.

    \b
    Examples:
      ddm cache verify --dataset celebdf
      ddm cache gc --dry-run
    """


@cache_group.command("verify")
@click.option("--dataset", help="Only the caches of this dataset's videos.")
@output_options
@click.pass_obj
def cache_verify(app: App, dataset: str | None, as_json: bool) -> None:
    """Re-check every cache row against its file: exists, size, sha256, fingerprint path.

    Rows that fail are marked invalid (the next `ddm extract` redoes them); rows that only
    an earlier verify invalidated are marked valid again when their file checks out.
    Finding problems is not an error: the exit code is 0 and the report lists them.

    \b
    Examples:
      ddm cache verify
      ddm cache verify --dataset ff --json | jq '.problems[].path'
    """
    from ddm.catalog.records import to_json
    from ddm.services.caches import verify_caches

    with progress_bar(app, "verifying caches") as bar:
        report = verify_caches(
            app.session_factory,
            _cache_dir(app),
            dataset=dataset,
            on_start=bar.start,
            on_advance=bar.advance,
        )
    data = to_json(report)
    if as_json:
        write_json(data)
        return
    _print_verify(app, data)


def _print_verify(app: App, data: dict[str, Any]) -> None:
    table(app.out, [{key: data[key] for key in VERIFY_COUNTS}], VERIFY_COUNTS, title="cache verify")
    table(
        app.out,
        data["problems"],
        ["cache_id", "video_id", "path", "error", "action"],
        title=f"problems ({len(data['problems'])})",
        empty="no problems found",
    )
    if data["invalidated"]:
        app.err.print(
            f"{data['invalidated']} caches invalidated; `ddm extract` redoes them",
            markup=False,
            highlight=False,
        )


@cache_group.command("gc")
@click.option("--dry-run", is_flag=True, help="Show what would be removed; remove nothing.")
@output_options
@click.pass_obj
def cache_gc(app: App, dry_run: bool, as_json: bool) -> None:
    """Remove cache files no catalog row references, old temporaries and empty folders.

    Files of invalid rows are kept (a row still points at them), as are files being written
    by a running extraction and temporaries younger than an hour. Files that are not where
    the cache layout puts them are never removed (counted as foreign).

    \b
    Examples:
      ddm cache gc --dry-run
      ddm cache gc --json | jq .bytes_freed
    """
    from ddm.catalog.records import to_json
    from ddm.services.caches import collect_cache_garbage

    cache_dir = _cache_dir(app)
    report = collect_cache_garbage(app.session_factory, cache_dir, dry_run=dry_run)
    data = to_json(report)
    if as_json:
        write_json(data)
        return
    _print_gc(app, data, cache_dir)


def _print_gc(app: App, data: dict[str, Any], cache_dir: Path) -> None:
    removed = len(data["files_removed"])
    title = "cache gc (dry run)" if data["dry_run"] else "cache gc"
    table(app.out, [{**data, "files_removed": removed}], GC_COUNTS, title=title)
    verb = "would free" if data["dry_run"] else "freed"
    app.err.print(
        f"{removed} files, {_size(data['bytes_freed'])} {verb} in {cache_dir}",
        markup=False,
        highlight=False,
    )


def _cache_dir(app: App) -> Path:
    cache_dir = app.settings.cache_dir
    assert cache_dir is not None  # Settings always derives one
    return cache_dir


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


COMMANDS = (cache_group,)
