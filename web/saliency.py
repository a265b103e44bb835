"""A video's saliency maps on its page: the button that computes them, and the files once
computed (web layer).

A GET never computes them (seconds to minutes of work): the page shows them when
`tasks.video_saliency` finds them, and a server that writes offers a form that POSTs to
`/videos/<id>/saliency`, a write like cancelling a job (the token and the CSRF value),
which records a `saliency` job. The sheet and the maps are served by video id and run id,
from names the server makes; nothing from the request becomes a path.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Route

from ddm.errors import InvalidInput, NotFound
from ddm.vocab import JobStatus
from web.security import CSRF_FIELD, form_field

RUN_FIELD = "run"
_RUN_ID = re.compile(r"[1-9][0-9]{0,8}")


def saliency_routes(pages: Any) -> list[Route]:
    """The routes of a video's saliency, over the app's `_Pages`."""
    handlers = _Saliency(pages)
    return [
        Route("/videos/{video_id:int}/saliency", handlers.compute, methods=["POST"]),
        Route("/videos/{video_id:int}/saliency.png", handlers.sheet),
        Route("/videos/{video_id:int}/saliency.npz", handlers.maps),
    ]


def saliency_document(pages: Any, video_id: int, run_id: int | None) -> dict[str, Any]:
    """What a video's page and its twin show of its saliency: the run, the URLs of the
    sheet and the maps once computed (the keys of `ddm predict --explain --json`), and a
    job computing them."""
    from tasks.video_saliency import video_saliency

    found = video_saliency(pages.settings, pages.factory, video_id, run_id)
    base = f"/videos/{video_id}/saliency"
    query = f"?run={found.run_id}"
    return {
        "run_id": found.run_id,
        "saliency": f"{base}.png{query}" if found.sheet else None,
        "saliency_maps": f"{base}.npz{query}" if found.maps else None,
        "job": found.job,
    }


class _Saliency:
    def __init__(self, pages: Any) -> None:
        self.pages = pages

    async def compute(self, request: Request) -> Response:
        access = self.pages.access
        access.check_writer(request)  # 403 read-only, 401 without the token
        access.check_csrf(request, await form_field(request, CSRF_FIELD))
        video_id = request.path_params["video_id"]
        run_id = _run_id(await form_field(request, RUN_FIELD))
        job_id, status = await run_in_threadpool(self._submit, video_id, run_id)
        if status == JobStatus.SUCCEEDED.value:  # computed here: the page shows it
            return RedirectResponse(f"/videos/{video_id}?run={run_id}", status_code=303)
        return RedirectResponse("/jobs", status_code=303)  # on a worker, or failed here

    def _submit(self, video_id: int, run_id: int) -> tuple[int, str | None]:
        from tasks.video_saliency import submit_video_saliency

        pages = self.pages
        dispatched = submit_video_saliency(pages.settings, pages.factory, video_id, run_id)
        (job_id,) = dispatched.job_ids
        return job_id, dispatched.statuses.get(job_id)

    def sheet(self, request: Request) -> Response:
        return FileResponse(self._file(request, "sheet"), media_type="image/png")

    def maps(self, request: Request) -> Response:
        path = self._file(request, "maps")
        return FileResponse(path, media_type="application/octet-stream", filename=path.name)

    def _file(self, request: Request, which: str) -> Any:
        from tasks.video_saliency import video_saliency

        video_id = request.path_params["video_id"]
        run_id = _run_id(request.query_params.get(RUN_FIELD))
        found = video_saliency(self.pages.settings, self.pages.factory, video_id, run_id)
        path = getattr(found, which)
        if path is None:
            raise NotFound(f"video {video_id} has no saliency maps of run {run_id} yet")
        return path


def _run_id(text: str | None) -> int:
    if text is None or not _RUN_ID.fullmatch(text):
        raise InvalidInput("name the run by its id: run=N")
    return int(text)
