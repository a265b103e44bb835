"""bench/serve.py end to end at a tiny size: it fills a catalog through bench/scale.py's real
ingest and catalog functions, serves it with `ddm serve` in a child process and measures
every page; checked here are the JSON line's keys and that every page answered 200, never
the timings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PAGES = (
    "index",
    "datasets",
    "videos",
    "videos_filtered_sorted",
    "videos_deep_page",
    "videos_by_latest_score",
    "video",
    "runs",
    "run",
    "evaluation",
    "jobs",
)
OTHERS = ("api_stats", "video_file", "run_curves_png", "evaluation_roc_png")
OTHERS += ("evaluation_confusion_png",)


def test_every_page_answers_and_is_measured(db_url: str, tmp_path: Path) -> None:
    dialect = "postgresql" if db_url.startswith("postgresql") else "sqlite"
    command = [sys.executable, str(REPO / "bench" / "serve.py"), "--db", dialect, "--tiny"]
    command += ["--url", db_url, "--work", str(tmp_path), "--requests", "3", "--json"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DDM_")}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    line = json.loads(done.stdout.strip().splitlines()[-1])

    assert line["db"] == dialect
    assert line["videos"] == 320 and line["predictions"] > 0
    assert line["server_peak_rss_mib"] > 0
    expected = {*PAGES, *(f"api_{name}" for name in PAGES if name != "index"), *OTHERS}
    assert set(line["pages"]) == expected
    for name, page in line["pages"].items():
        assert page["statuses"] == {"200": 3}, (name, page)
        assert page["requests"] == 3 and page["bytes"] > 0, (name, page)
        assert 0 < page["p50_ms"] <= page["p95_ms"] <= page["max_ms"], (name, page)
        assert page["first_ms"] > 0, (name, page)
    assert set(line["over_goal"]) <= expected
    assert not list((REPO / "bench" / "results").glob("serve-*.tiny.json"))  # a check, kept nowhere
