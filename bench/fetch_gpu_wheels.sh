#!/usr/bin/env bash
# Download the wheels the GPU device machine lacks into bench/.wheels/ (git-ignored), so
# that bench/gpu_check.sh can install them there without a network, and stage a copy of
# the real clips (../shared/media, 28 MB) in bench/.media/ (git-ignored too): the device
# receives the working tree only, so both folders travel as its `carry` paths.
#
# The device has PyTorch 2.11 + CUDA, OpenCV, NumPy, scikit-learn and matplotlib, but not
# facenet-pytorch (MTCNN, whose weights ship inside the wheel) nor requests, which
# facenet_pytorch's __init__ imports. Pillow comes with matplotlib there, and torchvision
# usually comes with torch; both are carried in case, and gpu_check.sh installs a wheel
# only for a module that fails to import on the device.
#
# Binary wheels are fetched for each Python of PY_VERSIONS (the device's is not known in
# advance); pure-Python wheels are the same file for all of them. The folder travels with
# the working tree (64 MiB in all), so it must stay under MAX_MB.
#
#   bash bench/fetch_gpu_wheels.sh                     # Pythons 3.11 and 3.12
#   PY_VERSIONS="3.10 3.11 3.12 3.13" bash bench/fetch_gpu_wheels.sh
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$REPO/bench/.wheels"
PY_VERSIONS="${PY_VERSIONS:-3.11 3.12}"
PIP="${PIP:-$REPO/.venv/bin/pip}"
MAX_MB="${MAX_MB:-50}"

# The versions this project's environment runs with (pure Python except pillow and
# charset-normalizer, which have per-Python binary wheels).
PACKAGES=(
  facenet-pytorch==2.5.3
  requests==2.34.2
  urllib3==2.8.0
  idna==3.20
  certifi==2026.10.19.post1
  charset-normalizer==3.5.3
  pillow==13.0.0
)
# Built against torch 2.11 exactly, as the device has; about 8 MB per Python (the CUDA
# kernels live in torch's own libraries, not in this wheel).
TORCHVISION=torchvision==0.26.0
# PyPI's Linux wheels carry manylinux tags of several glibc generations.
PLATFORMS=(manylinux2014_x86_64 manylinux_2_17_x86_64 manylinux_2_27_x86_64 manylinux_2_28_x86_64)

mkdir -p "$DEST"
platform_args=()
for platform in "${PLATFORMS[@]}"; do
  platform_args+=(--platform "$platform")
done

for version in $PY_VERSIONS; do
  echo "== Python $version" >&2
  "$PIP" download --quiet --no-deps --only-binary=:all: --python-version "$version" \
    --implementation cp "${platform_args[@]}" --dest "$DEST" "${PACKAGES[@]}" "$TORCHVISION"
done

total_mb() { du -sm "$DEST" | cut -f1; }
if [ "$(total_mb)" -gt "$MAX_MB" ]; then
  # torchvision is the only large one and the device most likely has it already.
  echo "bench/.wheels is $(total_mb) MB > $MAX_MB MB: dropping the torchvision wheels" >&2
  rm -f "$DEST"/torchvision-*.whl
fi

ls -l "$DEST"/*.whl | awk '{printf "%10d  %s\n", $5, $NF}'
echo "total: $(du -sh "$DEST" | cut -f1) in $(ls "$DEST"/*.whl | wc -l) wheels ($DEST)"

# The clips: the device gets the working tree, not ../shared.
MEDIA="${DDM_TEST_MEDIA:-$REPO/../shared/media}"
if [ -d "$MEDIA" ]; then
  rm -rf "$REPO/bench/.media" && cp -r "$MEDIA" "$REPO/bench/.media"
  chmod -R u+w "$REPO/bench/.media"
  echo "clips: $(find "$REPO/bench/.media" -name '*.mp4' | wc -l) staged in bench/.media ($(du -sh "$REPO/bench/.media" | cut -f1))"
fi
