"""One renderer for every list/show command: a Rich table, or JSON with `--json` (CLI layer)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def output_options(func: F) -> F:
    """Add `--json` to a command."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print one JSON document on stdout."
    )(func)


def write_json(data: Any) -> None:
    """Write one JSON document to stdout (plain text: no colour, no wrapping)."""
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def table(
    console: Any,
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    *,
    title: str | None = None,
    empty: str = "nothing to show",
) -> None:
    """Print rows as a Rich table with the given columns, or one line when there are none."""
    from rich.table import Table

    if not rows:
        console.print(empty)
        return
    grid = Table(title=title)
    for column in columns:
        grid.add_column(column.replace("_", " "))
    for row in rows:
        grid.add_row(*(_cell(row.get(column)) for column in columns))
    console.print(grid)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
