"""Try a clip with a broker: the upload becomes a `predict` job on a real `ddm worker`
(Redis, PostgreSQL), the page shows the job and asks to be reloaded until the worker has
stored the result, which is then the score `ddm predict` gives, with its timeline and
saliency maps; and a video page's saliency button queues one `saliency` job for the worker."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ddm.config import load_settings
from tests.conftest import MEDIA
from tests.redis_server import RedisServer, start_redis
from tests.tasks.conftest import kill_worker, start_worker, wait_for
from tests.web.conftest import build_trained
from tests.web.test_uploads import HOSTILE_NAME, NEW_CLIP, post_clip, signed_in, web_client
from tests.web.test_video_saliency import saliency_jobs, signed_in_form

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:Glyph .* missing from font"),
]


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    server = start_redis()
    yield server
    server.stop()


def test_with_a_broker_the_clip_is_scored_on_a_worker(
    tmp_path: Path, pg_server, pg_template, redis: RedisServer
) -> None:
    from tasks.predict import load_predictor, predict_video

    assert MEDIA.is_dir()
    url = pg_server.create_database(template=pg_template)
    trained = build_trained(url, tmp_path)
    home = trained.settings.home
    brokered = load_settings(home=str(home), database_url=url, broker_url=redis.url)
    web = web_client(trained, settings=brokered)
    sent = post_clip(web, signed_in(web), HOSTILE_NAME, NEW_CLIP.read_bytes(), saliency="on")
    assert sent.status_code == 303, sent.text
    upload_id = sent.headers["location"].rsplit("/", 1)[-1]

    waiting = web.get(f"/uploads/{upload_id}")
    assert waiting.headers["refresh"] == "2" and ">queued</span>" in waiting.text
    assert web.get(f"/api/uploads/{upload_id}").json()["prediction"] is None
    # A video page's saliency button: a `saliency` job for the worker, asked for once.
    video_id = web.get("/api/videos?dataset=clips&limit=1").json()[0]["id"]
    form = dict(zip(("csrf_token", "run"), signed_in_form(web, video_id), strict=True))
    for _ in range(2):
        asked = web.post(f"/videos/{video_id}/saliency", data=form)
        assert asked.status_code == 303 and asked.headers["location"] == "/jobs"
    queued = web.get(f"/api/videos/{video_id}").json()["saliency"]
    assert queued["job"]["status"] == "queued" and queued["saliency"] is None
    assert ">queued</span>" in web.get(f"/videos/{video_id}").text

    env = {
        **os.environ,
        "DDM_HOME": str(home),
        "DDM_DATABASE_URL": url,
        "DDM_BROKER_URL": redis.url,
        "OMP_NUM_THREADS": "1",
    }
    log = tmp_path / "worker.log"
    worker = start_worker(env, log)
    try:
        twin = wait_for(
            lambda: (d := web.get(f"/api/uploads/{upload_id}").json())["prediction"] and d,
            timeout=180,
            what="the worker's prediction",
            log=log,
        )
        shown = wait_for(
            lambda: _finished(web.get(f"/api/videos/{video_id}").json()["saliency"]),
            timeout=180,
            what="the worker's saliency maps",
            log=log,
        )
    finally:
        kill_worker(worker)
    assert web.get(shown["saliency"]).content.startswith(b"\x89PNG")
    assert [job.status for job in saliency_jobs(trained)] == ["succeeded"]
    assert twin["job"]["status"] == "succeeded"
    copy = tmp_path / "clip.mp4"
    shutil.copyfile(NEW_CLIP, copy)
    predictor = load_predictor(trained.settings, trained.factory, None)
    expected = predict_video(predictor, copy)
    assert twin["prediction"]["score"] == pytest.approx(expected.score, abs=1e-6)
    done = web.get(f"/uploads/{upload_id}")
    assert "refresh" not in done.headers and f"{expected.score:.4f}" in done.text
    for figure in ("timeline", "saliency"):  # drawn on the worker, served here
        assert web.get(f"/uploads/{upload_id}/figures/{figure}").status_code == 200, figure
    assert twin["prediction"]["saliency"] == "saliency"


def _finished(saliency: dict) -> dict | None:
    # The files land first, then the job's row says it succeeded.
    return saliency if saliency["saliency"] and saliency["job"] is None else None
