"""Downloading published files: resume, size and sha256 checks, and the failures a person
meets (404, a slow or unreachable server), against a local server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ddm.download import (
    RECORD_FILE,
    DownloadFailed,
    NetworkProblem,
    PublishedFile,
    fetch_file,
    partial_path,
)
from tests.weights_server import Served, refused_base_url, weights_server

DATA = os.urandom(300_000)
NAME = "backbone.pt"


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy configured on the machine must not stand between the tests and 127.0.0.1.
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def served() -> Served:
    return Served(files={NAME: DATA})


@pytest.fixture
def base_url(served: Served) -> Iterator[str]:
    with weights_server(served) as url:
        yield url


def pinned(base_url: str, data: bytes = DATA) -> PublishedFile:
    return PublishedFile(
        NAME, f"{base_url}/{NAME}", size=len(data), sha256=hashlib.sha256(data).hexdigest()
    )


def test_fetch_places_the_checked_file(base_url: str, tmp_path: Path) -> None:
    result = fetch_file(pinned(base_url), tmp_path)
    assert (tmp_path / NAME).read_bytes() == DATA
    assert (result.status, result.checked, result.resumed_from) == ("fetched", "published", 0)
    assert result.sha256 == hashlib.sha256(DATA).hexdigest()
    assert sorted(p.name for p in tmp_path.iterdir()) == [NAME]


def test_interrupted_download_resumes_with_only_the_rest(
    served: Served, base_url: str, tmp_path: Path
) -> None:
    served.cut_after = 100_000
    with pytest.raises(NetworkProblem, match="100000 of 300000 bytes") as failure:
        fetch_file(pinned(base_url), tmp_path)
    assert "run the command again to resume" in str(failure.value)
    assert not (tmp_path / NAME).exists()
    assert partial_path(tmp_path / NAME).stat().st_size == 100_000

    result = fetch_file(pinned(base_url), tmp_path)
    assert result.resumed_from == 100_000 and result.status == "fetched"
    assert served.requests[-1][1] == "bytes=100000-"
    assert served.body_bytes[-1] == 200_000  # only the rest crossed the wire
    assert (tmp_path / NAME).read_bytes() == DATA
    assert not partial_path(tmp_path / NAME).exists()


def test_server_ignoring_the_range_restarts_from_zero(
    served: Served, base_url: str, tmp_path: Path
) -> None:
    partial_path(tmp_path / NAME).write_bytes(b"stale bytes of another file")
    served.ignore_range = True
    result = fetch_file(pinned(base_url), tmp_path)
    assert result.resumed_from == 0
    assert (tmp_path / NAME).read_bytes() == DATA


def test_wrong_checksum_moves_nothing_into_place(base_url: str, tmp_path: Path) -> None:
    published = PublishedFile(NAME, f"{base_url}/{NAME}", size=len(DATA), sha256="0" * 64)
    with pytest.raises(DownloadFailed) as failure:
        fetch_file(published, tmp_path)
    message = str(failure.value)
    assert "sha256" in message and f"{base_url}/{NAME}" in message and "\n" not in message
    assert hashlib.sha256(DATA).hexdigest() in message
    assert list(tmp_path.iterdir()) == []  # neither the file nor its partial download


def test_wrong_size_moves_nothing_into_place(base_url: str, tmp_path: Path) -> None:
    published = pinned(base_url, DATA + b"!")
    with pytest.raises(DownloadFailed, match="300000 bytes, expected 300001"):
        fetch_file(published, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_missing_file_is_one_clear_line(base_url: str, tmp_path: Path) -> None:
    published = PublishedFile("gone.pt", f"{base_url}/gone.pt")
    with pytest.raises(DownloadFailed) as failure:
        fetch_file(published, tmp_path)
    message = str(failure.value)
    assert "HTTP 404" in message and f"{base_url}/gone.pt" in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []


def test_slow_server_times_out_naming_the_url(
    served: Served, base_url: str, tmp_path: Path
) -> None:
    served.delay = 3.0
    with pytest.raises(NetworkProblem) as failure:
        fetch_file(pinned(base_url), tmp_path, timeout=0.2)
    message = str(failure.value)
    assert "timed out after 0.2 s" in message and f"{base_url}/{NAME}" in message
    assert not (tmp_path / NAME).exists()


def test_unreachable_server_is_a_network_problem(tmp_path: Path) -> None:
    url = f"{refused_base_url()}/{NAME}"
    with pytest.raises(NetworkProblem) as failure:
        fetch_file(PublishedFile(NAME, url), tmp_path)
    message = str(failure.value)
    assert "cannot reach" in message and url in message and "\n" not in message


def test_confirmation_page_is_answered(served: Served, base_url: str, tmp_path: Path) -> None:
    served.confirm_first.add(NAME)
    result = fetch_file(pinned(base_url), tmp_path)
    assert (tmp_path / NAME).read_bytes() == DATA and result.status == "fetched"
    assert "confirm=t" in served.requests[-1][0]


def test_web_page_instead_of_the_file_is_refused(
    served: Served, base_url: str, tmp_path: Path
) -> None:
    served.files["page.pt"] = b"<html><body>Sign in to continue</body></html>"
    served.html.add("page.pt")
    with pytest.raises(DownloadFailed, match="a web page, not the file") as failure:
        fetch_file(PublishedFile("page.pt", f"{base_url}/page.pt"), tmp_path)
    assert f"{base_url}/page.pt" in str(failure.value)
    assert list(tmp_path.iterdir()) == []


def test_present_file_is_checked_not_fetched_again(
    served: Served, base_url: str, tmp_path: Path
) -> None:
    fetch_file(pinned(base_url), tmp_path)
    requests = len(served.requests)
    result = fetch_file(pinned(base_url), tmp_path)
    assert result.status == "present" and result.checked == "published"
    assert len(served.requests) == requests

    (tmp_path / NAME).write_bytes(b"something else")
    with pytest.raises(DownloadFailed, match="remove it and fetch again"):
        fetch_file(pinned(base_url), tmp_path)


def test_unpinned_file_records_what_it_saw_and_checks_later_downloads(
    served: Served, base_url: str, tmp_path: Path
) -> None:
    published = PublishedFile(NAME, f"{base_url}/{NAME}")
    first = fetch_file(published, tmp_path)
    assert first.checked == "not pinned"
    record = json.loads((tmp_path / RECORD_FILE).read_text())[NAME]
    assert record["bytes"] == len(DATA)
    assert record["sha256"] == hashlib.sha256(DATA).hexdigest()

    (tmp_path / NAME).unlink()
    served.files[NAME] = DATA[::-1]
    with pytest.raises(DownloadFailed, match="recorded on its first download"):
        fetch_file(published, tmp_path)
    assert not (tmp_path / NAME).exists()

    served.files[NAME] = DATA
    assert fetch_file(published, tmp_path).checked == "recorded"


def test_base_url_replaces_the_published_location(base_url: str, tmp_path: Path) -> None:
    published = PublishedFile(NAME, f"{refused_base_url()}/elsewhere/{NAME}")
    result = fetch_file(published, tmp_path, base_url=base_url + "/")
    assert result.url == f"{base_url}/{NAME}"
    assert (tmp_path / NAME).read_bytes() == DATA


def test_partial_file_already_whole_is_checked_and_placed(
    served: Served, base_url: str, tmp_path: Path
) -> None:
    # A run stopped after the last byte but before the move: the server answers the
    # Range request with 416 and the file's length, and nothing is fetched again.
    partial_path(tmp_path / NAME).write_bytes(DATA)
    result = fetch_file(PublishedFile(NAME, f"{base_url}/{NAME}"), tmp_path)
    assert result.resumed_from == len(DATA) and served.body_bytes == [0]
    assert (tmp_path / NAME).read_bytes() == DATA
