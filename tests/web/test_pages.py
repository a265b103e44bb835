"""The pages and their JSON twins through the ASGI app, on a real catalog of each dialect:
the twins equal what the commands print with `--json`, every page renders from them, and
the video table pages, sorts and filters in the catalog."""

from __future__ import annotations

import json
import re

import pytest

from tests.web.conftest import HOSTILE, client


@pytest.fixture(scope="module")
def web(catalog):  # noqa: ANN201
    return client(catalog.factory)


def _cli_json(catalog, *args: str):  # noqa: ANN202
    result = catalog.ddm(*args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def _api(web, path: str):  # noqa: ANN202
    response = web.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def test_the_json_twins_equal_the_commands_json(catalog, web) -> None:
    assert _api(web, "/api/datasets") == _cli_json(catalog, "datasets")
    for dataset in ("clips", "synth"):
        api = _api(web, f"/api/videos?dataset={dataset}&limit=1000")
        assert api == _cli_json(catalog, "videos", "--dataset", dataset, "--scores") and api
    assert _api(web, "/api/videos?label=fake&limit=1000") == _cli_json(
        catalog, "videos", "--label", "fake", "--scores"
    )
    assert _api(web, "/api/runs") == _cli_json(catalog, "runs", "list")
    assert _api(web, f"/api/runs/{catalog.run_id}") == _cli_json(
        catalog, "runs", "show", str(catalog.run_id)
    )
    assert _api(web, "/api/jobs") == _cli_json(catalog, "jobs", "list")
    # An evaluation's twin is its run's entry of `ddm report --json`, most wrong first.
    (entry,) = _cli_json(catalog, "report", "--eval", "synth")["runs"]
    twin = _api(web, f"/api/evaluations/{catalog.evaluation_id}")
    assert sorted(twin["predictions"], key=lambda p: p["video_id"]) == entry["predictions"]
    own = ("predictions", "reused", "bias", "sentences", "cross_dataset", "catalog_bias")
    assert {k: v for k, v in twin.items() if k not in own} == {
        k: v for k, v in entry.items() if k not in own
    }


def test_every_page_renders_and_links_to_the_next(catalog, web) -> None:
    for path in ("/", "/datasets", "/videos", "/runs", "/jobs", f"/runs/{catalog.run_id}"):
        response = web.get(path)
        assert response.status_code == 200, (path, response.text)
        assert response.headers["content-type"].startswith("text/html")
        assert "cdn" not in response.text.lower() and "https://" not in response.text
    run_page = web.get(f"/runs/{catalog.run_id}").text
    assert f'href="/evaluations/{catalog.evaluation_id}"' in run_page
    assert "Training curve" in run_page and run_page.count('<td class="n">') > 4
    assert web.get("/static/style.css").status_code == 200


def test_the_evaluation_page_lists_the_most_wrong_first_each_linked_to_its_video(
    catalog, web
) -> None:
    twin = _api(web, f"/api/evaluations/{catalog.evaluation_id}")
    wrongness = [(p["logit"] if p["label"] == "real" else -p["logit"]) for p in twin["predictions"]]
    assert wrongness == sorted(wrongness, reverse=True)
    page = web.get(f"/evaluations/{catalog.evaluation_id}").text
    linked = [int(i) for i in re.findall(r'<td class="n"><a href="/videos/(\d+)">', page)]
    assert linked == [p["video_id"] for p in twin["predictions"]]
    assert "Confusion" in page and str(twin["confusion"]["tp"]) in page
    video_page = web.get(f"/videos/{linked[0]}").text
    assert f'href="/evaluations/{catalog.evaluation_id}"' in video_page
    assert '<video controls preload="metadata"' in video_page
    assert f'src="/videos/{linked[0]}/file"' in video_page


def test_the_video_table_pages_sorts_and_filters_in_the_catalog(catalog, web) -> None:
    every = _api(web, "/api/videos?limit=1000&sort=id")
    assert [v["id"] for v in every] == sorted(v["id"] for v in every)
    first = web.get("/api/videos?limit=5&sort=id")
    assert first.json() == every[:5]
    assert first.headers["link"] == '</api/videos?limit=5&sort=id&offset=5>; rel="next"'
    second = _api(web, "/api/videos?limit=5&sort=id&offset=5")
    assert second == every[5:10]
    last = web.get(f"/api/videos?limit=5&sort=id&offset={len(every) - 2}")
    assert len(last.json()) == 2 and "link" not in last.headers
    newest = _api(web, "/api/videos?sort=id&order=desc&limit=3")
    assert [v["id"] for v in newest] == [v["id"] for v in every[::-1][:3]]
    swaps = _api(web, "/api/videos?dataset=clips&method=FaceSwap")
    assert [v["path"] for v in swaps] == [f"fake/FaceSwap/{HOSTILE}"]
    cached = _api(web, "/api/videos?dataset=synth&cache=valid&split=val&label=real&limit=100")
    assert len(cached) == 2 and all(v["cache_valid"] for v in cached)
    assert _api(web, "/api/videos?dataset=clips&cache=valid") == []
    assert len(_api(web, "/api/videos?dataset=clips&cache=none")) == 3
    page = web.get("/videos?dataset=clips&sort=frame_count&order=desc").text
    assert "sort=frame_count&amp;order=asc" in page  # the header flips the order
    for bad in ("label=maybe", "sort=size;drop", "limit=0", "limit=x", "offset=-1", "cache=old"):
        response = web.get(f"/api/videos?{bad}")
        assert response.status_code == 400 and "error" in response.json(), bad
    missing = web.get("/api/videos?dataset=nope")
    assert missing.status_code == 404 and "no dataset named 'nope'" in missing.json()["error"]
    assert web.get("/videos/999999").status_code == 404
    assert web.get("/api/evaluations/999999").status_code == 404
