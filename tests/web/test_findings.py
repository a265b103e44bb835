"""The evaluation page keeps its findings between requests (web.findings) and computes
them again once the catalog they come from changes: after a re-split, the page and its
twin say what a fresh computation says, on both dialects."""

from __future__ import annotations

import json

from starlette.responses import JSONResponse

from ddm.db import session_scope
from tests.web.conftest import client


def _fresh(catalog) -> dict:  # noqa: ANN001
    from tasks.report import evaluation_findings

    with session_scope(catalog.factory) as session:
        entry = evaluation_findings(session, catalog.evaluation_id)
    return json.loads(JSONResponse(entry).body)


def test_kept_findings_follow_the_catalog(catalog) -> None:
    web = client(catalog.factory)
    twin = f"/api/evaluations/{catalog.evaluation_id}"
    first = web.get(twin)
    assert first.status_code == 200 and first.headers["content-type"] == "application/json"
    assert first.json() == _fresh(catalog) and first.json()["split_changed"] == 0
    again = web.get(twin)
    assert again.content == first.content  # kept, byte for byte

    result = catalog.ddm("split", "synth", "--ratios", "90,5,5", "--seed", "7", "--force")
    assert result.exit_code == 0, result.stderr

    after = web.get(twin).json()
    assert after == _fresh(catalog)
    assert after["split_changed"] > 0  # the findings did change, and the twin says so
    page = web.get(f"/evaluations/{catalog.evaluation_id}")
    assert page.status_code == 200 and f"{after['n_videos']} videos scored" in page.text
