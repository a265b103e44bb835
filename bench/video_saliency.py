"""A video page's saliency (`ddm serve --allow-uploads`): seconds of the `saliency` job on
the demo's videos, and what reading the page costs before and after.

Builds the demo's workspace (`ddm demo --size S` in a temporary DDM_HOME) unless `--home`
names the DDM_HOME of a finished `ddm demo`; then, through the ASGI app as `ddm serve
--allow-uploads` builds it (no broker: the job runs inside the request), presses "Compute
saliency" on N of demo-ff's test videos whose maps were not computed yet, and times each
POST (the whole job: the file's hash, the run's model, the features from the cache, the
saliency maps and both files), and the video page's GET before and after (median of 5).

    .venv/bin/python bench/video_saliency.py [--home DIR] [--size small|default] [--videos 3]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (puts the repository on sys.path)
from _common import REPO, machine, median, print_table, write_results

TOKEN = "bench-token"
PAGE_READS = 5


def build_demo(size: str) -> Path:
    home = Path(tempfile.mkdtemp(prefix="ddm-bench-saliency-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DDM_")}
    env["DDM_HOME"] = str(home)
    subprocess.run(
        [str(REPO / ".venv" / "bin" / "ddm"), "-q", "demo", "--size", size, "--json"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return home


def web_client(home: Path) -> Any:
    from starlette.testclient import TestClient

    from ddm.config import load_settings
    from tasks.context import session_factory
    from tasks.demo import demo_settings
    from web.app import create_app
    from web.security import LOOPBACK_HOSTS, Access
    from web.uploads import UploadCfg

    settings = demo_settings(home / "demo", load_settings(home=str(home)))
    app = create_app(
        session_factory(settings.db_url),
        settings=settings,
        access=Access(writes=True, token=TOKEN),
        allowed_hosts=LOOPBACK_HOSTS,
        uploads=UploadCfg.from_settings(settings),
    )
    return TestClient(app, base_url="http://127.0.0.1:8765", follow_redirects=False)


def page_ms(web: Any, path: str) -> float:
    times = []
    for _ in range(PAGE_READS):
        start = time.perf_counter()
        answer = web.get(path)
        times.append(1000 * (time.perf_counter() - start))
        assert answer.status_code == 200, answer.text
    return median(times)


def measure(web: Any, video: dict[str, Any]) -> dict[str, Any]:
    path = f"/videos/{video['id']}"
    before = page_ms(web, path)
    page = web.get(path).text
    (csrf,) = re.findall(r'name="csrf_token" value="([0-9a-f]+)"', page)
    (run,) = re.findall(r'name="run" value="(\d+)"', page)
    start = time.perf_counter()
    answer = web.post(f"{path}/saliency", data={"csrf_token": csrf, "run": run})
    seconds = time.perf_counter() - start
    assert answer.headers.get("location", "").startswith(path), answer.text
    after = page_ms(web, path)
    sheet = web.get(f"{path}/saliency.png?run={run}")
    assert sheet.status_code == 200
    return {
        "video_id": video["id"],
        "frames": video.get("frames_sampled"),
        "job_s": seconds,
        "page_ms_before": before,
        "page_ms_after": after,
        "sheet_bytes": len(sheet.content),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="DDM_HOME of a finished `ddm demo`")
    parser.add_argument("--size", choices=["default", "small"], default="small")
    parser.add_argument("--videos", type=int, default=3)
    args = parser.parse_args()
    info = machine()
    home = args.home or build_demo(args.size)
    web = web_client(home)
    assert web.get(f"/?token={TOKEN}").status_code == 303
    listed = web.get("/api/videos?dataset=demo-ff&split=test&sort=id").json()
    # Only videos whose maps are not there yet: a job finds those and draws nothing.
    unexplained = [v for v in listed if not _has_sheet(web, v["id"])]
    videos = unexplained[: args.videos]
    rows = [measure(web, video) for video in videos]
    print_table(
        "saliency job per video (inline, through the web app)",
        ["video", "frames", "job s", "page ms before", "page ms after"],
        [
            [r["video_id"], r["frames"], r["job_s"], r["page_ms_before"], r["page_ms_after"]]
            for r in rows
        ],
    )
    write_results("video_saliency", {"machine": info, "size": args.size, "videos": rows})


def _has_sheet(web: Any, video_id: int) -> bool:
    return web.get(f"/api/videos/{video_id}").json()["saliency"]["saliency"] is not None


if __name__ == "__main__":
    main()
