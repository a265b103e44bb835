"""Catalog queries: `ddm datasets` (CLI layer)."""

from __future__ import annotations

import click

from cli.app import App
from cli.output import output_options, table, write_json

DATASET_COLUMNS = [
    "name",
    "format",
    "videos",
    "real",
    "fake",
    "missing",
    "unreadable",
    "listed_missing",
    "root",
]


@click.command("datasets")
@output_options
@click.pass_obj
def datasets(app: App, as_json: bool) -> None:
    """List the ingested datasets with their video counts.

    \b
    Examples:
      ddm datasets
      ddm datasets --json | jq '.[].name'
    """
    from ddm.services.listings import dataset_rows

    with app.session() as session:
        rows = dataset_rows(session)
    if as_json:
        write_json(rows)
        return
    table(app.out, rows, DATASET_COLUMNS, empty="no datasets yet: run `ddm ingest PATH`")


COMMANDS = (datasets,)
