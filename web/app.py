"""The ASGI app of `ddm serve`: one factory, the catalog's session factory passed in, one
handler per page, each with its JSON twin under `/api/` (web layer).

A handler parses the request, calls the function the matching command calls
(`ddm.services.listings`, `tasks.report`), and renders it; it computes nothing itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import islice
from typing import Any
from urllib.parse import urlencode

import jinja2
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ddm.config import Settings, load_settings
from ddm.db import session_scope
from ddm.errors import DdmError, InvalidInput, NotFound
from ddm.services import listings
from ddm.vocab import Label, Split, values
from web.kept import Compute, KeptDocuments, Refresher
from web.saliency import saliency_document, saliency_routes
from web.security import (
    CSRF_FIELD,
    SECURITY_HEADERS,
    TOKEN_COOKIE,
    Access,
    WriteRefused,
    form_field,
)
from web.uploads import UploadCfg, upload_routes

logger = logging.getLogger(__name__)

PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
# An evaluation page lists this many of its most wrong predictions; the JSON has them all.
SHOWN_PREDICTIONS = 200
LIST_LIMIT = 50  # runs and jobs, as `ddm runs list` and `ddm jobs list` show by default


def create_app(
    factory: sessionmaker[Session],
    *,
    settings: Settings | None = None,
    access: Access | None = None,
    allowed_hosts: Sequence[str] | None = None,
    uploads: UploadCfg | None = None,
    refresh: bool = False,
) -> Starlette:
    """The app over the catalog that `factory` opens.

    Args:
        settings: where figures drawn on demand are kept (`<home>/figures`) and where the
            caches lie; the catalog's own defaults when None.
        access: whether writes are allowed and the token they need (default: read-only).
        allowed_hosts: the Host headers answered (a loopback server answers only its own
            names, so a page elsewhere cannot reach it through DNS rebinding); None: any.
        uploads: where clips to try go and their limit; the routes exist only on a server
            that writes.
        refresh: compute the datasets page and the newest evaluations in the
            background at start, and kept documents again once the catalog settles after a
            change (`web.kept.Refresher`), so that views seldom wait for them.
    """
    pages = _Pages(factory, settings or load_settings(), access or Access())
    if refresh:
        Refresher(pages.kept, factory, first_documents).start()
    routes = [
        Route("/", pages.index),
        Route("/datasets", pages.datasets),
        Route("/api/datasets", pages.api_datasets),
        Route("/api/stats", pages.api_stats),
        Route("/videos", pages.videos),
        Route("/api/videos", pages.api_videos),
        Route("/videos/{video_id:int}", pages.video),
        Route("/api/videos/{video_id:int}", pages.api_video),
        Route("/videos/{video_id:int}/file", pages.video_file),
        Route("/runs", pages.runs),
        Route("/api/runs", pages.api_runs),
        Route("/runs/{run_id:int}", pages.run),
        Route("/api/runs/{run_id:int}", pages.api_run),
        Route("/evaluations/{evaluation_id:int}", pages.evaluation),
        Route("/api/evaluations/{evaluation_id:int}", pages.api_evaluation),
        # Figures, drawn on demand and found by catalog ids only (tasks.page_figures).
        Route("/runs/{run_id:int}/curves.png", pages.run_curves),
        Route("/evaluations/{evaluation_id:int}/roc.png", pages.evaluation_roc),
        Route("/evaluations/{evaluation_id:int}/confusion.png", pages.evaluation_confusion),
        Route("/videos/{video_id:int}/strip.png", pages.video_strip),
        Route("/videos/{video_id:int}/face.png", pages.video_face),
        Route("/videos/{video_id:int}/timeline.png", pages.video_timeline),
        *saliency_routes(pages),  # computed by a job only, asked for by a POST
        Route("/jobs", pages.jobs),
        Route("/api/jobs", pages.api_jobs),
        Route("/jobs/{job_id:int}/cancel", pages.cancel_job, methods=["POST"]),
        *(upload_routes(pages, uploads) if uploads and pages.access.writes else []),
        Mount("/static", StaticFiles(packages=[("web", "static")]), name="static"),
    ]
    middleware = [Middleware(_SecurityHeaders), Middleware(_TokenLink, access=pages.access)]
    if allowed_hosts is not None:
        middleware.insert(0, Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)))
    handlers: dict[Any, Callable[..., Any]] = {
        DdmError: pages.domain_error,
        WriteRefused: pages.refused,
        HTTPException: pages.http_error,
    }
    return Starlette(routes=routes, middleware=middleware, exception_handlers=handlers)


class _Pages:
    def __init__(self, factory: sessionmaker[Session], settings: Settings, access: Access) -> None:
        self.factory = factory
        self.settings = settings
        self.access = access
        self.kept = KeptDocuments()
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("web", "templates"),
            autoescape=True,  # every name from disk is escaped; no template uses |safe
            undefined=jinja2.StrictUndefined,
        )

    # ------------------------------------------------------------------ rendering

    def render(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        template = self.templates.get_template(name)
        context = {
            "request": request,
            "writes": self.access.writes,
            "signed_in": self.access.is_authenticated(request),
            "csrf_field": CSRF_FIELD,
            "csrf": self.access.csrf if self.access.is_authenticated(request) else "",
            **context,
        }
        return HTMLResponse(template.render(context), status_code=status)

    def session(self):  # noqa: ANN201  (a context manager yielding a Session)
        return session_scope(self.factory)

    # ------------------------------------------------------------------ pages

    def index(self, request: Request) -> Response:
        return self.render(request, "index.html")

    def datasets(self, request: Request) -> Response:
        with self.session() as session:
            rows = listings.dataset_rows(session)
            found = self.kept.get(session, "datasets", _DatasetFindings.of)
        return self.render(
            request, "datasets.html", rows=rows, overviews=found.overviews, stats=found.stats
        )

    def api_stats(self, request: Request) -> Response:
        with self.session() as session:
            found = self.kept.get(session, "datasets", _DatasetFindings.of)
        return Response(found.stats_body, media_type="application/json")

    def api_datasets(self, request: Request) -> Response:
        with self.session() as session:
            return JSONResponse(listings.dataset_rows(session))

    def _video_page(self, request: Request) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        query = _video_query(request)
        limit, offset = query.pop("limit"), query.pop("offset")
        with self.session() as session:
            rows = list(
                islice(
                    listings.video_rows(
                        session, limit=limit + 1, offset=offset, with_scores=True, **query
                    ),
                    limit + 1,
                )
            )
        more = len(rows) > limit
        page = {"limit": limit, "offset": offset, "more": more, "query": query}
        return rows[:limit], page

    def videos(self, request: Request) -> Response:
        rows, page = self._video_page(request)
        return self.render(
            request,
            "videos.html",
            rows=rows,
            page=page,
            link=_linker(request),
            labels=values(Label),
            splits=values(Split),
            cache_statuses=_cache_statuses(),
        )

    def api_videos(self, request: Request) -> Response:
        rows, page = self._video_page(request)
        headers = {}
        if page["more"]:
            following = _linker(request)(offset=page["offset"] + page["limit"])
            headers["link"] = f'<{following}>; rel="next"'
        return JSONResponse(rows, headers=headers)

    def _video_document(self, request: Request, chosen_run: int | None) -> dict[str, Any]:
        """A video's document, and its saliency with the run its page shows (`?run=N`)."""
        video_id = request.path_params["video_id"]
        with self.session() as session:
            document = listings.video_document(session, video_id)
        return {**document, "saliency": saliency_document(self, video_id, chosen_run)}

    def video(self, request: Request) -> Response:
        chosen_run = _chosen_run(request)
        document = self._video_document(request, chosen_run)
        return self.render(request, "video.html", chosen_run=chosen_run, **document)

    def api_video(self, request: Request) -> Response:
        return JSONResponse(self._video_document(request, _chosen_run(request)))

    def video_file(self, request: Request) -> Response:
        # By catalog id only: the path comes from the catalog, checked to lie in its root.
        with self.session() as session:
            path = listings.video_file(session, request.path_params["video_id"])
        return FileResponse(path)  # answers Range requests: 206, or 416 when unsatisfiable

    def runs(self, request: Request) -> Response:
        with self.session() as session:
            rows = listings.run_rows(session, limit=LIST_LIMIT)
        return self.render(request, "runs.html", rows=rows)

    def api_runs(self, request: Request) -> Response:
        with self.session() as session:
            return JSONResponse(listings.run_rows(session, limit=LIST_LIMIT))

    def run(self, request: Request) -> Response:
        from ddm.catalog.evaluations import latest_evaluations
        from ddm.catalog.records import to_json

        run_id = request.path_params["run_id"]
        with self.session() as session:
            document = listings.run_document(session, run_id)
            evaluations = [to_json(e) for e in latest_evaluations(session, [run_id])]
        return self.render(request, "run.html", run=document, evaluations=evaluations)

    def api_run(self, request: Request) -> Response:
        with self.session() as session:
            return JSONResponse(listings.run_document(session, request.path_params["run_id"]))

    def _evaluation(self, request: Request) -> _Findings:
        evaluation_id = request.path_params["evaluation_id"]
        with self.session() as session:
            return self.kept.get(
                session, ("evaluation", evaluation_id), partial(_Findings.of, evaluation_id)
            )

    def evaluation(self, request: Request) -> Response:
        found = self._evaluation(request)
        shown = found.page["predictions"]
        more = found.predictions - len(shown)
        return self.render(request, "evaluation.html", entry=found.page, shown=shown, more=more)

    def api_evaluation(self, request: Request) -> Response:
        return Response(self._evaluation(request).body, media_type="application/json")

    # ------------------------------------------------------------------ figures

    def run_curves(self, request: Request) -> Response:
        from tasks.page_figures import training_curves

        return _png(training_curves(self.settings, self.factory, request.path_params["run_id"]))

    def evaluation_roc(self, request: Request) -> Response:
        return self._evaluation_figure(request, "roc")

    def evaluation_confusion(self, request: Request) -> Response:
        return self._evaluation_figure(request, "confusion")

    def _evaluation_figure(self, request: Request, kind: str) -> Response:
        from tasks.page_figures import evaluation_figure

        evaluation_id = request.path_params["evaluation_id"]
        return _png(evaluation_figure(self.settings, self.factory, evaluation_id, kind))

    def video_strip(self, request: Request) -> Response:
        from tasks.page_figures import face_strip

        return _png(face_strip(self.settings, self.factory, request.path_params["video_id"]))

    def video_face(self, request: Request) -> Response:
        from tasks.page_figures import face_thumbnail

        return _png(face_thumbnail(self.settings, self.factory, request.path_params["video_id"]))

    def video_timeline(self, request: Request) -> Response:
        from tasks.page_figures import timeline

        video_id = request.path_params["video_id"]
        return _png(timeline(self.settings, self.factory, video_id, _chosen_run(request)))

    def jobs(self, request: Request) -> Response:
        with self.session() as session:
            rows = listings.job_rows(session, limit=LIST_LIMIT)
        return self.render(request, "jobs.html", rows=rows)

    def api_jobs(self, request: Request) -> Response:
        with self.session() as session:
            return JSONResponse(listings.job_rows(session, limit=LIST_LIMIT))

    async def cancel_job(self, request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        self.access.check_writer(request)
        self.access.check_csrf(request, await form_field(request, CSRF_FIELD))
        await run_in_threadpool(self._cancel, request.path_params["job_id"])
        return RedirectResponse("/jobs", status_code=303)

    def _cancel(self, job_id: int) -> None:
        from ddm.catalog.jobs import cancel_job  # what `ddm jobs cancel` calls

        with self.session() as session:
            job = cancel_job(session, job_id)
        logger.info("job_id=%s cancelled from the web", job.id)

    # ------------------------------------------------------------------ errors

    def domain_error(self, request: Request, exc: Exception) -> Response:
        status = 404 if isinstance(exc, NotFound) else 400
        return self._error(request, status, str(exc))

    def refused(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, WriteRefused)
        return self._error(request, exc.status, str(exc))

    def http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return self._error(request, exc.status_code, exc.detail, exc.headers)

    def _error(self, request: Request, status: int, message: str, headers: Any = None) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": message}, status_code=status, headers=headers)
        response = self.render(request, "error.html", status, code=status, message=message)
        response.headers.update(headers or {})
        return response


def _png(path: Any) -> Response:
    # The path comes from tasks.page_figures, built from catalog ids, never from the request.
    return FileResponse(path, media_type="image/png")


@dataclass(frozen=True)
class _Findings:
    """An evaluation's findings as its page and its twin send them: `page` has only the
    most wrong predictions, `predictions` counts them all, `body` is the twin's JSON."""

    page: dict[str, Any]
    predictions: int
    body: bytes

    @classmethod
    def of(cls, evaluation_id: int, session: Session) -> _Findings:
        from tasks.report import evaluation_findings

        entry = evaluation_findings(session, evaluation_id)
        page = {**entry, "predictions": entry["predictions"][:SHOWN_PREDICTIONS]}
        return cls(page, len(entry["predictions"]), JSONResponse(entry).body)


# The newest evaluations computed at start: a DFDC one takes seconds.
FIRST_EVALUATIONS = 3


def first_documents(session: Session) -> list[tuple[Any, Compute]]:
    """What a visitor opens first: the datasets page, then the newest evaluations."""
    from ddm.catalog.evaluations import latest_evaluations

    newest = sorted(latest_evaluations(session), key=lambda e: e.id, reverse=True)
    evaluations = [(("evaluation", e.id), partial(_Findings.of, e.id)) for e in newest]
    return [("datasets", _DatasetFindings.of), *evaluations[:FIRST_EVALUATIONS]]


@dataclass(frozen=True)
class _DatasetFindings:
    """The datasets page's overviews and `ddm stats` (and the bytes of its twin)."""

    overviews: list[dict[str, Any]]
    stats: dict[str, Any]
    stats_body: bytes

    @classmethod
    def of(cls, session: Session) -> _DatasetFindings:
        from tasks.bias import catalog_stats  # what `ddm stats` calls

        stats = catalog_stats(session)
        overviews = listings.dataset_overviews(session)
        return cls(overviews, stats, JSONResponse(stats).body)


def _chosen_run(request: Request) -> int | None:
    """The run a video's page shows (`?run=N`); None: the newest that scored it."""
    return _integer(request.query_params, "run", 0, 1, None) or None


def _video_query(request: Request) -> dict[str, Any]:
    """The filters, order and page of `/videos` and `/api/videos`; bad values are
    InvalidInput (400), unknown sort orders and cache states are refused by the catalog."""
    params = request.query_params
    names = ("dataset", "label", "split", "method", "compression", "resolution")
    query: dict[str, Any] = {name: params.get(name) or None for name in names}
    for name, allowed in (("label", values(Label)), ("split", values(Split))):
        if query[name] is not None and query[name] not in allowed:
            raise InvalidInput(f"no {name} {query[name]!r}; one of: {', '.join(allowed)}")
    query["cache_status"] = params.get("cache") or None
    query["fallback"] = params.get("fallback") or None
    query["score_range"] = (_score(params, "min_score"), _score(params, "max_score"))
    query["sort"] = params.get("sort") or "path"
    order = params.get("order") or "asc"
    if order not in ("asc", "desc"):
        raise InvalidInput(f"order must be asc or desc, not {order!r}")
    query["descending"] = order == "desc"
    query["limit"] = _integer(params, "limit", PAGE_SIZE, 1, MAX_PAGE_SIZE)
    query["offset"] = _integer(params, "offset", 0, 0, None)
    return query


def _score(params: Any, name: str) -> float | None:
    text = params.get(name)
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:  # NaN too
        raise InvalidInput(f"{name} must be a probability, 0 to 1")
    return value


def _integer(params: Any, name: str, default: int, low: int, high: int | None) -> int:
    text = params.get(name)
    if not text:
        return default
    if not text.isdigit() or int(text) < low or (high is not None and int(text) > high):
        bound = f"{low} to {high}" if high is not None else f"{low} or more"
        raise InvalidInput(f"{name} must be a whole number, {bound}")
    return int(text)


def _linker(request: Request) -> Callable[..., str]:
    """A function giving this page's address with some query parameters changed."""

    def link(**changes: Any) -> str:
        params = dict(request.query_params)
        if "offset" not in changes and set(changes) - {"offset"}:
            params.pop("offset", None)  # a new filter or order starts on its first page
        for name, value in changes.items():
            if value is None or value == "":
                params.pop(name, None)
            else:
                params[name] = str(value)
        return request.url.path + ("?" + urlencode(params) if params else "")

    return link


def _cache_statuses() -> tuple[str, ...]:
    from ddm.catalog.videos import CACHE_STATUSES

    return CACHE_STATUSES


class _SecurityHeaders:
    """Adds `SECURITY_HEADERS` to every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _TokenLink:
    """The address printed at start carries `?token=`: a GET with the right one keeps it in
    an HttpOnly, SameSite=Strict cookie and redirects to the same page without it, so the
    token leaves the address bar and the history."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and self.access.writes:
            request = Request(scope)
            token = request.query_params.get("token")
            if token is not None:
                params = {k: v for k, v in request.query_params.items() if k != "token"}
                target = request.url.path + ("?" + urlencode(params) if params else "")
                response = RedirectResponse(target, status_code=303)
                if _same(token, self.access.token):
                    response.set_cookie(
                        TOKEN_COOKIE, token, httponly=True, samesite="strict", path="/"
                    )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _same(given: str, token: str) -> bool:
    import secrets

    return secrets.compare_digest(given.encode(), token.encode())
