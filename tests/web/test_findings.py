"""Documents computed from the whole catalog are kept between requests (web.kept) and
computed again once the catalog they come from changes: after a re-split, the evaluation's
page and twin say what a fresh computation says, and after an ingest, the datasets page's
statistics do; on both dialects. Views that come during a computation wait for it, and
the refresher computes the first documents at start and changed ones once the catalog
settles, so a view after it finds them kept."""

from __future__ import annotations

import json
import shutil
import threading
import time

from starlette.responses import JSONResponse

from ddm.db import session_scope
from tests.web.conftest import client
from web.kept import KeptDocuments, Refresher


def _fresh_findings(catalog) -> dict:  # noqa: ANN001
    from tasks.report import evaluation_findings

    with session_scope(catalog.factory) as session:
        entry = evaluation_findings(session, catalog.evaluation_id)
    return json.loads(JSONResponse(entry).body)


def _fresh_stats(catalog) -> dict:  # noqa: ANN001
    from tasks.bias import catalog_stats

    with session_scope(catalog.factory) as session:
        return json.loads(JSONResponse(catalog_stats(session)).body)


def test_kept_findings_follow_the_catalog(catalog) -> None:
    web = client(catalog.factory)
    twin = f"/api/evaluations/{catalog.evaluation_id}"
    first = web.get(twin)
    assert first.status_code == 200 and first.headers["content-type"] == "application/json"
    assert first.json() == _fresh_findings(catalog) and first.json()["split_changed"] == 0
    assert web.get(twin).content == first.content  # kept, byte for byte

    result = catalog.ddm("split", "synth", "--ratios", "90,5,5", "--seed", "7", "--force")
    assert result.exit_code == 0, result.stderr

    after = web.get(twin).json()
    assert after == _fresh_findings(catalog)
    assert after["split_changed"] > 0  # the findings did change, and the twin says so
    page = web.get(f"/evaluations/{catalog.evaluation_id}")
    assert page.status_code == 200 and f"{after['n_videos']} videos scored" in page.text


def test_kept_statistics_follow_an_ingest(catalog) -> None:
    web = client(catalog.factory)
    before = web.get("/api/stats").json()
    assert before == _fresh_stats(catalog)
    assert web.get("/datasets").status_code == 200

    shutil.copyfile(catalog.clips_root / "real/004.mp4", catalog.clips_root / "real/005.mp4")
    result = catalog.ddm("-q", "ingest", str(catalog.clips_root), "--format", "folder")
    assert result.exit_code == 0, result.stderr

    after = web.get("/api/stats").json()
    assert after == _fresh_stats(catalog) and after != before
    assert web.get("/datasets").status_code == 200


class _Counted:
    """`evaluation_findings` of one evaluation, counting its computations; `gate` holds
    each computation until set (the test's way to have two views arrive during one)."""

    def __init__(self, evaluation_id: int) -> None:
        self.evaluation_id = evaluation_id
        self.calls = 0
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, session) -> dict:  # noqa: ANN001
        from tasks.report import evaluation_findings

        self.calls += 1
        assert self.gate.wait(30)
        return evaluation_findings(session, self.evaluation_id)


def test_views_during_a_computation_wait_for_it_instead_of_computing_again(catalog) -> None:
    kept, compute = KeptDocuments(), _Counted(catalog.evaluation_id)
    compute.gate.clear()
    found: list[dict] = []

    def view() -> None:
        with session_scope(catalog.factory) as session:
            found.append(kept.get(session, "evaluation", compute))

    viewers = [threading.Thread(target=view) for _ in range(3)]
    for viewer in viewers:
        viewer.start()
    while compute.calls == 0:
        time.sleep(0.01)
    time.sleep(0.2)  # the other two views arrive while the first computes
    compute.gate.set()
    for viewer in viewers:
        viewer.join(30)
    assert compute.calls == 1 and len(found) == 3
    assert found[0] is found[1] is found[2]
    assert json.loads(JSONResponse(found[0]).body) == _fresh_findings(catalog)


def test_the_refresher_computes_first_documents_and_changed_ones_before_a_view(catalog) -> None:
    kept, compute = KeptDocuments(), _Counted(catalog.evaluation_id)
    refresher = Refresher(kept, catalog.factory, lambda session: [("evaluation", compute)])
    assert refresher.warm() == 1 and compute.calls == 1
    assert refresher.refresh() == 0  # nothing changed: nothing computed again

    result = catalog.ddm("split", "synth", "--ratios", "70,15,15", "--seed", "3", "--force")
    assert result.exit_code == 0, result.stderr
    assert refresher.refresh() == 1 and compute.calls == 2
    with session_scope(catalog.factory) as session:
        viewed = kept.get(session, "evaluation", compute)
    assert compute.calls == 2  # the view found the refreshed document
    assert json.loads(JSONResponse(viewed).body) == _fresh_findings(catalog)


def test_the_refresher_waits_for_the_catalog_to_settle(catalog) -> None:
    kept, compute = KeptDocuments(), _Counted(catalog.evaluation_id)
    first = lambda session: [("evaluation", compute)]  # noqa: E731
    refresher = Refresher(kept, catalog.factory, first, poll_s=0.05, settle_s=0.3)
    refresher.start()
    try:
        _wait_for(lambda: compute.calls == 1)  # computed at start
        result = catalog.ddm("split", "synth", "--ratios", "80,10,10", "--seed", "5", "--force")
        assert result.exit_code == 0, result.stderr
        _wait_for(lambda: compute.calls == 2)  # and again once the change settled
    finally:
        refresher.stop()
    with session_scope(catalog.factory) as session:
        viewed = kept.get(session, "evaluation", compute)
    assert compute.calls == 2
    assert json.loads(JSONResponse(viewed).body) == _fresh_findings(catalog)


def _wait_for(condition, seconds: float = 60) -> None:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within a minute"
        time.sleep(0.05)


def test_ddm_serve_computes_the_datasets_page_and_the_newest_evaluations_first(catalog) -> None:
    from web.app import FIRST_EVALUATIONS, first_documents

    with session_scope(catalog.factory) as session:
        first = first_documents(session)
        keys = [key for key, _ in first]
        assert keys[0] == "datasets" and ("evaluation", catalog.evaluation_id) in keys
        assert len(keys) <= 1 + FIRST_EVALUATIONS
        documents = dict((key, compute(session)) for key, compute in first)
    assert json.loads(documents["datasets"].stats_body) == _fresh_stats(catalog)
    twin = json.loads(documents[("evaluation", catalog.evaluation_id)].body)
    assert twin == _fresh_findings(catalog)
