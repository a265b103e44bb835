"""`ddm serve` as a real process on a free port of 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

START_SECONDS = 60  # imports and the schema check, on a busy machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_serve(cwd: Path, env: dict[str, str | None], *args: str) -> subprocess.Popen[str]:
    """`ddm serve ARGS...` through the CLI's entry point, with `env` over this process's
    environment (None unsets a variable)."""
    merged = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", *args],
        env=merged,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
    )


def fetch_when_up(server: subprocess.Popen[str], url: str) -> bytes:
    """The body of `url` once the server answers; fails with the server's output if it
    exits first."""
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read()
        except OSError as exc:
            if server.poll() is not None:
                stdout, stderr = server.communicate()
                message = f"ddm serve exited {server.returncode}: {stdout}{stderr}"
                raise AssertionError(message) from exc
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def stop(server: subprocess.Popen[str]) -> tuple[int, str, str]:
    """Ctrl-C, as a user stops it; returns the exit code, stdout and stderr."""
    server.send_signal(signal.SIGINT)
    try:
        stdout, stderr = server.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        stdout, stderr = server.communicate()
    return server.returncode, stdout, stderr
