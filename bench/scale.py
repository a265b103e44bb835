"""The catalog at DFDC size: `ddm` commands over 130,000 videos and 1,000,000 predictions.

A catalog (PostgreSQL or SQLite) is filled once and reused: a DFDC-like tree (46 training
parts of 2,500 clips, each with a real-format `metadata.json`) and an FF++-like tree (the
official pair ids, 4 methods, raw, c23 and c40) are generated and ingested for real; every
video gets a valid feature-cache row; 10 runs are created on FF++'s train/val split with
their frozen membership; each run's evaluation on every DFDC video (`--split all`) and on
FF++'s test split is stored through the catalog's own functions. Each file is one tiny
real clip with a trailing ISO-BMFF `free` box holding its index, so every file probes as
a video and has a content hash of its own (the leakage guard compares hashes).

Then each command runs in a subprocess of its own, as a user runs it, timing its wall
clock and its peak resident memory (`ru_maxrss`): a re-scan of each unchanged tree,
`ddm videos --dataset dfdc --json`, `ddm stats`, `ddm report --eval dfdc --split all` for
the latest run (its evaluation stored, so reused), the same with `--json`, `ddm report
--eval ff --runs all` (10 run entries and the full cross-dataset matrix, whose DFDC column
reads every stored DFDC prediction), and `ddm runs list`. `ddm --version` gives the start-up
cost every command pays. With `--baseline DIR` (a checkout of an older commit) the same
commands run with that code too, on the same catalog migrated down to its head: before and
after, side by side in one run. When the two share a schema they alternate command by
command (with `--repeat N`, N times each, the median reported and every run kept), so that
the load of a shared machine falls on both alike; otherwise the baseline runs first.

    .venv/bin/python bench/scale.py [--db postgresql|sqlite] [--quick] [--json]
        [--baseline DIR] [--repeat N] [--work DIR] [--refill] [--fill-only]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _common
from _common import REPO, machine, print_table, write_results

FINGERPRINT = "scale-" + "c" * 40
RUNS = 10
# Runs `ddm ARGS` and writes its peak resident memory (KiB) where SCALE_PEAK_FILE says. The
# process reads its own VmHWM: a child's ru_maxrss would start at this script's size, which
# a fork copies and the exec does not reset.
LAUNCHER = """
import os, sys
from cli.main import main
try:
    code = main(sys.argv[1:])
finally:
    with open("/proc/self/status") as status:
        peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    with open(os.environ["SCALE_PEAK_FILE"], "w") as handle:
        handle.write(peak)
sys.exit(code)
"""
# The start-up cost every command pays (imports, settings, schema check).
STARTUP = ("version", ("--version",))


@dataclass(frozen=True)
class Size:
    """How big the generated trees are."""

    name: str
    dfdc_parts: int
    per_part: int
    methods: tuple[str, ...]
    compressions: tuple[str, ...]
    ff_pairs_per_split: int | None = None  # None: every official pair

    @property
    def dfdc_videos(self) -> int:
        return self.dfdc_parts * self.per_part

    @property
    def ff_videos(self) -> int:
        pairs = 500 if self.ff_pairs_per_split is None else 3 * self.ff_pairs_per_split
        return (1 + len(self.methods)) * 2 * pairs * len(self.compressions)


FULL = Size("full", 46, 2500, ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"),
            ("raw", "c23", "c40"))  # fmt: skip
QUICK = Size("quick", 4, 2000, ("Deepfakes",), ("c23",))
# A few hundred videos: for tests of the benchmarks that use these catalogs.
TINY = Size("tiny", 2, 100, ("Deepfakes",), ("c23",), ff_pairs_per_split=10)


# --------------------------------------------------------------------------- trees


def tiny_clip(directory: Path) -> bytes:
    """The bytes of one small mp4 that OpenCV reads (8 frames of 32 x 32)."""
    import cv2
    import numpy as np

    path = directory / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (32, 32))
    rng = np.random.default_rng(0)
    for _ in range(8):
        writer.write(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    writer.release()
    return path.read_bytes()


def _write_clip(path: Path, clip: bytes, index: int) -> None:
    # A `free` box of 16 bytes: decoders skip it, and the file's hash becomes its own.
    path.write_bytes(clip + struct.pack(">I4sQ", 16, b"free", index))


def build_dfdc_tree(root: Path, size: Size, clip: bytes) -> None:
    """Training parts with real-format metadata: per part, reals and one fake of each."""
    rng = random.Random(1)
    index = 0
    for part_number in range(size.dfdc_parts):
        part = root / f"dfdc_train_part_{part_number}"
        part.mkdir(parents=True, exist_ok=True)
        metadata: dict[str, dict[str, str]] = {}
        for pair in range(size.per_part // 2):
            real = f"{part_number:02d}r{pair:05d}{rng.randrange(16**4):04x}.mp4"
            fake = f"{part_number:02d}f{pair:05d}{rng.randrange(16**4):04x}.mp4"
            metadata[real] = {"label": "REAL", "split": "train"}
            metadata[fake] = {"label": "FAKE", "split": "train", "original": real}
            for name in (real, fake):
                _write_clip(part / name, clip, index)
                index += 1
        (part / "metadata.json").write_text(json.dumps(metadata))


def build_ff_tree(root: Path, size: Size, clip: bytes) -> None:
    """Every official pair's reals and both fakes per method, at each compression."""
    from ddm.ingest.common import ffpp_pairs

    taken = size.ff_pairs_per_split
    pairs = [pair for split_pairs in ffpp_pairs().values() for pair in split_pairs[:taken]]
    index = 10_000_000
    for compression in size.compressions:
        reals = root / "original_sequences" / "youtube" / compression / "videos"
        reals.mkdir(parents=True, exist_ok=True)
        for a, b in pairs:
            for name in (a, b):
                _write_clip(reals / f"{name}.mp4", clip, index)
                index += 1
        for method in size.methods:
            fakes = root / "manipulated_sequences" / method / compression / "videos"
            fakes.mkdir(parents=True, exist_ok=True)
            for a, b in pairs:
                for name in (f"{a}_{b}", f"{b}_{a}"):
                    _write_clip(fakes / f"{name}.mp4", clip, index)
                    index += 1


def ensure_trees(work: Path, size: Size) -> tuple[Path, Path, float | None]:
    """The two trees under `work/tree`, generated unless a finished one is there."""
    tree = work / "tree"
    done = tree / "done"
    dfdc, ff = tree / "dfdc", tree / "ff"
    if done.exists():
        return dfdc, ff, None
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    start = time.perf_counter()
    clip = tiny_clip(tree)
    build_dfdc_tree(dfdc, size, clip)
    build_ff_tree(ff, size, clip)
    (tree / "clip.mp4").unlink()
    done.write_text("")
    return dfdc, ff, time.perf_counter() - start


# --------------------------------------------------------------------------- the catalog


def fill_catalog(url: str, dfdc: Path, ff: Path) -> dict[str, float]:
    """Ingest both trees, add caches, runs and evaluations; seconds per step."""
    from ddm.db import create_db_engine, make_session_factory, upgrade
    from ddm.services.ingest import ingest_dataset

    engine = create_db_engine(url)
    upgrade(engine)
    factory = make_session_factory(engine)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = now - clock
        clock = now

    workers = min(8, os.cpu_count() or 1)
    ingest_dataset(factory, dfdc, format="dfdc", name="dfdc", workers=workers)
    lap("first_ingest_dfdc")
    ingest_dataset(factory, ff, format="ffpp", name="ff", workers=workers)
    lap("first_ingest_ff")
    _add_caches(factory)
    lap("caches")
    run_ids = _add_runs(factory)
    lap("runs")
    _add_evaluations(factory, run_ids)
    lap("evaluations")
    engine.dispose()
    return seconds


def _add_caches(factory: Any) -> None:
    from sqlalchemy import insert, select

    from ddm.catalog.models import FeatureCache, Video
    from ddm.db import session_scope

    with session_scope(factory) as session:
        ids = list(session.scalars(select(Video.id).order_by(Video.id)))
        for start in range(0, len(ids), 10_000):
            rows = [_cache(video_id) for video_id in ids[start : start + 10_000]]
            session.execute(insert(FeatureCache), rows)


def _cache(video_id: int) -> dict[str, Any]:
    checksum = f"{video_id:064x}"
    return {
        "video_id": video_id,
        "fingerprint": FINGERPRINT,
        "path": f"{FINGERPRINT}/{checksum[-2:]}/{checksum}.pt",
        "is_valid": True,
        "checksum": checksum,
        "frames_sampled": 32,
        "fallback_frames": video_id % 7,
        "frame_sources": "d" * 32,
        "face_fallback": False,
    }


def _add_runs(factory: Any) -> list[int]:
    """RUNS succeeded runs on ff's train/val split, each with its frozen membership."""
    from ddm.catalog.runs import create_run, finish_run, training_selection
    from ddm.db import session_scope

    run_ids = []
    with session_scope(factory) as session:
        selection = training_selection(session, ["ff"], FINGERPRINT)
        for number in range(1, RUNS + 1):
            run = create_run(
                session,
                name=f"scale-{number}",
                datasets=["ff"],
                config={"seed": number},
                fingerprint=FINGERPRINT,
                train=selection.train,
                val=selection.val,
            )
            finish_run(session, run.id, "succeeded", best_epoch=1)
            run_ids.append(run.id)
    return run_ids


def _add_evaluations(factory: Any, run_ids: list[int]) -> None:
    """Each run on every DFDC video and on FF++'s test split, stored as `ddm report` would."""
    from ddm.catalog.evaluations import evaluation_selection, record_evaluation
    from ddm.db import session_scope

    rng = random.Random(0)
    for run_id in run_ids:
        for dataset, split in (("dfdc", "all"), ("ff", None)):
            with session_scope(factory) as session:
                selection = evaluation_selection(session, run_id, dataset, split)
                logits = [
                    rng.gauss(0.3 if video.label == "fake" else -0.3, 1.0)
                    for video in selection.videos
                ]
                scores = [1.0 / (1.0 + math.exp(-logit)) for logit in logits]
                record_evaluation(session, selection, logits, scores, threshold=0.5, metrics={})


def analyze(url: str) -> None:
    """VACUUM ANALYZE, as autovacuum would have done on a catalog in use: a fresh fill has
    no planner statistics (estimates of 246 rows for 115,000) and no visibility map."""
    from sqlalchemy import text

    from ddm.db import create_db_engine

    engine = create_db_engine(url).execution_options(isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text("VACUUM ANALYZE"))
    engine.dispose()


def catalog_counts(url: str) -> dict[str, int]:
    from sqlalchemy import func, select

    from ddm.catalog.models import Prediction, Video
    from ddm.db import create_db_engine

    engine = create_db_engine(url)
    with engine.connect() as connection:
        videos = connection.scalar(select(func.count()).select_from(Video))
        predictions = connection.scalar(select(func.count()).select_from(Prediction))
    engine.dispose()
    return {"videos": int(videos or 0), "predictions": int(predictions or 0)}


# --------------------------------------------------------------------------- PostgreSQL


class KeptCluster:
    """A PostgreSQL cluster in `directory`, kept between runs (tests/pg.py's settings: a
    unix socket only, fsync off), started for one benchmark run and stopped after it."""

    def __init__(self, directory: Path) -> None:
        from tests.pg import pg_bin_dir

        self.directory = directory
        self.bin_dir = pg_bin_dir()
        if self.bin_dir is None:
            raise SystemExit("PostgreSQL server binaries not found; `make test` installs them")

    @property
    def url(self) -> str:
        sockets = self.directory / "sock"
        return f"postgresql+psycopg://postgres@/scale?host={sockets}&port=5432"

    def start(self) -> bool:
        """Start it, creating it first if needed; True when it was created."""
        from tests.pg import _as_postgres

        data = self.directory / "data"
        created = not (data / "PG_VERSION").exists()
        if created:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory.mkdir(parents=True)
            (self.directory / "sock").mkdir()
            for path in (self.directory, self.directory / "sock"):
                path.chmod(0o777)
            _as_postgres(
                [str(self.bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]
                + ["-E", "UTF8", "--no-sync", "--locale=C"]
            )
        options = f"-k {self.directory / 'sock'} -c listen_addresses='' -p 5432 -F"
        log = self.directory / "server.log"
        pg_ctl = [str(self.bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-l"]
        _as_postgres([*pg_ctl, str(log), "start"])
        if created:
            self._create_database()
        return created

    def _create_database(self) -> None:
        from sqlalchemy import create_engine, text

        admin = self.url.replace("/scale?", "/postgres?")
        engine = create_engine(admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text("CREATE DATABASE scale"))
        engine.dispose()

    def stop(self) -> None:
        from tests.pg import _as_postgres

        data = str(self.directory / "data")
        _as_postgres([str(self.bin_dir / "pg_ctl"), "-D", data, "-m", "fast", "stop"], check=False)


# --------------------------------------------------------------------------- measuring


def commands(dfdc: Path, ff: Path) -> list[tuple[str, tuple[str, ...]]]:
    return [
        STARTUP,
        ("ingest_rescan_dfdc", ("ingest", str(dfdc), "--json")),
        ("ingest_rescan_ff", ("ingest", str(ff), "--json")),
        ("videos_json_dfdc", ("videos", "--dataset", "dfdc", "--json")),
        ("stats", ("stats",)),
        ("report_one_run", ("report", "--eval", "dfdc", "--split", "all")),
        ("report_one_run_json", ("report", "--eval", "dfdc", "--split", "all", "--json")),
        ("report_matrix_10_runs", ("report", "--eval", "ff", "--runs", "all")),
        ("runs_list", ("runs", "list")),
    ]


def run_ddm(code: Path, env: dict[str, str], args: tuple[str, ...], out: Path) -> dict[str, Any]:
    """One `ddm ARGS` with the code at `code`: seconds, peak RSS (MiB), exit code, output."""
    peak = out.with_suffix(".peak")
    env = {**env, "PYTHONPATH": str(code), "SCALE_PEAK_FILE": str(peak)}
    with out.open("wb") as stdout, (out.with_suffix(".err")).open("wb") as stderr:
        start = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, *args], cwd=code, env=env, stdout=stdout, stderr=stderr
        )
        exit_code = process.wait()
        seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "peak_rss_mib": int(peak.read_text()) / 1024,
        "exit_code": exit_code,
        "stdout_bytes": out.stat().st_size,
    }


def measure(
    codes: dict[str, tuple[Path, Path]], url: str, dfdc: Path, ff: Path, repeat: int = 1
) -> dict[str, dict[str, dict[str, Any]]]:
    """Each command `repeat` times with each checkout of `codes` (name -> (code, home)),
    alternating checkouts command by command, so that a change in the machine's load falls
    on both alike. A command's seconds are the median of its runs, all of them kept."""
    from tests.conftest import private_ddm_env

    envs, outputs = {}, {}
    for name, (_, home) in codes.items():
        env = {k: v for k, v in os.environ.items() if not k.startswith("DDM_")}
        env.update({k: v for k, v in private_ddm_env(home).items() if v is not None})
        envs[name] = {**env, "DDM_DATABASE_URL": url}
        outputs[name] = home / "out"
        outputs[name].mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in codes}
    for command, args in commands(dfdc, ff):
        samples: dict[str, list[dict[str, Any]]] = {name: [] for name in codes}
        for _ in range(repeat):
            for name, (code, _) in codes.items():
                out = outputs[name] / f"{command}.txt"
                result = run_ddm(code, envs[name], args, out)
                if result["exit_code"] != 0:
                    error = out.with_suffix(".err").read_text()[-2000:]
                    raise SystemExit(
                        f"ddm {' '.join(args)} failed ({result['exit_code']}): {error}"
                    )
                samples[name].append(result)
        for name, runs in samples.items():
            results[name][command] = _summary(runs)
        print(
            f"  {command}: "
            + ", ".join(f"{name} {r[command]['seconds']:.2f} s" for name, r in results.items()),
            file=sys.stderr,
            flush=True,
        )
    return results


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        **runs[-1],
        "seconds": statistics.median(run["seconds"] for run in runs),
        "samples_s": [run["seconds"] for run in runs],
        "peak_rss_mib": max(run["peak_rss_mib"] for run in runs),
    }


def baseline_head(code: Path) -> str:
    """The newest migration of an older checkout (its single head)."""
    out = subprocess.run(
        [sys.executable, "-c", "from ddm.db import head_revision; print(head_revision())"],
        cwd=code,
        env={**os.environ, "PYTHONPATH": str(code)},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


def migrate(url: str, revision: str) -> float:
    from ddm.db import create_db_engine, downgrade, head_revision, upgrade

    engine = create_db_engine(url)
    start = time.perf_counter()
    if revision in ("head", head_revision()):
        upgrade(engine)
    else:
        downgrade(engine, revision)
    engine.dispose()
    return time.perf_counter() - start


# --------------------------------------------------------------------------- main


def work_dir(size: Size, given: Path | None) -> Path:
    """Where the trees and catalogs of `size` are kept: `given`, else $DDM_BENCH_SCALE_DIR,
    else a folder under the temporary directory; shared by the benchmarks that use them."""
    default = Path(tempfile.gettempdir()) / "ddm-bench-scale"
    work = (given or Path(os.environ.get("DDM_BENCH_SCALE_DIR", default))) / size.name
    work.mkdir(parents=True, exist_ok=True)
    return work


@dataclass(frozen=True)
class Filled:
    """A filled catalog, open for the length of a `filled_catalog` block."""

    url: str
    counts: dict[str, int]
    fill: dict[str, Any]  # the fill's seconds per step and the commit that filled it
    dfdc: Path
    ff: Path


@contextmanager
def filled_catalog(
    db: str,
    size: Size,
    work: Path,
    *,
    refill: bool = False,
    url: str | None = None,
    say: Any = print,
) -> Iterator[Filled]:
    """The catalog of `db` at `size` under `work`, filled first unless a finished fill is
    there (the trees too); PostgreSQL's kept cluster runs for the length of the block.
    With `url`, that catalog instead (a test's database), filled first when it is empty."""
    dfdc, ff, tree_s = ensure_trees(work, size)
    if tree_s is not None:
        say(f"generated {size.dfdc_videos + size.ff_videos} clips in {tree_s:.0f} s")
        for stale in work.glob("filled-*.json"):  # catalogs of an older tree
            stale.unlink()
    cluster = KeptCluster(work / "pg") if db == "postgresql" and url is None else None
    marker = work / f"filled-{db}.json"
    try:
        if url is None:
            url = _open_catalog(cluster, work, marker, refill)
        elif _is_empty(url):
            marker.unlink(missing_ok=True)
        if not marker.exists():
            say(f"{db}: filling the catalog (first ingest of both trees, runs, evaluations)")
            seconds = fill_catalog(url, dfdc, ff)
            marker.write_text(json.dumps({"fill_seconds": seconds, "commit": machine()["commit"]}))
        if url.startswith("postgresql"):
            analyze(url)
        counts = catalog_counts(url)
        say(f"{db}: {counts['videos']} videos, {counts['predictions']} predictions")
        yield Filled(url, counts, json.loads(marker.read_text()), dfdc, ff)
    finally:
        if cluster is not None:
            cluster.stop()


def _is_empty(url: str) -> bool:
    """Whether the catalog at `url` has no video yet (migrated to the head first)."""
    migrate(url, "head")
    return catalog_counts(url)["videos"] == 0


def _open_catalog(cluster: KeptCluster | None, work: Path, marker: Path, refill: bool) -> str:
    """The catalog's URL, its PostgreSQL cluster started; an unfinished or unwanted fill is
    removed (the marker is written once a fill has finished)."""
    if cluster is None:
        sqlite = work / "catalog.sqlite3"
        if refill or not marker.exists():
            sqlite.unlink(missing_ok=True)
            marker.unlink(missing_ok=True)
        return f"sqlite:///{sqlite}"
    if refill:
        shutil.rmtree(cluster.directory, ignore_errors=True)
    if cluster.start():
        marker.unlink(missing_ok=True)
    elif not marker.exists():  # a fill that did not finish: start afresh
        cluster.stop()
        shutil.rmtree(cluster.directory)
        cluster.start()
    return cluster.url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--quick", action="store_true", help="10,000 videos, 80,000 predictions")
    parser.add_argument("--json", action="store_true", help="print one JSON line on stdout")
    parser.add_argument("--baseline", type=Path, help="an older checkout to measure first")
    parser.add_argument("--work", type=Path, help="where trees and catalogs are kept")
    parser.add_argument("--refill", action="store_true", help="fill the catalog afresh")
    parser.add_argument("--fill-only", action="store_true", help="fill, measure nothing")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each command (the median is reported)"
    )
    args = parser.parse_args()
    size = QUICK if args.quick else FULL
    work = work_dir(size, args.work)
    info = machine()
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else print
    with filled_catalog(args.db, size, work, refill=args.refill, say=say) as filled:
        if args.fill_only:
            return
        url, dfdc, ff = filled.url, filled.dfdc, filled.ff
        from ddm.db import head_revision

        runs: dict[str, Any] = {"repeat": args.repeat}
        current = {"current": (REPO, work / "home")}
        if args.baseline is not None:
            revision = baseline_head(args.baseline)
            baseline = {"baseline": (args.baseline, work / "home-base")}
            if revision == head_revision():  # one schema: the two alternate command by command
                runs["migrate_up_s"] = migrate(url, "head")
                say(f"baseline {args.baseline} and this checkout, alternating:")
                runs.update(measure({**baseline, **current}, url, dfdc, ff, args.repeat))
            else:
                say(f"baseline {args.baseline} (migrated down to {revision}):")
                runs["migrate_down_s"] = migrate(url, revision)
                runs.update(measure(baseline, url, dfdc, ff, args.repeat))
        if "current" not in runs:
            runs["migrate_up_s"] = migrate(url, "head")
            say("this checkout:")
            runs.update(measure(current, url, dfdc, ff, args.repeat))
    _report(args, size, info, filled.counts, filled.fill, runs)


def _report(
    args: Any,
    size: Size,
    info: dict[str, Any],
    counts: dict[str, int],
    fill: dict[str, Any],
    runs: dict[str, Any],
) -> None:
    current = runs["current"]
    names = list(current)
    header = ["command", "seconds", "peak MiB"]
    if "baseline" in runs:
        header = ["command", "before s", "after s", "before MiB", "after MiB"]
    rows = []
    for name in names:
        now = current[name]
        if "baseline" in runs:
            then = runs["baseline"][name]
            rows.append(
                [name, then["seconds"], now["seconds"], then["peak_rss_mib"], now["peak_rss_mib"]]
            )
        else:
            rows.append([name, now["seconds"], now["peak_rss_mib"]])
    results = {
        "machine": info,
        "db": args.db,
        "size": size.name,
        **counts,
        "fill": fill,
        **runs,
        "loadavg": _common.loadavg(),
    }
    name = f"scale-{args.db}" + (".quick" if args.quick else "")
    if args.json:
        write_results(name, results, quiet=True)
        seconds = {key: value["seconds"] for key, value in current.items()}
        line = {**counts, "db": args.db, "seconds": seconds}
        line["peak_rss_mib"] = {key: value["peak_rss_mib"] for key, value in current.items()}
        if "baseline" in runs:
            line["baseline_seconds"] = {k: v["seconds"] for k, v in runs["baseline"].items()}
        print(json.dumps(line))
        return
    title = f"{args.db}: {counts['videos']} videos, {counts['predictions']} predictions"
    print_table(title, header, rows)
    write_results(name, results)


if __name__ == "__main__":
    main()
