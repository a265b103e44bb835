"""`ddm weights`: which pretrained weights files ddm expects and which it finds, and
`ddm weights fetch`, which downloads them (CLI layer)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli.app import App
from cli.output import output_options, table, write_json

if TYPE_CHECKING:
    from ddm.download import FetchResult, PublishedFile


@click.group("weights", invoke_without_command=True)
@click.option(
    "--weights-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Look here instead of DDM_WEIGHTS_DIR.",
)
@click.option("--hash", "with_hash", is_flag=True, help="Also print each file's sha256.")
@output_options
@click.pass_context
def weights(ctx: click.Context, weights_dir: Path | None, with_hash: bool, as_json: bool) -> None:
    """List the backbones' official weights files and whether they are in place;
    `ddm weights fetch` downloads them.

    \b
    Examples:
      ddm weights
      ddm weights --weights-dir /mnt/models --hash --json
      ddm weights fetch
    """
    if ctx.invoked_subcommand is not None:
        return
    app: App = ctx.obj
    from model.features import CONTENT_MODEL, STYLE_MODEL
    from model.registry import get_cfg
    from model.weights import sha256_file

    folder = (weights_dir or app.settings.weights_dir).expanduser()
    rows = []
    for name in (STYLE_MODEL, CONTENT_MODEL):
        cfg = get_cfg(name)
        path = folder / str(cfg.weights_file)
        found = path.is_file()
        rows.append(
            {
                "model": name,
                "file": cfg.weights_file,
                "path": str(path),
                "found": found,
                "bytes": path.stat().st_size if found else None,
                "sha256": sha256_file(path) if found and with_hash else None,
                "source": cfg.source or None,
            }
        )
    if as_json:
        write_json(rows)
        return
    columns = ["model", "file", "found", "bytes", *(["sha256"] if with_hash else []), "path"]
    table(app.out, rows, columns)
    if not all(row["found"] for row in rows):
        app.err.print(
            f"put the missing files in {folder} (DDM_WEIGHTS_DIR), or run `ddm weights fetch`"
        )


@weights.command("fetch")
@click.option(
    "--only",
    type=click.Choice(["psp", "slow_r50"]),
    help="Fetch one backbone's file: psp (psp_ffhq_encode.pt) or slow_r50 (SLOW_8x8_R50.pyth).",
)
@click.option(
    "--weights-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Download here instead of DDM_WEIGHTS_DIR.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds to wait on the server (to connect, and for each read).",
)
@output_options
@click.pass_obj
def fetch(
    app: App, only: str | None, weights_dir: Path | None, timeout: float, as_json: bool
) -> None:
    """Download the backbones' published weights into DDM_WEIGHTS_DIR.

    Files already in place are checked, not fetched again. A download accumulates in
    `<file>.part` beside its target and an interrupted one resumes from there; the
    size and sha256 are checked before the file is moved into place. With
    DDM_WEIGHTS_URL set, files come from `<DDM_WEIGHTS_URL>/<file name>` (a mirror).
    When the network cannot be reached, the links and file names for a download by
    hand are printed (exit 3).

    \b
    Examples:
      ddm weights fetch
      ddm weights fetch --only slow_r50 --weights-dir /mnt/models
      DDM_WEIGHTS_URL=https://mirror.example/ddm-weights ddm weights fetch
    """
    from ddm.download import NetworkProblem, fetch_files
    from model.features import CONTENT_MODEL, STYLE_MODEL
    from model.registry import published_weights

    folder = (weights_dir or app.settings.weights_dir).expanduser()
    both = [STYLE_MODEL, CONTENT_MODEL]
    names = {"psp": [STYLE_MODEL], "slow_r50": [CONTENT_MODEL]}.get(only or "", both)
    files = [published_weights(name) for name in names]
    base_url = app.settings.weights_base_url
    try:
        with _download_bars(app) as bars:
            results = fetch_files(files, folder, base_url=base_url, timeout=timeout, progress=bars)
    except NetworkProblem as exc:
        _print_manual_route(files, folder, base_url)
        raise NetworkProblem(f"{exc} (or download the files listed above by hand)") from exc
    _report_unpinned(app, results, folder)
    if as_json:
        write_json([asdict(result) for result in results])
        return
    table(
        app.out, [asdict(result) for result in results], ["file_name", "status", "bytes", "checked"]
    )


class _DownloadBars:
    """One Rich bar per file, in bytes (the `ProgressHook` of `ddm.download`)."""

    def __init__(self, progress: Any) -> None:
        self._progress = progress
        self._task: Any = None

    def start(self, file_name: str, total: int | None, done: int) -> None:
        self._task = self._progress.add_task(file_name, total=total, completed=done)

    def advance(self, size: int) -> None:
        self._progress.advance(self._task, size)


@contextlib.contextmanager
def _download_bars(app: App) -> Iterator[_DownloadBars | None]:
    """Bars on stderr in a terminal; nothing with --quiet or when stderr is not one."""
    if app.quiet or not app.err.is_terminal:
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=app.err, transient=True) as progress:
        yield _DownloadBars(progress)


def _print_manual_route(files: list[PublishedFile], folder: Path, base_url: str | None) -> None:
    # On stdout, ahead of the one error line on stderr that points at it.
    from ddm.config import mask_url
    from ddm.download import source_url

    missing = [f for f in files if not (folder / f.file_name).is_file()]
    width = max((len(f.file_name) for f in missing), default=0)
    click.echo(f"download by hand into {folder} (DDM_WEIGHTS_DIR), under these names:")
    for published in missing:
        url = source_url(published, base_url) if base_url else published.manual_url
        click.echo(f"  {published.file_name:<{width}}  {mask_url(url)}")


def _report_unpinned(app: App, results: list[FetchResult], folder: Path) -> None:
    from ddm.download import NOT_PINNED, RECORD_FILE

    for result in results:
        if result.checked == NOT_PINNED and result.status == "fetched":
            app.err.print(
                f"{result.file_name}: size/sha256 not pinned (none published); recorded "
                f"{result.bytes} bytes and sha256 {result.sha256} in {folder / RECORD_FILE}, "
                "against which later downloads are checked",
                markup=False,
                highlight=False,
            )


COMMANDS = (weights,)
