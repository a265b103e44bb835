"""Running the app under uvicorn on a socket bound before it starts (web layer)."""

from __future__ import annotations

import socket

from starlette.applications import Starlette

from ddm.errors import SetupError


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free one).

    Raises:
        SetupError: the address is taken, forbidden or not this machine's.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # The protocol named, not left 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only
    # on connections whose socket says IPPROTO_TCP. With it on, uvicorn's separate writes of
    # headers and body waited for the client's delayed ACK: 40 ms on every keep-alive request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise SetupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.set_inheritable(True)
    return sock


def run(app: Starlette, sock: socket.socket) -> None:
    """Serve `app` on `sock` until SIGINT or SIGTERM, then stop cleanly: uvicorn closes the
    listener, lets requests in flight finish, and returns (re-raising SIGINT afterwards,
    which the CLI reports as an interruption)."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
