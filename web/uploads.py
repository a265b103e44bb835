"""Try a clip: the upload form, the upload itself and the page of its prediction (web layer).

Only a server started with `--allow-uploads` has these routes. An upload is a multipart
POST that needs the start token and the CSRF value, like every write; the CSRF field must
come before the file, so not one byte is stored for a forged form. The body is streamed
into `ddm.uploads`' temporary file and refused with 413 as soon as it passes the limit;
the stored clip is probed, scored by `tasks.uploads` (the functions `ddm predict
--explain` calls), and shown by its server-drawn id, as are its figures (by name, from a
fixed list). Nothing from the request becomes a path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from ddm.config import Settings
from ddm.errors import InvalidInput, NotFound
from ddm.services import listings
from ddm.uploads import (
    MEGABYTE,
    IncomingUpload,
    UploadTooLarge,
    figure_path,
    remove_stale_parts,
    uploads_root,
)
from ddm.vocab import ACTIVE_JOB_STATUSES, JobStatus
from web.security import CSRF_FIELD

FILE_FIELD = "clip"
RUN_FIELD = "run"
# A checkbox, checked on the form: absent from the POST when unchecked, as HTML sends it.
SALIENCY_FIELD = "saliency"
MAX_FIELD_BYTES = 4096
# Room for the multipart framing and the small fields beside the file.
FORM_OVERHEAD = 64 * 1024
# A result page still waiting for its job asks the browser to load it again this often.
REFRESH_SECONDS = 2
_PENDING = tuple(status.value for status in ACTIVE_JOB_STATUSES)


@dataclass(frozen=True)
class UploadCfg:
    """What the upload routes need: the settings (home, broker, weights) and the limit."""

    settings: Settings
    max_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings, limit_mb: int | None = None) -> UploadCfg:
        return cls(settings, (limit_mb or settings.upload_max_mb) * MEGABYTE)

    @property
    def root(self) -> Path:
        return uploads_root(self.settings.home)

    def tidy(self) -> int:
        """Remove what a server killed mid-upload left (`ddm.uploads.remove_stale_parts`)."""
        return remove_stale_parts(self.root)


def upload_routes(pages: Any, cfg: UploadCfg) -> list[Route]:
    """The routes of uploads, rendered by `pages` (the app's `_Pages`)."""
    handlers = _Uploads(pages, cfg)
    return [
        Route("/uploads", handlers.form_or_receive, methods=["GET", "POST"]),
        Route("/uploads/{upload_id}", handlers.page),
        Route("/api/uploads/{upload_id}", handlers.api),
        Route("/uploads/{upload_id}/figures/{figure}", handlers.figure),
    ]


class _Uploads:
    def __init__(self, pages: Any, cfg: UploadCfg) -> None:
        self.pages = pages
        self.cfg = cfg

    async def form_or_receive(self, request: Request) -> Response:
        if request.method == "POST":
            return await self.receive(request)
        return await run_in_threadpool(self.form, request)

    def form(self, request: Request) -> Response:
        with self.pages.session() as session:
            rows = listings.run_rows(session, limit=50)
        finished = [row for row in rows if row["status"] == JobStatus.SUCCEEDED.value]
        limit = f"{self.cfg.max_bytes / MEGABYTE:g} MB"
        return self.pages.render(request, "upload_form.html", runs=finished, limit=limit)

    async def receive(self, request: Request) -> Response:
        access = self.pages.access
        access.check_writer(request)  # 403 read-only, 401 without the token: nothing read yet
        self._check_declared_size(request)
        boundary = _boundary(request)
        if boundary is None:
            access.check_csrf(request, None)  # 403: not our form, so no CSRF value either
            raise InvalidInput("an upload is a multipart/form-data POST of the upload form")
        with IncomingUpload(self.cfg.root, self.cfg.max_bytes) as incoming:
            form = _FormStream(boundary, incoming, lambda f: access.check_csrf(request, f))
            await _feed(request, form, self.cfg.max_bytes + FORM_OVERHEAD)
            access.check_csrf(request, form.fields.get(CSRF_FIELD))
            if form.filename is None:
                raise InvalidInput("no file was uploaded: choose a video file")
            # A wrong run is refused before the clip is kept.
            run_id = await run_in_threadpool(self._run, form.fields.get(RUN_FIELD))
            upload = await run_in_threadpool(incoming.accept, form.filename)
        saliency = form.fields.get(SALIENCY_FIELD) is not None
        await run_in_threadpool(self._submit, upload, run_id, saliency)
        return RedirectResponse(f"/uploads/{upload.id}", status_code=303)

    def _check_declared_size(self, request: Request) -> None:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.cfg.max_bytes + FORM_OVERHEAD:
            raise HTTPException(413, _too_large(self.cfg.max_bytes))

    def _run(self, run_ref: str | None) -> int:
        from tasks.uploads import pick_run

        return pick_run(self.pages.factory, run_ref)

    def _submit(self, upload: Any, run_id: int, saliency: bool) -> None:
        from tasks.uploads import submit_upload_prediction

        submit_upload_prediction(
            self.cfg.settings, self.pages.factory, upload, run_id, saliency=saliency
        )

    def _document(self, request: Request) -> dict[str, Any]:
        from tasks.uploads import upload_prediction

        upload_id = request.path_params["upload_id"]
        return upload_prediction(self.cfg.settings, self.pages.factory, upload_id)

    def page(self, request: Request) -> Response:
        document = self._document(request)
        response = self.pages.render(request, "upload.html", **document)
        job = document["job"]
        if job is None or job["status"] in _PENDING:
            response.headers["refresh"] = str(REFRESH_SECONDS)
        return response

    def api(self, request: Request) -> Response:
        return JSONResponse(self._document(request))

    def figure(self, request: Request) -> Response:
        params = request.path_params
        path = figure_path(self.cfg.root, params["upload_id"], params["figure"])
        if not path.is_file():
            raise NotFound(f"upload {params['upload_id']} has no {params['figure']} figure yet")
        if path.suffix == ".npz":  # the raw saliency maps: a download, never shown inline
            return FileResponse(path, media_type="application/octet-stream", filename=path.name)
        return FileResponse(path, media_type="image/png")


async def _feed(request: Request, form: _FormStream, max_body: int) -> None:
    """Stream the body into `form`; 413 as soon as it passes `max_body` or the file
    passes the limit (the partial file is removed by then)."""
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_body:
                raise UploadTooLarge(_too_large(max_body - FORM_OVERHEAD))
            await run_in_threadpool(form.feed, chunk)
    except UploadTooLarge as exc:
        raise HTTPException(413, str(exc)) from None
    form.finish()


def _boundary(request: Request) -> bytes | None:
    """The multipart boundary; None when the body is not multipart/form-data."""
    from python_multipart.multipart import parse_options_header

    kind, options = parse_options_header(request.headers.get("content-type", ""))
    if kind != b"multipart/form-data" or not options.get(b"boundary"):
        return None
    return options[b"boundary"]


def _too_large(max_bytes: int) -> str:
    return f"the upload is larger than the limit of {max_bytes / MEGABYTE:g} MB"


class _FormStream:
    """A multipart body fed chunk by chunk: small fields kept in `fields`, the one file
    part written to `incoming`. `before_file` is called with the CSRF field (or None)
    when the file part starts, before any of its bytes are kept."""

    def __init__(
        self,
        boundary: bytes,
        incoming: IncomingUpload,
        before_file: Callable[[str | None], None],
    ) -> None:
        from python_multipart.multipart import MultipartParser

        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self._incoming = incoming
        self._before_file = before_file
        self._header = [b"", b""]
        self._disposition = b""
        self._name = ""
        self._value = bytearray()
        self._in_file = False
        callbacks = {
            "on_part_begin": self._part_begin,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_header_field": lambda data, start, end: self._add_header(0, data[start:end]),
            "on_header_value": lambda data, start, end: self._add_header(1, data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
        }
        self._parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]

    def feed(self, chunk: bytes) -> None:
        from python_multipart.exceptions import MultipartParseError

        try:
            self._parser.write(chunk)
        except MultipartParseError as exc:
            raise InvalidInput(f"a malformed upload: {exc}") from None

    def finish(self) -> None:
        self._parser.finalize()

    def _part_begin(self) -> None:
        self._disposition, self._name, self._in_file = b"", "", False
        self._value = bytearray()

    def _add_header(self, index: int, data: bytes) -> None:
        self._header[index] += data
        if len(self._header[index]) > MAX_FIELD_BYTES:
            raise InvalidInput("a malformed upload: a part header is too long")

    def _header_end(self) -> None:
        if self._header[0].lower() == b"content-disposition":
            self._disposition = self._header[1]
        self._header = [b"", b""]

    def _headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self._disposition)
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" not in options:
            return
        if self._name != FILE_FIELD or self.filename is not None:
            raise InvalidInput(f"an upload carries one file, in the field {FILE_FIELD!r}")
        self._before_file(self.fields.get(CSRF_FIELD))
        self.filename = options[b"filename"].decode("utf-8", "replace")
        self._in_file = True

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self._incoming.write(data[start:end])
            return
        self._value += data[start:end]
        if len(self._value) > MAX_FIELD_BYTES:
            raise InvalidInput(f"the form field {self._name!r} is longer than {MAX_FIELD_BYTES}")

    def _part_end(self) -> None:
        if not self._in_file and self._name:
            self.fields[self._name] = self._value.decode("utf-8", "replace")
