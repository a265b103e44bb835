"""What each page shows beyond the listings, through the ASGI app on a real catalog of each
dialect: the datasets' counts, balance and shortcut sentences, the runs' membership and
curves, an evaluation's figures, matrix and bias, and one video's face strip and timeline;
every figure is a PNG served by catalog id, and the JSON twins equal the commands' output."""

from __future__ import annotations

import html
import json
import re

import cv2
import markupsafe
import numpy as np
import pytest

from ddm.synthetic.clips import ARTEFACTS, ClipCfg, render_clip
from tests.web.conftest import HOSTILE, Catalog, client

# Reals smaller than fakes: the width alone separates them, a shortcut `ddm stats` names.
SHORTCUT = {"real": ClipCfg(frames=8, size=64), "fake": ClipCfg(frames=8, size=96)}
PER_CLASS = 5  # tasks.bias.MIN_PER_CLASS: fewer and no sentence is made
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def filled(catalog: Catalog, tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """The web catalog with a dataset carrying a shortcut, and the real clips extracted
    (real MTCNN boxes and frame sources in their caches)."""
    root = tmp_path_factory.mktemp("shortcut") / "shortcut"
    for label, cfg in SHORTCUT.items():
        (root / label).mkdir(parents=True)
        artefact = ARTEFACTS["Seam"] if label == "fake" else None
        for n in range(PER_CLASS):
            render_clip(root / label / f"{n}.mp4", n, cfg, artefact)
    _ok(catalog.ddm("-q", "ingest", str(root), "--format", "folder"))
    extract = ("--frames", "8", "--backbones", "small", "--allow-random-weights")
    _ok(catalog.ddm("-q", "extract", "--dataset", "clips", *extract))
    return catalog


@pytest.fixture(scope="module")
def web(filled: Catalog):  # noqa: ANN201
    return client(filled.factory, settings=filled.settings)


def _ok(result) -> str:  # noqa: ANN001
    assert result.exit_code == 0, result.stdout + result.stderr
    return result.stdout


def _cli_json(catalog: Catalog, *args: str):  # noqa: ANN202
    return json.loads(_ok(catalog.ddm(*args, "--json")))


def _page(web, path: str) -> str:  # noqa: ANN001
    response = web.get(path)
    assert response.status_code == 200, (path, response.text)
    return response.text


def test_the_datasets_page_shows_counts_balance_fallback_and_the_stats_sentences(
    filled, web
) -> None:
    stats = _cli_json(filled, "stats")
    assert web.get("/api/stats").json() == stats
    (shortcut,) = [s for s in stats["sentences"] if s.startswith("shortcut: width alone")]
    page = _page(web, "/datasets")
    assert f'<p class="sentence">{shortcut}</p>' in page
    clips = _cli_json(filled, "ingest", str(filled.clips_root), "--format", "folder")["summary"]
    for row in clips["by_method_compression"]:
        if row["method"]:
            assert f'method={row["method"]}">{row["method"]}</a>' in page
    # The clips' caches have real MTCNN boxes: their fallback share is a measured number.
    rate = stats["datasets"]["clips"]["by_label"]["fake"]["fallback_rate"]
    assert rate is not None and f"{100 * rate:.1f}%" in page
    # The balance `ddm split` reports (the same seed and ratios: nothing moves).
    by_split = _cli_json(filled, "split", "shortcut")["by_split"]
    section = page.split(">shortcut</a></h2>")[1].split("</section>")[0]
    for split, n in by_split.items():
        share = f"{100 * n['fake'] / (n['real'] + n['fake']):.1f}%" if any(n.values()) else "–"
        cells = [n["real"] + n["fake"], n["real"], n["fake"], share]
        row = f"<td>{split}</td>" + "".join(f'<td class="n">{cell}</td>' for cell in cells)
        assert row in section or not any(n.values()), (split, section)


def _images(web, page: str) -> list[bytes]:  # noqa: ANN001
    """Every <img> of a page, fetched: each must be a PNG answered 200."""
    sources = re.findall(r'<img [^>]*src="([^"]+)"', page)
    found = []
    for source in sources:
        assert source.startswith("/") and "//" not in source, source
        response = web.get(html.unescape(source))
        assert response.status_code == 200, (source, response.text[:200])
        assert response.headers["content-type"] == "image/png", source
        assert response.content.startswith(PNG_MAGIC), source
        found.append(response.content)
    return found


def _pixels(png: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(png, dtype=np.uint8), cv2.IMREAD_COLOR)


def _hostile_id(web) -> int:  # noqa: ANN001
    (row,) = web.get("/api/videos?dataset=clips&method=FaceSwap").json()
    return row["id"]


def test_a_run_page_shows_its_members_and_its_curves_as_a_png(filled, web) -> None:
    shown = _cli_json(filled, "runs", "show", str(filled.run_id))
    assert web.get(f"/api/runs/{filled.run_id}").json() == shown
    members = shown["membership"]
    by_role = {
        role: sum(m["videos"] for m in members if m["role"] == role) for role in ("train", "val")
    }
    assert by_role == {"train": shown["train_videos"], "val": shown["val_videos"]} != {}
    assert {m["label"] for m in members} == {"real", "fake"}
    page = _page(web, f"/runs/{filled.run_id}")
    for m in members:
        row = f'<td>{m["role"]}</td><td>{m["label"]}</td><td class="n">{m["videos"]}</td>'
        assert row in page
    (curves,) = _images(web, page)
    assert _pixels(curves).shape[0] > 300  # three stacked panels
    assert web.get("/runs/999999/curves.png").status_code == 404
    listed = _page(web, "/runs")
    assert f'<td class="n">{shown["train_videos"]}</td>' in listed and shown["status"] in listed


def test_an_evaluation_page_shows_figures_matrix_bias_and_a_face_per_prediction(
    filled, web
) -> None:
    report = _cli_json(filled, "report", "--eval", "synth")
    twin = web.get(f"/api/evaluations/{filled.evaluation_id}").json()
    assert twin["cross_dataset"] == report["cross_dataset"]
    assert twin["catalog_bias"]["datasets"] == report["bias"]["catalog"]
    assert twin["bias"] == report["bias"]["predictions"][str(filled.run_id)]
    assert twin["sentences"] + twin["catalog_bias"]["sentences"] == report["bias"]["sentences"]
    page = _page(web, f"/evaluations/{filled.evaluation_id}")
    images = _images(web, page)
    # ROC, confusion, then one face per shown prediction, each linked to its video.
    faces = re.findall(
        r'<a href="/videos/(\d+)"><img class="face" src="/videos/(\d+)/face.png"', page
    )
    assert [int(a) for a, b in faces if a == b] == [p["video_id"] for p in twin["predictions"]]
    assert len(images) == 2 + len(faces)
    for grouping, groups in twin["bias"].items():
        assert f"<h3>by {grouping}</h3>" in page and len(groups) >= 1
    cell = report["cross_dataset"]["rows"][0]["cells"]["synth"]
    assert f'<a href="/evaluations/{cell["evaluation_id"]}">{cell["auc"]:.3g} / ' in page
    for sentence in report["bias"]["sentences"]:
        assert str(markupsafe.escape(sentence)) in page


def test_a_face_thumbnail_is_the_crop_the_cache_recorded_or_a_blank_square(filled, web) -> None:
    blank = _pixels(web.get(f"/videos/{_synth_video(web)}/face.png").content)  # no file on disk
    face = _pixels(web.get(f"/videos/{_hostile_id(web)}/face.png").content)
    assert face.shape == blank.shape == (96, 96, 3)
    assert float(np.abs(face.astype(int) - blank.astype(int)).mean()) > 10
    assert web.get("/videos/999999/face.png").status_code == 404


def _synth_video(web) -> int:  # noqa: ANN001
    return web.get("/api/videos?dataset=synth&limit=1").json()[0]["id"]


def test_a_video_page_shows_its_face_strip_and_the_timeline_of_the_run_that_scored_it(
    filled, web
) -> None:
    video_id = _hostile_id(web)
    document = web.get(f"/api/videos/{video_id}").json()
    (cache,) = document["caches"]
    assert cache["is_valid"] and len(cache["frame_sources"]) == 8
    page = _page(web, f"/videos/{video_id}")
    assert f"<code>{cache['frame_sources']}</code>" in page
    (strip,) = _images(web, page)
    assert _pixels(strip).shape[1] > 600  # eight frames in a row
    # A video a run scored: its timeline, by default of the newest scoring run.
    scored = _synth_video(web)
    page = _page(web, f"/videos/{scored}")
    assert f'src="/videos/{scored}/timeline.png?run={filled.run_id}"' in page
    (timeline,) = _images(web, page)
    assert _pixels(timeline).shape[0] > 250  # flow and attention panels
    assert _page(web, f"/videos/{scored}?run={filled.run_id}").count("<img") == 1
    assert web.get(f"/videos/{scored}/timeline.png?run=x").status_code == 400
    assert web.get(f"/videos/{video_id}/timeline.png").status_code == 404  # no run scored it
    assert web.get(f"/videos/{scored}/strip.png").status_code == 404  # no file, no boxes


def test_a_hostile_file_name_is_escaped_on_every_page(filled, web) -> None:
    video_id = _hostile_id(web)
    pages = ["/", "/datasets", "/videos", "/videos?dataset=clips&sort=path", f"/videos/{video_id}"]
    pages += ["/runs", f"/runs/{filled.run_id}", f"/evaluations/{filled.evaluation_id}", "/jobs"]
    for path in pages:
        # Our own scripts are files of /static/; any other <script would come from a name.
        page = re.sub(r'<script src="/static/[a-z]+\.js" defer></script>', "", _page(web, path))
        assert "<script" not in page and "onerror=alert(1)>" not in page, path
        assert '"q"' not in page, path
    assert str(markupsafe.escape(HOSTILE)) in _page(web, f"/videos/{video_id}")


def test_the_video_table_sorts_by_every_column_and_shows_the_latest_score(filled, web) -> None:
    from ddm.catalog.videos import VIDEO_SORTS

    page = _page(web, "/videos")
    for sort in VIDEO_SORTS:
        assert f"?sort={sort}&amp;order=" in page, sort
    twin = web.get(f"/api/evaluations/{filled.evaluation_id}").json()
    scores = {p["video_id"]: p["score"] for p in twin["predictions"]}
    ranked = web.get("/api/videos?sort=latest_score&order=desc&limit=1000").json()
    by_cli = {v["id"]: v["latest_score"] for v in _cli_json(filled, "videos", "--scores")}
    assert by_cli == {v["id"]: v["latest_score"] for v in ranked}
    assert "latest_score" not in _cli_json(filled, "videos", "--limit", "1")[0]  # not read
    shown = [(v["id"], v["latest_score"]) for v in ranked if v["latest_score"] is not None]
    assert [s for _, s in shown] == sorted(scores.values(), reverse=True)
    assert dict(shown) == scores and all(v["latest_score"] is None for v in ranked[len(shown) :])
    assert {v["latest_evaluation_id"] for v in ranked[: len(shown)]} == {filled.evaluation_id}
    first = ranked[0]
    assert f'<a href="/evaluations/{filled.evaluation_id}">{first["latest_score"]:.4g}</a>' in (
        _page(web, "/videos?sort=latest_score&order=desc")
    )
    hostile = web.get(f"/api/videos/{_hostile_id(web)}").json()["video"]
    size = f"{hostile['width']}x{hostile['height']}"
    same = web.get(f"/api/videos?dataset=clips&resolution={size}").json()
    assert hostile["id"] in [v["id"] for v in same]
    assert all(f"{v['width']}x{v['height']}" == size for v in same)
    assert web.get("/api/videos?resolution=wide").status_code == 400
    share = web.get("/api/videos?dataset=clips&sort=fallback_share&order=desc").json()
    assert all(v["frames_sampled"] == 8 for v in share)
    # The latest score as a filter: the videos scored at least as high, and no other.
    middle = sorted(scores.values())[len(scores) // 2]
    high = web.get(f"/api/videos?min_score={middle!r}&limit=1000").json()
    assert {v["id"] for v in high} == {i for i, s in scores.items() if s >= middle} != set()
    low = web.get(f"/api/videos?max_score={middle!r}&sort=latest_score&limit=1000").json()
    assert {v["id"] for v in low} == {i for i, s in scores.items() if s <= middle}
    for bad in ("min_score=2", "max_score=x", "fallback=some"):
        assert web.get(f"/api/videos?{bad}").status_code == 400, bad


def test_a_figure_is_not_drawn_from_a_cache_file_that_changed(filled, web) -> None:
    # The last synth video: no test before this one drew its timeline.
    video = web.get("/api/videos?dataset=synth&sort=id&order=desc&limit=1").json()[0]
    (cache,) = web.get(f"/api/videos/{video['id']}").json()["caches"]
    path = filled.settings.cache_dir / cache["path"]
    original = path.read_bytes()
    try:
        path.write_bytes(original + b"\0")
        changed = web.get(f"/videos/{video['id']}/timeline.png")
        assert changed.status_code == 404 and "changed" in changed.text
    finally:
        path.write_bytes(original)
    drawn = web.get(f"/videos/{video['id']}/timeline.png")
    assert drawn.status_code == 200 and drawn.content.startswith(PNG_MAGIC)


def test_a_run_keeps_one_curves_figure_as_it_is_redrawn(filled, web) -> None:
    from tasks.page_figures import figures_dir

    folder = figures_dir(filled.settings) / "runs"
    assert web.get(f"/runs/{filled.run_id}/curves.png").status_code == 200
    (current,) = folder.glob(f"{filled.run_id}-curves-*.png")
    # As the run's page left it at an earlier epoch, while the run was training.
    older = folder / f"{filled.run_id}-curves-1-running.png"
    older.write_bytes(current.read_bytes())
    other_run = folder / f"{filled.run_id + 1000}-curves-1-running.png"
    other_run.write_bytes(current.read_bytes())
    current.unlink()  # drawn again on the next view, as after a new epoch
    figure = web.get(f"/runs/{filled.run_id}/curves.png")
    assert figure.status_code == 200 and figure.content.startswith(b"\x89PNG")
    assert [p.name for p in folder.glob(f"{filled.run_id}-curves-*.png")] == [current.name]
    assert other_run.is_file()  # another run's figure is its own
