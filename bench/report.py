"""`ddm report` over 10,000 stored predictions: seconds end to end, and per step.

A catalog (SQLite and PostgreSQL) holds one dataset of N videos, each with a valid feature
cache row, one trained run and one stored evaluation of it with a prediction per video.
`ddm report --eval bench --json` then reuses that evaluation (nothing is scored), so what
is timed is the report itself: selecting the videos, recomputing every metric from the
stored predictions, the cross-dataset matrix, the bias statistics of the predictions and
of the catalog, and the JSON. The Rich tables and `--out` figures are timed separately.

    .venv/bin/python bench/report.py [--quick] [--videos N] [--db sqlite|postgres|both]
"""

from __future__ import annotations

import argparse
import hashlib
import math
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import _common
from _common import machine, print_table, write_results

DATASET = "bench"
FINGERPRINT = "random-" + "b" * 40
METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")


def fill_catalog(factory: Any, videos: int, seed: int = 0) -> None:
    """One dataset of `videos` videos with valid caches, a run, and its stored evaluation."""
    from sqlalchemy import insert

    from ddm.catalog.evaluations import evaluation_selection, record_evaluation
    from ddm.catalog.models import Dataset, FeatureCache, Run, Video
    from ddm.db import session_scope

    rng = random.Random(seed)
    with session_scope(factory) as session:
        dataset = Dataset(name=DATASET, format="ffpp", root_path="/data/bench")
        session.add(dataset)
        session.flush()
        session.execute(insert(Video), [_video(dataset.id, i, rng) for i in range(videos)])
        ids = [row.id for row in session.query(Video.id).order_by(Video.id)]
        session.execute(insert(FeatureCache), [_cache(video_id) for video_id in ids])
        run = Run(name="bench-1", datasets=["other"], config={}, fingerprint=FINGERPRINT)
        run.status = "succeeded"
        session.add(run)
        session.flush()
        run_id = run.id
    with session_scope(factory) as session:
        selection = evaluation_selection(session, run_id, DATASET, "all")
        labels = [video.label == "fake" for video in selection.videos]
        logits = [rng.gauss(0.4 if fake else -0.4, 0.8) for fake in labels]
        scores = [1.0 / (1.0 + math.exp(-logit)) for logit in logits]
        record_evaluation(session, selection, logits, scores, threshold=0.5, metrics={})


def _video(dataset_id: int, index: int, rng: random.Random) -> dict[str, Any]:
    is_fake = rng.random() < 0.8
    return {
        "dataset_id": dataset_id,
        "path": f"videos/{index:06d}.mp4",
        "content_hash": hashlib.sha256(str(index).encode()).hexdigest(),
        "label": "fake" if is_fake else "real",
        "split": rng.choice(("train", "val", "test")),
        "method": rng.choice(METHODS) if is_fake else None,
        "compression": "c23",
        "frame_count": rng.randint(250, 700),
        "fps": 30.0,
        "width": 1280,
        "height": 720,
        "duration_s": 12.0,
        "size_bytes": rng.randint(2_000_000, 9_000_000),
        "probe_status": "ok",
        "is_present": True,
    }


def _cache(video_id: int) -> dict[str, Any]:
    checksum = hashlib.sha256(f"cache{video_id}".encode()).hexdigest()
    return {
        "video_id": video_id,
        "fingerprint": FINGERPRINT,
        "path": f"{FINGERPRINT}/{checksum[:2]}/{checksum}.pt",
        "is_valid": True,
        "checksum": checksum,
        "frames_sampled": 32,
        "fallback_frames": video_id % 7 == 0,
    }


def measure(db_url: str, home: Path, videos: int) -> dict[str, Any]:
    """Fill a catalog, then time `ddm report` and its steps."""
    from ddm.db import create_db_engine, make_session_factory, upgrade
    from tests.conftest import invoke_ddm, private_ddm_env

    engine = create_db_engine(db_url)
    upgrade(engine)
    factory = make_session_factory(engine)
    start = time.perf_counter()
    fill_catalog(factory, videos)
    fill_s = time.perf_counter() - start
    env = {**private_ddm_env(home), "DDM_DATABASE_URL": db_url}
    result: dict[str, Any] = {"videos": videos, "fill_catalog_s": fill_s}
    for name, args in (
        ("report_json_s", ("--json",)),
        ("report_tables_s", ()),
        ("report_out_s", ("--out", str(home / "out"))),
    ):
        start = time.perf_counter()
        outcome = invoke_ddm(env, "report", "--eval", DATASET, "--split", "all", *args)
        result[name] = time.perf_counter() - start
        if outcome.exit_code != 0:
            raise SystemExit(f"ddm report failed: {outcome.stderr}")
    result.update(_steps(factory))
    engine.dispose()
    return result


def _steps(factory: Any) -> dict[str, float]:
    """The report's own steps, timed one by one (no CLI, no rendering)."""
    from ddm.catalog.evaluations import evaluation_predictions, latest_evaluations
    from ddm.catalog.stats import video_facts
    from ddm.db import session_scope
    from tasks.bias import catalog_bias, prediction_bias
    from tasks.evaluation import plan_evaluations

    timings: dict[str, float] = {}

    def timed(name: str, function: Any) -> Any:
        start = time.perf_counter()
        value = function()
        timings[name] = time.perf_counter() - start
        return value

    timed("plan_and_reuse_s", lambda: plan_evaluations(None, factory, DATASET, split="all"))
    with session_scope(factory) as session:
        (evaluation,) = latest_evaluations(session)
        predictions = timed(
            "read_predictions_s", lambda: evaluation_predictions(session, evaluation.id)
        )
        facts = timed("read_catalog_facts_s", lambda: video_facts(session, [DATASET]))
    timed("metrics_s", lambda: _metrics(predictions))
    timed("prediction_bias_s", lambda: prediction_bias(predictions))
    timed("catalog_bias_s", lambda: catalog_bias(facts))
    return timings


def _metrics(predictions: list[Any]) -> dict[str, Any]:
    from model.metrics import binary_metrics

    return binary_metrics(
        [int(p.label == "fake") for p in predictions],
        [p.score for p in predictions],
        logits=[p.logit for p in predictions],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 videos, SQLite only")
    parser.add_argument("--videos", type=int, help="stored predictions (default 10,000)")
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    videos = args.videos or (1_000 if args.quick else 10_000)
    dialects = ["sqlite"] if args.quick or args.db == "sqlite" else ["sqlite", "postgres"]
    if args.db == "postgres":
        dialects = ["postgres"]
    info = machine()
    work = Path(tempfile.mkdtemp(prefix="ddm-bench-report-"))
    server = None
    results = []
    try:
        for dialect in dialects:
            if dialect == "postgres":
                from tests.pg import start_server

                server = start_server()
                url = server.create_database()
            else:
                url = f"sqlite:///{work / 'catalog.sqlite3'}"
            print(f"{dialect}: filling {videos} videos and predictions ...", flush=True)
            result = {"db": dialect, **measure(url, work / dialect, videos)}
            result["loadavg"] = _common.loadavg()
            results.append(result)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    keys = [k for k in results[0] if k.endswith("_s")]
    print_table(
        f"ddm report over {videos} stored predictions (seconds)",
        ["step", *(r["db"] for r in results)],
        [[key, *(r[key] for r in results)] for key in keys],
    )
    name = "report.quick" if args.quick else "report"
    write_results(name, {"machine": info, "videos": videos, "runs": results})


if __name__ == "__main__":
    main()
