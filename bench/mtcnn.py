"""Benchmark MTCNN detection (issue 19, defect 7): facenet-pytorch's `MTCNN.detect` against
`model.mtcnn.detect_faces` (the same networks, candidates cropped in one batched step), on
the same frames of real clips, side by side in one run.

Per clip: T sampled frames at the detector's first-pass scale (longer side 640), in
batches of 16 (FaceDetector's CPU batch); one untimed warm-up of each, then `--repeats`
timed runs of each, alternating. Also counted, once per clip and implementation: the
candidates reaching R-Net and O-Net, and the host reads of tensor values (scalar reads,
`nonzero`, boolean indexing), each of which waits for the device on a GPU.

    .venv/bin/python bench/mtcnn.py            # T=32, 3 repeats, 4 clips
    .venv/bin/python bench/mtcnn.py --quick    # T=8, 1 repeat, 2 clips
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import _common  # noqa: F401  (puts the repository root on sys.path)
import cv2
import numpy as np
import torch
from _common import MEDIA, machine, median, print_table, write_results
from facenet_pytorch import MTCNN

from model.faces import FaceCfg, read_frames
from model.mtcnn import detect_faces
from tests.model.test_mtcnn import HostReads

CLIPS = [
    MEDIA / "ff++/original_sequences/youtube/c23/videos/004.mp4",
    MEDIA / "dfdc/dfdc_train_part_0/brtujopkby.mp4",
    MEDIA / "ff++/original_sequences/youtube/c23/videos/519.mp4",
    MEDIA / "dfdc/dfdc_train_part_10/widuwuoiur.mp4",
]
BATCH = 16


def first_pass_frames(path: Any, num_frames: int) -> np.ndarray:
    frames, _, _ = read_frames(path, num_frames)
    height, width = frames.shape[1:3]
    scale = min(1.0, FaceCfg().detect_max_side / max(height, width))
    size = (round(width * scale), round(height * scale))
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])


def run_batches(detect: Callable[[np.ndarray], Any], frames: np.ndarray) -> list[Any]:
    return [detect(frames[i : i + BATCH]) for i in range(0, len(frames), BATCH)]


def profile(mtcnn: MTCNN, detect: Callable[[np.ndarray], Any], frames: np.ndarray) -> dict:
    candidates: list[int] = []
    hooks = [
        net.register_forward_pre_hook(lambda _m, args: candidates.append(len(args[0])))
        for net in (mtcnn.rnet, mtcnn.onet)
    ]
    with HostReads() as reads:
        run_batches(detect, frames)
    for hook in hooks:
        hook.remove()
    return {"candidates": sum(candidates), "host_reads": sum(reads.counts.values())}


def bench_clip(mtcnn: MTCNN, path: Any, num_frames: int, repeats: int) -> dict[str, Any]:
    frames = first_pass_frames(path, num_frames)
    ways = {
        "facenet": lambda batch: mtcnn.detect(batch, landmarks=True),
        "ours": lambda batch: detect_faces(mtcnn, batch),
    }
    outputs = {name: run_batches(detect, frames) for name, detect in ways.items()}  # warm-up
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(repeats):
        for name, detect in ways.items():
            start = time.perf_counter()
            run_batches(detect, frames)
            seconds[name].append(time.perf_counter() - start)
    return {
        "clip": path.name,
        "frame_size": list(frames.shape[1:3]),
        "seconds": {name: median(values) for name, values in seconds.items()},
        "counts": {name: profile(mtcnn, detect, frames) for name, detect in ways.items()},
        "equal": _equal(outputs["facenet"], outputs["ours"]),
    }


def _equal(theirs: list[Any], ours: list[Any]) -> bool:
    for their_batch, our_batch in zip(theirs, ours, strict=True):
        for their_items, our_items in zip(their_batch, our_batch, strict=True):
            for t, o in zip(their_items, our_items, strict=True):
                if o is None:
                    if not (t is None or t[0] is None):
                        return False
                elif not np.array_equal(np.asarray(t, o.dtype), o):
                    return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="T=8, one repeat, two clips")
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    num_frames = args.frames or (8 if args.quick else 32)
    repeats = args.repeats or (1 if args.quick else 3)
    clips = CLIPS[:2] if args.quick else CLIPS
    info = machine()
    mtcnn = MTCNN(keep_all=True)
    rows, results = [], []
    for path in clips:
        result = bench_clip(mtcnn, path, num_frames, repeats)
        results.append(result)
        s, c = result["seconds"], result["counts"]
        rows.append(
            [
                result["clip"],
                "x".join(map(str, result["frame_size"])),
                s["facenet"],
                s["ours"],
                s["facenet"] / s["ours"],
                c["ours"]["candidates"],
                c["facenet"]["host_reads"],
                c["ours"]["host_reads"],
                result["equal"],
            ]
        )
    header = [
        "clip",
        "HxW",
        "facenet s",
        "ours s",
        "ratio",
        "candidates",
        "host reads facenet",
        "host reads ours",
        "equal",
    ]
    print_table(
        f"MTCNN detection, T={num_frames}, {torch.get_num_threads()} threads, CPU", header, rows
    )
    name = "mtcnn.quick" if args.quick else "mtcnn"
    write_results(
        name,
        {
            "machine": info,
            "frames": num_frames,
            "repeats": repeats,
            "batch": BATCH,
            "clips": results,
        },
    )


if __name__ == "__main__":
    main()
