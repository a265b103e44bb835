"""A video page's saliency maps: never computed on a GET; a server that writes offers a
button whose POST (the token and the CSRF value, as every write) records a `saliency` job,
run inline here, that draws what `ddm predict --explain` draws for the video's file; the
page and its twin then show the sheet, served by video and run id. A read-only server says
how to get them instead. Through the ASGI app on the real catalog of `trained` (real
clips, real MTCNN, the small random-weight backbones)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from ddm.catalog.jobs import list_jobs
from ddm.db import session_scope
from tests.web.conftest import FRAMES, Catalog, client
from tests.web.test_uploads import TOKEN, web_client

# The hostile name's CJK characters are not in matplotlib's font (the sheet's title).
pytestmark = pytest.mark.filterwarnings("ignore:Glyph .* missing from font")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _hostile_video(web) -> dict:  # noqa: ANN001
    (row,) = web.get("/api/videos?dataset=clips&method=FaceSwap").json()
    return row


def saliency_jobs(catalog: Catalog) -> list:
    with session_scope(catalog.factory) as session:
        return list_jobs(session, kind="saliency")


def signed_in_form(web, video_id: int) -> tuple[str, str]:  # noqa: ANN001
    """Open the token link as a person does; the CSRF value and run of the page's form."""
    assert web.get(f"/videos/{video_id}?token={TOKEN}").status_code == 303
    page = web.get(f"/videos/{video_id}")
    assert page.status_code == 200, page.text
    (form,) = re.findall(
        r'<form method="post" action="/videos/(\d+)/saliency">(.*?)</form>', page.text
    )
    assert int(form[0]) == video_id
    (csrf,) = re.findall(r'name="csrf_token" value="([0-9a-f]+)"', form[1])
    (run,) = re.findall(r'name="run" value="(\d+)"', form[1])
    return csrf, run


def test_a_read_only_server_says_how_to_get_them_and_offers_no_button(trained) -> None:
    web = client(trained.factory, settings=trained.settings)
    video = _hostile_video(web)
    page = web.get(f"/videos/{video['id']}")
    assert page.status_code == 200
    assert f"ddm predict PATH --run {trained.run_id} --explain DIR" in page.text
    assert "<form" not in page.text and "/saliency" not in page.text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;script&gt;" in page.text
    twin = web.get(f"/api/videos/{video['id']}").json()
    assert twin["saliency"] == {
        "run_id": trained.run_id,
        "saliency": None,
        "saliency_maps": None,
        "job": None,
    }
    refused = web.post(f"/videos/{video['id']}/saliency", data={"run": str(trained.run_id)})
    assert refused.status_code == 403 and "read-only" in refused.text
    sheet = web.get(f"/videos/{video['id']}/saliency.png?run={trained.run_id}")
    assert sheet.status_code == 404
    assert saliency_jobs(trained) == []


def test_computing_them_needs_the_token_and_the_csrf_value(trained) -> None:
    web = web_client(trained)
    video_id = _hostile_video(web)["id"]
    target = f"/videos/{video_id}/saliency"
    run = str(trained.run_id)
    assert web.post(target, data={"run": run}).status_code == 401
    assert "<form" not in web.get(f"/videos/{video_id}").text  # not signed in: no form
    csrf, _ = signed_in_form(web, video_id)
    assert web.post(target, data={"run": run}).status_code == 403
    assert web.post(target, data={"csrf_token": "0" * 64, "run": run}).status_code == 403
    elsewhere = web.post(
        target, data={"csrf_token": csrf, "run": run}, headers={"origin": "http://evil.example"}
    )
    assert elsewhere.status_code == 403
    for bad_run, status in (("x", 400), ("", 400), ("99999", 404)):
        answer = web.post(target, data={"csrf_token": csrf, "run": bad_run})
        assert answer.status_code == status, (bad_run, answer.text)
    assert (
        web.post("/videos/999999/saliency", data={"csrf_token": csrf, "run": run}).status_code
        == 404
    )
    assert saliency_jobs(trained) == []


def test_the_button_computes_what_ddm_predict_explain_draws(trained, tmp_path: Path) -> None:
    from tasks.predict import load_predictor, predict_video

    web = web_client(trained)
    video = _hostile_video(web)
    video_id = video["id"]
    csrf, run = signed_in_form(web, video_id)
    assert run == str(trained.run_id)
    assert web.get(f"/videos/{video_id}/saliency.png?run={run}").status_code == 404

    sent = web.post(f"/videos/{video_id}/saliency", data={"csrf_token": csrf, "run": run})
    assert sent.status_code == 303, sent.text
    assert sent.headers["location"] == f"/videos/{video_id}?run={run}"
    (job,) = saliency_jobs(trained)
    assert job.status == "succeeded", job.error
    assert job.params == {"video_id": video_id, "run_id": trained.run_id}

    # Kept under names the server made from the video, the run and the file's hash.
    folder = trained.settings.home / "figures" / "videos" / str(video_id)
    stem = f"run{run}-{video['content_hash'][:16]}-saliency"
    assert {p.name for p in folder.iterdir()} >= {f"{stem}.png", f"{stem}.npz"}
    assert job.result["saliency"] == f"{stem}.png"

    page = web.get(f"/videos/{video_id}?run={run}")
    sheet_url = f"/videos/{video_id}/saliency.png?run={run}"
    assert f'src="{sheet_url}"' in page.text and "<form" not in page.text
    sheet = web.get(sheet_url)
    assert sheet.status_code == 200 and sheet.content.startswith(PNG_MAGIC)
    assert sheet.headers["content-type"] == "image/png"
    twin = web.get(f"/api/videos/{video_id}").json()["saliency"]
    maps_url = f"/videos/{video_id}/saliency.npz?run={run}"
    assert twin == {
        "run_id": trained.run_id,
        "saliency": sheet_url,
        "saliency_maps": maps_url,
        "job": None,
    }
    maps = web.get(maps_url)
    assert maps.status_code == 200 and "attachment" in maps.headers["content-disposition"]
    assert maps.content == (folder / f"{stem}.npz").read_bytes()

    # The maps `ddm predict --explain` writes for a copy of the file.
    copy = tmp_path / "clip.mp4"
    shutil.copyfile(trained.clips_root / video["path"], copy)
    predictor = load_predictor(trained.settings, trained.factory, run)
    expected = predict_video(predictor, copy, tmp_path / "clip.png", saliency=True)
    assert expected.error is None and expected.saliency_maps
    with np.load(folder / f"{stem}.npz") as kept, np.load(expected.saliency_maps) as cli:
        assert kept["maps"].shape[0] == FRAMES and kept["maps"].max() > 0
        np.testing.assert_allclose(kept["maps"], cli["maps"], rtol=1e-4, atol=1e-6)

    # A read-only server shows what was computed.
    read_only = client(trained.factory, settings=trained.settings)
    assert f'src="{sheet_url}"' in read_only.get(f"/videos/{video_id}").text
    assert read_only.get(sheet_url).content == sheet.content


def test_a_file_changed_since_ingest_is_refused(trained, tmp_path: Path) -> None:
    web = web_client(trained)
    (video,) = web.get("/api/videos?dataset=clips&method=NeuralTextures").json()
    csrf, run = signed_in_form(web, video["id"])
    path = trained.clips_root / video["path"]
    original = path.read_bytes()
    try:
        path.write_bytes(original + b"\0")
        sent = web.post(f"/videos/{video['id']}/saliency", data={"csrf_token": csrf, "run": run})
        assert sent.status_code == 303 and sent.headers["location"] == "/jobs"
    finally:
        path.write_bytes(original)
    failed = [job for job in saliency_jobs(trained) if job.params["video_id"] == video["id"]]
    assert [job.status for job in failed] == ["failed"]
    assert "changed since it was ingested" in failed[0].error
    assert web.get(f"/videos/{video['id']}/saliency.png?run={run}").status_code == 404
