#!/usr/bin/env bash
# The one command run on the GPU device machine: bash bench/gpu_check.sh [--videos N] [--minutes M]
#
# The device has PyTorch + CUDA, OpenCV, NumPy, scikit-learn and matplotlib, and no network.
# This script
#   1. installs the wheels carried in bench/.wheels/ (bench/fetch_gpu_wheels.sh) for the
#      modules that fail to import there, into a temporary folder put on PYTHONPATH (the
#      system's site-packages are never touched; a module that imports is never shadowed);
#   2. runs bench/gpu_check.py with its arguments under a time guard, its progress on
#      stderr (and in $OUT/gpu_check.log when OUT is set);
#   3. prints exactly one JSON line as the last line on stdout (an error object if the
#      measurement failed or ran out of time), and copies it to $OUT/gpu_check.json when
#      OUT is set (on the device only $OUT comes back).
# It finishes in under 8 minutes: PY_TIMEOUT (450 s) bounds the Python part, whose own
# budget (gpu_check.py --budget-s, 420 s) normally ends it first.
#
# PYTHON picks the interpreter (default: python3, else python, on PATH).
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO" || exit 1
PY="${PYTHON:-$(command -v python3 || command -v python)}"
PY_TIMEOUT="${PY_TIMEOUT:-450}"
WHEELS="$REPO/bench/.wheels"
DEPS="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check_deps.XXXXXX")"
STDOUT_FILE="$(mktemp "${TMPDIR:-/tmp}/gpu_check_stdout.XXXXXX")"
LOG_FILE="${OUT:+$OUT/gpu_check.log}"
LOG_FILE="${LOG_FILE:-$(mktemp "${TMPDIR:-/tmp}/gpu_check_log.XXXXXX")}"
trap 'rm -rf "$DEPS" "$STDOUT_FILE"; [ -n "${OUT:-}" ] || rm -f "$LOG_FILE"' EXIT

export PYTHONPATH="$REPO:$DEPS${PYTHONPATH:+:$PYTHONPATH}"
export OPENCV_LOG_LEVEL=OFF

say() { echo "gpu_check.sh: $*" >&2; }

# module=distribution, dependencies before the modules that import them, so each check
# runs with what was just installed on the path.
MODULES=(
  urllib3=urllib3 idna=idna certifi=certifi charset_normalizer=charset-normalizer
  requests=requests PIL=pillow torchvision=torchvision facenet_pytorch=facenet-pytorch
)

importable() {
  local module="$1"
  if [ "$module" = torchvision ]; then
    # What MTCNN needs of it: the compiled NMS, which fails when torchvision was built
    # for another torch.
    "$PY" -c 'import torch, torchvision
torchvision.ops.batched_nms(torch.zeros(1, 4), torch.ones(1), torch.zeros(1), 0.5)' \
      >/dev/null 2>&1
  else
    "$PY" -c "import $module" >/dev/null 2>&1
  fi
}

# Without pip: a wheel is a zip of the files pip would copy; pick the one for this Python.
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

install_wheel() {
  local dist="$1"
  if [ "$HAVE_PIP" = 1 ]; then
    "$PY" -m pip install --quiet --no-deps --no-index --find-links "$WHEELS" \
      --target "$DEPS" "$dist" >&2
  else
    unpack_wheel "$dist"
  fi
}

install_missing() {
  local entry module dist installed=()
  HAVE_PIP=0
  "$PY" -m pip --version >/dev/null 2>&1 && HAVE_PIP=1
  for entry in "${MODULES[@]}"; do
    module="${entry%%=*}" dist="${entry#*=}"
    importable "$module" && continue
    say "$module does not import: installing $dist from bench/.wheels"
    if install_wheel "$dist"; then
      installed+=("$dist")
    else
      say "no usable $dist wheel in bench/.wheels (run bench/fetch_gpu_wheels.sh)"
    fi
  done
  # gpu_check.py records which packages came from the carried wheels.
  export GPU_CHECK_INSTALLED="${installed[*]+${installed[*]}}"
}

error_json() {
  local rc="$1"
  "$PY" - "$rc" "$LOG_FILE" <<'EOF'
import json, sys
rc, log = int(sys.argv[1]), sys.argv[2]
try:
    tail = open(log, errors="replace").read().splitlines()[-8:]
except OSError:
    tail = []
error = "timed out" if rc in (124, 137) else "failed"
print(json.dumps({"benchmark": "gpu_check", "error": error, "rc": rc, "stderr_tail": tail}))
EOF
}

install_missing

guard=()
command -v timeout >/dev/null && guard=(timeout -k 10 "$PY_TIMEOUT")
say "running $PY bench/gpu_check.py $*"
# stdout to a file (only the JSON line goes there), stderr to the terminal and the log.
${guard[@]+"${guard[@]}"} "$PY" bench/gpu_check.py "$@" 2>&1 >"$STDOUT_FILE" | tee "$LOG_FILE" >&2
rc="${PIPESTATUS[0]}"

json="$(tail -n 1 "$STDOUT_FILE")"
if [ "$rc" -ne 0 ] || ! printf '%s' "$json" | "$PY" -c 'import json, sys; json.load(sys.stdin)' \
  2>/dev/null; then
  json="$(error_json "$rc")"
  [ "$rc" -ne 0 ] || rc=1
fi
if [ -n "${OUT:-}" ]; then
  printf '%s\n' "$json" >"$OUT/gpu_check.json"
fi
printf '%s\n' "$json"
exit "$rc"
