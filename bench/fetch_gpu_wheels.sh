#!/usr/bin/env bash
# Download the wheels the GPU device machine lacks into bench/.wheels/ (git-ignored), so
# that bench/gpu_check.sh can install them there without a network, and stage a copy of
# the real clips (../shared/media, 28 MB) in bench/.media/ (git-ignored too): the device
# receives the working tree only, so both folders travel as its `carry` paths.
#
# The device has PyTorch 2.11 + CUDA, OpenCV, NumPy, scikit-learn and matplotlib, but not
# facenet-pytorch (MTCNN, whose weights ship inside the wheel) nor requests, which
# facenet_pytorch's __init__ imports, nor pydantic and pydantic-settings, which the model
# layer imports through model.registry -> ddm.download -> ddm.config. Pillow comes with
# matplotlib there, and torchvision usually comes with torch; both are carried in case,
# and gpu_check.sh installs a wheel only for a module that fails on the device (see
# bench/gpu_preflight.py). NumPy (16 MB a Python) and OpenCV (50 MB) do not fit: the
# preflight checks them and names them when they are missing.
#
# Binary wheels are fetched for each Python of PY_VERSIONS (the device's is not known in
# advance); pure-Python wheels are the same file for all of them. Wheels and clips travel
# with the working tree (64 MiB in all), so together they must stay under CARRY_MB: past
# it the torchvision wheels go first (the device most likely has a working torchvision,
# and the carried one fits torch 2.11.0+cu130 only), then Pillow's.
#
#   bash bench/fetch_gpu_wheels.sh                     # Pythons 3.11 and 3.12
#   PY_VERSIONS="3.10 3.11 3.12 3.13" bash bench/fetch_gpu_wheels.sh
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$REPO/bench/.wheels"
PY_VERSIONS="${PY_VERSIONS:-3.11 3.12}"
PIP="${PIP:-$REPO/.venv/bin/pip}"
CARRY_MB="${CARRY_MB:-60}"

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
  pydantic==2.14.4
  pydantic-core==2.50.5
  pydantic-settings==2.16.3
  python-dotenv==1.2.4
  typing-extensions==4.16.0
  annotated-types==0.8.0
  typing-inspection==0.4.5
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

# The clips: the device gets the working tree, not ../shared.
MEDIA="${DDM_TEST_MEDIA:-$REPO/../shared/media}"
if [ -d "$MEDIA" ]; then
  rm -rf "$REPO/bench/.media" && cp -r "$MEDIA" "$REPO/bench/.media"
  chmod -R u+w "$REPO/bench/.media"
  echo "clips: $(find "$REPO/bench/.media" -name '*.mp4' | wc -l) staged in bench/.media ($(du -sh "$REPO/bench/.media" | cut -f1))"
fi

carried_mb() { du -scm "$DEST" "$REPO/bench/.media" 2>/dev/null | tail -n 1 | cut -f1; }
for optional in torchvision pillow; do
  if [ "$(carried_mb)" -gt "$CARRY_MB" ]; then
    echo "wheels and clips take $(carried_mb) MiB > $CARRY_MB: dropping the $optional wheels" >&2
    rm -f "$DEST/$optional"-*.whl
  fi
done

ls -l "$DEST"/*.whl | awk '{printf "%10d  %s\n", $5, $NF}'
echo "total: $(du -sh "$DEST" | cut -f1) in $(ls "$DEST"/*.whl | wc -l) wheels ($DEST)"
echo "carried with the tree: $(carried_mb) MiB (bench/.wheels, bench/.media)"
