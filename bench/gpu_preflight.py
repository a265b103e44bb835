"""Seconds-long checks that a machine can run the GPU check at all, before any model runs.

`bash bench/gpu_check.sh` runs this first, with the interpreter it will use for the rest:
every module the check imports, OpenCV's video backend and a decode of a carried clip,
the device, torchvision's compiled NMS on that device (MTCNN's NMS runs there), MTCNN on
one decoded frame, the project's own modules, and the carried torchvision wheel's torch
and CUDA build against the device's torch. It prints one JSON line whose `missing` names
what is absent or broken; `preflight` is "pass" when nothing is, and the exit status is 0
then, 1 otherwise.

It imports only the standard library at load time, so that it can report a missing numpy
or OpenCV instead of dying on it. `--needed` prints instead the carried distributions to
install (those whose modules fail here and for which bench/.wheels holds a usable wheel).

    python bench/gpu_preflight.py [--clip PATH] [--needed]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WHEELS = REPO / "bench" / ".wheels"
# Where the clips may be: the copy carried in the working tree, then the shared folder.
MEDIA_FOLDERS = (REPO / "bench" / ".media", REPO.parent / "shared" / "media")

# module -> the carried distribution that provides it (None: not carried, too large for
# the 64 MiB that travels with the tree: numpy's wheel is 16 MB and OpenCV's 50 MB per
# Python, and the device is said to have both). Dependencies come before their users.
MODULES: dict[str, str | None] = {
    "numpy": None,
    "cv2": None,
    "torch": None,
    "PIL": "pillow",
    "urllib3": "urllib3",
    "idna": "idna",
    "certifi": "certifi",
    "charset_normalizer": "charset-normalizer",
    "requests": "requests",
    "torchvision": "torchvision",
    "facenet_pytorch": "facenet-pytorch",
    # The model layer imports ddm.config (model.registry -> ddm.download), which needs these.
    "typing_extensions": "typing-extensions",
    "annotated_types": "annotated-types",
    "typing_inspection": "typing-inspection",
    "pydantic_core": "pydantic-core",
    "pydantic": "pydantic",
    "dotenv": "python-dotenv",
    "pydantic_settings": "pydantic-settings",
}
# What the smoke and the throughput run import of the project: the model layer and the
# jobs layer's device rules (tasks.devices), which need nothing beyond the modules above.
PROJECT_MODULES = (
    "model.features",
    "model.train",
    "model.evaluate",
    "model.checkpoint",
    "model.prefetch",
    "tasks.devices",
)


def _error(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines() or [""]
    return f"{type(exc).__name__}: {lines[-1][:300]}"


# --------------------------------------------------------------------------- checks


def check_imports(report: dict[str, Any]) -> None:
    versions, missing = {}, []
    for module in MODULES:
        try:
            versions[module] = getattr(importlib.import_module(module), "__version__", "?")
        except Exception as exc:  # noqa: BLE001  (ImportError, OSError from libGL, ...)
            missing.append(f"{module}: {_error(exc)}")
    report["imports"] = versions
    report["missing"].extend(missing)


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def check_torch(report: dict[str, Any]) -> None:
    import torch

    cuda = torch.cuda.is_available()
    report["torch"] = torch.__version__
    report["torch_cuda_build"] = torch.version.cuda
    report["device"] = device()
    report["device_name"] = torch.cuda.get_device_name(0) if cuda else "cpu"


def check_nms(report: dict[str, Any]) -> None:
    """torchvision's compiled NMS on the device: a CPU-only torchvision passes on the CPU
    and raises on CUDA tensors, which is where MTCNN calls it."""
    import torch
    import torchvision

    where = device()
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], device=where)
    scores = torch.tensor([0.9, 0.8, 0.7], device=where)
    groups = torch.zeros(3, dtype=torch.int64, device=where)
    try:
        kept = torchvision.ops.batched_nms(boxes.float(), scores, groups, 0.5).cpu().tolist()
    except Exception as exc:  # noqa: BLE001
        report["missing"].append(f"torchvision: NMS on {where} fails: {_error(exc)}")
        return
    report["nms_device"] = where
    if kept != [0, 2]:
        report["missing"].append(f"torchvision: NMS on {where} kept {kept}, not [0, 2]")


def check_torchvision_build(report: dict[str, Any]) -> None:
    """Say which CUDA torchvision was built for; a major version unlike torch's fails."""
    import torchvision

    report["torchvision"] = torchvision.__version__
    report["torchvision_cuda_build"] = getattr(torchvision.version, "cuda", None)
    report["torchvision_file"] = torchvision.__file__


def clip_candidates(explicit: Path | None) -> list[Path]:
    if explicit is not None:
        return [explicit]
    for folder in MEDIA_FOLDERS:
        clips = sorted(folder.rglob("*.mp4")) if folder.is_dir() else []
        if clips:
            return clips
    return []


def check_decode(report: dict[str, Any], explicit: Path | None) -> Any:
    """OpenCV's FFmpeg backend, and a carried clip opened, read and seeked into (the
    extractor seeks to each sampled frame). Returns one decoded frame, or None."""
    import cv2

    report["opencv"] = cv2.__version__
    found = re.search(r"FFMPEG:\s*(\w+)", cv2.getBuildInformation())
    report["opencv_ffmpeg"] = found.group(1) if found else "not listed"
    clips = clip_candidates(explicit)
    if not clips:
        report["missing"].append("clips: none in bench/.media (run bench/fetch_gpu_wheels.sh)")
        return None
    clip = min(clips, key=lambda path: path.stat().st_size)  # the quickest to open
    report["decode_clip"] = str(clip.relative_to(REPO) if clip.is_relative_to(REPO) else clip)
    capture = cv2.VideoCapture(str(clip))
    try:
        frame = _read_middle_frame(capture)
    finally:
        capture.release()
    if frame is None:
        report["missing"].append(
            f"OpenCV cannot decode {clip.name} (FFMPEG: {report['opencv_ffmpeg']})"
        )
        return None
    report["decode_frame"] = list(frame.shape)
    return frame


def _read_middle_frame(capture: Any) -> Any:
    import cv2

    if not capture.isOpened():
        return None
    ok, first = capture.read()
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    if not ok or count < 1:
        return None
    capture.set(cv2.CAP_PROP_POS_FRAMES, count // 2)
    ok, middle = capture.read()
    return middle if ok else None


def check_mtcnn(report: dict[str, Any], frame: Any) -> None:
    """MTCNN, with the weights its wheel ships, on one frame on the device: its NMS and
    its crops run there, as in every extraction."""
    import cv2
    from facenet_pytorch import MTCNN

    detector = MTCNN(keep_all=True, device=device())
    boxes, probs = detector.detect(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    report["mtcnn_faces"] = 0 if boxes is None else len(boxes)


def check_project(report: dict[str, Any]) -> None:
    for module in PROJECT_MODULES:
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001
            report["missing"].append(f"{module}: {_error(exc)}")


# --------------------------------------------------------------------------- wheels


def carried_wheel(distribution: str) -> Path | None:
    """The carried wheel of `distribution` for this Python, if any."""
    name = distribution.replace("-", "_")
    tag = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    for pattern in (f"{name}-*-py3-none-any.whl", f"{name}-*-{tag}-{tag}-*.whl"):
        found = sorted(WHEELS.glob(pattern))
        if found:
            return found[-1]
    return None


def torchvision_wheel_facts() -> dict[str, Any] | None:
    """The carried torchvision wheel's build (from its files, without installing it) and
    whether it fits the torch here: the same torch release and the same CUDA major."""
    wheel = carried_wheel("torchvision")
    if wheel is None:
        return None
    with zipfile.ZipFile(wheel) as archive:
        version_py = archive.read("torchvision/version.py").decode()
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        requires = archive.read(metadata).decode()
    version = re.search(r"__version__ = '([^']+)'", version_py).group(1)
    needs = re.search(r"Requires-Dist: torch \(?==([\w.]+)", requires)
    facts = {
        "file": wheel.name,
        "version": version,
        "cuda": version.partition("+")[2] or "none",
        "requires_torch": needs.group(1) if needs else None,
    }
    facts.update(_fits_torch(facts))
    return facts


def _fits_torch(facts: dict[str, Any]) -> dict[str, Any]:
    import torch

    base = torch.__version__.partition("+")[0]
    torch_cuda = torch.version.cuda  # "13.0", or None on a CPU build
    wanted = f"cu{torch_cuda.replace('.', '')}" if torch_cuda else "cpu"
    problems = []
    if facts["requires_torch"] and facts["requires_torch"] != base:
        problems.append(f"built for torch {facts['requires_torch']}, this is {base}")
    if torch_cuda and facts["cuda"][:4] != wanted[:4]:  # "cu13" vs "cu12": the major
        problems.append(f"built for {facts['cuda']}, this torch for {wanted}")
    return {"device_torch_build": wanted, "fits_device_torch": not problems, "why": problems}


def needed() -> list[str]:
    """Carried distributions to install: their module fails here (torchvision: its NMS
    fails on the device) and a wheel fits. A torchvision wheel for another torch or CUDA
    is not installed: it would only replace one failure with another."""
    report: dict[str, Any] = {"missing": []}
    check_imports(report)
    failing = {line.partition(":")[0] for line in report["missing"]}
    if "torchvision" not in failing and "torch" not in failing:
        check_nms(report)
        failing |= {line.partition(":")[0] for line in report["missing"]}
    wanted = []
    for module, distribution in MODULES.items():
        if module not in failing or distribution is None or carried_wheel(distribution) is None:
            continue
        if distribution == "torchvision" and not (torchvision_wheel_facts() or {}).get(
            "fits_device_torch"
        ):
            continue
        wanted.append(distribution)
    return wanted


# --------------------------------------------------------------------------- main


def preflight(clip: Path | None) -> dict[str, Any]:
    """Every check whose prerequisites imported; `missing` lists what failed."""
    start = time.perf_counter()
    report: dict[str, Any] = {"benchmark": "gpu_preflight", "missing": []}
    check_imports(report)
    imported = report["imports"]
    frame = check_decode(report, clip) if {"numpy", "cv2"} <= imported.keys() else None
    if "torch" in imported:
        check_torch(report)
        report["carried_torchvision_wheel"] = _guarded(report, "wheel", torchvision_wheel_facts)
    if {"torch", "torchvision"} <= imported.keys():
        _guarded(report, "torchvision", lambda: check_torchvision_build(report))
        _guarded(report, "torchvision", lambda: check_nms(report))
    if frame is not None and {"torch", "facenet_pytorch"} <= imported.keys():
        _guarded(report, "MTCNN", lambda: check_mtcnn(report, frame))
    if {"numpy", "cv2", "torch"} <= imported.keys():
        check_project(report)
    report["installed_from_wheels"] = os.environ.get("GPU_CHECK_INSTALLED", "").split()
    report["preflight"] = "fail" if report["missing"] else "pass"
    report["seconds"] = round(time.perf_counter() - start, 3)
    return report


def _guarded(report: dict[str, Any], what: str, check: Any) -> Any:
    try:
        return check()
    except Exception as exc:  # noqa: BLE001  (a broken build fails in many ways)
        report["missing"].append(f"{what}: {_error(exc)}")
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, help="the clip to decode (default: smallest carried)")
    parser.add_argument("--needed", action="store_true", help="list the wheels to install")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))  # the project's modules, for check_project
    if args.needed:
        print("\n".join(needed()))
        return 0
    # Libraries may print (facenet, OpenCV): only the JSON line goes to stdout.
    stdout, sys.stdout = sys.stdout, sys.stderr
    report = preflight(args.clip)
    print(json.dumps(report, separators=(",", ":"), default=str), file=stdout, flush=True)
    return 0 if report["preflight"] == "pass" else 1


if __name__ == "__main__":
    sys.exit(main())
