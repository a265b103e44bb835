"""`record_evaluation` at DFDC size: storing one evaluation of every DFDC video (115,000
predictions) in the catalog `bench/scale.py` fills and keeps, and how much of it is
keeping each video's latest score (`keep_latest_scores`, the UPDATE of migration 0014's
columns). Each repeat records the newest run's evaluation with fresh random scores, times
it, and rolls it back, so the kept catalog is left as it was.

    .venv/bin/python bench/record_evaluation.py [--db postgresql|sqlite] [--repeat N]
        [--work DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import _common
import scale
from _common import machine, print_table, write_results


def measure(url: str, repeat: int) -> list[dict[str, float]]:
    """Seconds of each repeat: the whole `record_evaluation`, and its latest-score share."""
    from sqlalchemy import func, select

    import ddm.catalog.evaluations as evaluations
    from ddm.catalog.models import Run
    from ddm.db import create_db_engine, make_session_factory

    keep = evaluations.keep_latest_scores
    kept: list[float] = []

    def timed_keep(session: Any, evaluation_id: int) -> int:
        start = time.perf_counter()
        changed = keep(session, evaluation_id)
        kept.append(time.perf_counter() - start)
        return changed

    evaluations.keep_latest_scores = timed_keep  # the name record_evaluation calls
    engine = create_db_engine(url)
    factory = make_session_factory(engine)
    times = []
    for attempt in range(repeat):
        with factory() as session:
            run = session.scalar(select(func.max(Run.id)))
            selection = evaluations.evaluation_selection(session, run, "dfdc", "all")
            rng = random.Random(attempt)
            scores = [rng.random() for _ in selection.videos]
            logits = [score - 0.5 for score in scores]
            start = time.perf_counter()
            evaluations.record_evaluation(
                session, selection, logits, scores, threshold=0.5, metrics={}
            )
            session.flush()
            total = time.perf_counter() - start
            session.rollback()
        times.append({"videos": len(selection.videos), "total_s": total, "latest_s": kept[-1]})
        print(f"  {total:.2f} s, latest scores {kept[-1]:.2f} s", file=sys.stderr, flush=True)
    engine.dispose()
    evaluations.keep_latest_scores = keep
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--json", action="store_true", help="print one JSON line on stdout")
    args = parser.parse_args()
    work = scale.work_dir(scale.FULL, args.work)
    info = machine()
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else print
    with scale.filled_catalog(args.db, scale.FULL, work, say=say) as filled:
        scale.migrate(filled.url, "head")
        times = measure(filled.url, args.repeat)
    results = {
        "machine": info,
        "db": args.db,
        **filled.counts,
        "repeats": times,
        "median_total_s": statistics.median(t["total_s"] for t in times),
        "median_latest_s": statistics.median(t["latest_s"] for t in times),
        "loadavg": _common.loadavg(),
    }
    write_results(f"record_evaluation-{args.db}", results, quiet=args.json)
    if args.json:
        print(json.dumps(results))
        return
    rows = [[t["videos"], t["total_s"], t["latest_s"]] for t in times]
    print_table(f"record_evaluation, {args.db}", ["videos", "seconds", "latest scores s"], rows)


if __name__ == "__main__":
    main()
