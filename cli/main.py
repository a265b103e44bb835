"""The root `ddm` group and the one place where exceptions become exit codes (CLI layer).

Exit codes: 0 ok, 1 domain error, 2 usage, 3 environment or setup, 130 interrupted.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import click

from cli.app import App

# OpenMP threads that spin at every barrier stall one another as soon as another process
# shares the cores: a training epoch ran 4 to 12 times slower at 2 threads than at 1 on a
# shared machine, and not at all slower with passive waiting (bench/README.md). Set before
# torch loads OpenMP, and inherited by workers and their pool children; a user's own
# setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

EXIT_OK, EXIT_DOMAIN, EXIT_USAGE, EXIT_SETUP, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--database-url", envvar="DDM_DATABASE_URL", help="Catalog URL (default: SQLite).")
@click.option("--home", envvar="DDM_HOME", type=click.Path(), help="Where ddm keeps its files.")
@click.option("--debug", is_flag=True, envvar="DDM_DEBUG", help="Show tracebacks on errors.")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="No progress or status output.")
@click.version_option(package_name="ddm")
@click.pass_context
def cli(
    ctx: click.Context,
    database_url: str | None,
    home: str | None,
    debug: bool,
    verbose: int,
    quiet: bool,
) -> None:
    """ddm: deepfake-detection datasets, feature caches, training and reports.

    \b
    Examples:
      ddm ingest ./FaceForensics
      ddm extract --dataset celebdf
      ddm train --datasets ff,celebdf
      ddm report --eval dfdc
    """
    from ddm.config import quiet_native_logging

    # Here rather than in main(): every command passes through this group, `--help` does
    # not, and nothing has imported cv2 yet. `ddm worker`'s pool children inherit it.
    quiet_native_logging()
    _configure_logging(verbose, quiet)
    # The group's own env-bound options only reach Settings when given explicitly here;
    # everything else (DDM_BROKER_URL, ddm.toml, ...) is read by Settings itself.
    overrides: dict[str, Any] = {"database_url": database_url, "home": home}
    app = App(overrides, quiet=quiet)
    ctx.obj = app
    ctx.call_on_close(app.close)


def _configure_logging(verbose: int, quiet: bool) -> None:
    from rich.logging import RichHandler

    from ddm.logging import configure

    level = (
        logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    )
    configure(level, RichHandler(show_path=False, console=_stderr_console()))


def _stderr_console():  # noqa: ANN202
    from rich.console import Console

    return Console(stderr=True)


def _register_commands() -> None:
    from cli import (
        cache_cmds,
        catalog_cmds,
        db_cmds,
        demo_cmds,
        extract_cmds,
        ingest_cmds,
        job_cmds,
        predict_cmds,
        report_cmds,
        serve_cmds,
        split_cmds,
        train_cmds,
        weights_cmds,
    )

    modules = (
        db_cmds,
        catalog_cmds,
        ingest_cmds,
        split_cmds,
        extract_cmds,
        job_cmds,
        cache_cmds,
        weights_cmds,
        train_cmds,
        report_cmds,
        predict_cmds,
        demo_cmds,
        serve_cmds,
    )
    for command in (c for module in modules for c in module.COMMANDS):
        cli.add_command(command)


_register_commands()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and map what escapes it to one line on stderr and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or os.environ.get("DDM_DEBUG", "").lower() in ("1", "true", "yes")
    try:
        cli.main(args=args, prog_name="ddm", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.UsageError as exc:
        # One line, as every other error: Click's own layout spends three on usage and hint.
        command = exc.ctx.command_path if exc.ctx is not None else "ddm"
        click.echo(f"error: {exc.format_message()} (see `{command} --help`)", err=True)
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001  (the one boundary that must catch everything)
        return _report(exc, debug)
    return EXIT_OK


def _report(exc: Exception, debug: bool) -> int:
    code, message = exit_code_for(exc)
    if debug:
        from rich.console import Console

        Console(stderr=True).print_exception(show_locals=False)
    click.echo(f"error: {message}", err=True)
    return code


def exit_code_for(exc: Exception) -> tuple[int, str]:
    """The exit code and the one-line message for an exception."""
    from ddm.errors import DdmError, SetupError, TransientDbError

    if isinstance(exc, (SetupError, TransientDbError)):
        return EXIT_SETUP, str(exc)
    if isinstance(exc, DdmError):
        return EXIT_DOMAIN, str(exc)
    if isinstance(exc, OSError):
        from ddm.fs import storage_problem

        # A full, read-only or forbidden folder is the set-up's problem, named as such.
        problem = storage_problem(exc, exc.filename or "a folder ddm writes to")
        if problem is not None:
            return EXIT_SETUP, str(problem)
    if type(exc).__module__.startswith("sqlalchemy"):
        orig = getattr(exc, "orig", None) or exc
        return (
            EXIT_SETUP,
            f"database error: {str(orig).splitlines()[0] if str(orig) else type(orig).__name__}",
        )
    return (
        EXIT_DOMAIN,
        f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for details)",
    )


if __name__ == "__main__":
    sys.exit(main())
