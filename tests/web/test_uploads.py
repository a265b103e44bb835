"""Try a clip (`ddm serve --allow-uploads`): an upload needs the token and the CSRF value,
is bounded while it streams, probed, stored under a name the server draws, and scored by
the functions `ddm predict --explain` calls; and the jobs page refreshes through its own
script. Through the ASGI app, on a real SQLite catalog with real clips, real MTCNN and the
small random-weight backbones."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from ddm.config import Settings
from ddm.uploads import META_FILE, uploads_root
from tests.conftest import MEDIA
from tests.web.conftest import FRAMES, Catalog, client

# The hostile name's CJK characters are not in matplotlib's font (the timeline's title).
pytestmark = pytest.mark.filterwarnings("ignore:Glyph .* missing from font")

TOKEN = "upload-test-token"
NEW_CLIP = MEDIA / "ff++/original_sequences/youtube/c23/videos/634.mp4"  # not in the catalog
# A name a browser would run if a page put it in unescaped, and a path if a server used it.
HOSTILE_NAME = "../../<script>alert('x')</script> \"q\" 'é' 日本.mp4"


def web_client(  # noqa: ANN201  (a TestClient)
    catalog: Catalog,
    *,
    writes: bool = True,
    max_bytes: int = 10_000_000,
    settings: Settings | None = None,
):
    """The app as `ddm serve --allow-uploads` builds it (`settings`: the catalog's)."""
    from web.uploads import UploadCfg

    settings = settings or catalog.settings
    uploads = UploadCfg(settings, max_bytes)
    return client(catalog.factory, settings=settings, writes=writes, token=TOKEN, uploads=uploads)


def signed_in(web) -> str:  # noqa: ANN001
    """Open the token link, as a person does; returns the CSRF value of the upload form."""
    assert web.get(f"/uploads?token={TOKEN}").status_code == 303
    page = web.get("/uploads")
    assert page.status_code == 200, page.text
    (csrf,) = set(re.findall(r'name="csrf_token" value="([0-9a-f]+)"', page.text))
    return csrf


def post_clip(web, csrf: str | None, name: str, data: bytes, **fields: str):  # noqa: ANN001, ANN202
    form = {"csrf_token": csrf, **fields} if csrf is not None else fields
    return web.post("/uploads", data=form, files={"clip": (name, data, "video/mp4")})


def _stored(catalog: Catalog) -> list[Path]:
    """Everything under the uploads folder (partial files included)."""
    root = uploads_root(catalog.settings.home)
    return sorted(root.rglob("*")) if root.exists() else []


def test_the_limit_is_a_setting_with_an_environment_variable(monkeypatch) -> None:
    from ddm.config import load_settings
    from web.uploads import UploadCfg

    monkeypatch.delenv("DDM_UPLOAD_MAX_MB", raising=False)
    assert UploadCfg.from_settings(load_settings()).max_bytes == 500_000_000
    monkeypatch.setenv("DDM_UPLOAD_MAX_MB", "7")
    assert UploadCfg.from_settings(load_settings()).max_bytes == 7_000_000
    assert UploadCfg.from_settings(load_settings(), 3).max_bytes == 3_000_000  # --upload-limit


def test_uploads_are_refused_on_a_server_without_allow_uploads(trained) -> None:
    web = web_client(trained, writes=False)
    assert web.get("/uploads").status_code == 404
    assert web.post("/uploads", files={"clip": ("a.mp4", b"x")}).status_code in (403, 404)
    assert "try a clip" not in web.get("/").text


def test_an_upload_needs_the_token_and_the_csrf_value(trained) -> None:
    web = web_client(trained)
    data = NEW_CLIP.read_bytes()
    assert post_clip(web, None, "a.mp4", data).status_code == 401
    web.cookies.set("ddm_token", "wrong")
    assert post_clip(web, "0" * 64, "a.mp4", data).status_code == 401
    web.cookies.clear()
    csrf = signed_in(web)
    assert post_clip(web, None, "a.mp4", data).status_code == 403
    assert web.post("/uploads", data={"run": "1"}).status_code == 403  # not even multipart
    assert post_clip(web, "0" * 64, "a.mp4", data).status_code == 403
    elsewhere = web.post(
        "/uploads",
        data={"csrf_token": csrf},
        files={"clip": ("a.mp4", data)},
        headers={"origin": "http://evil.example"},
    )
    assert elsewhere.status_code == 403
    assert _stored(trained) == []


def test_an_upload_over_the_limit_is_413_and_leaves_nothing(trained) -> None:
    web = web_client(trained, max_bytes=100_000)
    csrf = signed_in(web)
    data = NEW_CLIP.read_bytes()
    assert len(data) > 100_000 + 64 * 1024
    refused = post_clip(web, csrf, "big.mp4", data)
    assert refused.status_code == 413 and "limit of 0.1 MB" in refused.text
    assert _stored(trained) == []

    # Without a declared length the body is counted as it streams and cut at the limit.
    def chunks():  # noqa: ANN202
        boundary = b"b0und4ry"
        yield b"--" + boundary + b'\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n'
        yield csrf.encode() + b"\r\n--" + boundary
        yield b'\r\nContent-Disposition: form-data; name="clip"; filename="big.mp4"\r\n\r\n'
        for start in range(0, len(data), 32_768):
            yield data[start : start + 32_768]
        yield b"\r\n--" + boundary + b"--\r\n"

    streamed = web.post(
        "/uploads",
        content=chunks(),
        headers={"content-type": "multipart/form-data; boundary=b0und4ry"},
    )
    assert streamed.status_code == 413
    assert _stored(trained) == []


def test_a_non_video_or_a_wrong_run_is_one_clear_line_and_nothing_kept(trained) -> None:
    web = web_client(trained)
    csrf = signed_in(web)
    no_run = post_clip(web, csrf, "a.mp4", NEW_CLIP.read_bytes(), run="no-such-run")
    assert no_run.status_code == 404 and "no-such-run" in no_run.text
    assert _stored(trained) == []
    refused = post_clip(web, csrf, "notes.mp4", b"just some text, not a video\n" * 50)
    assert refused.status_code == 400
    (line,) = re.findall(r'<p class="error">([^<]*)</p>', refused.text)
    assert line.startswith("not a video ddm can read: ")
    assert _stored(trained) == []


def test_a_real_clip_gets_the_score_ddm_predict_gives(trained, tmp_path: Path) -> None:
    from tasks.predict import load_predictor, predict_video

    web = web_client(trained)
    csrf = signed_in(web)
    run = str(trained.run_id)
    sent = post_clip(web, csrf, HOSTILE_NAME, NEW_CLIP.read_bytes(), run=run, saliency="on")
    assert sent.status_code == 303, sent.text
    upload_id = sent.headers["location"].rsplit("/", 1)[-1]
    assert re.fullmatch(r"[0-9a-f]{32}", upload_id)

    # Stored under the server's name, in a folder of its own; the client's name is data.
    folder = uploads_root(trained.settings.home) / upload_id
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["clip.mp4", META_FILE, "timeline.png", "timeline-saliency.png", "timeline-saliency.npz"]
    )
    assert (folder / "clip.mp4").read_bytes() == NEW_CLIP.read_bytes()
    assert not [p for p in trained.settings.home.rglob("*") if "script" in p.name]

    twin = web.get(f"/api/uploads/{upload_id}").json()
    assert twin["job"]["status"] == "succeeded" and twin["upload"]["name"] == HOSTILE_NAME
    shown = twin["prediction"]
    copy = tmp_path / "clip.mp4"
    shutil.copyfile(NEW_CLIP, copy)
    predictor = load_predictor(trained.settings, trained.factory, str(trained.run_id))
    expected = predict_video(predictor, copy, tmp_path / "timeline.png", saliency=True)
    assert shown["score"] == expected.score and shown["label"] == expected.label
    assert shown["frames_sampled"] == FRAMES and shown["source"] == "extracted"
    assert shown["frame_sources"] == expected.frame_sources
    # The saliency maps `ddm predict --explain` writes, named by the server, not by path.
    assert (shown["saliency"], shown["saliency_maps"]) == ("saliency", "saliency_maps")
    assert str(folder) not in str(shown)
    with np.load(folder / "timeline-saliency.npz") as kept, np.load(expected.saliency_maps) as cli:
        assert kept["maps"].shape[0] == FRAMES and kept["maps"].max() > 0
        np.testing.assert_allclose(kept["maps"], cli["maps"], rtol=1e-4, atol=1e-6)

    page = web.get(f"/uploads/{upload_id}")
    assert page.status_code == 200 and "refresh" not in page.headers
    assert f"{expected.score:.4f}" in page.text and f">{expected.label}</td>" in page.text
    assert "<script" not in page.text.replace('<script src="/static/', "")
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &#34;q&#34; &#39;é&#39; 日本.mp4" in (
        page.text
    )
    for name in ("timeline", "saliency"):
        assert f'src="/uploads/{upload_id}/figures/{name}"' in page.text
        figure = web.get(f"/uploads/{upload_id}/figures/{name}")
        assert figure.status_code == 200 and figure.content.startswith(b"\x89PNG")
        assert figure.headers["content-type"] == "image/png"
    maps = web.get(f"/uploads/{upload_id}/figures/saliency_maps")
    assert maps.status_code == 200 and "attachment" in maps.headers["content-disposition"]
    assert maps.content == (folder / "timeline-saliency.npz").read_bytes()
    for wrong in (
        f"/uploads/{upload_id}/figures/clip",
        f"/uploads/{upload_id}/figures/..%2Fclip.mp4",
        f"/uploads/{upload_id[:-1]}/figures/timeline",
        "/uploads/..%2F..%2Fcatalog.sqlite3",
        f"/api/uploads/{upload_id.upper()}",
    ):
        assert web.get(wrong).status_code == 404, wrong


def test_saliency_is_a_checkbox_of_the_form_and_unchecked_skips_it(trained) -> None:
    web = web_client(trained)
    csrf = signed_in(web)
    form = web.get("/uploads").text
    assert '<input type="checkbox" name="saliency" checked>' in form  # on unless unticked
    sent = post_clip(web, csrf, "plain.mp4", NEW_CLIP.read_bytes(), run=str(trained.run_id))
    assert sent.status_code == 303, sent.text  # an unticked box is absent from the POST
    upload_id = sent.headers["location"].rsplit("/", 1)[-1]
    folder = uploads_root(trained.settings.home) / upload_id
    kept = sorted(p.name for p in folder.iterdir())
    assert kept == sorted(["clip.mp4", META_FILE, "timeline.png"])
    shown = web.get(f"/api/uploads/{upload_id}").json()["prediction"]
    assert shown["saliency"] is None and shown["saliency_maps"] is None
    assert shown["explanation"] == "timeline"
    page = web.get(f"/uploads/{upload_id}").text
    assert "/figures/timeline" in page and "/figures/saliency" not in page
    assert web.get(f"/uploads/{upload_id}/figures/saliency").status_code == 404


def test_the_jobs_page_refreshes_through_its_own_script(trained) -> None:
    web = web_client(trained)
    page = web.get("/jobs")
    assert page.text.count("<script") == 1 and "<title>jobs · ddm</title>" in page.text
    assert re.search(r'<script src="/static/jobs.js" defer></script>\s*</main>', page.text)
    assert re.search(r"<script(?![^>]*\bsrc=)", page.text) is None  # no inline script
    assert 'data-job="' in page.text and 'class="progress"' in page.text
    script = web.get("/static/jobs.js")
    assert script.status_code == 200 and "/api/jobs" in script.text
    assert "javascript" in script.headers["content-type"]
    assert "innerHTML" not in script.text  # values go in as text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy


def test_partial_files_a_killed_server_left_are_removed_when_one_starts(tmp_path: Path) -> None:
    import os
    import time

    from ddm.uploads import STALE_PART_SECONDS, remove_stale_parts

    root = tmp_path / "uploads"
    root.mkdir()
    stale, arriving = root / ".tmp-aa.part", root / ".tmp-bb.part"
    kept = root / "cc" / "clip.mp4"
    kept.parent.mkdir()
    for path in (stale, arriving, kept):
        path.write_bytes(b"x")
    old = time.time() - STALE_PART_SECONDS - 60
    for path in (stale, kept):
        os.utime(path, (old, old))
    assert remove_stale_parts(root) == 1
    assert not stale.exists() and arriving.exists() and kept.exists()
