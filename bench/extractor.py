"""Benchmark the feature extractor (issue 4): FLOPs per video and seconds per video per stage.

FLOPs are counted with `torch.utils.flop_counter.FlopCounterMode` (convolutions and matrix
products, 2 FLOPs per multiply-add; normalisation, activations and pooling are not counted):

* style: pSp GradualStyleEncoder on T face crops of 256x256, all 18 W+ levels versus the
  requested levels only (default [9], the seed's choice); counted on the meta device, so
  nothing is computed;
* content: Slow R50 on the ceil(T/16) clips of 3x16x112x112 (meta device);
* detect: MTCNN on the T decoded frames of the real clip (data-dependent: the image
  pyramid depends on the frame size, the refinement stages on the candidates found, and
  frames without a face at the downscaled size are retried at full size), counted by
  running it.

Seconds are the extractor's own per-stage `timings` (decode, detect, style, content,
total) from `FeatureExtractor.extract` on a real clip, for levels [9] and for all 18 levels,
alternating, after one untimed warm-up extraction per extractor (reported separately as
"cold": the first forward passes in a process allocate and pick kernels). No weights files
exist here, so the backbones have random weights (`allow_random_weights=True`): the
FLOPs and the work per frame are those of the real networks; only MTCNN (whose weights
ship with facenet-pytorch) is real, so face detection behaves as in production.

For context only (other hardware, other code): the seed reports 24 s per video on a
GTX 1650 Ti and 14 s on a V100.

    .venv/bin/python bench/extractor.py            # T=32, 2 timed runs per extractor
    .venv/bin/python bench/extractor.py --quick    # T=8, 1 timed run per extractor
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (puts the repository root on sys.path)
import torch
from _common import MEDIA, machine, median, print_table, write_results
from torch.utils.flop_counter import FlopCounterMode

from model.faces import read_frames
from model.features import CONTENT_MODEL, STYLE_MODEL, ExtractorCfg, build_extractor
from model.psp import N_STYLES
from model.registry import create_model

DEFAULT_CLIP = MEDIA / "ff++/original_sequences/youtube/c23/videos/004.mp4"
ALL_LEVELS = tuple(range(N_STYLES))
STAGES = ("decode", "detect", "style", "content", "total")
SEED_REPORTED_S = {"GTX 1650 Ti": 24.0, "V100": 14.0}


def count_flops(fn, *args: Any, **kwargs: Any) -> int:
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        fn(*args, **kwargs)
    return int(counter.get_total_flops())


def backbone_flops(cfg: ExtractorCfg, levels: tuple[int, ...]) -> dict[str, int]:
    """Style and content FLOPs for one video of `cfg.num_frames` frames (meta device)."""
    with torch.device("meta"):
        style = create_model(STYLE_MODEL, levels=levels).eval()
        content = create_model(CONTENT_MODEL).eval()
        crops = torch.empty(cfg.num_frames, 3, cfg.face_size, cfg.face_size)
        clips = torch.empty(
            math.ceil(cfg.num_frames / cfg.clip_len),
            3,
            cfg.clip_len,
            cfg.content_size,
            cfg.content_size,
        )
    return {
        "style": count_flops(style, crops, levels=levels),
        "content": count_flops(content, clips),
    }


def detect_flops(extractor: Any, clip: Path, frames: int) -> int:
    decoded, _, _ = read_frames(clip, frames)
    return count_flops(extractor.face_detector.detect, decoded)


def build(frames: int, levels: tuple[int, ...], device: str, precision: str = "fp32") -> Any:
    """The production extractor with random weights drawn from seed 0."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build_extractor(
            ExtractorCfg(num_frames=frames, levels=levels, precision=precision),
            weights_dir="/nonexistent-weights-dir",
            allow_random_weights=True,
            device=device,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="T=8 and one timed run each")
    parser.add_argument("--frames", type=int, help="T, frames per video (default 32, quick 8)")
    parser.add_argument("--repeats", type=int, help="timed runs per extractor (default 2)")
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP, help="a real video")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    args = parser.parse_args()
    frames = args.frames or (8 if args.quick else 32)
    repeats = args.repeats or (1 if args.quick else 2)
    info = machine()
    info["torch"] = torch.__version__
    info["torch_threads"] = torch.get_num_threads()
    info["device"] = args.device

    cfg = ExtractorCfg(num_frames=frames)
    flops = {
        "levels_9": backbone_flops(cfg, (9,)),
        "levels_all": backbone_flops(cfg, ALL_LEVELS),
    }
    print(f"building extractors (random weights), T={frames}, clip {args.clip.name}", flush=True)
    extractors = {"levels_9": build(frames, (9,), args.device)}
    extractors["levels_all"] = build(frames, ALL_LEVELS, args.device)
    detect = detect_flops(extractors["levels_9"], args.clip, frames)
    for name in flops:
        flops[name]["detect"] = detect
        flops[name]["total"] = sum(flops[name].values())

    cold: dict[str, dict[str, float]] = {}
    for name, extractor in extractors.items():
        cold[name] = extractor.extract(args.clip)["timings"]
        print(f"  cold {name}: {cold[name]['total']:.2f} s", flush=True)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in extractors}
    fallback = None
    for _ in range(repeats):
        for name, extractor in extractors.items():
            features = extractor.extract(args.clip)
            runs[name].append(features["timings"])
            fallback = int(features["num_fallback"])
            print(f"  {name}: {features['timings']['total']:.2f} s", flush=True)

    report(frames, flops, cold, runs, args.clip, fallback)
    write_results(
        "extractor.quick" if args.quick else "extractor",
        {
            "benchmark": "extractor",
            "quick": args.quick,
            "machine": info,
            "clip": str(
                args.clip.relative_to(MEDIA) if args.clip.is_relative_to(MEDIA) else args.clip
            ),
            "frames": frames,
            "weights": "random (no weights files here); MTCNN has its packaged weights",
            "fallback_frames": fallback,
            "flops_per_video": flops,
            "style_flops_ratio_9_over_all": flops["levels_9"]["style"]
            / flops["levels_all"]["style"],
            "total_flops_ratio_9_over_all": flops["levels_9"]["total"]
            / flops["levels_all"]["total"],
            "seconds_cold_first_call": cold,
            "seconds_per_video": runs,
            "median_seconds_per_video": {
                name: {stage: median([r[stage] for r in rs]) for stage in STAGES}
                for name, rs in runs.items()
            },
            "seed_reported_s_per_video_context_only": SEED_REPORTED_S,
        },
    )


def report(frames, flops, cold, runs, clip, fallback) -> None:
    parts = ("detect", "style", "content", "total")
    print_table(
        f"GFLOPs per video (T={frames}; FlopCounterMode, 2 FLOPs per multiply-add)",
        ["levels", *parts],
        [[name, *(flops[name][p] / 1e9 for p in parts)] for name in flops],
    )
    ratio_style = flops["levels_9"]["style"] / flops["levels_all"]["style"]
    ratio_total = flops["levels_9"]["total"] / flops["levels_all"]["total"]
    print(f"levels [9] / all 18: style {ratio_style:.3f}, whole extractor {ratio_total:.3f}")
    rows = []
    for name, rs in runs.items():
        rows.append([f"{name} cold", *(cold[name][s] for s in STAGES)])
        for index, r in enumerate(rs):
            rows.append([f"{name} run {index + 1}", *(r[s] for s in STAGES)])
        rows.append([f"{name} median", *(median([r[s] for r in rs]) for s in STAGES)])
    print_table(
        f"seconds per video on {clip.name} (T={frames}, random weights, "
        f"{fallback} fallback frames)",
        ["extractor", *STAGES],
        rows,
    )
    print("context only: the seed reports 24 s/video on a GTX 1650 Ti and 14 s on a V100")


if __name__ == "__main__":
    main()
