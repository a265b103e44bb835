"""`ddm serve` as a process: it listens on 127.0.0.1:N, prints its address, answers the
JSON twins, and stops cleanly on SIGINT (Ctrl-C)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.conftest import private_ddm_env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    private = private_ddm_env(tmp_path / "home")  # every other DDM_ variable unset
    env = {k: v for k, v in {**os.environ, **private}.items() if v is not None}
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )


def _fetch(url: str, deadline: float) -> bytes:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _stop(server: subprocess.Popen[str]) -> tuple[int, str, str]:
    server.send_signal(signal.SIGINT)
    stdout, stderr = server.communicate(timeout=30)
    return server.returncode, stdout, stderr


def test_ddm_serve_listens_on_loopback_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = _free_port()
    server = _serve(tmp_path, "--port", str(port))
    try:
        body = _fetch(f"http://127.0.0.1:{port}/api/datasets", time.monotonic() + 60)
    finally:
        code, stdout, stderr = _stop(server)
    assert json.loads(body) == []
    assert code in (0, 130), stderr
    assert f"http://127.0.0.1:{port}/ (read-only)" in stdout
    assert "warning" not in stderr and "Traceback" not in stderr


def test_ddm_serve_says_so_when_it_listens_beyond_this_machine(tmp_path: Path) -> None:
    port = _free_port()
    server = _serve(tmp_path, "--host", "0.0.0.0", "--port", str(port), "--allow-uploads")
    try:
        _fetch(f"http://127.0.0.1:{port}/api/jobs", time.monotonic() + 60)
    finally:
        code, stdout, stderr = _stop(server)
    assert code in (0, 130), stderr
    assert "warning: listening on 0.0.0.0" in stderr
    assert f"http://0.0.0.0:{port}/?token=" in stdout


def test_a_port_in_use_is_one_line_and_exit_3(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        server = _serve(tmp_path, "--port", str(taken.getsockname()[1]))
        _, stderr = server.communicate(timeout=60)
    assert server.returncode == 3, stderr
    assert stderr.strip().startswith("error: cannot listen on 127.0.0.1:")
    assert len(stderr.strip().splitlines()) == 1
