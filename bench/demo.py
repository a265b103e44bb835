"""`ddm demo`: wall time per step, and what it learned, at a given size.

Runs the demo exactly as `make demo` does (a fresh workspace in a temporary DDM_HOME,
inline on SQLite), in a child process so that its imports and model builds are counted.

    .venv/bin/python bench/demo.py [--size default|small] [--quick] [--compare-precision]

`--compare-precision` then trains the demo's detector again on the same extracted
workspace with `ddm train --precision fp32` and `--precision bf16` (the demo's own settings
otherwise, as `ddm demo` prints them) and reports each run's held-out accuracy and AUC on
demo-ff's test split and on demo-dfdc: what bf16 training changes, side by side.
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
    parser.add_argument("--compare-precision", action="store_true")
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
        if done.returncode != 0:
            raise SystemExit(f"ddm demo failed ({done.returncode}): {done.stderr[-2000:]}")
        document = json.loads(done.stdout)
        compared = compare_precision(env, document, size) if args.compare_precision else None
    finally:
        shutil.rmtree(home, ignore_errors=True)
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
    if compared is not None:
        result["precision"] = compared
        rows = [
            [name, r["train_s"], r["accuracy"], r["auc"], r["dfdc_accuracy"], r["dfdc_auc"]]
            for name, r in compared.items()
        ]
        columns = ["precision", "train s", "accuracy", "AUC", "demo-dfdc accuracy", "AUC"]
        print_table("the demo's training again, per precision", columns, rows)
    result["loadavg"] = _common.loadavg()
    write_results("demo.quick" if args.quick else f"demo-{size}", result)


def compare_precision(env: dict[str, str], document: dict, size: str) -> dict[str, dict]:
    """Train the demo's run again per precision on its workspace; score both datasets."""
    from tasks.demo import FF_NAME, SIZES

    demo = SIZES[size]
    ddm = str(REPO / ".venv" / "bin" / "ddm")
    env = {**env, "DDM_HOME": document["workspace"]}
    train_args = ["--datasets", FF_NAME, "--epochs", str(demo.epochs), "--lr", str(demo.lr)]
    train_args += ["--batch-size", str(demo.batch_size), "--patience", str(demo.epochs)]
    train_args += ["--seed", str(demo.seed)]
    results = {}
    for precision in ("fp32", "bf16"):
        start = time.perf_counter()
        run = _ddm_json(ddm, env, "train", *train_args, "--precision", precision, "--json")
        seconds = time.perf_counter() - start
        scores = {}
        for name, split in (("demo-ff", ["--split", "test"]), ("demo-dfdc", [])):
            runs = ["--runs", str(run["id"])]
            report = _ddm_json(ddm, env, "report", "--eval", name, *split, *runs, "--json")
            scores[name] = report["runs"][0]
        results[precision] = {
            "run_id": run["id"],
            "resolved": run["config"].get("resolved"),
            "train_s": seconds,
            "accuracy": scores["demo-ff"]["accuracy"],
            "auc": scores["demo-ff"]["auc"],
            "dfdc_accuracy": scores["demo-dfdc"]["accuracy"],
            "dfdc_auc": scores["demo-dfdc"]["auc"],
        }
    return results


def _ddm_json(ddm: str, env: dict[str, str], *args: str) -> dict:
    done = subprocess.run([ddm, *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"ddm {args[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout)


if __name__ == "__main__":
    main()
