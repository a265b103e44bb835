"""Chaos run (issue 9): extraction by two workers while workers, pool children, Redis and
inline runs are killed at random, then the invariants that must survive it.

Setup: the real clips of ../shared/media (FF++ and DFDC) copied to a few hundred files,
each made distinct by a few unique bytes appended at its end (own content hash; OpenCV
still reads it), ingested with `ddm ingest DIR --format folder` into a throwaway
PostgreSQL (tests/pg.py); a `redis-server` of our own on one fixed port, so that it can be
restarted; two `ddm worker --loglevel DEBUG` processes, each in its own process group;
then `ddm extract --dataset chaos --frames 2 --allow-random-weights` submits the jobs.

For `--minutes N` it injects, at seeded random intervals, one fault at a time, the kinds
taken in shuffled rounds so that each comes up about equally often:

* worker_kill: SIGKILL a worker's whole process group, then start a new worker;
* child_kill: SIGKILL only a worker's pool child (`pgrep -P <worker pid>`);
* redis_persistent: stop Redis gracefully with its append-only file on, start it again;
* redis_volatile: SIGKILL Redis and start it without persistence (the queue is lost);
* inline_kill: start `ddm -vv extract` without a broker on the same catalog and SIGKILL it
  after a random delay.

Then it stops injecting, makes sure two workers run, waits until no job is queued or
running, stops the workers and checks: (1) each video has exactly one valid cache row whose
file has the row's size and sha256 (ours and `ddm cache verify --json`); (2) no job left
queued or running; (3) no temporary file in the cache; (4) no video extracted by two
processes at once, from the `extraction started/ended` audit lines of every log (an interval
left open by a killed process is closed at the moment it was killed); (5) no file in the
cache without a row. Recovery time of a fault: from the fault to the next new valid cache row.

    .venv/bin/python bench/chaos.py --minutes 20 --json
    .venv/bin/python bench/chaos.py --minutes 1.5 --videos 12 --interval 12   # the slow test
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (puts the repository root on sys.path)
from _common import MEDIA, REPO, machine, median, print_table, write_results

DATASET = "chaos"
FRAMES = 2
FAULT_KINDS = ("worker_kill", "child_kill", "redis_persistent", "redis_volatile", "inline_kill")
# Short job timings, as tests/tasks/test_worker.py uses. Attempts are raised from 3: the run
# loses workers far more often than production does, and the cap is tested on its own.
JOB_ENV = {
    "DDM_HEARTBEAT_SECONDS": "1",
    "DDM_STALE_AFTER_SECONDS": "8",
    "DDM_SWEEP_SECONDS": "1",
    "DDM_RESEND_AFTER_SECONDS": "10",
    "DDM_BATCH_SIZE": "4",
    "DDM_MAX_ATTEMPTS": "10",
    "OMP_NUM_THREADS": "1",
    "COLUMNS": "1000",
}
POLL_S = 0.5
AUDIT = re.compile(
    r"job_id=(?P<job>\d+) video_id=(?P<video>\d+) extraction (?P<event>started|ended) "
    r"worker=(?P<worker>\S+) at=(?P<at>\d+(?:\.\d+)?)"
)


# --------------------------------------------------------------------------- the dataset


def _sources() -> list[tuple[Path, str]]:
    """(clip, label) for every FF++ and DFDC mp4 of the shared media."""
    found = []
    for clip in sorted((MEDIA / "ff++").rglob("*.mp4")):
        found.append((clip, "real" if "original_sequences" in clip.parts else "fake"))
    for clip in sorted((MEDIA / "dfdc").rglob("*.mp4")):
        meta_file = clip.parent / "metadata.json"
        meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
        found.append((clip, meta.get(clip.name, {}).get("label", "FAKE").lower()))
    if not found:
        raise RuntimeError(f"no clips under {MEDIA}")
    return found


def make_dataset(root: Path, videos: int, first: int = 0) -> list[Path]:
    """`videos` distinct copies of the real clips under root/{real,fake}, checked with OpenCV.

    Copy number `first + i` of the clips, so that a top-up adds new files to the same tree.
    """
    import cv2

    sources = _sources()
    frames = {clip: _frame_count(cv2, clip) for clip, _ in sources}
    made = []
    for index in range(first, first + videos):
        clip, label = sources[index % len(sources)]
        target = root / label / f"{clip.stem}-{index:04d}.mp4"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(clip, target)
        with open(target, "ab") as handle:  # trailing bytes: a new sha256, the same video
            handle.write(f"ddm-chaos-{index:04d}".encode())
        if _frame_count(cv2, target) != frames[clip]:
            raise RuntimeError(f"OpenCV no longer reads {target} like {clip}")
        made.append(target)
    return made


def _frame_count(cv2: Any, path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    try:
        ok, _ = capture.read()
        if not ok:
            raise RuntimeError(f"OpenCV cannot read {path}")
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()


# --------------------------------------------------------------------------- processes


def snapshot_tree(target: Path) -> Path:
    """Copy the working tree's files (tracked and untracked, not ignored) to `target`.

    Workers started minutes apart must run the same code: a tree edited during the run
    would give a late worker another extractor fingerprint, or a half-written module.
    """
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for relative in listed:
        source = REPO / relative
        if source.is_file():
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / relative)
    return target


def _group_pids(pgid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # a zombie is gone for our purpose
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


def _wait_gone(pids: Sequence[int], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(_gone(p) for p in pids):
        time.sleep(0.02)


class Redis:
    """Our own redis-server on one fixed port, restartable with or without persistence."""

    def __init__(self, work: Path, port: int, log: Path) -> None:
        self.work, self.port, self.log = work, port, log
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.persistent = False
        self.generation = 0

    def start(self, *, persistent: bool) -> None:
        self.generation += 1
        directory = self.work / "redis"
        directory.mkdir(exist_ok=True)
        durability = ["--appendonly", "yes"] if persistent else ["--appendonly", "no"]
        argv = [shutil.which("redis-server") or "redis-server", "--port", str(self.port)]
        argv += ["--bind", "127.0.0.1", "--save", "", *durability, "--dir", str(directory)]
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        self.persistent = persistent
        self._wait_ready()

    def _wait_ready(self) -> None:
        import redis

        client = redis.Redis(port=self.port, socket_timeout=1)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def restart_persistent(self) -> float:
        """Turn the append-only file on (a live rewrite), stop gracefully, start on it."""
        import redis

        client = redis.Redis(port=self.port, socket_timeout=5)
        if not self.persistent:
            # The data of a server started without persistence has to reach the file first.
            client.config_set("appendonly", "yes")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                info = client.info("persistence")
                if (
                    info["aof_enabled"]
                    and not info["aof_rewrite_in_progress"]
                    and not info.get("aof_rewrite_scheduled")
                ):
                    break
                time.sleep(0.05)
        assert self.process is not None
        self.process.terminate()  # SIGTERM: Redis fsyncs its append-only file and exits
        self.process.wait(timeout=30)
        down = time.time()
        self.start(persistent=True)
        return down

    def restart_volatile(self) -> float:
        """SIGKILL and start afresh with no persistence: every queued message is lost."""
        self.kill()
        down = time.time()
        shutil.rmtree(self.work / "redis", ignore_errors=True)  # its append-only file too
        self.start(persistent=False)
        return down

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


@dataclass
class Fault:
    kind: str
    at: float  # epoch seconds when the fault took effect
    target: str
    killed_pids: list[int] = field(default_factory=list)
    recovery_s: float | None = None


class Chaos:
    """The processes under test, the faults done to them and the progress they made."""

    def __init__(self, args: argparse.Namespace, work: Path, logs: Path, db_url: str) -> None:
        self.args, self.work, self.logs = args, work, logs
        self.rng = random.Random(args.seed)
        self.redis = Redis(work, args.redis_port or _free_port(), logs / "redis.log")
        home = work / "home"
        self.cache_dir = home / "cache"
        self.src = snapshot_tree(work / "src") if args.snapshot else REPO
        self.env = {**os.environ, **JOB_ENV, "DDM_HOME": str(home), "DDM_DATABASE_URL": db_url}
        self.env["PYTHONPATH"] = str(self.src)  # ahead of the editable install's finder
        sys.path.insert(0, str(self.src))  # and the catalog models this process checks with
        self.env.pop("DDM_BROKER_URL", None)
        self.worker_env = {**self.env, "DDM_BROKER_URL": self.redis.url}
        self.workers: list[subprocess.Popen[bytes] | None] = [None, None]
        self.started_workers = 0
        self.inline: tuple[subprocess.Popen[bytes], float] | None = None
        self.inline_runs = 0
        self.submitted_jobs = 0
        self.killed: dict[int, float] = {}  # pid -> when it was SIGKILLed
        self.faults: list[Fault] = []
        self.unexpected_exits: list[dict[str, Any]] = []
        self.progress: list[tuple[float, int]] = []  # (epoch, valid rows) at each increase
        self._stop = threading.Event()
        self.factory: Any = None
        self.videos = 0
        self.top_ups: list[dict[str, Any]] = []

    def add_videos(self, count: int) -> None:
        """Copy, ingest and submit `count` more videos (the first call makes the dataset)."""
        make_dataset(self.work / DATASET, count, first=self.videos)
        self.ddm("ingest", str(self.work / DATASET), "--format", "folder")
        if self.factory is None:
            from ddm.db import create_db_engine, make_session_factory

            self.factory = make_session_factory(create_db_engine(self.env["DDM_DATABASE_URL"]))
        out = self.ddm(
            "extract",
            "--dataset",
            DATASET,
            "--frames",
            str(FRAMES),
            "--allow-random-weights",
            "--json",
            broker=True,
        )
        if self.videos:
            self.top_ups.append({"at": time.time(), "videos": count})
            _say(f"  {time.strftime('%H:%M:%S')} topped up with {count} videos")
        self.videos += count
        self.submitted_jobs += len(json.loads(out).get("job_ids", []))

    # ------------------------------------------------------------------ commands

    def ddm(self, *args: str, broker: bool = False, timeout: float = 600) -> str:
        completed = subprocess.run(
            [sys.executable, "-m", "cli.main", *args],
            cwd=self.src,
            env=self.worker_env if broker else self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if completed.returncode != 0:
            raise RuntimeError(
                f"ddm {' '.join(args)} exited {completed.returncode}:\n{completed.stderr[-3000:]}"
            )
        return completed.stdout

    def _spawn(self, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "cli.main", *argv],
                cwd=self.src,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start_worker(self, slot: int) -> None:
        self.started_workers += 1
        log = self.logs / f"worker{slot}-{self.started_workers:03d}.log"
        argv = ["worker", "--loglevel", "DEBUG"]
        self.workers[slot] = self._spawn(argv, self.worker_env, log)

    def ensure_workers(self) -> None:
        """Restart any worker that exited without being killed by us (and record it)."""
        for slot, worker in enumerate(self.workers):
            if worker is None or worker.poll() is not None:
                if worker is not None:
                    self.unexpected_exits.append(
                        {
                            "slot": slot,
                            "pid": worker.pid,
                            "rc": worker.returncode,
                            "at": time.time(),
                        }
                    )
                    _say(f"  worker {worker.pid} exited by itself ({worker.returncode})")
                self.start_worker(slot)

    def stop_workers(self) -> None:
        for worker in self.workers:
            if worker is not None and worker.poll() is None:
                _signal_group(worker.pid, signal.SIGTERM)
        for worker in self.workers:
            if worker is None:
                continue
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._killpg(worker.pid)
                worker.wait(timeout=30)

    def _killpg(self, pgid: int) -> list[int]:
        pids = _group_pids(pgid)
        _signal_group(pgid, signal.SIGKILL)
        _wait_gone(pids)
        now = time.time()
        for pid in pids:
            self.killed[pid] = now
        return pids

    # ------------------------------------------------------------------ faults

    def inject(self, kind: str) -> Fault | None:
        """Do one fault now; None when it cannot be done at this moment (no target yet)."""
        if kind == "worker_kill":
            slot = self.rng.randrange(len(self.workers))
            worker = self.workers[slot]
            assert worker is not None
            pids = self._killpg(worker.pid)
            worker.wait(timeout=30)
            fault = Fault(
                kind, self.killed[pids[0]] if pids else time.time(), f"worker{slot}", pids
            )
            self.start_worker(slot)
            return fault
        if kind == "child_kill":
            slots = list(range(len(self.workers)))
            self.rng.shuffle(slots)
            for slot in slots:
                worker = self.workers[slot]
                children = _children(worker.pid) if worker is not None else []
                if children:
                    for pid in children:
                        os.kill(pid, signal.SIGKILL)
                    _wait_gone(children)
                    now = time.time()
                    self.killed.update({pid: now for pid in children})
                    return Fault(kind, now, f"worker{slot} child", children)
            return None
        if kind == "redis_persistent":
            return Fault(kind, self.redis.restart_persistent(), "redis")
        if kind == "redis_volatile":
            return Fault(kind, self.redis.restart_volatile(), "redis")
        if kind == "inline_kill":
            self.inline_runs += 1
            log = self.logs / f"inline-{self.inline_runs:03d}.log"
            argv = ["-vv", "extract", "--dataset", DATASET, "--frames", str(FRAMES)]
            process = self._spawn([*argv, "--allow-random-weights"], self.env, log)
            self.inline = (process, time.monotonic() + self.rng.uniform(*self.args.inline_delay))
            return None  # counted when it is killed
        raise ValueError(kind)

    def kill_inline(self, *, now: bool = False) -> None:
        """SIGKILL the inline run once its delay is over (or now)."""
        if self.inline is None:
            return
        process, due = self.inline
        if not now and time.monotonic() < due:
            return
        self.inline = None
        if process.poll() is not None:
            _say(f"  inline run {process.pid} ended by itself ({process.returncode})")
            self.unexpected_exits.append(
                {"inline": True, "pid": process.pid, "rc": process.returncode, "at": time.time()}
            )
            return
        pids = self._killpg(process.pid)
        process.wait(timeout=30)
        self._record(Fault("inline_kill", self.killed[pids[0]], f"inline {process.pid}", pids))

    def _record(self, fault: Fault) -> None:
        self.faults.append(fault)
        _say(
            f"  {time.strftime('%H:%M:%S')} {fault.kind:<17} {fault.target:<16} "
            f"pids {fault.killed_pids}  valid {self.valid_count()}"
        )

    def fault_window(self) -> str:
        """Inject faults until the window closes (or the work runs out); say why it ended."""
        start = time.monotonic()
        end = start + self.args.minutes * 60
        rounds: list[str] = []
        next_at = time.monotonic() + self._interval()
        while time.monotonic() < end:
            self.ensure_workers()
            self.kill_inline()
            remaining = self.videos - self.valid_count()
            if remaining <= 2 * int(JOB_ENV["DDM_BATCH_SIZE"]):
                # Top up with what the remaining window can extract at the rate so far, so that
                # faults keep meeting work and the drain after the window stays short.
                rate = self.valid_count() / max(time.monotonic() - start, 1.0)
                more = min(self.args.top_up, int(rate * (end - time.monotonic())))
                if more >= 2 * int(JOB_ENV["DDM_BATCH_SIZE"]):
                    self.add_videos(more)
                elif remaining <= 2:  # faults from here on would find nothing to recover
                    return "work done"
            if time.monotonic() >= next_at and self.inline is None:
                if not rounds:
                    rounds = list(FAULT_KINDS)
                    self.rng.shuffle(rounds)
                fault = self.inject(rounds[0])
                if fault is not None:
                    self._record(fault)
                if fault is not None or rounds[0] == "inline_kill":
                    rounds.pop(0)
                    next_at = time.monotonic() + self._interval()
            time.sleep(0.2)
        return "time"

    def _interval(self) -> float:
        return self.rng.uniform(0.5, 1.5) * self.args.interval

    # ------------------------------------------------------------------ progress

    def valid_count(self) -> int:
        return self.progress[-1][1] if self.progress else 0

    def watch_progress(self) -> None:
        """Poll the catalog: a new valid cache row is progress."""
        from sqlalchemy import func, select

        from ddm.catalog.models import FeatureCache
        from ddm.db import session_scope

        while not self._stop.is_set():
            try:
                with session_scope(self.factory) as session:
                    count = session.scalar(
                        select(func.count()).select_from(FeatureCache).where(FeatureCache.is_valid)
                    )
            except Exception as exc:  # noqa: BLE001  (keep watching through a hiccup)
                _say(f"  progress poll failed: {exc}")
                count = None
            if count is not None and count > self.valid_count():
                self.progress.append((time.time(), count))
            self._stop.wait(POLL_S)

    def active_jobs(self) -> int:
        from sqlalchemy import func, select

        from ddm.catalog.models import Job
        from ddm.db import session_scope

        with session_scope(self.factory) as session:
            return session.scalar(
                select(func.count()).select_from(Job).where(Job.status.in_(["queued", "running"]))
            )

    def drain(self, bound_s: float) -> dict[str, Any]:
        """Wait with two workers until no job is queued or running, at most bound_s."""
        start = time.monotonic()
        while time.monotonic() - start < bound_s:
            self.ensure_workers()
            if self.active_jobs() == 0:
                return {"drained": True, "seconds": time.monotonic() - start, "bound_s": bound_s}
            time.sleep(1)
        return {"drained": False, "seconds": time.monotonic() - start, "bound_s": bound_s}

    def measure_recovery(self) -> None:
        times = [t for t, _ in self.progress]
        for fault in self.faults:
            later = [t for t in times if t > fault.at]
            fault.recovery_s = later[0] - fault.at if later else None


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _free_port() -> int:
    from tests.redis_server import _free_port as free

    return free()


# --------------------------------------------------------------------------- invariants


def check_caches(chaos: Chaos) -> dict[str, Any]:
    """(1) one valid row per video, its file with the row's size and sha256; (5) no orphan."""
    from sqlalchemy import select

    from ddm.catalog.models import FeatureCache, Video
    from ddm.db import session_scope
    from ddm.fs import sha256_of

    with session_scope(chaos.factory) as session:
        video_ids = list(session.scalars(select(Video.id)))
        rows = [
            (r.video_id, r.path, r.bytes, r.checksum, r.is_valid)
            for r in session.scalars(select(FeatureCache))
        ]
    valid: dict[int, list[tuple]] = defaultdict(list)
    for row in rows:
        if row[4]:
            valid[row[0]].append(row)
    problems = [
        f"video {v} has {len(valid[v])} valid rows" for v in video_ids if len(valid[v]) != 1
    ]
    for video_id, path, size, checksum, _ in (r for rs in valid.values() for r in rs):
        file = chaos.cache_dir / path if path else None
        if file is None or not file.is_file():
            problems.append(f"video {video_id}: {path} missing")
        elif file.stat().st_size != size or sha256_of(file) != checksum:
            problems.append(f"video {video_id}: {path} differs from its row")
    verify = json.loads(chaos.ddm("cache", "verify", "--json"))
    files = (
        {
            p.relative_to(chaos.cache_dir).as_posix()
            for p in chaos.cache_dir.rglob("*")
            if p.is_file()
        }
        if chaos.cache_dir.exists()
        else set()
    )
    orphans = sorted(files - {path for _, path, *_ in rows if path})
    return {
        "problems": problems,
        "verify_problems": verify["problems"],
        "orphans": [o for o in orphans if not Path(o).name.startswith(_temp_prefix())],
        "temporaries": [o for o in orphans if Path(o).name.startswith(_temp_prefix())],
        "videos": len(video_ids),
        "valid_rows": sum(len(v) for v in valid.values()),
    }


def _temp_prefix() -> str:
    from ddm.fs import TEMP_PREFIX

    return TEMP_PREFIX


def job_counts(chaos: Chaos) -> dict[str, Any]:
    from sqlalchemy import func, select

    from ddm.catalog.models import Job
    from ddm.db import session_scope

    with session_scope(chaos.factory) as session:
        by_status = dict(
            session.execute(select(Job.status, func.count()).group_by(Job.status)).all()
        )
        attempts = session.scalar(select(func.max(Job.attempts))) or 0
    return {"by_status": by_status, "max_attempts": attempts}


def audit_intervals(logs: Path, killed: dict[int, float], end: float) -> dict[str, Any]:
    """(4) parse every audit line; return the intervals per video and any overlap."""
    events: dict[int, list[tuple[float, int, int, str]]] = defaultdict(list)
    lines = 0
    for log in sorted(logs.glob("*.log")):
        for line in log.read_text(errors="replace").splitlines():
            match = AUDIT.search(line)
            if match:
                lines += 1
                pid = int(match["worker"].rsplit(":", 1)[1])
                event = (float(match["at"]), int(match["job"]), int(match["video"]), match["event"])
                events[pid].append(event)
    intervals: dict[int, list[tuple[float, float, int, int]]] = defaultdict(list)
    unexplained = []
    cut = 0  # extractions a kill interrupted
    for pid, seq in events.items():
        open_: dict[tuple[int, int], float] = {}
        for at, job, video, event in seq:  # in log order: one process's lines are ordered
            if event == "started":
                for key, began in list(open_.items()):  # a start while another is open
                    unexplained.append({"pid": pid, "job": key[0], "video": key[1], "at": began})
                    intervals[key[1]].append((began, at, pid, key[0]))
                    del open_[key]
                open_[(job, video)] = at
            elif (job, video) in open_:
                intervals[video].append((open_.pop((job, video)), at, pid, job))
        for (job, video), began in open_.items():
            if pid in killed:
                intervals[video].append((began, killed[pid], pid, job))
                cut += 1
            else:  # open with no kill to explain it: treat as running to the end
                unexplained.append({"pid": pid, "job": job, "video": video, "at": began})
                intervals[video].append((began, end, pid, job))
    overlaps = []
    for video, spans in intervals.items():
        spans.sort()
        for before, after in zip(spans, spans[1:], strict=False):
            if after[0] < before[1]:
                overlaps.append({"video": video, "first": before, "second": after})
    return {
        "audit_lines": lines,
        "intervals": sum(len(s) for s in intervals.values()),
        "closed_by_kill": cut,
        "unexplained_open": unexplained,
        "overlaps": overlaps,
        "extractions_per_video_max": max((len(s) for s in intervals.values()), default=0),
    }


# --------------------------------------------------------------------------- the run


def run(args: argparse.Namespace) -> dict[str, Any]:
    from tests.pg import start_server

    info = machine()
    work = Path(tempfile.mkdtemp(prefix="ddm-chaos-"))
    logs = Path(args.logs) if args.logs else Path(tempfile.mkdtemp(prefix="ddm-chaos-logs-"))
    logs.mkdir(parents=True, exist_ok=True)
    _say(f"logs in {logs}")
    pg = chaos = watcher = None
    started = time.monotonic()
    try:
        pg = start_server()
        db_url = pg.create_database()
        chaos = Chaos(args, work, logs, db_url)
        chaos.redis.start(persistent=True)
        chaos.ensure_workers()
        chaos.add_videos(args.videos)
        _say(f"{chaos.videos} distinct copies ingested; redis on port {chaos.redis.port}")
        watcher = threading.Thread(target=chaos.watch_progress, daemon=True)
        watcher.start()
        window_start = time.monotonic()
        why = chaos.fault_window()
        window_s = time.monotonic() - window_start
        chaos.kill_inline(now=True)
        _say(f"fault window over ({why}) after {window_s:.0f} s; draining")
        drain = chaos.drain(args.drain_minutes * 60)
        time.sleep(2 * POLL_S)
        chaos.stop_workers()
        chaos._stop.set()
        watcher.join(timeout=10)
        chaos.measure_recovery()
        caches = check_caches(chaos)
        jobs = job_counts(chaos)
        audit = audit_intervals(logs, chaos.killed, time.time())
        return summarize(
            args,
            info,
            chaos,
            caches,
            jobs,
            audit,
            drain,
            {
                "window_s": window_s,
                "window_ended_by": why,
                "submitted_jobs": chaos.submitted_jobs,
                "top_ups": chaos.top_ups,
                "wall_s": time.monotonic() - started,
                "logs": str(logs),
            },
        )
    finally:
        if chaos is not None:
            chaos._stop.set()
            chaos.kill_inline(now=True)
            chaos.stop_workers()
            chaos.redis.kill()
        if pg is not None:
            pg.stop()
        shutil.rmtree(work, ignore_errors=True)


def summarize(args, info, chaos, caches, jobs, audit, drain, run_facts) -> dict[str, Any]:
    by_kind: dict[str, dict[str, Any]] = {}
    for kind in FAULT_KINDS:
        faults = [f for f in chaos.faults if f.kind == kind]
        times = [f.recovery_s for f in faults if f.recovery_s is not None]
        by_kind[kind] = {
            "injected": len(faults),
            "recovered": len(times),
            "median_recovery_s": median(times) if times else None,
            "max_recovery_s": max(times) if times else None,
        }
    active = {s: n for s, n in jobs["by_status"].items() if s in ("queued", "running")}
    invariants = {
        "one_valid_cache_per_video": not caches["problems"] and not caches["verify_problems"],
        "no_job_queued_or_running": drain["drained"] and not active,
        "no_temporary_files": not caches["temporaries"],
        "no_concurrent_extraction": not audit["overlaps"] and not audit["unexplained_open"],
        "no_orphan_files": not caches["orphans"],
    }
    return {
        "benchmark": "chaos",
        "command": " ".join([".venv/bin/python", "bench/chaos.py", *sys.argv[1:]]),
        "machine": info,
        "settings": {
            "minutes": args.minutes,
            "videos": args.videos,
            "seed": args.seed,
            "interval_s": args.interval,
            "inline_delay_s": list(args.inline_delay),
            "frames": FRAMES,
            "env": JOB_ENV,
            "catalog": "postgresql (throwaway)",
            "broker": "redis-server (own, fixed port)",
            "workers": 2,
            "snapshot": args.snapshot,
        },
        "faults": by_kind,
        "fault_log": [vars(f) for f in chaos.faults],
        "all_faults_recovered": all(f.recovery_s is not None for f in chaos.faults),
        "videos": caches["videos"],
        "extracted": caches["valid_rows"],
        "jobs": jobs,
        "workers_started": chaos.started_workers,
        "unexpected_exits": chaos.unexpected_exits,
        "drain": drain,
        "audit": {k: v for k, v in audit.items()},
        "cache_check": caches,
        "invariants": invariants,
        **run_facts,
    }


def show(result: dict[str, Any]) -> None:
    rows = [
        [kind, f["injected"], f["recovered"], f["median_recovery_s"], f["max_recovery_s"]]
        for kind, f in result["faults"].items()
    ]
    print_table(
        f"chaos: {result['settings']['minutes']} min of faults, {result['videos']} videos, "
        f"2 workers, PostgreSQL + Redis",
        ["fault", "injected", "recovered", "median recovery s", "max recovery s"],
        rows,
    )
    print_table("invariants", ["invariant", "held"], list(result["invariants"].items()))
    print(
        f"extracted {result['extracted']}/{result['videos']}; jobs {result['jobs']['by_status']} "
        f"(max attempts {result['jobs']['max_attempts']}); drained in "
        f"{result['drain']['seconds']:.0f} s; wall {result['wall_s']:.0f} s; "
        f"{result['audit']['audit_lines']} audit lines, {result['audit']['intervals']} extractions"
        f" ({result['audit']['closed_by_kill']} cut by a kill); logs in {result['logs']}"
    )
    for name, held in result["invariants"].items():
        if not held:
            detail = {
                k: result["cache_check"][k]
                for k in ("problems", "verify_problems", "orphans", "temporaries")
            }
            print(
                f"FAILED {name}: {json.dumps(detail)[:2000]} "
                f"{json.dumps(result['audit']['overlaps'][:5])} "
                f"{json.dumps(result['audit']['unexplained_open'][:5])}"
            )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, required=True, help="fault window length")
    parser.add_argument("--videos", type=int, default=200, help="distinct copies (default 200)")
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument(
        "--interval",
        type=float,
        default=30.0,
        help="mean seconds between faults (uniform 0.5x to 1.5x; default 30)",
    )
    parser.add_argument(
        "--inline-delay",
        type=float,
        nargs=2,
        default=(3.0, 30.0),
        metavar=("MIN", "MAX"),
        help="an inline run is killed after MIN..MAX s",
    )
    parser.add_argument(
        "--top-up",
        type=int,
        default=100,
        help="at most this many videos added when the work runs low (0: none)",
    )
    parser.add_argument(
        "--drain-minutes",
        type=float,
        default=30.0,
        help="bound on the wait for the last jobs after the window",
    )
    parser.add_argument("--redis-port", type=int, default=0, help="default: a free port")
    parser.add_argument("--logs", help="folder for every log (default: a new temp folder, kept)")
    parser.add_argument(
        "--snapshot",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run ddm from a copy of the tree taken at the start (default), not the live tree",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--no-write", action="store_true", help="write no results file")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    # With --json the table goes to stderr and the JSON alone to stdout.
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        show(result)
        if not args.no_write:
            write_results("chaos" if args.minutes >= 20 else "chaos.quick", result)
    if args.json:
        print(json.dumps(result, default=str))
    return 0 if all(result["invariants"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
