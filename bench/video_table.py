"""`ddm serve`'s video table at DFDC size on SQLite: one page of 50 rows in each order (with
each row's latest score, as the page shows it), and the whole listing that `ddm videos
--json` streams (with and without `--scores`), over 130,000 videos with a feature cache each
and 1,000,000 stored predictions (8 evaluations of every video, minus a few).

Rows are written straight through SQLAlchemy Core into a catalog migrated by Alembic (the
probe-free part of a catalog: nothing here needs a real file). Each query runs `--repeat`
times; the median is kept. With `--baseline DIR` (an older checkout) the same queries run
first with that code, in a subprocess, on the same rows (a copy migrated down to that
checkout's newest migration, so without later indexes): before and after side by side.

    .venv/bin/python bench/video_table.py [--videos N] [--evaluations E] [--work DIR]
        [--baseline DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import REPO, machine, print_table, write_results

ORDERS = ("path", "id", "frame_count", "resolution", "cache", "fallback_share", "latest_score")
FINGERPRINT = "bench-" + "c" * 40
MEASURE = """
import inspect, json, statistics, sys, time
from ddm.db import session_scope
from tasks.context import session_factory
from ddm.catalog.videos import VIDEO_SORTS, iter_videos
url, fingerprint, repeat, orders = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
factory = session_factory(url)
# The web table reads each page's latest scores; checkouts before them had none to read.
SCORES = {"with_scores": True} if "with_scores" in inspect.signature(iter_videos).parameters else {}
def timed(**options):
    times = []
    for _ in range(repeat):
        with session_scope(factory) as session:
            start = time.perf_counter()
            n = sum(1 for _ in iter_videos(session, fingerprint=fingerprint, **options))
            times.append(time.perf_counter() - start)
    return statistics.median(times), n
out = {}
for order in orders:
    if order in VIDEO_SORTS:
        out[f"page by {order}"] = timed(sort=order, limit=50, **SCORES)
        out[f"page by {order}, desc, offset 100000"] = timed(
            sort=order, descending=True, limit=50, offset=100_000, **SCORES)
out["every video (ddm videos --json)"] = timed()
if SCORES:
    out["every video with scores (ddm videos --scores --json)"] = timed(**SCORES)
print(json.dumps(out))
"""


def fill(url: str, videos: int, evaluations: int) -> None:
    """One dataset of `videos` videos, a valid cache each, and `evaluations` evaluations
    of one run, each scoring every video but one in 50."""
    import random

    from sqlalchemy import insert

    from ddm.catalog.latest_scores import refresh_latest_scores
    from ddm.catalog.models import Dataset, Evaluation, FeatureCache, Prediction, Run, Video
    from ddm.db import create_db_engine, make_session_factory, session_scope, upgrade

    engine = create_db_engine(url)
    upgrade(engine)
    rng = random.Random(0)
    with engine.begin() as connection:
        dataset = {"id": 1, "name": "dfdc", "format": "dfdc", "root_path": "/d"}
        connection.execute(insert(Dataset).values(**dataset))
        connection.execute(insert(Run).values(id=1, name="run-1", status="succeeded"))
        rows = [_video(index, rng) for index in range(1, videos + 1)]
        connection.execute(insert(Video), rows)
        caches = [_cache(index, rng) for index in range(1, videos + 1)]
        connection.execute(insert(FeatureCache), caches)
        for evaluation in range(1, evaluations + 1):
            connection.execute(
                insert(Evaluation).values(id=evaluation, run_id=1, dataset_id=1, n_videos=videos)
            )
            scored = [_prediction(evaluation, i, rng) for i in range(1, videos + 1) if i % 50]
            connection.execute(insert(Prediction), scored)
    # Written past `record_evaluation`: the videos' stored latest scores are computed here.
    with session_scope(make_session_factory(engine)) as session:
        refresh_latest_scores(session)
    engine.dispose()


def _video(index: int, rng: Any) -> dict[str, Any]:
    width, height = rng.choice([(1920, 1080), (1080, 1920), (1280, 720), (640, 360)])
    return {
        "id": index,
        "dataset_id": 1,
        "path": f"dfdc_train_part_{index % 50}/{index:08d}.mp4",
        "label": "fake" if index % 5 else "real",
        "split": "train",
        "probe_status": "ok",
        "is_present": True,
        "frame_count": rng.randint(290, 310),
        "width": width,
        "height": height,
        "size_bytes": rng.randint(10**6, 10**7),
        "content_hash": f"{index:064x}",
    }


def _cache(index: int, rng: Any) -> dict[str, Any]:
    return {
        "video_id": index,
        "fingerprint": FINGERPRINT,
        "is_valid": True,
        "frames_sampled": 32,
        "fallback_frames": rng.choice([0, 0, 0, 1, 4, 32]),
        "path": f"x/{index}.safetensors",
        "checksum": f"{index:064x}",
    }


def _prediction(evaluation: int, index: int, rng: Any) -> dict[str, Any]:
    score = rng.random()
    return {
        "evaluation_id": evaluation,
        "video_id": index,
        "score": score,
        "logit": score - 0.5,
        "predicted_label": "fake" if score >= 0.5 else "real",
        "label": "fake" if index % 5 else "real",
    }


def upgrade_to_head(url: str) -> None:
    from ddm.db import create_db_engine, upgrade

    engine = create_db_engine(url)
    upgrade(engine)
    engine.dispose()


def baseline_head(checkout: Path) -> str:
    """The newest migration of an older checkout (files are numbered `NNNN_name.py`)."""
    versions = (checkout / "migrations" / "versions").glob("[0-9][0-9][0-9][0-9]_*.py")
    return max(path.name[:4] for path in versions)


def at_revision(database: Path, revision: str) -> Path:
    """A copy of the catalog migrated down to `revision`, where an older checkout runs."""
    from ddm.db import create_db_engine, downgrade

    copy = database.with_name(f"{database.stem}-at-{revision}.sqlite3")
    if not copy.exists():
        shutil.copyfile(database, copy)
        engine = create_db_engine(f"sqlite:///{copy}")
        downgrade(engine, revision)
        engine.dispose()
    return copy


def measure(checkout: Path, url: str, repeat: int) -> dict[str, Any]:
    command = [sys.executable, "-c", MEASURE, url, FINGERPRINT, str(repeat), *ORDERS]
    env = {"PYTHONPATH": str(checkout), "PATH": "/usr/bin:/bin"}
    # From the checkout: `python -c` puts the working directory first on sys.path.
    done = subprocess.run(
        command, env=env, cwd=checkout, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=130_000)
    parser.add_argument("--evaluations", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, help="where the catalog is kept (reused)")
    parser.add_argument("--baseline", type=Path, help="an older checkout to measure first")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = args.work or Path(tempfile.gettempdir()) / "ddm-video-table"
    work.mkdir(parents=True, exist_ok=True)
    database = work / f"catalog-{args.videos}-{args.evaluations}.sqlite3"
    url = f"sqlite:///{database}"
    if not database.exists():
        start = time.perf_counter()
        fill(url, args.videos, args.evaluations)
        print(f"filled {database} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    results: dict[str, Any] = {"machine": machine(), "videos": args.videos}
    results["evaluations"] = args.evaluations
    upgrade_to_head(url)  # a catalog filled by an older checkout gets this one's indexes
    if args.baseline:
        older = at_revision(database, baseline_head(args.baseline))
        results["baseline"] = measure(args.baseline, f"sqlite:///{older}", args.repeat)
    results["this"] = measure(REPO, url, args.repeat)
    rows = []
    for name, (seconds, count) in results["this"].items():
        before = results.get("baseline", {}).get(name)
        baseline = f"{before[0] * 1000:.0f}" if before else "-"
        rows.append([name, count, f"{seconds * 1000:.0f}", baseline])
    print_table("video table (SQLite), median ms", ["query", "rows", "this", "baseline"], rows)
    write_results("video_table", results, quiet=not args.json)


if __name__ == "__main__":
    main()
