"""GPU check of the feature extractor: throughput on the device, a CPU baseline in the same
run, and agreement of the device's features with the CPU's fp32 ones.

The throughput step of `bench/gpu_check.sh`, which first installs the carried wheels the
device lacks, checks the machine (bench/gpu_preflight.py) and runs every GPU code path
once (bench/gpu_smoke.py), all under one time limit. It runs on a CPU as well, as a
rehearsal of the script with smaller defaults. Both extractors have random weights (no
weights files exist), built from the same seed, so they hold the same weights; MTCNN's
weights ship with facenet-pytorch, so face detection is the real one.

1. CPU baseline: the fp32 CPU extractor on --cpu-videos clips spread over the clip list,
   after one warm-up extraction, with torch's default threads (all cores).
2. Agreement: every distinct clip (up to --agree-clips) through both extractors; per frame
   the crop boxes must overlap (IoU >= 0.9), and where they do, the style codes (per frame)
   and content vectors (per 16-frame clip) must have cosine >= 0.99. Random weights make
   the codes nearly constant across frames, so the "centred" cosines (each extractor's
   per-video mean removed first) are reported too, outside the pass/fail rule.
3. Device throughput: the clips repeated to --videos files (symlinks, so the decode
   threads see distinct paths as in production), decoded ahead by a `FramePrefetcher`
   and extracted one after another, after one warm-up per frame size; it stops early
   after --minutes or at the deadline (--deadline, else --budget-s from the start).

A clip that cannot be decoded is skipped in every step and listed in `unreadable_clips`.
The last line on stdout is one JSON object (progress goes to stderr); the same object is
written to bench/results/gpu_check.json (gpu_check.cpu.json for a run without a GPU).

    bash bench/gpu_check.sh [--videos N] [--minutes M]        # on the device
    .venv/bin/python bench/gpu_check.py --videos 3 --frames 8 --cpu-videos 1 --device cpu
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (puts the repository root on sys.path)
import cv2
import numpy as np
import torch
from _common import REPO, RESULTS, loadavg, machine

from ddm.fs import atomic_write
from model.errors import UnreadableVideo
from model.features import ExtractorCfg, FeatureExtractor, build_extractor
from model.precision import BF16, FP32, PRECISIONS
from model.prefetch import FramePrefetcher

log = logging.getLogger("gpu_check")

RESULT_PATH = RESULTS / "gpu_check.json"
# A CPU rehearsal of the script must never pass for the device's numbers.
CPU_RESULT_PATH = RESULTS / "gpu_check.cpu.json"
SEED = 0  # tasks.extraction.RANDOM_WEIGHTS_SEED: production's random weights
SEED_V100_S_PER_VIDEO = 14.0  # the seed paper's extractor on a V100
TARGET_S_PER_VIDEO = SEED_V100_S_PER_VIDEO / 100
BOX_IOU_MIN = 0.9
COSINE_MIN = 0.99
# One borderline MTCNN detection can flip between CPU and GPU arithmetic and move a few
# boxes; agreement asks for nearly all frames, not every one.
BOX_AGREE_MIN_FRACTION = 0.95
# Left for the timed loop when the agreement phase runs long (slow CPU, many clips): 300
# videos at the 0.14 s target take 42 s.
LOOP_RESERVE_S = 90.0
# Kept for writing the results once the timed loop stops.
FINISH_RESERVE_S = 10.0
MAIN_STAGES = ("detect", "track", "style", "content", "total")
# `ddm extract --backbones small` (tasks.extraction.BACKBONES, which needs the jobs layer's
# dependencies to import): the same code paths with CPU-sized networks.
SMALL_BACKBONES = {
    "style_model": "psp_encoder_small",
    "content_model": "slow_r50_small",
    "face_size": 128,
    "content_size": 56,
}
SYNTHETIC_SIZES = ((640, 480), (1280, 720), (1920, 1080), (854, 480))
SYNTHETIC_FRAMES = 48


# --------------------------------------------------------------------------- arguments


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    cores = os.cpu_count() or 1
    cuda = torch.cuda.is_available()
    # Without a GPU the run is a rehearsal of the script: the same steps, sized to end
    # well inside the 300 s that bench/gpu_check.sh allows on a 2-core CPU.
    sized = (
        {"videos": 300, "frames": 32, "cpu": 4, "agree": 11}
        if cuda
        else {"videos": 4, "frames": 8, "cpu": 1, "agree": 2}
    )
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=sized["videos"], help="timed videos")
    parser.add_argument("--frames", type=int, default=sized["frames"], help="T per video")
    parser.add_argument("--device", default="cuda" if cuda else "cpu", help="cuda or cpu")
    parser.add_argument("--precision", default=BF16, choices=PRECISIONS, help="device's")
    # The published networks' sizes on a GPU; CPU-sized ones for the rehearsal without one,
    # where the full pair takes 20 to 40 s per video on 2 shared cores.
    parser.add_argument(
        "--backbones", choices=("full", "small"), default="full" if cuda else "small"
    )
    parser.add_argument("--cpu-videos", type=int, default=sized["cpu"], help="CPU baseline")
    parser.add_argument("--agree-clips", type=int, default=sized["agree"], help="clips compared")
    parser.add_argument(
        "--decode-workers", type=int, default=max(1, min(8, cores - 1)), help="decode threads"
    )
    parser.add_argument("--minutes", type=float, default=5.0, help="cap on the timed loop")
    parser.add_argument("--budget-s", type=float, default=270.0, help="cap on the whole run")
    parser.add_argument("--deadline", type=float, help="epoch seconds; overrides --budget-s")
    parser.add_argument("--media", type=Path, help="folder of *.mp4 clips (searched deeply)")
    parser.add_argument("--json-only", action="store_true", help="warnings only on stderr")
    return parser.parse_args(argv)


# --------------------------------------------------------------------------- clips


def media_candidates(explicit: Path | None) -> list[Path]:
    """Where the real clips may be: --media, $DDM_TEST_MEDIA, then beside or inside the
    repository (the device gets a copy of the working tree, maybe without ../shared)."""
    if explicit is not None:
        return [explicit]
    found = [Path(os.environ["DDM_TEST_MEDIA"])] if os.environ.get("DDM_TEST_MEDIA") else []
    staged = REPO / "bench" / ".media"  # bench/fetch_gpu_wheels.sh copies them there to carry
    return [*found, REPO.parent / "shared" / "media", REPO / "shared" / "media", staged]


def real_clips(explicit: Path | None) -> list[Path]:
    for folder in media_candidates(explicit):
        clips = sorted(folder.rglob("*.mp4")) if folder.is_dir() else []
        if clips:
            log.info("media: %d clips under %s", len(clips), folder)
            return clips
    return []


def synthetic_clips(folder: Path) -> list[Path]:
    """A few clips of a drawn, moving face-like pattern, in several frame sizes.

    `ddm.synthetic` renders a real face but needs scikit-image's photograph, which the
    device lacks. Whether MTCNN finds the drawn face or falls back to the centre crop
    (here it found it on every frame), the backbones do the same work; the JSON says
    `media: "synthetic"` and counts the fallback frames.
    """
    rng = np.random.default_rng(SEED)
    return [_write_clip(folder / f"synthetic_{w}x{h}.mp4", w, h, rng) for w, h in SYNTHETIC_SIZES]


def _write_clip(path: Path, width: int, height: int, rng: np.random.Generator) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path} (no mp4v encoder)")
    try:
        for t in range(SYNTHETIC_FRAMES):
            writer.write(_face_frame(width, height, t, rng))
    finally:
        writer.release()
    return path


def _face_frame(width: int, height: int, t: int, rng: np.random.Generator) -> np.ndarray:
    frame = rng.integers(60, 90, (height, width, 3), dtype=np.uint8)
    side = min(width, height)
    cx = int(width / 2 + side * 0.05 * np.sin(t / 6))
    cy = int(height / 2 + side * 0.03 * np.cos(t / 7))
    face_w, face_h = int(side * 0.16), int(side * 0.22)
    cv2.ellipse(frame, (cx, cy), (face_w, face_h), 0, 0, 360, (120, 150, 210), -1)
    for dx in (-1, 1):
        eye = (cx + dx * face_w // 2, cy - face_h // 4)
        cv2.ellipse(frame, eye, (face_w // 5, face_h // 10), 0, 0, 360, (250, 250, 250), -1)
        cv2.circle(frame, eye, max(face_h // 14, 2), (40, 30, 20), -1)
    cv2.line(frame, (cx, cy - face_h // 8), (cx, cy + face_h // 6), (90, 110, 170), 3)
    mouth = (cx, cy + face_h // 2)
    cv2.ellipse(frame, mouth, (face_w // 3, face_h // 10), 0, 0, 180, (60, 60, 150), -1)
    return frame


def frame_size(path: Path) -> tuple[int, int]:
    capture = cv2.VideoCapture(str(path))
    try:
        return int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(
            capture.get(cv2.CAP_PROP_FRAME_HEIGHT)
        )
    finally:
        capture.release()


def spread(items: list[Path], count: int) -> list[Path]:
    """`count` items spread evenly over the list (cycled when it is shorter), so a few
    baseline videos mix the frame sizes as the device's loop does."""
    if count >= len(items):
        return [items[i % len(items)] for i in range(count)]
    if count <= 1:
        return items[:count]
    step = (len(items) - 1) / (count - 1)
    return [items[round(i * step)] for i in range(count)]


def repeated_paths(clips: list[Path], count: int, folder: Path) -> list[Path]:
    """`count` distinct paths cycling over the clips: `FramePrefetcher` keys its work by
    path, and production never extracts one file twice in a row."""
    paths: list[Path] = []
    for index in range(count if clips else 0):  # no readable clip: nothing to time
        clip = clips[index % len(clips)]
        link = folder / f"{index:05d}-{clip.name}"
        link.symlink_to(clip.resolve())
        paths.append(link)
    return paths


# --------------------------------------------------------------------------- extractors


def build(cfg: ExtractorCfg, device: str, batch_size: int) -> FeatureExtractor:
    """The production extractor with random weights from the project's seed, as
    tasks.extraction._build_extractor makes it (without importing the jobs layer)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        return build_extractor(
            cfg,
            weights_dir="/nonexistent",
            allow_random_weights=True,
            device=device,
            batch_size=batch_size,
        )


def same_weights(a: FeatureExtractor, b: FeatureExtractor) -> bool:
    """Compare the first and last parameters of both backbones."""
    for name in ("style_encoder", "content_encoder"):
        params_a = list(getattr(a, name).parameters())
        params_b = list(getattr(b, name).parameters())
        for x, y in ((params_a[0], params_b[0]), (params_a[-1], params_b[-1])):
            if not torch.equal(x.detach().cpu(), y.detach().cpu()):
                return False
    return True


def timed_extract(extractor: FeatureExtractor, path: Path) -> tuple[dict[str, Any], float]:
    start = time.perf_counter()
    features = extractor.extract(path)
    return features, time.perf_counter() - start


# --------------------------------------------------------------------------- agreement


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-row IoU of two (T, 4) arrays of (x0, y0, x1, y1) boxes, x1 and y1 exclusive."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    width = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    height = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = width * height
    return inter / np.maximum(_area(a) + _area(b) - inter, 1e-9)


def _area(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(norms, 1e-12)


def centred(x: np.ndarray) -> np.ndarray:
    """Remove the per-video mean: what varies across frames (or clips) of one video."""
    return x - x.mean(axis=0, keepdims=True)


def compare(ref: dict[str, Any], out: dict[str, Any], clip_len: int) -> dict[str, Any]:
    """One clip's agreement between the reference (CPU fp32) and the device features."""
    iou = box_iou(ref["boxes"].numpy(), out["boxes"].numpy())
    agree = iou >= BOX_IOU_MIN
    style_ref = ref["style"].flatten(1).double().numpy()  # (T, L*512)
    style_out = out["style"].flatten(1).double().numpy()
    content_ref = ref["content"].double().numpy()  # (ceil(T/16), 2048)
    content_out = out["content"].double().numpy()
    # A content vector is comparable when every frame of its 16-frame clip is.
    clip_agree = np.array(
        [agree[i * clip_len : (i + 1) * clip_len].all() for i in range(len(content_ref))]
    )
    centred_content = len(content_ref) > 1  # one clip minus its own mean is zero
    return {
        "frames": len(iou),
        "frames_boxes_agree": int(agree.sum()),
        "min_box_iou": float(iou.min()),
        "min_style_cosine": _min(row_cosines(style_ref, style_out)[agree]),
        "min_content_cosine": _min(row_cosines(content_ref, content_out)[clip_agree]),
        "min_style_centred_cosine": _min(
            row_cosines(centred(style_ref), centred(style_out))[agree]
        ),
        "min_content_centred_cosine": _min(
            row_cosines(centred(content_ref), centred(content_out))[clip_agree]
        )
        if centred_content
        else None,
        "fallback_frames_cpu": int(ref["num_fallback"]),
        "fallback_frames_device": int(out["num_fallback"]),
    }


def _min(values: np.ndarray) -> float | None:
    return float(values.min()) if values.size else None


def _min_of(rows: Iterable[dict[str, Any]], key: str) -> float | None:
    values = [row[key] for row in rows if row[key] is not None]
    return min(values) if values else None


def agreement(
    cpu: FeatureExtractor,
    device: FeatureExtractor,
    clips: list[Path],
    references: dict[Path, dict[str, Any]],
    until: float,
    unreadable: dict[Path, str],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Compare the device's features with the CPU's on each clip, while time allows.

    `references` holds the CPU features already extracted (warm-up and baseline); the
    others are extracted here, and their CPU seconds recorded as each row's `cpu_s`.
    Clips that cannot be decoded are skipped and recorded in `unreadable`.
    """
    rows = []
    longest = 0.0
    for clip in clips:
        if not has_time(until, longest):
            log.warning("agreement stopped after %d clips: time budget", len(rows))
            break
        began = time.perf_counter()
        cpu_seconds = None
        if clip not in references and clip not in unreadable:
            extracted = _readable_extract(cpu, clip, unreadable)
            if extracted is not None:
                references[clip], cpu_seconds = extracted
        on_device = None if clip in unreadable else _readable_extract(device, clip, unreadable)
        if on_device is None:
            continue
        row = compare(references[clip], on_device[0], cpu.cfg.clip_len)
        row.update(clip=clip.name, size="x".join(map(str, frame_size(clip))), cpu_s=cpu_seconds)
        log.info("agreement %s: %s", clip.name, _brief(row))
        rows.append(row)
        longest = max(longest, _since(began))
    return summarise_agreement(rows, same_weights(cpu, device)), rows


def summarise_agreement(rows: list[dict[str, Any]], weights_identical: bool) -> dict[str, Any]:
    frames = sum(row["frames"] for row in rows)
    agreeing = sum(row["frames_boxes_agree"] for row in rows)
    fraction = agreeing / frames if frames else 0.0
    summary = {
        key: _min_of(rows, key)
        for key in (
            "min_box_iou",
            "min_style_cosine",
            "min_content_cosine",
            "min_style_centred_cosine",
            "min_content_centred_cosine",
        )
    }
    cosines_ok = all(
        summary[key] is not None and summary[key] >= COSINE_MIN
        for key in ("min_style_cosine", "min_content_cosine")
    )
    return {
        "agree_clips": len(rows),
        "weights_identical": weights_identical,
        "box_agree_fraction": fraction,
        **summary,
        "outputs_match": bool(
            weights_identical and fraction >= BOX_AGREE_MIN_FRACTION and cosines_ok
        ),
        "match_rule": (
            f"identical weights, box IoU >= {BOX_IOU_MIN} on >= {BOX_AGREE_MIN_FRACTION:.0%} "
            f"of frames, style and content cosine >= {COSINE_MIN} where boxes agree"
        ),
    }


def _brief(row: dict[str, Any]) -> str:
    keys = ("min_box_iou", "min_style_cosine", "min_content_cosine", "min_style_centred_cosine")
    return " ".join(f"{k[4:]}={_round(row[k])}" for k in keys)


# --------------------------------------------------------------------------- timing


def cpu_baseline(
    cpu: FeatureExtractor, clips: list[Path], count: int, unreadable: dict[Path, str]
) -> tuple[list[float], dict[Path, dict[str, Any]]]:
    """Seconds per video of the CPU extractor on `count` clips, after one warm-up.

    Returns the timings and the features, which the agreement reuses as references; a
    clip that cannot be decoded is skipped and recorded in `unreadable`.
    """
    timed = spread(clips, count)
    features: dict[Path, dict[str, Any]] = {}
    for warm in [clip for clip in clips if clip not in timed] + timed:
        if _readable_extract(cpu, warm, unreadable) is not None:
            log.info("cpu warm-up on %s done", warm.name)
            break
    seconds = []
    for clip in timed:
        if clip in unreadable:
            continue
        extracted = _readable_extract(cpu, clip, unreadable)
        if extracted is None:
            continue
        features.setdefault(clip, extracted[0])
        seconds.append(extracted[1])
        log.info("cpu %s: %.2f s", clip.name, extracted[1])
    return seconds, features


def _readable_extract(
    extractor: FeatureExtractor, clip: Path, unreadable: dict[Path, str]
) -> tuple[dict[str, Any], float] | None:
    """`timed_extract`, or None with the clip recorded in `unreadable` when it cannot be
    decoded: one bad clip costs its row, not the run."""
    try:
        return timed_extract(extractor, clip)
    except UnreadableVideo as exc:
        unreadable[clip] = str(exc)
        log.warning("%s is unreadable: %s", clip.name, exc)
        return None


def has_time(until: float, longest: float) -> bool:
    """Whether one more step as long as the longest so far ends by `until`: a step that
    overran would be killed by the script's time limit, and this run's JSON with it."""
    return time.perf_counter() + longest <= until


def warm_up(
    device: FeatureExtractor, clips: list[Path], done: set[tuple[int, int]], until: float
) -> None:
    """One untimed extraction per frame size not met yet: the first pass at a size picks
    kernels and allocates buffers."""
    longest = 0.0
    for clip in clips:
        size = frame_size(clip)
        if size in done:
            continue
        if not has_time(until, longest):
            log.warning("device warm-up stopped: time budget")
            return
        _, seconds = timed_extract(device, clip)
        longest = max(longest, seconds)
        done.add(size)
        log.info("device warm-up at %dx%d done", *size)


def throughput(
    device: FeatureExtractor, paths: list[Path], workers: int, until: float
) -> dict[str, Any]:
    """Extract `paths` in order with their frames decoded ahead, as a job does."""
    stages = dict.fromkeys(MAIN_STAGES, 0.0)
    totals = {"decode_thread_s": 0.0, "wait_for_decode_s": 0.0, "fallback_frames": 0}
    done = failed = 0
    longest = 0.0
    if device.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device.device)
    start = time.perf_counter()
    with FramePrefetcher(device.cfg.num_frames, workers=workers, ahead=workers) as prefetcher:
        prefetcher.schedule(paths)
        for path in paths:
            if not has_time(until, longest):
                break
            began = time.perf_counter()
            try:
                features = _extract_prefetched(device, path, prefetcher, totals)
            except UnreadableVideo as exc:
                failed += 1
                log.warning("%s: %s", path.name, exc)
                continue
            for stage in MAIN_STAGES:
                stages[stage] += features["timings"][stage]
            totals["decode_thread_s"] += features["timings"]["decode"]
            totals["fallback_frames"] += int(features["num_fallback"])
            done += 1
            longest = max(longest, _since(began))
            if done % 25 == 0:
                log.info("device: %d/%d videos, %.1f s", done, len(paths), _since(start))
        wall = _since(start)  # before close(): dropping unstarted decodes is not work
    return {"wall_s": wall, "videos_done": done, "failed": failed, "stages": stages, **totals}


def _extract_prefetched(
    device: FeatureExtractor, path: Path, prefetcher: FramePrefetcher, totals: dict[str, Any]
) -> dict[str, Any]:
    waited = time.perf_counter()
    decoded = prefetcher.take(path)
    totals["wait_for_decode_s"] += _since(waited)
    return device.extract(path, decoded)


def _since(start: float) -> float:
    return time.perf_counter() - start


# --------------------------------------------------------------------------- report


def device_facts(device: str) -> dict[str, Any]:
    facts = machine()
    if torch.device(device).type != "cuda":
        return {"device_name": facts["cpu"], "machine": facts}
    index = torch.device(device).index or 0
    return {
        "device_name": torch.cuda.get_device_name(index),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "machine": facts,
    }


def peak_gpu_mb(device: FeatureExtractor) -> float | None:
    if device.device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device.device) / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _round(value: Any, digits: int = 6) -> Any:
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: _round(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [_round(v, digits) for v in value]
    return value


def result_json(
    args: argparse.Namespace,
    facts: dict[str, Any],
    media: str,
    cpu_seconds: list[float],
    agree: tuple[dict[str, Any], list[dict[str, Any]]],
    loop: dict[str, Any],
    device: FeatureExtractor,
    started: float,
) -> dict[str, Any]:
    summary, rows = agree
    done = loop["videos_done"]
    gpu_s = loop["wall_s"] / done if done else None
    cpu_s = sum(cpu_seconds) / len(cpu_seconds) if cpu_seconds else None
    all_cpu = [s for s in [*cpu_seconds, *(row["cpu_s"] for row in rows)] if s is not None]
    return _round(
        {
            "benchmark": "gpu_check",
            "device_name": facts["device_name"],
            "device": str(device.device),
            "torch": torch.__version__,
            "precision": args.precision,
            "frames": args.frames,
            "backbones": args.backbones,
            "weights": "random",
            "media": media,
            "videos_requested": args.videos,
            "videos_done": done,
            "videos_failed": loop["failed"],
            "stopped_early": done + loop["failed"] < args.videos,
            "gpu_s_per_video": gpu_s,
            "gpu_videos_per_s": done / loop["wall_s"] if done else None,
            "cpu_s_per_video": cpu_s,
            "cpu_videos": len(cpu_seconds),
            "cpu_s_per_video_all_clips": sum(all_cpu) / len(all_cpu) if all_cpu else None,
            "cpu_threads": torch.get_num_threads(),
            "speedup_vs_cpu": cpu_s / gpu_s if cpu_s and gpu_s else None,
            "target_s_per_video": TARGET_S_PER_VIDEO,
            "meets_target": bool(gpu_s is not None and gpu_s <= TARGET_S_PER_VIDEO),
            **summary,
            "timed_wall_s": loop["wall_s"],
            "stage_seconds": loop["stages"],
            "decode_thread_seconds": loop["decode_thread_s"],
            "wait_for_decode_s": loop["wait_for_decode_s"],
            "fallback_frames": loop["fallback_frames"],
            "decode_workers": args.decode_workers,
            "batch_size": device.batch_size,
            "peak_gpu_mb": peak_gpu_mb(device),
            "peak_rss_mb": peak_rss_mb(),
            "run_s": _since(started),
            "installed_from_wheels": os.environ.get("GPU_CHECK_INSTALLED", "").split(),
            "loadavg_end": loadavg(),
            "agreement_per_clip": rows,
            **{k: v for k, v in facts.items() if k != "device_name"},
        }
    )


def write_result(result: dict[str, Any]) -> None:
    path = RESULT_PATH if result["device"].startswith("cuda") else CPU_RESULT_PATH
    with atomic_write(path, "w") as handle:
        json.dump(result, handle, indent=2, default=str)
        handle.write("\n")
    log.info("results written to %s", path)


# --------------------------------------------------------------------------- main


def run(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    started = time.perf_counter()
    # perf_counter for every comparison below; --deadline is wall-clock (from the script).
    budget = args.deadline - time.time() if args.deadline else args.budget_s
    deadline = started + budget
    facts = device_facts(args.device)  # loadavg and start time before the work
    clips = real_clips(args.media)
    media = "real" if clips else "synthetic"
    if not clips:
        log.warning("no real clips found; writing synthetic ones")
        clips = synthetic_clips(scratch)
    cuda = torch.device(args.device).type == "cuda"
    log.info("building extractors (random weights, seed %d)", SEED)
    sizes = SMALL_BACKBONES if args.backbones == "small" else {}
    cpu_cfg = ExtractorCfg(num_frames=args.frames, precision=FP32, **sizes)
    cpu = build(cpu_cfg, "cpu", 8)
    device = build(
        dataclasses.replace(cpu_cfg, precision=args.precision), args.device, 32 if cuda else 8
    )

    unreadable: dict[Path, str] = {}
    cpu_seconds, references = cpu_baseline(cpu, clips, args.cpu_videos, unreadable)
    agree_until = max(deadline - LOOP_RESERVE_S, time.perf_counter())
    compared = clips[: args.agree_clips]
    agree = agreement(cpu, device, compared, references, agree_until, unreadable)
    del references  # up to 11 clips of features; the loop's memory should be its own

    clips = [clip for clip in clips if clip not in unreadable]
    # Warm only the sizes the loop will meet; the agreement ran the device at some already.
    warmed = {frame_size(clip) for clip in compared if clip not in unreadable}
    loop_until = min(time.perf_counter() + args.minutes * 60, deadline - FINISH_RESERVE_S)
    warm_up(device, clips[: args.videos], warmed, loop_until)
    paths = repeated_paths(clips, args.videos, scratch)
    log.info("timed loop: %d videos, %d decode workers", len(paths), args.decode_workers)
    loop = throughput(device, paths, args.decode_workers, loop_until)
    result = result_json(args, facts, media, cpu_seconds, agree, loop, device, started)
    result["unreadable_clips"] = {clip.name: why for clip, why in unreadable.items()}
    return result


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.WARNING if args.json_only else logging.INFO,
        format="%(asctime)s %(name)s %(message)s",
    )
    print_json_last(_run_and_write, args, "gpu_check-")


def _run_and_write(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    result = run(args, scratch)
    write_result(result)
    return result


def print_json_last(
    run_in: Callable[[Any, Path], dict[str, Any]], args: Any, prefix: str
) -> dict[str, Any]:
    """`run_in(args, scratch)` in a scratch folder removed afterwards, its result printed as
    one JSON line, the last on stdout; returns the result."""
    # Anything a library prints goes to stderr: the last stdout line must be the JSON.
    stdout, sys.stdout = sys.stdout, sys.stderr
    scratch = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        result = run_in(args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(result, separators=(",", ":"), default=str), file=stdout, flush=True)
    return result


if __name__ == "__main__":
    main()
