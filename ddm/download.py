"""Fetching published files over HTTP into a folder (catalog layer; stdlib `urllib` only).

A download goes to `<name>.part` beside its target and resumes from there with an HTTP
Range request after an interruption; the whole file's size and sha256 are checked before
it is renamed into place, so the target is either absent or the checked file.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import http.cookiejar
import json
import logging
import os
import re
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from ddm.config import mask_url
from ddm.errors import DdmError, SetupError
from ddm.fs import atomic_write, check_writable_dir, move_into_place, sha256_of

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
PART_SUFFIX = ".part"
# Sizes and digests seen on the first download of files published without them, so that
# every later download is checked against the first (trust on first use).
RECORD_FILE = "fetched-weights.json"
_CHUNK = 1 << 20
# A confirmation page is a few kB; anything this large that calls itself HTML is not one.
_MAX_PAGE = 1 << 20
_USER_AGENT = "ddm (weights fetch; python urllib)"

PUBLISHED, RECORDED, NOT_PINNED = "published", "recorded", "not pinned"


class DownloadFailed(DdmError):
    """The server answered, but not with the file, or the file did not check out."""


class NetworkProblem(SetupError):
    """The server cannot be reached or stopped answering: an environment problem (exit 3)."""


@dataclass(frozen=True)
class PublishedFile:
    """A file as its authors publish it.

    Attributes:
        file_name: the name it is stored under.
        url: a direct link; a Google Drive link may answer with a confirmation page first.
        page: where a person downloads it by hand, when that differs from `url`.
        size: its length in bytes; None when the publisher does not state it.
        sha256: its hex digest; None when the publisher does not state it.
    """

    file_name: str
    url: str
    page: str = ""
    size: int | None = None
    sha256: str | None = None

    @property
    def manual_url(self) -> str:
        return self.page or self.url


@dataclass(frozen=True)
class FetchResult:
    """What `fetch_file` did for one file.

    Attributes:
        status: "fetched", or "present" when the file was already in place.
        resumed_from: bytes of an interrupted download that were kept, not fetched again.
        checked: what size and sha256 were checked against: "published", "recorded"
            (seen on the file's first download), or "not pinned" (first download of a
            file published without them: its values are recorded now).
        sha256: empty for a present file that nothing pins (not read).
    """

    file_name: str
    path: str
    url: str
    status: str
    bytes: int
    sha256: str
    resumed_from: int
    checked: str


class ProgressHook(Protocol):
    """Told about each download as it goes (the CLI draws a bar)."""

    def start(self, file_name: str, total: int | None, done: int) -> None: ...

    def advance(self, size: int) -> None: ...


class _NoProgress:
    def start(self, file_name: str, total: int | None, done: int) -> None:
        pass

    def advance(self, size: int) -> None:
        pass


@dataclass(frozen=True)
class _Expected:
    size: int | None
    sha256: str | None
    source: str


def source_url(published: PublishedFile, base_url: str | None = None) -> str:
    """Where to download `published` from: `BASE/<file name>` when a base URL (a mirror)
    is given, else its published URL."""
    if base_url:
        return f"{base_url.rstrip('/')}/{published.file_name}"
    return published.url


def partial_path(target: Path) -> Path:
    """Where the download of `target` accumulates until it is checked."""
    return target.with_name(target.name + PART_SUFFIX)


def fetch_files(
    files: Sequence[PublishedFile],
    folder: str | os.PathLike[str],
    *,
    base_url: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    progress: ProgressHook | None = None,
) -> list[FetchResult]:
    """Fetch each of `files` into `folder` in turn (see `fetch_file`)."""
    return [
        fetch_file(f, folder, base_url=base_url, timeout=timeout, progress=progress) for f in files
    ]


def fetch_file(
    published: PublishedFile,
    folder: str | os.PathLike[str],
    *,
    base_url: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    progress: ProgressHook | None = None,
) -> FetchResult:
    """Download `published` into `folder` unless it is already there, resuming a partial
    download, and move it into place once its size and sha256 check out.

    Args:
        published: the file, its URL and, where known, its size and sha256.
        folder: where it goes, under its `file_name`.
        base_url: fetch `BASE/<file name>` instead of the published URL.
        timeout: seconds to wait on the server (connecting, and for each read).
        progress: told how far each download is.

    Raises:
        DownloadFailed: an HTTP error, a web page instead of the file, a file whose size
            or sha256 differs from the published or recorded one (nothing is moved into
            place and the partial file is removed), or a present file that differs.
        NetworkProblem: the server cannot be reached, timed out or cut the connection
            (the bytes received are kept for the next run to resume from).
        SetupError: `folder` cannot be written.
    """
    folder = Path(folder)
    target = folder / published.file_name
    url = source_url(published, base_url)
    expected = _expected(published, folder)
    if target.is_file():
        return _check_present(target, url, expected)
    check_writable_dir(folder, "DDM_WEIGHTS_DIR")
    part = partial_path(target)
    with _locked(part) as out:
        hook = progress or _NoProgress()
        resumed_from = _download_into(out, url, expected.size, timeout, hook, published.file_name)
        size, digest = part.stat().st_size, sha256_of(part)
        problem = _mismatch(size, digest, expected)
        if problem:
            part.unlink()
            raise DownloadFailed(f"{mask_url(url)} gave {problem}; nothing was moved into place")
        move_into_place(part, target)
    if expected.source == NOT_PINNED:
        _record(folder, published.file_name, url, size, digest)
    logger.info("fetched file=%s bytes=%s sha256=%s", target, size, digest[:12])
    return FetchResult(
        published.file_name,
        str(target),
        url,
        "fetched",
        size,
        digest,
        resumed_from,
        expected.source,
    )


def _expected(published: PublishedFile, folder: Path) -> _Expected:
    if published.size is not None or published.sha256 is not None:
        return _Expected(published.size, published.sha256, PUBLISHED)
    recorded = read_record(folder).get(published.file_name)
    if isinstance(recorded, dict):
        return _Expected(recorded.get("bytes"), recorded.get("sha256"), RECORDED)
    return _Expected(None, None, NOT_PINNED)


def _check_present(target: Path, url: str, expected: _Expected) -> FetchResult:
    size = target.stat().st_size
    digest = sha256_of(target) if expected.sha256 else ""
    problem = _mismatch(size, digest, expected)
    if problem:
        raise DownloadFailed(f"{target} is in place but has {problem}; remove it and fetch again")
    return FetchResult(target.name, str(target), url, "present", size, digest, 0, expected.source)


def _mismatch(size: int, digest: str, expected: _Expected) -> str:
    """'' when the file checks out, else what differs, for a message."""
    which = "published" if expected.source == PUBLISHED else "recorded on its first download"
    if expected.size is not None and size != expected.size:
        return f"{size} bytes, expected {expected.size} ({which})"
    if expected.sha256 and digest != expected.sha256:
        return f"sha256 {digest}, expected {expected.sha256} ({which})"
    return ""


@contextlib.contextmanager
def _locked(part: Path) -> Iterator[IO[bytes]]:
    # Two fetches appending to one partial file would interleave their bytes; the second
    # is refused instead of waiting, since the first may run for many minutes.
    fd = os.open(part, os.O_RDWR | os.O_CREAT, 0o666)
    with os.fdopen(fd, "r+b") as out:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DownloadFailed(
                f"another ddm is downloading {part.name[: -len(PART_SUFFIX)]} into "
                f"{part.parent}; wait for it to finish"
            ) from None
        try:
            yield out
        finally:
            # A download that failed before its first byte leaves nothing to resume.
            if part.exists() and os.fstat(fd).st_size == 0:
                part.unlink()


def _download_into(
    out: IO[bytes],
    url: str,
    expected_size: int | None,
    timeout: float,
    progress: ProgressHook,
    file_name: str,
) -> int:
    """Complete the partial file `out`; returns how many bytes were kept from before."""
    offset = os.fstat(out.fileno()).st_size
    if expected_size is not None and offset > expected_size:
        offset = 0  # not a prefix of this file
    if expected_size is not None and offset == expected_size:
        return offset  # finished before, not yet checked and moved
    try:
        response = _open(url, offset, timeout)
    except _AlreadyComplete as done:
        if done.total == offset:
            return offset
        offset, response = 0, _open(url, 0, timeout)
    with response:
        if response.status != 206:
            offset = 0  # the server sends the whole file
        out.truncate(offset)
        out.seek(offset)
        length = _content_length(response)
        progress.start(file_name, offset + length if length is not None else expected_size, offset)
        received = _copy(response, out, progress, url, timeout)
    if length is not None and received < length:
        raise NetworkProblem(
            f"the connection to {mask_url(url)} closed after {offset + received} of "
            f"{offset + length} bytes; run the command again to resume"
        )
    return offset


class _AlreadyComplete(Exception):
    # HTTP 416 to a Range request: the partial file is as long as the server's, or longer.
    def __init__(self, total: int | None) -> None:
        self.total = total


def _open(url: str, offset: int, timeout: float) -> http.client.HTTPResponse:
    """The file's response from `offset` on, past at most one confirmation page."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    current = url
    for _ in range(2):
        response = _request(opener, current, offset, timeout)
        if not response.headers.get_content_type().startswith("text/html"):
            return response
        with response:
            page = response.read(_MAX_PAGE)
        confirmed = _confirmed_url(current, page)
        if confirmed is None:
            break
        current = confirmed
    raise DownloadFailed(
        f"{mask_url(url)} answered with a web page, not the file (moved, or a sign-in or "
        "quota page); download it by hand"
    )


def _request(
    opener: urllib.request.OpenerDirector, url: str, offset: int, timeout: float
) -> http.client.HTTPResponse:
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return opener.open(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416:
            raise _AlreadyComplete(_range_total(exc.headers.get("Content-Range"))) from None
        raise DownloadFailed(f"{mask_url(url)} answered HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise _network_problem(url, exc.reason, timeout) from None
    except (OSError, http.client.HTTPException) as exc:
        raise _network_problem(url, exc, timeout) from None


def _network_problem(url: str, reason: object, timeout: float) -> NetworkProblem:
    if isinstance(reason, TimeoutError):
        return NetworkProblem(f"timed out after {timeout:g} s waiting for {mask_url(url)}")
    host = urlsplit(url).hostname or url
    return NetworkProblem(f"cannot reach {host} ({_one_line(reason)}) for {mask_url(url)}")


def _copy(
    response: http.client.HTTPResponse,
    out: IO[bytes],
    progress: ProgressHook,
    url: str,
    timeout: float,
) -> int:
    received = 0
    try:
        while chunk := response.read(_CHUNK):
            out.write(chunk)
            received += len(chunk)
            progress.advance(len(chunk))
    except http.client.IncompleteRead as exc:
        out.write(exc.partial)
        received += len(exc.partial)
    except TimeoutError:
        raise NetworkProblem(
            f"timed out after {timeout:g} s reading {mask_url(url)}; the {received} bytes "
            "received are kept: run the command again to resume"
        ) from None
    except (OSError, http.client.HTTPException) as exc:
        raise NetworkProblem(
            f"lost the connection to {mask_url(url)} ({_one_line(exc)}); the bytes received "
            "are kept: run the command again to resume"
        ) from None
    out.flush()
    return received


def _content_length(response: http.client.HTTPResponse) -> int | None:
    value = response.headers.get("Content-Length", "")
    return int(value) if value.isdigit() else None


def _range_total(content_range: str | None) -> int | None:
    match = re.fullmatch(r"bytes \*/(\d+)", (content_range or "").strip())
    return int(match.group(1)) if match else None


def _one_line(reason: object) -> str:
    text = str(reason).strip()
    return text.splitlines()[0] if text else type(reason).__name__


class _FormReader(HTMLParser):
    """The first form of a page: its action, method and the values of its inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.method = "get"
        self.fields: list[tuple[str, str]] = []
        self._inside = False
        self._done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {key: value or "" for key, value in attrs}
        if tag == "form" and not self._done and self.action is None:
            self.action, self.method = values.get("action", ""), values.get("method", "get")
            self._inside = True
        elif tag == "input" and self._inside and values.get("name"):
            self.fields.append((values["name"], values.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self._inside:
            self._inside, self._done = False, True


def _confirmed_url(url: str, page: bytes) -> str | None:
    """The URL a Google Drive "can't scan this file for viruses" page leads to, or None.

    Drive answers a large file's download link with such a page. Today it carries a GET
    form whose hidden fields (id, export, confirm, uuid) fetch the file; older pages held
    a `confirm=TOKEN` link, which pixel2style2pixel's own download script extracts.
    """
    text = page.decode("utf-8", "replace")
    form = _FormReader()
    form.feed(text)
    if form.action and form.method.lower() == "get" and form.fields:
        return f"{urljoin(url, form.action)}?{urlencode(form.fields)}"
    token = re.search(r"confirm=([0-9A-Za-z_-]+)", text)
    if token is None:
        return None
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "confirm"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("confirm", token.group(1))])))


def read_record(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The sizes and digests recorded on first downloads in `folder` (empty if none)."""
    path = Path(folder) / RECORD_FILE
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise DownloadFailed(
            f"{path} cannot be read ({_one_line(exc)}); fix or remove it"
        ) from None
    return record if isinstance(record, dict) else {}


def _record(folder: Path, file_name: str, url: str, size: int, digest: str) -> None:
    record = read_record(folder)
    record[file_name] = asdict(
        _Recorded(mask_url(url), size, digest, datetime.now(UTC).isoformat(timespec="seconds"))
    )
    with atomic_write(folder / RECORD_FILE, "w") as handle:
        json.dump(record, handle, indent=2, sort_keys=True)
        handle.write("\n")


@dataclass(frozen=True)
class _Recorded:
    url: str
    bytes: int
    sha256: str
    fetched_at: str
