"""Commands whose issue has not landed yet: they check the catalog, then say so (CLI layer)."""

from __future__ import annotations

import click

from cli.app import App
from ddm.errors import DdmError


class NotImplementedYet(DdmError):
    """The command exists in the interface but its implementation has not landed."""


def _stub(name: str, summary: str) -> click.Command:
    @click.command(name, help=summary, context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    @click.pass_obj
    def command(app: App, args: tuple[str, ...]) -> None:
        _ = app.session_factory  # refuses a stale schema before anything else
        raise NotImplementedYet(f"`ddm {name}` is not implemented yet")

    return command


@click.command("demo")
@click.pass_context
def demo(ctx: click.Context) -> None:
    """Run the main job end to end on the embedded default (SQLite, no broker)."""
    click.echo(ctx.parent.get_help() if ctx.parent else "")
    click.echo(
        "\n`ddm demo` is not implemented yet; the commands above are the interface.", err=True
    )


COMMANDS = (
    _stub("report", "Report evaluation results and bias statistics."),
    demo,
)
