"""`ddm serve`'s security cases: names from disk are escaped, files are served by catalog id
only and never from outside a dataset's root, and writes need a writable server, the
token and the CSRF value of our own forms."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from ddm.catalog.jobs import create_job, get_job
from ddm.db import session_scope
from tests.web.conftest import CLIPS, HOSTILE, build_catalog, client


@pytest.fixture(scope="module")
def web(catalog):  # noqa: ANN201
    return client(catalog.factory)


def _hostile_id(web) -> int:
    (row,) = web.get("/api/videos?dataset=clips&method=FaceSwap").json()
    return row["id"]


def test_names_from_disk_reach_the_page_source_only_escaped(catalog, web) -> None:
    video_id = _hostile_id(web)
    assert web.get(f"/api/videos/{video_id}").json()["video"]["path"] == f"fake/FaceSwap/{HOSTILE}"
    for path in ("/videos?dataset=clips", f"/videos/{video_id}"):
        page = web.get(path).text
        assert "<script" not in page and "<img" not in page and "onerror=alert(1)>" not in page
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;script&gt;" in page
        assert "&lt;img src=x onerror=alert(1)&gt; &#34;q&#34; é ü 日本.mp4" in page
    headers = web.get("/videos").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"


def test_a_video_file_is_served_by_id_with_range_requests(catalog, web) -> None:
    video_id = _hostile_id(web)
    data = CLIPS[f"fake/FaceSwap/{HOSTILE}"].read_bytes()
    whole = web.get(f"/videos/{video_id}/file")
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["content-type"] == "video/mp4"
    part = web.get(f"/videos/{video_id}/file", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    tail = web.get(f"/videos/{video_id}/file", headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == data[-10:]
    beyond = web.get(f"/videos/{video_id}/file", headers={"Range": f"bytes={len(data)}-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(data)}"
    assert web.get("/videos/999999/file").status_code == 404


def _raw_get(web, target: str) -> tuple[int, bytes]:
    """A GET of `target` exactly as written (no client-side normalisation of `..`)."""
    request = web.build_request("GET", "http://127.0.0.1:8765/")
    request.url = request.url.copy_with(raw_path=target.encode())
    response = web.send(request)
    return response.status_code, response.content


@pytest.mark.parametrize(
    "target",
    [
        "/videos/1/file/../../../../etc/passwd",
        "/videos/../../../../etc/passwd",
        "/videos/%2e%2e%2f%2e%2e%2fetc%2fpasswd/file",
        "/videos/1%2F..%2F..%2Fetc%2Fpasswd/file",
        "/videos//etc/passwd/file",
        "/videos/%2Fetc%2Fpasswd/file",
        "/static/../../../../etc/passwd",
        "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/static/..%2F..%2F..%2Fweb%2Fapp.py",
        "/etc/passwd",
    ],
)
def test_no_route_reads_a_path_from_the_request(web, target: str) -> None:
    status, body = _raw_get(web, target)
    assert status in (400, 404), (target, status)
    assert b"root:" not in body and b"create_app" not in body


def test_a_symlink_swapped_in_for_a_video_file_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    from ddm.db import create_db_engine, upgrade

    engine = create_db_engine(url)
    upgrade(engine)
    engine.dispose()
    built = build_catalog(url, tmp_path, train=False)
    web = client(built.factory)
    rows = web.get("/api/videos?sort=id").json()
    inside = next(r for r in rows if r["path"] == "real/004.mp4")
    assert web.get(f"/videos/{inside['id']}/file").status_code == 200
    secret = tmp_path / "outside.txt"
    secret.write_text("root:x:0:0 secret outside the dataset")
    target = built.clips_root / inside["path"]
    target.unlink()
    os.symlink(secret, target)
    refused = web.get(f"/videos/{inside['id']}/file")
    assert refused.status_code == 404 and b"secret" not in refused.content
    assert "links outside" in refused.text
    # A link to another file inside the same root is still that dataset's file.
    target.unlink()
    os.symlink(built.clips_root / "fake/NeuralTextures/004_982.mp4", target)
    assert web.get(f"/videos/{inside['id']}/file").status_code == 200


def _queued_job(catalog) -> int:
    with session_scope(catalog.factory) as session:
        return create_job(session, "extract", {"video_ids": []}, total=3).id


def _status(catalog, job_id: int) -> str:
    with session_scope(catalog.factory) as session:
        return get_job(session, job_id).status


def test_writes_need_a_writable_server_the_token_and_csrf(catalog) -> None:
    job_id = _queued_job(catalog)
    read_only = client(catalog.factory)
    assert read_only.post(f"/jobs/{job_id}/cancel").status_code == 403
    assert "read-only" in read_only.get("/jobs").text

    web = client(catalog.factory, writes=True, token="s3cret-token")
    assert web.post(f"/jobs/{job_id}/cancel").status_code == 401
    web.cookies.set("ddm_token", "wrong")
    assert web.post(f"/jobs/{job_id}/cancel", data={"csrf_token": "x"}).status_code == 401
    web.cookies.clear()
    # The printed link: the token goes into an HttpOnly, SameSite=Strict cookie.
    link = web.get("/jobs?token=s3cret-token")
    assert link.status_code == 303 and link.headers["location"] == "/jobs"
    cookie = link.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    page = web.get("/jobs").text
    assert f'action="/jobs/{job_id}/cancel"' in page
    (csrf,) = set(re.findall(r'name="csrf_token" value="([0-9a-f]+)"', page))
    assert web.post(f"/jobs/{job_id}/cancel").status_code == 403  # no CSRF value
    assert web.post(f"/jobs/{job_id}/cancel", data={"csrf_token": "0" * 64}).status_code == 403
    elsewhere = {"origin": "http://evil.example"}
    sent = web.post(f"/jobs/{job_id}/cancel", data={"csrf_token": csrf}, headers=elsewhere)
    assert sent.status_code == 403 and _status(catalog, job_id) == "queued"
    done = web.post(f"/jobs/{job_id}/cancel", data={"csrf_token": csrf})
    assert done.status_code == 303 and _status(catalog, job_id) == "cancelled"
    again = web.post(f"/jobs/{job_id}/cancel", data={"csrf_token": csrf})
    assert again.status_code == 400 and "already finished" in again.text


def test_a_loopback_server_answers_only_its_own_names(web) -> None:
    assert web.get("/api/datasets", headers={"host": "evil.example"}).status_code == 400
    assert web.get("/api/datasets", headers={"host": "localhost:8765"}).status_code == 200
