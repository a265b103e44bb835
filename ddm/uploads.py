"""Clips uploaded to `ddm serve` to be scored: where they are kept and how (catalog layer).

Each upload lives in a folder of its own, `<home>/uploads/<id>/`, under an id the server
draws: the clip as `clip<suffix>` (the suffix one of `VIDEO_SUFFIXES`, else `.mp4`), its
facts in `upload.json`, and the figures its prediction draws. The client's file name is
kept in `upload.json` for display only; it never becomes a path. The bytes arrive in a
temporary file beside the folders, bounded while they stream; only a file that probes as
a video is moved into place, and `upload.json`, written last and atomically, is what makes
an upload exist. Nothing here executes or serves a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from ddm.errors import DdmError, InvalidInput, NotFound
from ddm.fs import TEMP_PREFIX, atomic_write, move_into_place, storage_problem

UPLOADS_FOLDER = "uploads"
META_FILE = "upload.json"
DEFAULT_SUFFIX = ".mp4"
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ts")
# The figures a prediction of an upload draws: the only files served from its folder. The
# saliency sheet and maps are named as `ddm predict --explain` names them beside a timeline.
FIGURES = {
    "timeline": "timeline.png",
    "saliency": "timeline-saliency.png",
    "saliency_maps": "timeline-saliency.npz",
}
MAX_NAME_CHARS = 255
MEGABYTE = 1_000_000
_ID = re.compile(r"[0-9a-f]{32}")


class UploadTooLarge(DdmError):
    """The upload passed the size limit; nothing of it is kept."""


@dataclass(frozen=True)
class Upload:
    """One stored upload: what `upload.json` holds."""

    id: str
    name: str  # the client's file name, for display only
    bytes: int
    suffix: str
    created_at: str
    frame_count: int | None = None
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None
    job_id: int | None = None  # the prediction job, once submitted
    run_id: int | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def uploads_root(home: Path) -> Path:
    return Path(home) / UPLOADS_FOLDER


# An upload still arriving this long after its last byte was written is from a server that
# was killed mid-upload (a clean stop or a refused upload removes its file at once).
STALE_PART_SECONDS = 6 * 3600


def remove_stale_parts(root: Path, older_than_s: float = STALE_PART_SECONDS) -> int:
    """Remove the partial files of uploads that will never finish (see
    `STALE_PART_SECONDS`); how many were removed. Another server on the same home may be
    receiving one now, so only files untouched for that long go."""
    cutoff = time.time() - older_than_s
    removed = 0
    for part in root.glob(f"{TEMP_PREFIX}*.part"):
        with contextlib.suppress(FileNotFoundError):
            if part.stat().st_mtime < cutoff:
                part.unlink()
                removed += 1
    return removed


def upload_folder(root: Path, upload_id: str) -> Path:
    """The folder of `upload_id`, which must be an id this module draws.

    Raises:
        NotFound: not such an id (so no request can name another path).
    """
    if not _ID.fullmatch(upload_id):
        raise NotFound(f"no upload {upload_id!r}")
    return root / upload_id


def clip_path(root: Path, upload: Upload) -> Path:
    return upload_folder(root, upload.id) / f"clip{upload.suffix}"


def figure_path(root: Path, upload_id: str, figure: str) -> Path:
    """The file of one of `FIGURES` of an upload.

    Raises:
        NotFound: an unknown figure name or upload id.
    """
    if figure not in FIGURES:
        raise NotFound(f"no figure {figure!r}; one of: {', '.join(FIGURES)}")
    return upload_folder(root, upload_id) / FIGURES[figure]


def display_name(name: str | None) -> str:
    """The client's file name as shown (escaped by the pages): as sent, with the quote that
    browsers send as %22 restored and control characters dropped, at most 255 characters."""
    text = (name or "").replace("%22", '"')
    text = "".join(ch for ch in text if ch.isprintable())
    return text[:MAX_NAME_CHARS] or "unnamed"


def suffix_for(name: str) -> str:
    suffix = Path(name).suffix.lower()
    return suffix if suffix in VIDEO_SUFFIXES else DEFAULT_SUFFIX


class IncomingUpload:
    """The bytes of one upload as they arrive, in a temporary file under `root`.

    `write` refuses past `max_bytes` (the partial file is removed at once); `accept` probes
    the file and moves it into its folder; `discard` removes whatever is left. Use it as a
    context manager: leaving it without `accept` discards.
    """

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.id = secrets.token_hex(16)
        self.size = 0
        self.path = root / f"{TEMP_PREFIX}{self.id}.part"
        self._handle: IO[bytes] | None = None

    def __enter__(self) -> IncomingUpload:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()

    def write(self, chunk: bytes) -> None:
        """Append `chunk`.

        Raises:
            UploadTooLarge: the upload would pass `max_bytes`; what was written is removed.
        """
        if self.size + len(chunk) > self.max_bytes:
            self.discard()
            raise UploadTooLarge(f"the upload is larger than the limit of {_size(self.max_bytes)}")
        try:
            if self._handle is None:
                self.root.mkdir(parents=True, exist_ok=True)
                self._handle = open(self.path, "xb")  # noqa: SIM115  (closed in accept/discard)
            self._handle.write(chunk)
        except OSError as exc:
            self.discard()
            raise (storage_problem(exc, self.root) or exc) from exc
        self.size += len(chunk)

    def accept(self, client_name: str | None) -> Upload:
        """Probe the received file and keep it if it is a video.

        Raises:
            InvalidInput: nothing arrived, or it is not a video (nothing is kept).
        """
        from ddm.ingest.probe import probe_video
        from ddm.vocab import ProbeStatus

        self._close()
        if self.size == 0:
            self.discard()
            raise InvalidInput("no file was uploaded: choose a video file")
        facts = probe_video(self.path)
        if facts.status != ProbeStatus.OK:
            self.discard()
            raise InvalidInput(f"not a video ddm can read: {facts.error}")
        name = display_name(client_name)
        upload = Upload(
            id=self.id,
            name=name,
            bytes=self.size,
            suffix=suffix_for(name),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            frame_count=facts.frame_count,
            fps=facts.fps,
            width=facts.width,
            height=facts.height,
            duration_s=facts.duration_s,
        )
        folder = upload_folder(self.root, self.id)
        folder.mkdir()
        move_into_place(self.path, clip_path(self.root, upload))
        save_upload(self.root, upload)
        return upload

    def discard(self) -> None:
        self._close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def _close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def save_upload(root: Path, upload: Upload) -> None:
    """Write `upload.json` atomically (the upload exists from then on)."""
    with atomic_write(upload_folder(root, upload.id) / META_FILE, "w") as handle:
        json.dump(upload.as_json(), handle, indent=2)


def get_upload(root: Path, upload_id: str) -> Upload:
    """The stored upload `upload_id`.

    Raises:
        NotFound: no such upload (or an id this module would never draw).
    """
    meta = upload_folder(root, upload_id) / META_FILE
    try:
        return Upload(**json.loads(meta.read_text()))
    except FileNotFoundError:
        raise NotFound(f"no upload {upload_id!r}") from None


def _size(count: int) -> str:
    return f"{count / MEGABYTE:g} MB"
