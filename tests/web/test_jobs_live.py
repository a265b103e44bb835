"""The jobs page in a real browser (headless chromium on the real `ddm serve`): its script
polls /api/jobs and updates a job's status, progress and finish time in place, with no
reload, and the Content-Security-Policy refuses nothing it needs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ddm.catalog.jobs import cancel_job, claim_job, create_job, heartbeat
from ddm.db import session_scope
from tests.web.browser import chromium
from tests.web.conftest import build_catalog, sqlite_catalog_url
from tests.web.serving import fetch_when_up, free_port, start_serve, stop

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]

WAIT_SECONDS = 20  # the page polls every 2 s while a job is queued or running


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    with chromium(tmp_path) as driver:
        yield driver


def test_the_jobs_page_follows_a_job_without_reloading(browser: Any, tmp_path: Path) -> None:
    catalog = build_catalog(sqlite_catalog_url(tmp_path), tmp_path, train=False)
    with session_scope(catalog.factory) as session:
        job_id = create_job(session, "extract", {"video_ids": []}, total=4).id
    port = free_port()
    server = start_serve(tmp_path, catalog.env, "--port", str(port))
    try:
        fetch_when_up(server, f"http://127.0.0.1:{port}/api/jobs")
        browser.get(f"http://127.0.0.1:{port}/jobs")
        browser.execute_script("window.notReloaded = true;")
        assert _cell(browser, job_id, "status") == "queued"
        with session_scope(catalog.factory) as session:  # a worker takes it and beats
            assert claim_job(session, job_id, "w1", max_attempts=3)
            assert heartbeat(session, job_id, "w1", done=3)
        _wait(browser, lambda: _cell(browser, job_id, "count") == "3/4", "progress 3/4")
        assert _cell(browser, job_id, "status") == "running"
        assert _cell(browser, job_id, "worker") == "w1"
        with session_scope(catalog.factory) as session:
            cancel_job(session, job_id)
        _wait(browser, lambda: _cell(browser, job_id, "status") == "cancelled", "cancelled")
        assert _cell(browser, job_id, "finished") != "–"
        assert browser.execute_script("return window.notReloaded === true;")
        refused = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert refused == []
    finally:
        stop(server)


def _cell(browser: Any, job_id: int, name: str) -> str:
    return browser.execute_script(
        "const row = document.querySelector(`tr[data-job='${arguments[0]}']`);"
        "return row.querySelector('.' + arguments[1]).textContent;",
        job_id,
        name,
    )


def _wait(browser: Any, condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"the jobs page did not show {what} in {WAIT_SECONDS} s")
        time.sleep(0.2)
