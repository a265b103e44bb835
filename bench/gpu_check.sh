#!/usr/bin/env bash
# The one command run on a GPU machine:
#
#   bash bench/gpu_check.sh --smoke              # every GPU code path once, pass/fail each
#   bash bench/gpu_check.sh [gpu_check.py args]  # the smoke, then the throughput run
#
# The device has PyTorch + CUDA, OpenCV, NumPy, scikit-learn and matplotlib and no network;
# it receives the working tree plus bench/.wheels and bench/.media, carried
# (bench/fetch_gpu_wheels.sh). Everything below runs under one time limit, installs and
# machine checks included: GPU_CHECK_SECONDS, 300 s for the full check and 120 s for
# --smoke. In order:
#   1. install: the carried wheels of the modules that fail to import here (torchvision:
#      whose NMS fails on the device), unpacked into a temporary folder put on PYTHONPATH;
#      the system's site-packages are never touched, a module that works is never shadowed,
#      and a torchvision wheel built for another torch or CUDA is not installed;
#   2. preflight (bench/gpu_preflight.py, seconds): every import, OpenCV's decode of a
#      carried clip, NMS and MTCNN on the device, the carried torchvision's build against
#      the device's torch; if anything is missing the check stops here and says what;
#   3. smoke (bench/gpu_smoke.py): every GPU code path once, each "pass" or "fail";
#   4. full check only: the throughput run (bench/gpu_check.py), which the smoke's
#      failures do not stop: its numbers are still worth bringing back.
# Each step leaves its JSON in a work folder; bench/gpu_report.py merges them into the one
# JSON line printed last on stdout (a step cut short by the limit is named, and whatever
# ran before it is kept) and, when OUT is set, written to $OUT/gpu_check.json
# ($OUT/gpu_check_smoke.json for --smoke) with the progress log beside it (.log): on the
# device only $OUT comes back. Exit status 0 when every step passed.
#
# PYTHON picks the interpreter (default: python3, else python, on PATH).
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO" || exit 1
PY="${PYTHON:-$(command -v python3 || command -v python)}"
WHEELS="$REPO/bench/.wheels"
# Python is told to stop starting work this long before the limit, to write its JSON.
FINISH_S=15

say() { echo "gpu_check.sh: $*" >&2; }

# ------------------------------------------------------------------ outside the limit

# Runs the steps (this script again, with --inner) under the one timeout, then reports.
# Nothing here takes more than a moment.
outer() {
  local mode=full name=gpu_check allowed log rc json status
  if [ "${1:-}" = --smoke ]; then
    mode=smoke name=gpu_check_smoke
    shift
  fi
  allowed="${GPU_CHECK_SECONDS:-$([ "$mode" = smoke ] && echo 120 || echo 300)}"
  WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")"
  trap 'rm -rf "$WORK"' EXIT
  log="${OUT:+$OUT/$name.log}"
  log="${log:-$WORK/$name.log}"
  export GPU_CHECK_WORK="$WORK" GPU_CHECK_MODE="$mode"
  export GPU_CHECK_DEADLINE="$(($(date +%s) + allowed - FINISH_S))"

  local guard=()
  # timeout signals its whole process group: the inner shell and the Python it runs.
  command -v timeout >/dev/null && guard=(timeout -k 5 "$((allowed - 8))")
  say "$mode check, at most $allowed s, with $PY"
  ${guard[@]+"${guard[@]}"} bash "$REPO/bench/gpu_check.sh" --inner "$@" 2>&1 | tee "$log" >&2
  rc="${PIPESTATUS[0]}"

  json="$("$PY" bench/gpu_report.py "$WORK" "$mode" "$rc" "$log" "$allowed")"
  status=$?
  if [ -z "$json" ]; then  # no working Python at all: say so without one
    json="{\"benchmark\":\"gpu_check\",\"mode\":\"$mode\",\"ok\":false,\"rc\":$rc,\"error\":\"no Python could write the report ($PY)\"}"
    status=1
  fi
  if [ -n "${OUT:-}" ]; then
    printf '%s\n' "$json" >"$OUT/$name.json"
  fi
  printf '%s\n' "$json"
  return "$status"
}

# ------------------------------------------------------------------ inside the limit

# A wheel is a zip of the files pip would copy; these have no scripts or data to place.
unpack_wheel() {
  local dist="${1//-/_}" tag wheel
  tag="$("$PY" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')"
  for wheel in "$WHEELS/$dist"-*-py3-none-any.whl "$WHEELS/$dist"-*-"$tag"-"$tag"-*.whl; do
    if [ -f "$wheel" ]; then
      "$PY" -m zipfile -e "$wheel" "$DEPS" && return 0
    fi
  done
  return 1
}

install_missing() {
  local dist needed installed=()
  # One Python run decides (imports, NMS on the device, the torchvision wheel's build).
  needed="$("$PY" bench/gpu_preflight.py --needed 2>/dev/null)"
  for dist in $needed; do
    say "installing $dist from bench/.wheels (its module does not work here)"
    if unpack_wheel "$dist"; then
      installed+=("$dist")
    else
      say "could not unpack the $dist wheel"
    fi
  done
  # The preflight and the throughput run record which packages came from the wheels.
  export GPU_CHECK_INSTALLED="${installed[*]+${installed[*]}}"
}

inner() {
  local work="$GPU_CHECK_WORK" smoke_rc full_rc
  DEPS="$work/deps"
  mkdir -p "$DEPS"
  export PYTHONPATH="$REPO:$DEPS${PYTHONPATH:+:$PYTHONPATH}"
  export OPENCV_LOG_LEVEL=OFF
  [ "${1:-}" = --smoke ] && shift

  install_missing
  say "preflight"
  if ! "$PY" bench/gpu_preflight.py >"$work/preflight.json"; then
    say "preflight failed: $(tail -n 1 "$work/preflight.json")"
    return 3
  fi
  say "smoke"
  local smoke_args=()
  [ "$GPU_CHECK_MODE" = smoke ] && smoke_args=("$@")
  # Its stdout (the same JSON as its progress file) joins the log.
  "$PY" bench/gpu_smoke.py --deadline "$GPU_CHECK_DEADLINE" --progress "$work/smoke.json" \
    ${smoke_args[@]+"${smoke_args[@]}"} >&2
  smoke_rc=$?
  [ "$GPU_CHECK_MODE" = smoke ] && return "$smoke_rc"

  say "throughput"
  "$PY" bench/gpu_check.py --deadline "$GPU_CHECK_DEADLINE" "$@" >"$work/full.json"
  full_rc=$?
  [ "$smoke_rc" -eq 0 ] && [ "$full_rc" -eq 0 ]
}

if [ "${1:-}" = --inner ]; then
  shift
  inner "$@"
else
  outer "$@"
fi
