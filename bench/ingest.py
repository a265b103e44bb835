"""Benchmark `ingest_dataset` (issue 3): videos/s for a first ingest and an unchanged re-ingest.

Generates a plain-folder tree (`real/`, `fake/`) of small, distinct, real video files with
OpenCV, then, for each catalog backend (a fresh SQLite file, and a throwaway PostgreSQL
cluster from tests/pg.py when its binaries are installed):

1. first ingest of the whole tree into an empty catalog (scan, probe + hash, record);
2. the same ingest again with nothing changed (must skip every file by size + mtime).

Tree generation is not timed. A separate run on another fresh SQLite catalog times the
pipeline's phases one by one (scan, probe, record) with the same public functions and
inputs `ingest_dataset` uses, to show where the time goes.

Targets (issue 3, this 2-core machine): first ingest >= 100 videos/s, unchanged re-ingest
>= 1,000 videos/s.

    .venv/bin/python bench/ingest.py            # 2,000 videos
    .venv/bin/python bench/ingest.py --quick    # 200 videos, SQLite only, one repeat
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (puts the repository root on sys.path)
import cv2
import numpy as np
from _common import MEDIA, machine, median, print_table, write_results

from ddm.db import create_db_engine, make_session_factory, verify_schema
from ddm.ingest.probe import probe_many
from ddm.services.ingest import ingest_dataset

FIRST_TARGET = 100.0  # videos/s
REINGEST_TARGET = 1000.0  # videos/s
CLIP_SIDE = 128  # pixels
CLIP_FRAMES = 25
CLIP_FPS = 25


def make_tree(root: Path, count: int) -> Path:
    """`count` distinct short clips, half under real/ and half under fake/, in subfolders.

    Every clip is seeded noise plus a moving bar, so each file's content (and hash) differs.
    """
    fourcc = cv2.VideoWriter_fourcc(*"mp4v")
    for index in range(count):
        label = "real" if index % 2 == 0 else "fake"
        folder = root / label / f"group_{index // 100:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"clip_{index:05d}.mp4"
        writer = cv2.VideoWriter(str(path), fourcc, CLIP_FPS, (CLIP_SIDE, CLIP_SIDE))
        if not writer.isOpened():
            raise RuntimeError("OpenCV cannot write mp4v videos here")
        rng = np.random.default_rng(index)
        base = rng.integers(0, 256, (CLIP_SIDE, CLIP_SIDE, 3), dtype=np.uint8)
        for frame_index in range(CLIP_FRAMES):
            frame = base.copy()
            frame[:, (index + 7 * frame_index) % CLIP_SIDE] = 255
            writer.write(frame)
        writer.release()
    return root


def fresh_sqlite(directory: Path, name: str):
    url = f"sqlite:///{directory / name}"
    return _factory(url)


def _factory(url: str):
    engine = create_db_engine(url)
    verify_schema(engine)  # an empty database is migrated to head here, untimed
    return make_session_factory(engine), engine


def timed_ingest(factory, root: Path, workers: int) -> dict[str, Any]:
    start = time.perf_counter()
    report = ingest_dataset(factory, root, format="folder", name="bench", workers=workers)
    seconds = time.perf_counter() - start
    counts = report.counts
    videos = counts.new + counts.changed + counts.unchanged
    return {
        "seconds": seconds,
        "videos": videos,
        "videos_per_s": videos / seconds,
        "probed": report.probed,
        "new": counts.new,
        "changed": counts.changed,
        "unchanged": counts.unchanged,
        "missing": counts.missing,
    }


def run_backend(label: str, make_factory, root: Path, workers: int, repeats: int) -> dict:
    """First ingests (each into a fresh catalog) and unchanged re-ingests of the last one."""
    firsts, reingests = [], []
    for _ in range(repeats):
        factory, engine = make_factory()
        firsts.append(timed_ingest(factory, root, workers))
        print(f"  {label}: first ingest {firsts[-1]['videos_per_s']:.1f} videos/s", flush=True)
        for _ in range(3 if repeats > 1 else 1):
            reingests.append(timed_ingest(factory, root, workers))
            print(f"  {label}: re-ingest {reingests[-1]['videos_per_s']:.1f} videos/s", flush=True)
        engine.dispose()
    return {"first": firsts, "reingest": reingests}


def phase_split(make_factory, root: Path, workers: int) -> dict[str, dict[str, float]]:
    """The seconds `ingest_dataset` itself reports per phase (scan, stat, probe, record)."""
    factory, engine = make_factory()
    split: dict[str, dict[str, float]] = {}
    for run in ("first", "reingest"):
        report = ingest_dataset(factory, root, format="folder", name="bench", workers=workers)
        split[run] = {
            **report.seconds,
            "total": sum(report.seconds.values()),
            "probed": float(report.probed),
        }
    engine.dispose()
    return split


def real_clip_probe(workers: int, rounds: int) -> dict[str, Any]:
    """Probe + fingerprint the real clips in ../shared/media: full-size H.264, not toys.

    The generated clips are tiny; this shows what one probe costs on real dataset videos,
    per clip, with the seek-and-decode of the last frame (the frame-count check) timed
    apart from opening the container.
    """
    clips = sorted(MEDIA.rglob("*.mp4"))
    if not clips:
        return {}
    per_clip = []
    for path in clips:
        start = time.perf_counter()
        capture = cv2.VideoCapture(os.path.abspath(path), cv2.CAP_FFMPEG)
        reported = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        opened = time.perf_counter()
        capture.grab()
        first = time.perf_counter()
        capture.set(cv2.CAP_PROP_POS_FRAMES, reported - 1)
        capture.grab()
        last = time.perf_counter()
        capture.release()
        probe_start = time.perf_counter()
        probe_many([path], workers=1)
        probe_s = time.perf_counter() - probe_start
        packets, demux_s = _count_packets(path)
        per_clip.append(
            {
                "clip": path.relative_to(MEDIA).as_posix(),
                "frames": reported,
                "size": f"{width}x{height}",
                "open_s": opened - start,
                "first_frame_s": first - opened,
                "last_frame_seek_s": last - first,
                "probe_many_1_thread_s": probe_s,
                "packets": packets,
                "demux_only_count_s": demux_s,
            }
        )
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        probe_many(clips, workers=workers)
        rates.append(len(clips) / (time.perf_counter() - start))
    return {"clips": len(clips), "workers": workers, "videos_per_s": rates, "per_clip": per_clip}


def _count_packets(path: Path) -> tuple[int, float]:
    """Count the video packets without decoding any (OpenCV's raw-stream mode), timed.

    Not what ddm does: shown as the cost of a demux-only frame count, for comparison with
    the seek-and-decode check above.
    """
    start = time.perf_counter()
    capture = cv2.VideoCapture(os.path.abspath(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_FORMAT, -1])
    count = 0
    while capture.grab():
        count += 1
    capture.release()
    return count, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 videos, SQLite, one repeat")
    parser.add_argument("--videos", type=int, help="tree size (default 2000, quick 200)")
    parser.add_argument(
        "--workers",
        type=int,
        default=min(8, os.cpu_count() or 1),
        help="probe threads (default: `ddm ingest`'s default, min(8, cores))",
    )
    parser.add_argument("--repeats", type=int, help="fresh-catalog first ingests per backend")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--keep", action="store_true", help="keep the generated tree")
    args = parser.parse_args()
    count = args.videos or (200 if args.quick else 2000)
    repeats = args.repeats or (1 if args.quick else 2)
    use_pg = not (args.quick or args.no_postgres)

    info = machine()
    work = Path(tempfile.mkdtemp(prefix="ddm-bench-ingest-"))
    pg = None
    try:
        start = time.perf_counter()
        root = make_tree(work / "tree", count)
        generated_s = time.perf_counter() - start
        tree_bytes = sum(p.stat().st_size for p in root.rglob("*.mp4"))
        print(f"generated {count} clips ({tree_bytes / 2**20:.1f} MiB) in {generated_s:.1f} s")

        backends: dict[str, dict] = {}
        serial = iter(range(1000))
        backends["sqlite"] = run_backend(
            "sqlite",
            lambda: fresh_sqlite(work, f"catalog{next(serial)}.sqlite3"),
            root,
            args.workers,
            repeats,
        )
        if use_pg:
            from tests.pg import pg_bin_dir, start_server

            if pg_bin_dir() is None and not os.environ.get("DDM_TEST_DATABASE_URL"):
                print("PostgreSQL binaries not found; SQLite only")
            else:
                pg = start_server()
                backends["postgres"] = run_backend(
                    "postgres",
                    lambda: _factory(pg.create_database()),
                    root,
                    args.workers,
                    repeats,
                )
        split = phase_split(
            lambda: fresh_sqlite(work, f"catalog{next(serial)}.sqlite3"), root, args.workers
        )
        real = real_clip_probe(args.workers, 1 if args.quick else 3)
    finally:
        if pg is not None:
            pg.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    report(count, args.workers, backends, split, real)
    summary = {
        backend: {
            run: {
                "median_videos_per_s": median([r["videos_per_s"] for r in runs[run]]),
                "target_videos_per_s": FIRST_TARGET if run == "first" else REINGEST_TARGET,
                "passes": median([r["videos_per_s"] for r in runs[run]])
                >= (FIRST_TARGET if run == "first" else REINGEST_TARGET),
            }
            for run in ("first", "reingest")
        }
        for backend, runs in backends.items()
    }
    write_results(
        "ingest.quick" if args.quick else "ingest",
        {
            "benchmark": "ingest",
            "quick": args.quick,
            "machine": info,
            "tree": {
                "videos": count,
                "bytes": tree_bytes,
                "clip": f"{CLIP_SIDE}x{CLIP_SIDE}, {CLIP_FRAMES} frames, mp4v",
                "generation_s_untimed": generated_s,
            },
            "workers": args.workers,
            "runs": backends,
            "summary": summary,
            "phase_split_sqlite": split,
            "real_clip_probe": real,
        },
    )


def report(count: int, workers: int, backends: dict, split: dict, real: dict) -> None:
    rows = []
    for backend, runs in backends.items():
        for run, target in (("first", FIRST_TARGET), ("reingest", REINGEST_TARGET)):
            rates = [r["videos_per_s"] for r in runs[run]]
            probed = sorted({r["probed"] for r in runs[run]})
            rows.append(
                [
                    backend,
                    run,
                    " ".join(f"{r['seconds']:.2f}" for r in runs[run]),
                    " ".join(f"{x:.0f}" for x in rates),
                    median(rates),
                    target,
                    "pass" if median(rates) >= target else "FAIL",
                    ",".join(map(str, probed)),
                ]
            )
    print_table(
        f"ingest of {count} videos, {workers} probe threads",
        ["catalog", "run", "seconds (each)", "videos/s (each)", "median", "target", "", "probed"],
        rows,
    )
    phases = ["scan", "stat", "probe", "record", "total"]
    print_table(
        "phase split (fresh SQLite catalog, seconds)",
        ["run", *phases, "probed"],
        [[run, *(t[p] for p in phases), int(t["probed"])] for run, t in split.items()],
    )
    if real:
        keys = ["frames", "size", "open_s", "first_frame_s", "last_frame_seek_s"]
        keys += ["probe_many_1_thread_s", "packets", "demux_only_count_s"]
        print_table(
            f"real clips in {MEDIA} (seconds; probe_many of one clip on 1 thread; "
            "packets: demux-only count, for comparison)",
            ["clip", *keys],
            [[c["clip"], *(c[k] for k in keys)] for c in real["per_clip"]],
        )
        print(
            f"probe_many over all {real['clips']} real clips, {real['workers']} threads: "
            + ", ".join(f"{r:.1f}" for r in real["videos_per_s"])
            + " videos/s"
        )


if __name__ == "__main__":
    main()
