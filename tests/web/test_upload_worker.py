"""Try a clip with a broker: the upload becomes a `predict` job on a real `ddm worker`
(Redis, PostgreSQL), the page shows the job and asks to be reloaded until the worker has
stored the result, which is then the score `ddm predict` gives, with its timeline and
saliency maps."""

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
from tests.web.test_uploads import (
    HOSTILE_NAME,
    NEW_CLIP,
    build_trained,
    post_clip,
    signed_in,
    web_client,
)

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
    sent = post_clip(web, signed_in(web), HOSTILE_NAME, NEW_CLIP.read_bytes())
    assert sent.status_code == 303, sent.text
    upload_id = sent.headers["location"].rsplit("/", 1)[-1]

    waiting = web.get(f"/uploads/{upload_id}")
    assert waiting.headers["refresh"] == "2" and ">queued</span>" in waiting.text
    assert web.get(f"/api/uploads/{upload_id}").json()["prediction"] is None

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
    finally:
        kill_worker(worker)
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
