"""`ddm demo`, until its issue lands: it prints the help and says so (CLI layer)."""

from __future__ import annotations

import click


@click.command("demo")
@click.pass_context
def demo(ctx: click.Context) -> None:
    """Run the main job end to end on the embedded default (SQLite, no broker)."""
    click.echo(ctx.parent.get_help() if ctx.parent else "")
    click.echo(
        "\n`ddm demo` is not implemented yet; the commands above are the interface.", err=True
    )


COMMANDS = (demo,)
