"""Documents computed from the whole catalog are kept between requests (web.kept) and
computed again once the catalog they come from changes: after a re-split, the evaluation's
page and twin say what a fresh computation says, and after an ingest, the datasets page's
statistics do; on both dialects."""

from __future__ import annotations

import json
import shutil

from starlette.responses import JSONResponse

from ddm.db import session_scope
from tests.web.conftest import client


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
