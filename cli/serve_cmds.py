"""`ddm serve`: the catalog, runs, evaluations and jobs in a browser (CLI layer)."""

from __future__ import annotations

import click

from cli.app import App


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True)
@click.option(
    "--allow-uploads",
    is_flag=True,
    help="Allow write actions (cancelling jobs, uploading clips to score), each with the "
    "token printed at start.",
)
@click.option(
    "--upload-limit",
    type=click.IntRange(min=1),
    metavar="MB",
    help="Largest clip accepted, in MB [default: DDM_UPLOAD_MAX_MB, else 500].",
)
@click.pass_obj
def serve(app: App, host: str, port: int, allow_uploads: bool, upload_limit: int | None) -> None:
    """Serve the catalog's datasets, videos, runs, evaluations and jobs as web pages, each
    with a JSON twin under /api/ holding what the matching command's --json prints.

    Read-only unless --allow-uploads; listens on 127.0.0.1 unless --host says otherwise.
    Ctrl-C stops it.

    \b
    Examples:
      ddm serve
      ddm serve --port 9000 --allow-uploads
    """
    from web.app import create_app
    from web.security import LOOPBACK_HOSTS, Access, is_loopback
    from web.server import bind, run
    from web.uploads import UploadCfg

    factory = app.session_factory  # the schema check: a wrong catalog stops here (exit 3)
    access = Access(writes=allow_uploads)
    loopback = is_loopback(host)
    sock = bind(host, port)
    port = sock.getsockname()[1]
    # A loopback server answers only its own names (no DNS rebinding onto it).
    hosts = list(LOOPBACK_HOSTS) if loopback else None
    uploads = UploadCfg.from_settings(app.settings, upload_limit)
    if allow_uploads:
        uploads.tidy()
    web_app = create_app(
        factory,
        settings=app.settings,
        access=access,
        allowed_hosts=hosts,
        uploads=uploads,
        refresh=True,
    )
    shown = f"[{host}]" if ":" in host else host
    address = f"http://{shown}:{port}/"
    say = app.out.print
    say(
        f"ddm serve: {address} ({'writes allowed' if allow_uploads else 'read-only'})",
        markup=False,
        highlight=False,
    )
    if allow_uploads:
        say(f"with writes: {address}?token={access.token}", markup=False, highlight=False)
        say(
            f"clips to try: up to {uploads.max_bytes // 1_000_000} MB each, kept in {uploads.root}",
            markup=False,
            highlight=False,
        )
    if not loopback:
        app.err.print(
            f"warning: listening on {host}, not only this machine: anyone who can reach it "
            "can read the catalog",
            markup=False,
            highlight=False,
        )
    app.out.file.flush()
    run(web_app, sock)


COMMANDS = (serve,)
