"""Benchmark face tracking (issue 10): detection and tracking seconds, fallback frames and
style-flow magnitude per real clip, before and after, side by side in one run.

* before: the seed's per-frame pick, kept here as the reference: MTCNN detections with
  probability >= 0.9 (frames without one retried at full resolution), the largest face per
  frame, else the centre crop.
* after: `model.faces` as it is: every detection down to MIN_FACE_PROB, linked into
  tracks, the subject's track interpolated over its gaps and smoothed.

Both run on the same decoded frames (decoding is not timed), alternating per clip, after one
untimed warm-up detection. Tracking time is `crop_boxes` (link, pick, fill, smooth, square).

Style-flow magnitude is the mean L2 norm of frame-to-frame differences of the pSp level-9
style vectors, from a random-weights pSp (seed 0) on 64x64 crops, as the model tests build
it: boxes with the smoothing off (radius 0) and on (the default radius), same detections.

    .venv/bin/python bench/faces.py            # T=32, every real clip, style flow
    .venv/bin/python bench/faces.py --quick    # T=8, three clips, no style flow
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from typing import Any

import _common  # noqa: F401  (puts the repository root on sys.path)
import numpy as np
import torch
from _common import MEDIA, machine, median, print_table, write_results

from model.faces import (
    FaceCfg,
    FaceDetector,
    centre_box,
    crop_boxes,
    crop_resize,
    read_frames,
    square_box,
    style_input,
)
from model.registry import create_model

OLD_CUT = 0.9
LEVELS = (9,)
FLOW_FACE_SIZE = 64


def old_pick(detector: FaceDetector, frames: np.ndarray) -> tuple[np.ndarray, int]:
    """The seed's per-frame choice: the largest face >= 0.9, else the centre crop."""
    height, width = frames.shape[1:3]
    boxes, fallback = [], 0
    for found in detector.detect(frames):
        if len(found) == 0:
            boxes.append(centre_box(width, height))
            fallback += 1
            continue
        areas = (found.boxes[:, 2] - found.boxes[:, 0]) * (found.boxes[:, 3] - found.boxes[:, 1])
        boxes.append(square_box(found.boxes[np.argmax(areas)], width, height, 0.2))
    return np.stack(boxes), fallback


def time_before(detector: FaceDetector, frames: np.ndarray) -> dict[str, Any]:
    start = time.perf_counter()
    boxes, fallback = old_pick(detector, frames)
    return {"detect_s": time.perf_counter() - start, "fallback": fallback, "boxes": boxes}


def time_after(detector: FaceDetector, frames: np.ndarray, cfg: FaceCfg) -> dict[str, Any]:
    start = time.perf_counter()
    detections = detector.detect(frames)
    detected = time.perf_counter()
    boxes, sources = crop_boxes(detections, frames.shape[2], frames.shape[1], cfg)
    tracked = time.perf_counter()
    return {
        "detect_s": detected - start,
        "track_s": tracked - detected,
        "fallback": int((sources == 2).sum()),
        "interpolated": int((sources == 1).sum()),
        "boxes": boxes,
        "detections": detections,
    }


@torch.inference_mode()
def style_flow(encoder: torch.nn.Module, frames: np.ndarray, boxes: np.ndarray) -> float:
    """Mean L2 norm of the frame-to-frame differences of the level-9 style vectors."""
    pairs = zip(frames, boxes, strict=True)
    crops = np.stack([crop_resize(frame, box, FLOW_FACE_SIZE) for frame, box in pairs])
    style = encoder(style_input(crops), levels=LEVELS)[:, 0]  # (T, 512)
    return float(style.diff(dim=0).norm(dim=1).mean())


def centre_step(boxes: np.ndarray) -> float:
    """Mean distance in pixels the crop centre moves between sampled frames."""
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    return float(np.linalg.norm(np.diff(centres, axis=0), axis=1).mean())


def flow_row(encoder, frames, after: dict[str, Any], cfg: FaceCfg) -> dict[str, float]:
    width, height = frames.shape[2], frames.shape[1]
    raw, _ = crop_boxes(after["detections"], width, height, replace(cfg, box_smoothing=0))
    smooth = after["boxes"]
    return {
        "flow_unsmoothed": style_flow(encoder, frames, raw),
        "flow_smoothed": style_flow(encoder, frames, smooth),
        "centre_step_unsmoothed_px": centre_step(raw),
        "centre_step_smoothed_px": centre_step(smooth),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="T=8, three clips, no style flow")
    parser.add_argument("--frames", type=int, help="T, frames per video (default 32, quick 8)")
    args = parser.parse_args()
    frames_per_video = args.frames or (8 if args.quick else 32)
    clips = sorted(MEDIA.rglob("*.mp4"))[: 3 if args.quick else None]
    info = {**machine(), "torch": torch.__version__, "torch_threads": torch.get_num_threads()}
    cfg = FaceCfg(num_frames=frames_per_video)
    before_detector = FaceDetector(replace(cfg, min_face_prob=OLD_CUT))
    after_detector = FaceDetector(cfg)
    encoder = None
    if not args.quick:
        torch.manual_seed(0)
        encoder = create_model("psp_encoder", levels=LEVELS).eval()

    per_clip = {}
    for index, clip in enumerate(clips):
        frames, _, _ = read_frames(clip, frames_per_video)
        if index == 0:
            after_detector.detect(frames)  # warm-up: first MTCNN calls allocate
        # Alternate the order, so neither side always runs second.
        order = ("after", "before") if index % 2 else ("before", "after")
        result = {
            name: time_before(before_detector, frames)
            if name == "before"
            else time_after(after_detector, frames, cfg)
            for name in order
        }
        row = {
            "height_width": list(frames.shape[1:3]),
            "before": {k: v for k, v in result["before"].items() if k != "boxes"},
            "after": {k: result["after"][k] for k in ("detect_s", "track_s", "fallback")},
        }
        row["after"]["interpolated"] = result["after"]["interpolated"]
        if encoder is not None:
            row["style_flow"] = flow_row(encoder, frames, result["after"], cfg)
        per_clip[str(clip.relative_to(MEDIA))] = row
        print(f"  {clip.name}: {row}", flush=True)

    report(per_clip, frames_per_video)
    write_results(
        "faces.quick" if args.quick else "faces",
        {
            "benchmark": "faces",
            "quick": args.quick,
            "machine": info,
            "frames": frames_per_video,
            "old_cut": OLD_CUT,
            "new_cut": cfg.min_face_prob,
            "box_smoothing": cfg.box_smoothing,
            "per_clip": per_clip,
        },
    )


def report(per_clip: dict[str, dict[str, Any]], frames: int) -> None:
    rows = []
    for name, r in per_clip.items():
        b, a = r["before"], r["after"]
        share = a["track_s"] / a["detect_s"]
        rows.append(
            [
                name.split("/")[-1],
                b["detect_s"],
                a["detect_s"],
                a["track_s"],
                share,
                b["fallback"],
                a["fallback"],
                a["interpolated"],
            ]
        )
    print_table(
        f"per clip (T={frames}): seconds, and frames out of {frames}",
        [
            "clip",
            "detect before",
            "detect after",
            "track after",
            "track/detect",
            "fallback before",
            "fallback after",
            "interpolated after",
        ],
        rows,
    )
    print(
        f"median detect before {median([r[1] for r in rows]):.3f} s, after "
        f"{median([r[2] for r in rows]):.3f} s; median track {median([r[3] for r in rows]):.5f} s"
        f" ({max(r[4] for r in rows):.4%} of detection at most); fallback frames "
        f"{sum(r[5] for r in rows)} before, {sum(r[6] for r in rows)} after"
    )
    flows = {n: r["style_flow"] for n, r in per_clip.items() if "style_flow" in r}
    if flows:
        print_table(
            "style-flow magnitude (random pSp, level 9, 64 px) and crop-centre step",
            ["clip", "flow raw", "flow smoothed", "ratio", "step raw px", "step smoothed px"],
            [
                [
                    n.split("/")[-1],
                    f["flow_unsmoothed"],
                    f["flow_smoothed"],
                    f["flow_smoothed"] / f["flow_unsmoothed"],
                    f["centre_step_unsmoothed_px"],
                    f["centre_step_smoothed_px"],
                ]
                for n, f in flows.items()
            ],
        )
        ratios = [f["flow_smoothed"] / f["flow_unsmoothed"] for f in flows.values()]
        print(
            f"smoothed / raw style flow: median {median(ratios):.3f}, "
            f"range {min(ratios):.3f} to {max(ratios):.3f}"
        )


if __name__ == "__main__":
    main()
