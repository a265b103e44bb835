"""A local HTTP server for the download tests: serves generated files on 127.0.0.1 with
Range support, and on request cuts a response short, answers slowly, or first sends a
Google-Drive-style confirmation page. Nothing here touches the real network."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Served:
    """What the server holds and how it misbehaves; tests change it between requests."""

    files: dict[str, bytes] = field(default_factory=dict)
    cut_after: int | None = None  # the next body stops after this many bytes, then closes
    delay: float = 0.0  # seconds to wait before answering
    confirm_first: set[str] = field(default_factory=set)  # names answered by a web page first
    ignore_range: bool = False  # answer 200 with the whole file even when asked for a range
    html: set[str] = field(default_factory=set)  # names served as text/html (a sign-in page)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range)
    body_bytes: list[int] = field(default_factory=list)  # body bytes sent per request


class _Handler(BaseHTTPRequestHandler):
    served: Served

    def do_GET(self) -> None:  # noqa: N802  (http.server's naming)
        parts = urlsplit(self.path)
        name = parts.path.rsplit("/", 1)[-1]
        self.served.requests.append((self.path, self.headers.get("Range")))
        if self.served.delay:
            time.sleep(self.served.delay)
        data = self.served.files.get(name)
        if data is None:
            self._send(404, b"not found", "text/plain")
        elif name in self.served.confirm_first and "confirm" not in parse_qs(parts.query):
            self._send(200, _confirmation_page(parts.path, name), "text/html; charset=utf-8")
        else:
            kind = "text/html" if name in self.served.html else "application/octet-stream"
            self._send_file(data, kind)

    def _send_file(self, data: bytes, kind: str) -> None:
        start = _range_start(self.headers.get("Range"))
        if start is None or self.served.ignore_range:
            self._send(200, data, kind)
        elif start >= len(data):
            self._send(416, b"", "text/plain", {"Content-Range": f"bytes */{len(data)}"})
        else:
            content_range = f"bytes {start}-{len(data) - 1}/{len(data)}"
            self._send(206, data[start:], kind, {"Content-Range": content_range})

    def _send(self, code: int, body: bytes, kind: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.served.cut_after is not None and code in (200, 206):
            body, self.served.cut_after = body[: self.served.cut_after], None
            self.close_connection = True
        self.wfile.write(body)
        self.served.body_bytes.append(len(body))

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # quiet: the tests assert on `requests`


def _range_start(header: str | None) -> int | None:
    match = re.fullmatch(r"bytes=(\d+)-", header or "")
    return int(match.group(1)) if match else None


def _confirmation_page(path: str, name: str) -> bytes:
    # The shape of Google Drive's "can't scan this file for viruses" page: a GET form
    # whose hidden fields, sent back, return the file itself.
    return (
        "<!DOCTYPE html><html><body><p>Google Drive can't scan this file for viruses.</p>"
        f'<form id="download-form" action="{path}" method="get">'
        '<input type="submit" value="Download anyway"/>'
        f'<input type="hidden" name="id" value="{name}">'
        '<input type="hidden" name="export" value="download">'
        '<input type="hidden" name="confirm" value="t">'
        '<input type="hidden" name="uuid" value="0f0e-1d1c"></form></body></html>'
    ).encode()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that timed out and hung up is what some tests want


@contextmanager
def weights_server(served: Served) -> Iterator[str]:
    """Serve `served` on 127.0.0.1 in a thread; yields the base URL (no trailing slash)."""
    handler = type("Handler", (_Handler,), {"served": served})
    server = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def refused_base_url() -> str:
    """A base URL on 127.0.0.1 where nothing listens: connections are refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
