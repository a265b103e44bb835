"""`ddm weights` names the official files and finds them where the settings say;
`ddm weights fetch` downloads them."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from ddm.download import RECORD_FILE
from tests.cli.conftest import one_error_line
from tests.weights_server import Served, refused_base_url, weights_server


def test_weights_reports_found_and_missing_files(run_ddm, tmp_path: Path) -> None:
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "SLOW_8x8_R50.pyth").write_bytes(b"not really weights")
    result = run_ddm("weights", "--weights-dir", str(folder), "--hash", "--json")
    assert result.exit_code == 0, result.stderr
    rows = {row["model"]: row for row in json.loads(result.stdout)}
    assert rows["psp_encoder"]["file"] == "psp_ffhq_encode.pt"
    assert rows["psp_encoder"]["found"] is False and rows["psp_encoder"]["sha256"] is None
    assert rows["slow_r50"]["found"] is True and rows["slow_r50"]["bytes"] == 18
    assert rows["slow_r50"]["sha256"] == hashlib.sha256(b"not really weights").hexdigest()

    table = run_ddm("weights", "--weights-dir", str(folder))
    assert table.exit_code == 0 and "psp_ffhq_encode.pt" in table.stdout
    assert f"put the missing files in {folder}" in table.stderr.replace("\n", " ")


# `ddm weights fetch`, pointed at a local server through DDM_WEIGHTS_URL: never the internet.

PSP, SLOW = "psp_ffhq_encode.pt", "SLOW_8x8_R50.pyth"
FILES = {PSP: os.urandom(200_000), SLOW: os.urandom(150_000)}


@pytest.fixture
def served() -> Served:
    return Served(files=dict(FILES))


@pytest.fixture
def fetch_env(served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with weights_server(served) as base_url:
        yield {"DDM_WEIGHTS_URL": base_url, "DDM_WEIGHTS_DIR": str(tmp_path / "weights")}


def test_fetch_help_prints_its_own_usage(run_ddm) -> None:
    result = run_ddm("weights", "fetch", "--help")
    assert result.exit_code == 0, result.stderr
    assert "Usage: ddm weights fetch" in result.stdout and "--only" in result.stdout


def test_fetch_downloads_both_files_and_weights_then_finds_them(
    run_ddm, fetch_env: dict[str, str], tmp_path: Path
) -> None:
    result = run_ddm("weights", "fetch", "--json", env=fetch_env)
    assert result.exit_code == 0, result.stderr
    rows = {row["file_name"]: row for row in json.loads(result.stdout)}
    assert {name: row["status"] for name, row in rows.items()} == {PSP: "fetched", SLOW: "fetched"}
    assert rows[SLOW]["sha256"] == hashlib.sha256(FILES[SLOW]).hexdigest()
    # Neither publisher states a size or digest: the first download says so and records them.
    assert f"{PSP}: size/sha256 not pinned" in result.stderr.replace("\n", " ")
    assert json.loads((tmp_path / "weights" / RECORD_FILE).read_text()).keys() == {PSP, SLOW}

    listed = run_ddm("weights", "--json", env=fetch_env)
    assert listed.exit_code == 0, listed.stderr
    assert all(row["found"] for row in json.loads(listed.stdout))

    again = run_ddm("weights", "fetch", env=fetch_env)
    assert again.exit_code == 0, again.stderr
    assert again.stdout.count("present") == 2


def test_fetch_only_one_backbone(run_ddm, fetch_env: dict[str, str], served: Served) -> None:
    result = run_ddm("weights", "fetch", "--only", "slow_r50", "--json", env=fetch_env)
    assert [row["file_name"] for row in json.loads(result.stdout)] == [SLOW]
    assert [path for path, _ in served.requests] == [f"/{SLOW}"]


def test_interrupted_fetch_resumes(run_ddm, fetch_env: dict[str, str], served: Served) -> None:
    served.cut_after = 50_000
    first = run_ddm("weights", "fetch", "--only", "psp", env=fetch_env)
    one_error_line(first, 3, "closed after 50000 of 200000 bytes")
    second = run_ddm("weights", "fetch", "--only", "psp", "--json", env=fetch_env)
    assert second.exit_code == 0, second.stderr
    assert json.loads(second.stdout)[0]["resumed_from"] == 50_000
    assert served.requests[-1][1] == "bytes=50000-"


def test_wrong_checksum_against_the_record_moves_nothing(
    run_ddm, fetch_env: dict[str, str], served: Served, tmp_path: Path
) -> None:
    assert run_ddm("weights", "fetch", "--only", "slow_r50", env=fetch_env).exit_code == 0
    (tmp_path / "weights" / SLOW).unlink()
    served.files[SLOW] = os.urandom(150_000)  # the mirror now serves another file
    result = run_ddm("weights", "fetch", "--only", "slow_r50", env=fetch_env)
    one_error_line(result, 1, "recorded on its first download")
    assert sorted(p.name for p in (tmp_path / "weights").iterdir()) == [RECORD_FILE]


def test_missing_file_is_one_line(run_ddm, fetch_env: dict[str, str], served: Served) -> None:
    del served.files[PSP]
    result = run_ddm("weights", "fetch", "--only", "psp", env=fetch_env)
    one_error_line(result, 1, f"{fetch_env['DDM_WEIGHTS_URL']}/{PSP} answered HTTP 404")


def test_slow_server_times_out_naming_the_url(
    run_ddm, fetch_env: dict[str, str], served: Served
) -> None:
    served.delay = 3.0
    result = run_ddm("weights", "fetch", "--only", "psp", "--timeout", "0.2", env=fetch_env)
    one_error_line(result, 3, f"timed out after 0.2 s waiting for {fetch_env['DDM_WEIGHTS_URL']}")


def test_unreachable_network_prints_the_manual_route(run_ddm, tmp_path: Path) -> None:
    base = refused_base_url()
    env = {"DDM_WEIGHTS_URL": base, "DDM_WEIGHTS_DIR": str(tmp_path / "weights")}
    result = run_ddm("weights", "fetch", env=env)
    one_error_line(result, 3, "cannot reach 127.0.0.1")
    for name in (PSP, SLOW):
        assert name in result.stdout and f"{base}/{name}" in result.stdout
    assert str(tmp_path / "weights") in result.stdout
