"""The style stage eager against compiled (`DDM_COMPILE`), side by side: the full-size pSp
encoder with random weights (seed 0) on one real clip's 32 face crops, in fp32 and bf16.

The four variants (eager and compiled, per precision) take turns for `--rounds` rounds, so
a change in the machine's load weighs on all of them alike; the medians and every sample
are reported, with the compiled codes' agreement with the eager ones. Compilation happens
in an untimed first call per variant (its seconds are reported as `first_call_s`).

    .venv/bin/python bench/compile_style.py              # 8 rounds
    .venv/bin/python bench/compile_style.py --rounds 4 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (puts the repository root on sys.path)
import extractor as extractor_bench
import numpy as np
import torch
from _common import MEDIA, machine, print_table, write_results

CLIP = MEDIA / "ff++/original_sequences/youtube/c23/videos/004.mp4"
PRECISIONS = ("fp32", "bf16")


def build(precision: str, compiled: bool) -> Any:
    extractor = extractor_bench.build(32, (9,), "cpu", precision)
    if compiled:
        extractor.compile_style()
    return extractor


def centred_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten(1).double(), b.flatten(1).double()
    a, b = a - a.mean(0), b - b.mean(0)
    return float(torch.nn.functional.cosine_similarity(a, b).min())


def measure(rounds: int, crops: np.ndarray) -> dict[str, Any]:
    kinds = ("eager", "compiled")
    variants = {f"{p}_{k}": build(p, k == "compiled") for p in PRECISIONS for k in kinds}
    first_call_s, codes = {}, {}
    for name, extractor in variants.items():
        start = time.perf_counter()
        codes[name] = extractor.encode_style(crops)
        first_call_s[name] = time.perf_counter() - start
        print(f"  first call {name}: {first_call_s[name]:.1f} s", file=sys.stderr)
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for round_ in range(rounds):
        for name, extractor in variants.items():
            start = time.perf_counter()
            extractor.encode_style(crops)
            samples[name].append(time.perf_counter() - start)
        print(f"  round {round_ + 1}/{rounds}", file=sys.stderr)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    agreement = {
        p: {
            "max_abs_diff": float((codes[f"{p}_compiled"] - codes[f"{p}_eager"]).abs().max()),
            "min_centred_cosine": centred_cosine(codes[f"{p}_compiled"], codes[f"{p}_eager"]),
            "min_centred_cosine_to_fp32_eager": centred_cosine(
                codes[f"{p}_compiled"], codes["fp32_eager"]
            ),
        }
        for p in PRECISIONS
    }
    agreement["bf16"]["eager_min_centred_cosine_to_fp32_eager"] = centred_cosine(
        codes["bf16_eager"], codes["fp32_eager"]
    )
    return {
        "median_s": medians,
        "speedup": {p: medians[f"{p}_eager"] / medians[f"{p}_compiled"] for p in PRECISIONS},
        "samples_s": samples,
        "first_call_s": first_call_s,
        "style_compiled": {name: e.style_is_compiled for name, e in variants.items()},
        "agreement": agreement,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8, help="timed rounds (default 8)")
    parser.add_argument("--clip", type=Path, default=CLIP, help="a real video")
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    args = parser.parse_args()
    with torch.random.fork_rng(devices=[]):
        track = build("fp32", compiled=False).face_track(args.clip)
    results = {
        "benchmark": "compile_style",
        "machine": {**machine(), "torch": torch.__version__, "threads": torch.get_num_threads()},
        "clip": args.clip.name,
        "frames": len(track.crops),
        **measure(args.rounds, track.crops),
    }
    if args.json:
        write_results("compile_style", results, quiet=True)
        print(json.dumps(results))
        return
    print_table(
        f"style stage of one video ({results['frames']} crops), median of {args.rounds} rounds",
        ["variant", "median s", "first call s"],
        [[n, results["median_s"][n], results["first_call_s"][n]] for n in results["median_s"]],
    )
    print(f"speedup: {results['speedup']}\nagreement: {results['agreement']}")
    write_results("compile_style", results)


if __name__ == "__main__":
    main()
