"""`ddm predict --stream` on this CPU (issue 24): how fast the window-by-window scoring of
a stream goes, how late its scores are, and what a live source loses.

Both runs call `model.stream.score_stream`, what `ddm predict --stream` calls, on a real
FF++ clip (519.mp4: 30 s, 640x480, 25 fps, one subject), with real MTCNN, the small
backbones (or, with `--backbones full`, the full pSp encoder and Slow R50 at the sizes
`ddm extract` uses) at random weights (seed 0) and a production-size detector at random
weights:

* **file** (lossless): the clip read as fast as it decodes, nothing dropped, as a
  redirected file is. `sustained fps` = video frames consumed per second of wall time: the
  fastest input the scoring keeps up with at these windows;
* **live 25 fps**: the clip delivered at its frame rate, as a camera would, through the
  bounded queue (two windows' sampled frames) with its drop policy (the oldest frame goes;
  a window missing one is skipped). `dropped` = sampled frames dropped / sampled frames.

Latency is from the arrival of a window's last frame to its score (p50, p95 over the
windows). Each precision builds its own extractor (`precision="bf16"` autocasts both
backbones, as `ddm extract --precision bf16`); MTCNN runs in fp32 either way.

    .venv/bin/python bench/stream.py                      # fp32 and bf16, 10 s windows every 5 s
    .venv/bin/python bench/stream.py --quick              # 12 s of the clip, fp32 only
    .venv/bin/python bench/stream.py --backbones full     # the production backbones
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from typing import Any

import _common  # noqa: F401  (puts the repository root on sys.path)
import cv2
import numpy as np
import torch
from _common import MEDIA, loadavg, machine, print_table, write_results

from model import create_model
from model.detector import DetectorCfg, build_detector
from model.faces import FaceDetector, capture_frames
from model.features import ExtractorCfg, FeatureExtractor
from model.stream import score_stream, summary_json

CLIP = MEDIA / "ff++/original_sequences/youtube/c23/videos/519.mp4"
SMALL = {"style_model": "psp_encoder_small", "content_model": "slow_r50_small"}
SMALL_SIZES = {"face_size": 128, "content_size": 56}  # `ddm extract --backbones small`


def extractor_for(precision: str, frames: int, backbones: str) -> FeatureExtractor:
    """`ddm extract --backbones BACKBONES --precision PRECISION`'s extractor, random weights."""
    sizes = {**SMALL, **SMALL_SIZES} if backbones == "small" else {}  # full: the defaults
    cfg = ExtractorCfg(num_frames=frames, precision=precision, **sizes)
    torch.manual_seed(0)
    style = create_model(cfg.style_model, levels=cfg.levels).eval()
    content = create_model(cfg.content_model).eval()
    weights = {cfg.style_model: None, cfg.content_model: None}
    return FeatureExtractor(cfg, style, content, FaceDetector(cfg.face_cfg()), weights)


def clip_source(limit: int | None, pace_fps: float | None) -> Callable[..., Iterator[Any]]:
    """The clip's frames as `score_stream` reads a source, paced at `pace_fps` if given."""

    def frames(is_wanted: Callable[[int], bool]) -> Iterator[tuple[int, np.ndarray | None]]:
        capture = cv2.VideoCapture(str(CLIP))
        start = time.monotonic()
        try:
            last = None if limit is None else limit - 1
            for index, frame in capture_frames(capture, is_wanted, last):
                if pace_fps is not None:
                    time.sleep(max(0.0, start + index / pace_fps - time.monotonic()))
                yield index, frame
        finally:
            capture.release()

    return frames


def run(extractor: FeatureExtractor, detector: Any, args: Any, live: bool) -> dict[str, Any]:
    capture = cv2.VideoCapture(str(CLIP))
    fps = capture.get(cv2.CAP_PROP_FPS)
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    limit = min(count, round(args.seconds * fps)) if args.seconds else count
    summary = score_stream(
        clip_source(limit, fps if live else None),
        fps,
        extractor,
        detector,
        args.window_seconds,
        args.stride_seconds,
        lambda window: None,
        num_video_frames=None if live else limit,
        lossless=not live,
    )
    result = summary_json(summary)
    result["video_seconds"] = limit / fps
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="12 s of the clip, fp32 only")
    parser.add_argument("--frames", type=int, default=32, help="T per window")
    parser.add_argument("--window-seconds", type=float, default=10.0)
    parser.add_argument("--stride-seconds", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, help="use the clip's first seconds only")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--backbones", choices=["small", "full"], default="small")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.precisions = 12.0, "fp32"
    torch.manual_seed(0)
    detector = build_detector(DetectorCfg()).eval()
    results: dict[str, Any] = {"machine": machine(), "clip": str(CLIP.name), "args": vars(args)}
    rows = []
    for precision in args.precisions.split(","):
        extractor = extractor_for(precision, args.frames, args.backbones)
        for mode, live in (("file", False), ("live 25 fps", True)):
            measured = run(extractor, detector, args, live)
            results[f"{precision} {mode}"] = measured
            rows.append(_row(precision, mode, measured))
    results["loadavg_end"] = loadavg()
    print_table(
        f"ddm predict --stream on {CLIP.name}, windows of {args.window_seconds:g} s every "
        f"{args.stride_seconds:g} s, T = {args.frames}, {args.backbones} backbones",
        ["precision", "source", "sustained fps", "windows", "skipped", "dropped", "p50 s", "p95 s"],
        rows,
    )
    name = "stream" if args.backbones == "small" else f"stream-{args.backbones}"
    write_results(f"{name}.quick" if args.quick else name, results)


def _row(precision: str, mode: str, m: dict[str, Any]) -> list[Any]:
    return [
        precision,
        mode,
        round(m["fps"], 1),
        m["windows_scored"],
        m["windows_skipped"],
        f"{m['dropped_share']:.0%}",
        None if m["latency_p50"] is None else round(m["latency_p50"], 2),
        None if m["latency_p95"] is None else round(m["latency_p95"], 2),
    ]


if __name__ == "__main__":
    main()
