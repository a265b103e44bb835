"""`ddm weights`: which pretrained weights files ddm expects and which it finds (CLI layer)."""

from __future__ import annotations

from pathlib import Path

import click

from cli.app import App
from cli.output import output_options, table, write_json


@click.command("weights")
@click.option(
    "--weights-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Look here instead of DDM_WEIGHTS_DIR.",
)
@click.option("--hash", "with_hash", is_flag=True, help="Also print each file's sha256.")
@output_options
@click.pass_obj
def weights(app: App, weights_dir: Path | None, with_hash: bool, as_json: bool) -> None:
    """List the backbones' official weights files and whether they are in place.

    \b
    Examples:
      ddm weights
      ddm weights --weights-dir /mnt/models --hash --json
    """
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
            f"put the missing files in {folder} (DDM_WEIGHTS_DIR); ddm never downloads weights"
        )


COMMANDS = (weights,)
