"""Feature extraction side by side on the CPU (issue 13): the seed's plain pipeline against
ours, on the same real clips, the same networks and the same settings.

* reference: the seed's straightforward pipeline, written plainly here: OpenCV reads every
  frame up to each sampled index, MTCNN runs on each full-resolution frame one at a time
  (largest face with probability >= 0.9, else the centre crop; 20% margin, 256 px), pSp
  computes all 18 W+ levels one frame at a time (level 9 is kept), Slow R50 runs per clip,
  and `torch.save` writes the result;
* ours fp32: the production extractor exactly as an `extract` job runs it
  (`model.features.FeatureExtractor` with the next video decoding in a thread,
  `model.prefetch.FramePrefetcher`, and the atomic `save_features`);
* ours bf16: the same with `precision="bf16"` (`ddm extract --precision bf16`).

All three share one set of random weights (seed 0; no weights files exist here; MTCNN has
its packaged weights, so detection behaves as in production). Agreement is checked on the
timed runs' own outputs: per frame, the reference's crop box against ours (IoU >= 0.9), and
where the boxes agree, the style vector of each frame and the content vector of each clip
(cosine >= 0.99). With random weights every frame's code is nearly the same vector, so the
cosine is also reported after subtracting each video's mean code ("centred"): how much of
the frame-to-frame variation survives, a far stricter measure that is not a pass criterion.

FLOPs are counted with `torch.utils.flop_counter.FlopCounterMode` (2 per multiply-add;
convolutions and matrix products only): backbones on the meta device, MTCNN by running
ours on each clip's decoded frames. The achieved fraction is FLOPs / seconds / a GEMM rate
(2048 x 2048 fp32 `torch.mm`, and bf16 for the bf16 path) measured in the same run.
Peak resident memory of ours is measured in a child process that runs only ours.

    .venv/bin/python bench/extract.py                  # 3 clips, T = 32
    .venv/bin/python bench/extract.py --videos 2 --json
    .venv/bin/python bench/extract.py --quick          # 1 clip, T = 8
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, get_args

import _common  # noqa: F401  (puts the repository root on sys.path)
import cv2
import extractor as extractor_bench
import numpy as np
import torch
import torch.nn.functional as F
from _common import MEDIA, REPO, machine, print_table, write_results

from ddm.config import Settings
from model.faces import (
    centre_box,
    content_input,
    crop_resize,
    decode_video,
    sample_frame_indices,
    square_box,
    style_input,
)
from model.features import ExtractorCfg, FeatureExtractor, save_features
from model.prefetch import FramePrefetcher
from model.psp import N_STYLES
from model.registry import create_model
from tasks.extraction import compile_as_set

# The first is the 1280x720 FF++ clip; then 1920x1080 DFDC, then the rest.
CLIPS = (
    "ff++/original_sequences/youtube/c23/videos/004.mp4",
    "dfdc/dfdc_train_part_0/brtujopkby.mp4",
    "ff++/manipulated_sequences/Face2Face/c23/videos/750_743.mp4",
    "dfdc/dfdc_train_part_10/yhffcuhhjy.mp4",
    "ff++/original_sequences/youtube/c23/videos/519.mp4",
)
SEED_CUT = 0.9  # the seed's MTCNN probability threshold
IOU_MIN, COSINE_MIN = 0.9, 0.99
STAGES = ("decode", "detect", "crop", "style", "content", "write")
PRECISIONS = ("fp32", "bf16")


# --------------------------------------------------------------------------- networks


def build_ours(frames: int, precision: str, compile_mode: str) -> FeatureExtractor:
    """Ours as a job of a dataset's full batches (DDM_BATCH_SIZE videos) builds it, with
    the style network compiled where `compile_mode` (DDM_COMPILE) says so."""
    extractor = extractor_bench.build(frames, (9,), "cpu", precision)
    compile_as_set(extractor, compile_mode, videos=Settings().batch_size)
    return extractor


class Reference:
    """The seed's pipeline on plain networks (all 18 heads, contiguous, fp32) with the
    weights of ours: drawn from the same seed in the same order as `build_extractor`."""

    def __init__(self, ours: FeatureExtractor) -> None:
        self.cfg = ours.cfg
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.style = create_model("psp_encoder", levels=range(N_STYLES)).eval()
            self.content = create_model("slow_r50").eval()
        _check_same_weights(self.style, ours.style_encoder, "styles.9.linear.weight")
        _check_same_weights(self.content, ours.content_encoder, "blocks.5.proj.weight")
        self.mtcnn = ours.face_detector.mtcnn

    def extract(self, path: Path, out: Path) -> tuple[dict[str, Any], dict[str, float]]:
        clock = Clock()
        frames = self._decode(path)
        clock.lap("decode")
        boxes = np.stack([self._box(frame) for frame in frames])
        clock.lap("detect")
        pairs = zip(frames, boxes, strict=True)
        crops = np.stack([crop_resize(f, b, self.cfg.face_size) for f, b in pairs])
        clock.lap("crop")
        style = self._style(crops)
        clock.lap("style")
        content = self._content(crops)
        clock.lap("content")
        features = {"style": style, "content": content, "boxes": torch.from_numpy(boxes)}
        torch.save(features, out)
        clock.lap("write")
        return {**features, "crops": crops}, clock.laps

    def _decode(self, path: Path) -> np.ndarray:
        capture = cv2.VideoCapture(str(path))
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        wanted = sample_frame_indices(count, self.cfg.num_frames)
        kept: dict[int, np.ndarray] = {}
        for index in range(int(wanted.max()) + 1):
            ok, frame = capture.read()
            if not ok:
                break
            if index in wanted:
                kept[index] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        capture.release()
        return np.stack([kept[int(i)] for i in wanted])

    def _box(self, frame: np.ndarray) -> np.ndarray:
        height, width = frame.shape[:2]
        boxes, probs = self.mtcnn.detect(frame)
        if boxes is None or not (np.asarray(probs) >= SEED_CUT).any():
            return centre_box(width, height)
        boxes = boxes[np.asarray(probs) >= SEED_CUT]
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        return square_box(boxes[np.argmax(areas)], width, height, self.cfg.margin)

    @torch.inference_mode()
    def _style(self, crops: np.ndarray) -> torch.Tensor:
        x = style_input(crops)
        codes = [self.style(x[i : i + 1])[:, 9] for i in range(len(x))]  # all 18, keep 9
        return (torch.cat(codes) + self.style.latent_avg[9])[:, None]  # (T, 1, 512)

    @torch.inference_mode()
    def _content(self, crops: np.ndarray) -> torch.Tensor:
        clips = content_input(crops, self.cfg.content_size, self.cfg.clip_len)
        return torch.cat([self.content(clip[None]) for clip in clips])


def _check_same_weights(plain: torch.nn.Module, ours: torch.nn.Module, key: str) -> None:
    if not torch.equal(plain.state_dict()[key], ours.state_dict()[key]):
        raise RuntimeError(f"the reference's {key} differs from ours: not the same weights")


class Clock:
    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = self.laps.get(name, 0.0) + now - self.last
        self.last = now


# --------------------------------------------------------------------------- runs


def run_reference(ref: Reference, clips: list[Path], out: Path) -> dict[str, Any]:
    per_video, outputs = [], []
    for clip in clips:
        start = time.perf_counter()
        features, laps = ref.extract(clip, out / "reference.pt")
        per_video.append({"clip": clip.name, "seconds": time.perf_counter() - start, **laps})
        outputs.append(features)
        print(f"  reference {clip.name}: {per_video[-1]['seconds']:.1f} s", file=sys.stderr)
    return {"per_video": per_video, "outputs": outputs}


def run_ours(
    extractor: FeatureExtractor, clips: list[Path], out: Path, decode_workers: int
) -> dict[str, Any]:
    """As an extract job: with decoding threads, the next video decodes while this one runs
    (a CPU job has none by default: see tasks.extraction.decode_workers)."""
    per_video, outputs = [], []
    workers = decode_workers
    with FramePrefetcher(extractor.cfg.num_frames, workers=workers, ahead=workers) as prefetcher:
        prefetcher.schedule(clips)
        for clip in clips:
            start = time.perf_counter()
            decoded = prefetcher.take(clip)
            waited = time.perf_counter() - start
            features = extractor.extract(clip, decoded)
            written = time.perf_counter()
            save_features(out / "ours.pt", features)
            end = time.perf_counter()
            timings = features["timings"]
            row = {stage: timings.get(stage, 0.0) for stage in STAGES if stage != "write"}
            row.update(write=end - written, waited_for_decode=waited, seconds=end - start)
            per_video.append({"clip": clip.name, **row})
            outputs.append(features)
            print(
                f"  {extractor.cfg.precision} {clip.name}: {row['seconds']:.1f} s", file=sys.stderr
            )
    return {"per_video": per_video, "outputs": outputs}


# --------------------------------------------------------------------------- agreement


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-row IoU of two (T, 4) x0, y0, x1, y1 box arrays."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    w = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    h = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    inter = w * h
    return inter / (area(a) + area(b) - inter)


def cosines(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row cosine of (N, ...) tensors, raw and after subtracting each one's mean row."""
    a, b = a.flatten(1).double(), b.flatten(1).double()
    if len(a) < 2:  # one row minus its own mean is zero: no variation to compare
        return F.cosine_similarity(a, b), a.new_empty(0)
    centred = F.cosine_similarity(a - a.mean(0), b - b.mean(0))
    return F.cosine_similarity(a, b), centred


def agreement(reference: dict[str, Any], ours: dict[str, Any], extractor: Any) -> dict[str, Any]:
    """Boxes per frame; features where the boxes agree; and the networks on identical crops
    (the reference's crops of the first clip through ours' batched, level-9 networks)."""
    pairs = zip(reference["outputs"], ours["outputs"], strict=True)
    rows = [_video_agreement(ref, mine) for ref, mine in pairs]
    first = reference["outputs"][0]
    style, style_centred = cosines(first["style"], extractor.encode_style(first["crops"]))
    content, _ = cosines(first["content"], extractor.encode_content(first["crops"]))
    networks = {
        "min_style_cosine": _min(style),
        "min_style_centred_cosine": _min(style_centred),
        "min_content_cosine": _min(content),
    }
    return {"per_video": rows, "same_crops": networks, **_summary(rows, networks)}


def _video_agreement(ref: dict[str, Any], mine: dict[str, Any]) -> dict[str, Any]:
    iou = box_iou(ref["boxes"].numpy(), mine["boxes"].numpy())
    agree = iou >= IOU_MIN
    style, style_centred = cosines(ref["style"][agree], mine["style"][agree])
    clips_agree = _clips_agree(agree, len(ref["content"]))
    content, _ = cosines(ref["content"][clips_agree], mine["content"][clips_agree])
    same_face = iou >= 0.5
    return {
        "frames": len(agree),
        "frames_boxes_agree": int(agree.sum()),
        # Below 0.5 the two pipelines cropped different people: the seed's largest-face
        # pick switched to someone else, where ours keeps the subject's track.
        "frames_other_face": int((~same_face).sum()),
        "min_box_iou": float(iou.min()),
        "min_box_iou_same_face": float(iou[same_face].min()) if same_face.any() else None,
        "min_style_cosine": _min(style),
        "min_style_centred_cosine": _min(style_centred),
        "min_content_cosine": _min(content),
    }


def _clips_agree(frames_agree: np.ndarray, clips: int) -> torch.Tensor:
    per_clip = math.ceil(len(frames_agree) / clips)
    return torch.tensor(
        [bool(frames_agree[i * per_clip : (i + 1) * per_clip].all()) for i in range(clips)]
    )


def _min(values: torch.Tensor) -> float | None:
    return float(values.min()) if values.numel() else None


def _summary(rows: list[dict[str, Any]], networks: dict[str, Any]) -> dict[str, Any]:
    def lowest(key: str) -> float | None:
        values = [row[key] for row in rows if row[key] is not None]
        return min(values) if values else None

    summary: dict[str, Any] = {key: lowest(key) for key in rows[0] if key.startswith("min_")}
    frames = sum(row["frames"] for row in rows)
    summary["fraction_frames_boxes_agree"] = sum(r["frames_boxes_agree"] for r in rows) / frames
    summary["fraction_frames_other_face"] = sum(r["frames_other_face"] for r in rows) / frames
    where_agree = [summary["min_style_cosine"], summary["min_content_cosine"]]
    same_crops = [networks["min_style_cosine"], networks["min_content_cosine"]]
    # Features must agree wherever both pipelines cropped the same box, and on identical
    # crops; the boxes themselves differ by design (face tracks) and are reported above.
    summary["boxes_match"] = summary["fraction_frames_boxes_agree"] == 1.0
    summary["features_match"] = all(v is None or v >= COSINE_MIN for v in where_agree) and all(
        v is not None and v >= COSINE_MIN for v in same_crops
    )
    return summary


# --------------------------------------------------------------------------- FLOPs and rates


def backbone_flops(cfg: ExtractorCfg, levels: tuple[int, ...]) -> int:
    """Style and content FLOPs of one video (bench/extractor.py counts them on meta)."""
    return sum(extractor_bench.backbone_flops(cfg, levels).values())


def gemm_rates() -> dict[str, float]:
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    return {precision: gemm_rate(dtypes[precision]) for precision in PRECISIONS}


def gemm_rate(dtype: torch.dtype, size: int = 2048, repeats: int = 10) -> float:
    """FLOP/s of a square matrix product on this machine, now."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    torch.mm(a, b)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return 2 * size**3 * repeats / (time.perf_counter() - start)


# --------------------------------------------------------------------------- memory


def peak_rss_of_ours(
    precision: str, clips: list[Path], frames: int, workers: int, compile_mode: str
) -> float:
    """Peak resident MB of a process that runs only ours over the clips."""
    command = [
        sys.executable,
        str(Path(__file__)),
        "--rss-child",
        precision,
        "--frames",
        str(frames),
        "--decode-workers",
        str(workers),
        "--compile",
        compile_mode,
        *("--clip", *[str(c) for c in clips]),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_rss_mb"]


def rss_child(
    precision: str, clips: list[Path], frames: int, workers: int, compile_mode: str
) -> None:
    with tempfile.TemporaryDirectory() as out:
        run_ours(build_ours(frames, precision, compile_mode), clips, Path(out), workers)
    print(json.dumps({"peak_rss_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's own peak resident memory. Not `ru_maxrss`: on Linux that keeps, across
    the exec that started this child, the parent's resident size at the fork."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------- main


def measure(
    clips: list[Path], frames: int, out: Path, workers: int, compile_mode: str, eager_too: bool
) -> dict[str, Any]:
    ours = {p: build_ours(frames, p, compile_mode) for p in PRECISIONS}
    if eager_too:  # the same networks uncompiled, for the compilation's gain side by side
        ours.update({f"{p}_eager": build_ours(frames, p, "off") for p in PRECISIONS})
    ref = Reference(ours["fp32"])
    print(f"warm-up on {clips[0].name}", file=sys.stderr)
    ref.extract(clips[0], out / "warm.pt")
    warmup_s = {}
    for name, extractor in ours.items():  # a compiled network compiles here
        start = time.perf_counter()
        extractor.extract(clips[0])
        warmup_s[f"ours_{name}"] = time.perf_counter() - start
    # Clip by clip, the pipelines in turn: a change in the machine's load then weighs on
    # all of them alike rather than on whichever ran as a block at the time. The GEMM rate
    # is sampled before each clip and at the end, and averaged, for the same reason.
    names = ["reference", *(f"ours_{name}" for name in ours)]
    runs: dict[str, dict[str, list[Any]]] = {n: {"per_video": [], "outputs": []} for n in names}
    rate_samples: list[dict[str, float]] = []
    for clip in clips:
        rate_samples.append(gemm_rates())
        _append(runs["reference"], run_reference(ref, [clip], out))
        for name, extractor in ours.items():
            _append(runs[f"ours_{name}"], run_ours(extractor, [clip], out, workers))
    rate_samples.append(gemm_rates())
    detect = [
        extractor_bench.count_flops(
            ours["fp32"].face_detector.detect, decode_video(c, frames).frames
        )
        for c in clips
    ]
    return {
        "runs": runs,
        "extractors": {f"ours_{name}": extractor for name, extractor in ours.items()},
        "warmup_s": warmup_s,
        "style_compiled": {f"ours_{n}": e.style_is_compiled for n, e in ours.items()},
        "gemm_flops_per_s": {k: statistics.mean(r[k] for r in rate_samples) for k in PRECISIONS},
        "gemm_flops_per_s_samples": rate_samples,
        "flops_per_video": {
            "ours_backbones": backbone_flops(ours["fp32"].cfg, (9,)),
            "reference_backbones": backbone_flops(ours["fp32"].cfg, tuple(range(N_STYLES))),
            "ours_detect_mean": statistics.mean(detect),
        },
    }


def _append(runs: dict[str, list[Any]], run: dict[str, list[Any]]) -> None:
    for key in ("per_video", "outputs"):
        runs[key] += run[key]


def summarise(measured: dict[str, Any], rss: dict[str, float]) -> dict[str, Any]:
    runs, flops, gemm = measured["runs"], measured["flops_per_video"], measured["gemm_flops_per_s"]
    seconds = {
        name: statistics.mean(r["seconds"] for r in run["per_video"]) for name, run in runs.items()
    }
    stages = {
        name: {s: statistics.mean(r[s] for r in run["per_video"]) for s in STAGES}
        for name, run in runs.items()
    }
    ours_flops = flops["ours_backbones"] + flops["ours_detect_mean"]
    extractors = measured["extractors"]
    match = {
        name: agreement(runs["reference"], runs[name], extractors[name])
        for name in ("ours_fp32", "ours_bf16")
    }
    return {
        "reference_s_per_video": seconds["reference"],
        "ours_s_per_video": seconds["ours_fp32"],
        "ratio": seconds["reference"] / seconds["ours_fp32"],
        "ours_bf16_s_per_video": seconds["ours_bf16"],
        "ratio_bf16": seconds["reference"] / seconds["ours_bf16"],
        "peak_rss_mb": rss.get("fp32"),
        "peak_rss_mb_bf16": rss.get("bf16"),
        "flops_fraction": ours_flops / seconds["ours_fp32"] / gemm["fp32"],
        "flops_fraction_bf16": ours_flops / seconds["ours_bf16"] / gemm["bf16"],
        "reference_flops_fraction_backbones_only": flops["reference_backbones"]
        / seconds["reference"]
        / gemm["fp32"],
        "outputs_match": match["ours_fp32"]["features_match"],
        "outputs_match_bf16": match["ours_bf16"]["features_match"],
        "boxes_agree_fraction": match["ours_fp32"]["fraction_frames_boxes_agree"],
        "boxes_other_face_fraction": match["ours_fp32"]["fraction_frames_other_face"],
        "agreement": match,
        "stage_seconds_per_video": stages,
        "seconds_per_video": seconds,
        # Each pipeline over its uncompiled twin, where --eager-too ran those.
        "compile_speedup": {
            p: seconds[f"ours_{p}_eager"] / seconds[f"ours_{p}"]
            for p in PRECISIONS
            if f"ours_{p}_eager" in seconds
        },
        "style_compiled": measured["style_compiled"],
        "warmup_s": measured["warmup_s"],
        "gemm_gflops_per_s": {k: v / 1e9 for k, v in gemm.items()},
        "flops_per_video": flops,
    }


def report(summary: dict[str, Any], clips: list[Path], frames: int) -> None:
    stages, total = summary["stage_seconds_per_video"], summary["seconds_per_video"]
    print_table(
        f"seconds per video, mean of {len(clips)} clips, T = {frames}",
        ["pipeline", *STAGES, "wall", "ratio"],
        [
            [n, *(stages[n][s] for s in STAGES), total[n], total["reference"] / total[n]]
            for n in total
        ],
    )
    _agreement_table(summary["agreement"])
    print(
        f"\npeak RSS of ours: fp32 {summary['peak_rss_mb']} MB, "
        f"bf16 {summary['peak_rss_mb_bf16']} MB; FLOPs fraction: "
        f"fp32 {summary['flops_fraction']:.2f} of {summary['gemm_gflops_per_s']['fp32']:.0f} "
        f"GFLOP/s, bf16 {summary['flops_fraction_bf16']:.2f} of "
        f"{summary['gemm_gflops_per_s']['bf16']:.0f} GFLOP/s"
    )


def _agreement_table(agreement_by_name: dict[str, Any]) -> None:
    header = ["pipeline", "boxes IoU>=0.9", "other face", "min IoU same face"]
    header += ["style cos", "content cos", "same crops: style, centred style, content"]
    rows = []
    for name, match in agreement_by_name.items():
        crops = match["same_crops"]
        rows.append(
            [
                name,
                match["fraction_frames_boxes_agree"],
                match["fraction_frames_other_face"],
                match["min_box_iou_same_face"],
                match["min_style_cosine"],
                match["min_content_cosine"],
                ", ".join(
                    f"{crops[key]:.4f}"
                    for key in (
                        "min_style_cosine",
                        "min_style_centred_cosine",
                        "min_content_cosine",
                    )
                ),
            ]
        )
    print_table("agreement with the reference (minimum cosines where boxes agree)", header, rows)


def pick_clips(count: int, given: list[Path] | None) -> list[Path]:
    if given:
        return given
    ordered = [MEDIA / c for c in CLIPS] + sorted(MEDIA.rglob("*.mp4"))
    unique = list(dict.fromkeys(p for p in ordered if p.is_file()))
    if len(unique) < count:
        raise SystemExit(f"only {len(unique)} clips under {MEDIA}")
    return unique[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=3, help="clips to run (default 3)")
    parser.add_argument("--frames", type=int, help="T (default 32, quick 8)")
    parser.add_argument("--quick", action="store_true", help="1 clip, T = 8, no memory child")
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    parser.add_argument("--no-rss", action="store_true", help="skip the memory children")
    parser.add_argument("--clip", type=Path, nargs="+", help="these clips instead")
    parser.add_argument(
        "--decode-workers", type=int, default=0, help="ours' decoding threads (CPU default 0)"
    )
    parser.add_argument(
        "--compile",
        choices=get_args(Settings.model_fields["compile"].annotation),
        default="auto",
        help="DDM_COMPILE for ours (default auto: as a dataset's extraction job)",
    )
    parser.add_argument(
        "--eager-too", action="store_true", help="also run ours uncompiled, side by side"
    )
    parser.add_argument("--rss-child", choices=("fp32", "bf16"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    frames = args.frames or (8 if args.quick else 32)
    clips = pick_clips(1 if args.quick else args.videos, args.clip)
    if args.rss_child:
        return rss_child(args.rss_child, clips, frames, args.decode_workers, args.compile)
    info = {**machine(), "torch": torch.__version__, "torch_threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as out:
        measured = measure(
            clips, frames, Path(out), args.decode_workers, args.compile, args.eager_too
        )
    rss = (
        {}
        if args.quick or args.no_rss
        else {
            p: peak_rss_of_ours(p, clips, frames, args.decode_workers, args.compile)
            for p in ("fp32", "bf16")
        }
    )
    summary = summarise(measured, rss)
    results = {
        **summary,
        "benchmark": "extract",
        "machine": info,
        "frames": frames,
        "clips": [str(c.relative_to(MEDIA)) if c.is_relative_to(MEDIA) else str(c) for c in clips],
        "weights": "random, seed 0, shared by all three; MTCNN packaged weights",
        "decode_workers": args.decode_workers,
        "compile": args.compile,
        "per_video": {n: run["per_video"] for n, run in measured["runs"].items()},
    }
    name = "extract.quick" if args.quick else "extract"
    if args.json:
        write_results(name, results, quiet=True)
        print(json.dumps(results, default=str))
        return
    report(summary, clips, frames)
    write_results(name, results)


if __name__ == "__main__":
    main()
