"""`ddm serve` as a process: it listens on 127.0.0.1:N, prints its address, answers the
JSON twins, and stops cleanly on SIGINT (Ctrl-C)."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

from tests.conftest import private_ddm_env
from tests.web.serving import fetch_when_up, free_port, start_serve, stop


def _serve(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return start_serve(tmp_path, private_ddm_env(tmp_path / "home"), *args)


def test_ddm_serve_listens_on_loopback_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    server = _serve(tmp_path, "--port", str(port))
    try:
        body = fetch_when_up(server, f"http://127.0.0.1:{port}/api/datasets")
    finally:
        code, stdout, stderr = stop(server)
    assert json.loads(body) == []
    assert code in (0, 130), stderr
    assert f"http://127.0.0.1:{port}/ (read-only)" in stdout
    assert "warning" not in stderr and "Traceback" not in stderr


def test_ddm_serve_says_so_when_it_listens_beyond_this_machine(tmp_path: Path) -> None:
    port = free_port()
    args = ("--host", "0.0.0.0", "--port", str(port), "--allow-uploads", "--upload-limit", "3")
    server = _serve(tmp_path, *args)
    try:
        fetch_when_up(server, f"http://127.0.0.1:{port}/api/jobs")
        form = fetch_when_up(server, f"http://127.0.0.1:{port}/uploads").decode()
    finally:
        code, stdout, stderr = stop(server)
    assert code in (0, 130), stderr
    assert "warning: listening on 0.0.0.0" in stderr
    assert f"http://0.0.0.0:{port}/?token=" in stdout
    assert f"clips to try: up to 3 MB each, kept in {tmp_path / 'home' / 'uploads'}" in stdout
    assert "Files up to 3 MB;" in form


def test_a_port_in_use_is_one_line_and_exit_3(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        server = _serve(tmp_path, "--port", str(taken.getsockname()[1]))
        _, stderr = server.communicate(timeout=60)
    assert server.returncode == 3, stderr
    assert stderr.strip().startswith("error: cannot listen on 127.0.0.1:")
    assert len(stderr.strip().splitlines()) == 1
