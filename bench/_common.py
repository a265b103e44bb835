"""Helpers shared by the benchmark scripts: paths, machine facts, tables and JSON results.

Benchmarks are plain scripts run from the repository root with the project's virtual
environment (`.venv/bin/python bench/<name>.py`); this module puts the repository root on
`sys.path` so they can use the throwaway PostgreSQL and Redis helpers under `tests/`.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

MEDIA = Path(os.environ.get("DDM_TEST_MEDIA", REPO.parent / "shared" / "media"))
RESULTS = REPO / "bench" / "results"


def loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages (this machine is shared)."""
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory_gib = round(pages / 2**30, 1)
    except (ValueError, OSError):
        memory_gib = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": _git_commit(),
        "loadavg_start": loadavg(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout.strip()
    return (out.stdout.strip() + ("-dirty" if dirty else "")) or None


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a plain fixed-width table on stdout."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:.1f}"
    return "-" if value is None else str(value)


def write_results(name: str, results: dict[str, Any], *, quiet: bool = False) -> Path:
    """Write bench/results/<name>.json atomically and return its path (said on stderr when
    `quiet`, so that stdout carries only the caller's JSON)."""
    from ddm.fs import atomic_write

    results = {**results, "loadavg_end": loadavg()}
    path = RESULTS / f"{name}.json"
    with atomic_write(path, "w") as handle:
        json.dump(results, handle, indent=2, sort_keys=False, default=str)
        handle.write("\n")
    print(f"\nresults written to {path.relative_to(REPO)}", file=sys.stderr if quiet else None)
    return path
