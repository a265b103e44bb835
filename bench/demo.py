"""`ddm demo`: wall time per step, and what it learned, at a given size.

Runs the demo exactly as `make demo` does (a fresh workspace in a temporary DDM_HOME,
inline on SQLite), in a child process so that its imports and model builds are counted.

    .venv/bin/python bench/demo.py [--size default|small] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import _common
from _common import REPO, machine, print_table, write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["default", "small"], default="default")
    parser.add_argument("--quick", action="store_true", help="the small size, not recorded")
    args = parser.parse_args()
    size = "small" if args.quick else args.size
    info = machine()
    home = Path(tempfile.mkdtemp(prefix="ddm-bench-demo-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DDM_")}
    env["DDM_HOME"] = str(home)
    try:
        start = time.perf_counter()
        done = subprocess.run(
            [str(REPO / ".venv" / "bin" / "ddm"), "demo", "--size", size, "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - start
    finally:
        shutil.rmtree(home, ignore_errors=True)
    if done.returncode != 0:
        raise SystemExit(f"ddm demo failed ({done.returncode}): {done.stderr[-2000:]}")
    document = json.loads(done.stdout)
    rows = [[step, seconds] for step, seconds in document["steps"].items()]
    rows.append(["total (ddm demo's own count)", document["seconds"]])
    rows.append(["wall, process start to exit", wall])
    print_table(f"ddm demo --size {size} (seconds)", ["step", "seconds"], rows)
    print(
        f"in-domain accuracy {document['accuracy']:.3f}, AUC {document['auc']:.3f}; "
        f"cross-domain accuracy {document['cross_dataset']['accuracy']:.3f}, "
        f"AUC {document['cross_dataset']['auc']}"
    )
    result = {"machine": info, "size": size, "wall_s": wall, "demo": document}
    result["loadavg"] = _common.loadavg()
    write_results("demo.quick" if args.quick else f"demo-{size}", result)


if __name__ == "__main__":
    main()
