"""The one JSON line `bench/gpu_check.sh` prints and leaves under $OUT, from its parts.

The script's steps each leave a JSON file in its work folder: `preflight.json`
(bench/gpu_preflight.py), `smoke.json` (bench/gpu_smoke.py, rewritten after every path,
so a run cut short still says which paths passed) and `full.json` (bench/gpu_check.py).
Whatever exists is merged, whatever is missing is said: a smoke path that never reported
is "fail" with the reason, and a run stopped by the time guard says so. Standard library
only, so that it reports even where numpy or torch does not import.

    python bench/gpu_report.py WORK_DIR smoke|full RC LOG_FILE SECONDS_ALLOWED
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

# The code paths the smoke touches, each "pass" or "fail" in the JSON (bench/gpu_smoke.py).
PATHS = ("extract_fp32", "extract_bf16", "train_epoch", "evaluate", "predict", "resume_on_cpu")
PASS, FAIL = "pass", "fail"
TIMED_OUT = (124, 137)  # timeout's status, and SIGKILL's after its grace period


def read_part(folder: Path, name: str) -> dict[str, Any] | None:
    """The last JSON object in `folder/name.json`, or None if there is none."""
    try:
        lines = (folder / f"{name}.json").read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def log_tail(log: Path, count: int = 8) -> list[str]:
    try:
        return log.read_text(errors="replace").splitlines()[-count:]
    except OSError:
        return []


def smoke_verdicts(smoke: dict[str, Any] | None, why_missing: str) -> dict[str, Any]:
    """Every path's verdict; one the smoke never reported fails, with `why_missing`."""
    smoke = dict(smoke or {"benchmark": "gpu_smoke"})
    errors = dict(smoke.get("errors") or {})
    for path in PATHS:
        # Its progress file lists a path not run yet as "fail" without a reason.
        if smoke.get(path) != PASS and path not in errors:
            smoke[path] = FAIL
            errors[path] = why_missing
    smoke["errors"] = errors
    smoke["all_pass"] = all(smoke[path] == PASS for path in PATHS)
    return smoke


def why_not_run(preflight: dict[str, Any] | None, rc: int, seconds: int) -> str:
    if preflight is None or preflight.get("preflight") != PASS:
        return "not run: the preflight failed (see missing)"
    if rc in TIMED_OUT:
        return f"not reported: the check was stopped at its {seconds} s limit"
    return "not reported: the smoke stopped (see stderr_tail)"


def merge(folder: Path, mode: str, rc: int, log: Path, seconds: int) -> dict[str, Any]:
    preflight = read_part(folder, "preflight")
    smoke = smoke_verdicts(read_part(folder, "smoke"), why_not_run(preflight, rc, seconds))
    result: dict[str, Any] = {"benchmark": "gpu_check", "mode": mode}
    if mode == "smoke":
        result.update(smoke)
        result["benchmark"] = "gpu_check"
    else:
        result.update(read_part(folder, "full") or {"error": "no throughput result"})
        result["smoke"] = smoke
    result["preflight"] = (preflight or {}).get("preflight", FAIL)
    result["missing"] = (preflight or {}).get("missing", ["preflight: no result"])
    result["preflight_report"] = preflight
    if rc in TIMED_OUT:
        result["error"] = f"timed out: stopped at the {seconds} s limit"
    result["ok"] = ok(result, mode, rc)
    result["rc"] = rc
    if not result["ok"]:
        result["stderr_tail"] = log_tail(log)
    return result


def ok(result: dict[str, Any], mode: str, rc: int) -> bool:
    """Every step ran and passed: preflight, each smoke path and, in full, the run."""
    smoke = result if mode == "smoke" else result["smoke"]
    return bool(
        rc == 0 and result["preflight"] == PASS and smoke["all_pass"] and "error" not in result
    )


def main(argv: list[str]) -> int:
    folder, mode, rc, log, seconds = argv
    result = merge(Path(folder), mode, int(rc), Path(log), int(seconds))
    print(json.dumps(result, separators=(",", ":"), default=str))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
