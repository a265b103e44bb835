"""`ddm db upgrade|current` and `ddm config show` (CLI layer)."""

from __future__ import annotations

import click

from cli.app import App
from cli.output import output_options, table, write_json


@click.group("db")
def db_group() -> None:
    """Create or upgrade the catalog schema.

    \b
    Examples:
      ddm db upgrade
      ddm db current --json
    """


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@click.pass_obj
def db_upgrade(app: App, revision: str) -> None:
    """Apply every pending migration to the catalog."""
    from ddm.db import schema_state, upgrade

    before = schema_state(app.engine).current
    upgrade(app.engine, revision)
    after = schema_state(app.engine).current
    app.err.print(f"catalog at revision {after} (was {before or 'empty'})")


@db_group.command("current")
@output_options
@click.pass_obj
def db_current(app: App, as_json: bool) -> None:
    """Show the catalog's schema revision and the one this ddm needs."""
    from ddm.config import mask_url
    from ddm.db import schema_state

    state = schema_state(app.engine)
    data = {
        "database_url": mask_url(app.settings.db_url),
        "current": state.current,
        "head": state.head,
        "up_to_date": state.is_current,
    }
    if as_json:
        write_json(data)
        return
    click.echo(f"{state.current or 'none'}{' (head)' if state.is_current else ''}")
    if not state.is_current:
        app.err.print(f"this ddm needs {state.head}: run `ddm db upgrade`")


@click.group("config")
def config_group() -> None:
    """Show the settings in effect."""


@config_group.command("show")
@output_options
@click.pass_obj
def config_show(app: App, as_json: bool) -> None:
    """Print every setting, passwords masked.

    \b
    Examples:
      ddm config show
      DDM_DATABASE_URL=postgresql://ddm:secret@db/ddm ddm config show --json
    """
    data = app.settings.masked()
    if as_json:
        write_json(data)
        return
    rows = [{"setting": key, "value": value} for key, value in data.items()]
    table(app.out, rows, ["setting", "value"])


COMMANDS = (db_group, config_group)
