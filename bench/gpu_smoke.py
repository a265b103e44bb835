"""One pass over every code path a GPU run of ddm takes, each reported "pass" or "fail".

Run by `bash bench/gpu_check.sh --smoke` (and first in the full check), on one clip, so
that a broken path shows in seconds instead of after a throughput run:

- `extract_fp32`, `extract_bf16`: the production extractor (`build_extractor`, random
  weights from the project's seed, real MTCNN) on the device, at each precision;
- `train_epoch`: one epoch of `model.train.train` on the device over feature files written
  by `save_features`, saving `best.pt` and `last.pt` as the `train` job does after an epoch;
- `evaluate`: `best.pt` rebuilt with `model_from_checkpoint` and scored by
  `model.evaluate.evaluate` on `tasks.devices.scoring_device()`, as the `evaluate` job does;
- `predict`: `score_video` on the extracted features, as `ddm predict` does;
- `resume_on_cpu`: the device-trained run's `last.pt` read to the CPU and trained one more
  epoch there (a dead GPU run handed to a CPU worker). On a CPU-only machine the "GPU"
  run is simply the run's own device; the JSON says which devices the file held.

The smoke keeps to the model layer plus `tasks.devices`: they need torch, numpy, OpenCV,
facenet-pytorch and (through `ddm.config`) pydantic, small wheels that travel with the
tree, while the jobs layer needs SQLAlchemy, Celery, Redis and PostgreSQL clients, which
a bare GPU machine lacks. The `train` job's resume read is `tasks.training_loop`'s own
when that module imports, else the same call copied here (`resume_reader` says which).

The last line on stdout is one JSON object; exit status 0 when every path passed.

    .venv/bin/python bench/gpu_smoke.py [--device cuda] [--frames T] [--clip PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import _common  # noqa: F401  (puts the repository root on sys.path)
import torch
from gpu_check import (
    SEED,
    SMALL_BACKBONES,
    build,
    frame_size,
    print_json_last,
    real_clips,
    synthetic_clips,
)
from gpu_report import FAIL, PASS, PATHS

from ddm.fs import atomic_write
from model.checkpoint import model_from_checkpoint, save_checkpoint
from model.data import CachedFeatureDataset, make_loader
from model.detector import DetectorCfg, build_detector
from model.evaluate import evaluate, score_video
from model.features import ExtractorCfg, save_features
from model.precision import BF16, FP32
from model.train import TrainCfg, TrainHooks, TrainState, train
from tasks.devices import scoring_device

log = logging.getLogger("gpu_smoke")

FEATURE_FILES = 8  # half real, half fake: both classes, so the metrics are defined
BATCH = 4


# --------------------------------------------------------------------------- bookkeeping


@dataclass
class Smoke:
    """The paths' verdicts, seconds and first error lines, filled in as they run; after
    each path the whole result is rewritten to `progress`, so that a run stopped from
    outside still says which paths passed."""

    deadline: float
    header: dict[str, Any]
    progress: Path | None = None
    verdicts: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)

    def run(self, name: str, step: Callable[[], Any]) -> Any:
        """Run one path; any exception, or the budget already spent, is its failure.

        Returns what the step returned, or None when it failed.
        """
        if time.time() > self.deadline:
            return self.fail(name, "not run: the smoke's time budget was spent")
        start = time.perf_counter()
        try:
            result = step()
            _synchronise()  # a CUDA kernel's error surfaces at the next sync: in its path
        except Exception as exc:  # noqa: BLE001  (every failure is this path's verdict)
            log.error("%s failed:\n%s", name, traceback.format_exc())
            self.seconds[name] = time.perf_counter() - start
            return self.fail(name, f"{type(exc).__name__}: {_first_line(exc)}")
        self.seconds[name] = time.perf_counter() - start
        self.verdicts[name] = PASS
        log.info("%s: pass (%.1f s)", name, self.seconds[name])
        self.save()
        return result

    def fail(self, name: str, why: str) -> None:
        self.verdicts[name] = FAIL
        self.errors[name] = why
        log.warning("%s: fail (%s)", name, why)
        self.save()
        return None

    @property
    def all_pass(self) -> bool:
        return all(self.verdicts.get(name) == PASS for name in PATHS)

    def result(self) -> dict[str, Any]:
        """The JSON object: a verdict for every path (one not run yet is "fail")."""
        return {
            "benchmark": "gpu_smoke",
            **{name: self.verdicts.get(name, FAIL) for name in PATHS},
            "all_pass": self.all_pass,
            **self.header,
            "seconds": {name: round(value, 3) for name, value in self.seconds.items()},
            "errors": self.errors,
            **self.facts,
        }

    def save(self) -> None:
        if self.progress is None:
            return
        partial = self.progress.with_name(self.progress.name + ".part")
        partial.write_text(json.dumps(self.result(), default=str) + "\n")
        os.replace(partial, self.progress)  # a reader never sees half a file


def _synchronise() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


def require(condition: bool, what: str) -> None:
    """A check of a path's output (not `assert`: it must hold under `python -O` too)."""
    if not condition:
        raise AssertionError(what)


# --------------------------------------------------------------------------- extraction


def extract(cfg: ExtractorCfg, device: str, clip: Path) -> dict[str, Any]:
    """Build the production extractor at `cfg`'s precision and extract one clip."""
    extractor = build(cfg, device, 32 if device.startswith("cuda") else 8)
    features = extractor.extract(clip)
    check_features(features, cfg)
    return features


def check_features(features: dict[str, Any], cfg: ExtractorCfg) -> None:
    frames, clips = cfg.num_frames, math.ceil(cfg.num_frames / cfg.clip_len)
    style, content = features["style"], features["content"]
    require(tuple(style.shape) == (frames, len(cfg.levels), 512), f"style {tuple(style.shape)}")
    require(tuple(content.shape) == (clips, 2048), f"content {tuple(content.shape)}")
    require(tuple(features["boxes"].shape) == (frames, 4), "one box per frame")
    require(bool(torch.isfinite(style).all()), "style codes are not all finite")
    require(bool(torch.isfinite(content).all()), "content vectors are not all finite")
    require(style.device.type == "cpu" and content.device.type == "cpu", "features on the CPU")


# --------------------------------------------------------------------------- training


def feature_files(features: dict[str, Any], folder: Path) -> list[tuple[Path, float]]:
    """FEATURE_FILES cache files as the extract job writes them: the clip's features,
    with seeded noise on the fake half so the two classes differ."""
    generator = torch.Generator().manual_seed(SEED)
    items = []
    for index in range(FEATURE_FILES):
        label = float(index % 2)
        noise = torch.randn(features["style"].shape, generator=generator)
        item = {
            **features,
            "style": features["style"] + label * noise * features["style"].std(),
            "video_hash": f"smoke{index}",
        }
        path = folder / f"smoke{index}.pt"
        save_features(path, item)
        items.append((path, label))
    return items


def random_features(cfg: ExtractorCfg) -> dict[str, Any]:
    """Stand-in features of the right shapes, when neither extraction worked: training
    and evaluation are checked on their own rather than failed with the extractor."""
    generator = torch.Generator().manual_seed(SEED)
    clips = math.ceil(cfg.num_frames / cfg.clip_len)
    return {
        "style": torch.randn((cfg.num_frames, len(cfg.levels), 512), generator=generator),
        "content": torch.randn((clips, 2048), generator=generator),
    }


def detector_cfg(dataset: CachedFeatureDataset) -> DetectorCfg:
    """Sized to the features as `tasks.training_loop._detector_cfg` sizes it."""
    sample = dataset[0]
    clips = int(sample["content"].shape[0])
    return DetectorCfg(
        style_levels=int(sample["style"].shape[1]), max_clips=max(clips, DetectorCfg.max_clips)
    )


def new_detector(cfg: DetectorCfg, seed: int) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_detector(cfg)


def train_epoch(items: list[tuple[Path, float]], device: str, run_dir: Path) -> dict[str, Any]:
    """One epoch on `device`, saving best.pt and last.pt after it as the `train` job does."""
    dataset = CachedFeatureDataset(items, preload=True)
    cfg = detector_cfg(dataset)
    model = new_detector(cfg, SEED)
    saved: dict[str, Any] = {}

    def on_epoch_end(state: TrainState) -> None:
        if state.stopper["best_epoch"] == state.epoch:
            save_checkpoint(
                run_dir / "best.pt",
                model,
                model_name="style_flow_detector",
                model_cfg=cfg,
                epoch=state.epoch,
            )
        with atomic_write(run_dir / "last.pt") as handle:
            torch.save(state.as_dict(), handle)
        saved["devices"] = sorted(tensor_devices(state.optimizer))

    result = train(
        model,
        _loader(dataset, True),
        _loader(dataset, False),
        TrainCfg(epochs=1, seed=SEED),
        device=device,
        hooks=TrainHooks(on_epoch_end=on_epoch_end),
    )
    require(result.epochs_run == 1, f"{result.epochs_run} epochs run, not 1")
    require(math.isfinite(result.history[0]["train_loss"]), "train loss is not finite")
    require(math.isfinite(result.best_val_loss), "validation loss is not finite")
    require((run_dir / "best.pt").is_file() and (run_dir / "last.pt").is_file(), "files saved")
    return {"detector_cfg": cfg, "optimizer_state_devices": saved["devices"]}


def _loader(dataset: CachedFeatureDataset, shuffle: bool) -> Any:
    return make_loader(dataset, batch_size=BATCH, shuffle=shuffle)


def tensor_devices(value: Any) -> set[str]:
    """Devices of every tensor nested in `value` (dicts, lists, tuples)."""
    if isinstance(value, torch.Tensor):
        return {str(value.device)}
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list | tuple):
        return set().union(*(tensor_devices(item) for item in value))
    return set()


# --------------------------------------------------------------------------- scoring


def evaluate_best(items: list[tuple[Path, float]], run_dir: Path) -> dict[str, Any]:
    device = scoring_device()  # as the evaluate job: the best device here, not the run's
    model, _ = model_from_checkpoint(run_dir / "best.pt", device=device)
    result = evaluate(model, _loader(CachedFeatureDataset(items), False), device=device)
    require(len(result.logits) == len(items), f"{len(result.logits)} logits for {len(items)}")
    require(bool(all(math.isfinite(x) for x in result.logits)), "logits are not all finite")
    return {"scoring_device": device, "roc_auc": result.metrics["roc_auc"]}


def predict(features: dict[str, Any], run_dir: Path) -> float:
    device = scoring_device()
    model, _ = model_from_checkpoint(run_dir / "best.pt", device=device)
    probability = score_video(model, features, device=device)
    require(0.0 <= probability <= 1.0, f"probability {probability} outside [0, 1]")
    return probability


def resume_on_cpu(items: list[tuple[Path, float]], cfg: DetectorCfg, run_dir: Path) -> dict:
    """Continue the device-trained run on the CPU from its last.pt, for one more epoch."""
    reader, state = read_last_state(run_dir / "last.pt")
    left_on = tensor_devices(state.optimizer) - {"cpu"}
    require(not left_on, f"the resumed optimiser state is still on {sorted(left_on)}")
    dataset = CachedFeatureDataset(items, preload=True)
    model = new_detector(cfg, SEED)
    result = train(
        model,
        _loader(dataset, True),
        _loader(dataset, False),
        TrainCfg(epochs=2, seed=SEED),
        device="cpu",
        hooks=TrainHooks(resume=state),
    )
    require(result.epochs_run == 2, f"{result.epochs_run} epochs after the resume, not 2")
    require(math.isfinite(result.history[-1]["train_loss"]), "resumed train loss not finite")
    return {"resume_reader": reader}


def read_last_state(path: Path) -> tuple[str, TrainState]:
    """The `train` job's own read of last.pt when the jobs layer imports here, else the
    same call (a bare GPU machine lacks SQLAlchemy and Celery, which that module needs)."""
    try:
        from tasks.training_loop import _resume_state
    except ImportError as exc:
        log.info("tasks.training_loop does not import (%s): reading last.pt here", exc)
        state = TrainState.from_dict(torch.load(path, map_location="cpu", weights_only=True))
        return "bench/gpu_smoke.py (the jobs layer's dependencies are not installed)", state
    state = _resume_state(SimpleNamespace(last_state_path=str(path)))
    require(state is not None, "tasks.training_loop found no state in last.pt")
    return "tasks.training_loop._resume_state", state


# --------------------------------------------------------------------------- main


def pick_clip(explicit: Path | None, scratch: Path) -> tuple[Path, str]:
    """The carried clip with the fewest pixels per frame (the fastest to decode and
    detect), or a synthetic one when no clips were carried."""
    if explicit is not None:
        return explicit, "given"
    clips = real_clips(None)
    if not clips:
        return synthetic_clips(scratch)[0], "synthetic"
    return min(clips, key=lambda clip: math.prod(frame_size(clip))), "real"


def run(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    clip, media = pick_clip(args.clip, scratch)
    smoke = Smoke(deadline(args), header(args, clip, media), args.progress)
    smoke.save()
    log.info("smoke on %s, %s, T = %d, clip %s", args.device, media, args.frames, clip.name)
    sizes = SMALL_BACKBONES if args.backbones == "small" else {}
    cfg = ExtractorCfg(num_frames=args.frames, precision=FP32, **sizes)
    fp32 = smoke.run("extract_fp32", lambda: extract(cfg, args.device, clip))
    bf16_cfg = dataclasses.replace(cfg, precision=BF16)
    bf16 = smoke.run("extract_bf16", lambda: extract(bf16_cfg, args.device, clip))
    for name, extracted in (("extract_fp32", fp32), ("extract_bf16", bf16)):
        if extracted is not None:  # where a slow extraction spent its time
            smoke.facts[f"{name}_stages"] = {
                k: round(v, 3) for k, v in extracted["timings"].items()
            }
    features = fp32 or bf16 or random_features(cfg)
    smoke.facts["train_features"] = "extracted" if (fp32 or bf16) else "random"
    items = feature_files(features, scratch)
    run_dir = scratch / "run"
    run_dir.mkdir()
    trained = smoke.run("train_epoch", lambda: train_epoch(items, args.device, run_dir))
    if trained is None:
        for name in ("evaluate", "predict", "resume_on_cpu"):
            smoke.fail(name, "not run: train_epoch saved no checkpoint")
        return smoke.result()
    smoke.facts["last_pt_optimizer_devices"] = trained["optimizer_state_devices"]
    smoke.facts.update(smoke.run("evaluate", lambda: evaluate_best(items, run_dir)) or {})
    smoke.facts["predict_probability"] = smoke.run("predict", lambda: predict(features, run_dir))
    detector = trained["detector_cfg"]
    resumed = smoke.run("resume_on_cpu", lambda: resume_on_cpu(items, detector, run_dir))
    smoke.facts.update(resumed or {})
    smoke.save()
    return smoke.result()


def deadline(args: argparse.Namespace) -> float:
    """When the last path may start: the smoke's budget, or the caller's deadline if sooner."""
    own = time.time() + args.budget_s
    return min(own, args.deadline) if args.deadline else own


def header(args: argparse.Namespace, clip: Path, media: str) -> dict[str, Any]:
    cuda = args.device.startswith("cuda")
    return {
        "device": args.device,
        "device_name": torch.cuda.get_device_name(torch.device(args.device)) if cuda else "cpu",
        "torch": torch.__version__,
        "frames": args.frames,
        "backbones": args.backbones,
        "clip": clip.name,
        "media": media,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if cuda else "cpu", help="cuda or cpu")
    # The production T on a GPU; on the CPU fallback a short one, which takes every path
    # the same way (one content clip either way) in a third of the time.
    parser.add_argument("--frames", type=int, default=32 if cuda else 8, help="T")
    # The published networks' sizes on a GPU; CPU-sized ones on the CPU fallback, where the
    # full pair alone takes most of the 120 s whenever the 2 cores are shared.
    parser.add_argument(
        "--backbones", choices=("full", "small"), default="full" if cuda else "small"
    )
    parser.add_argument("--clip", type=Path, help="the clip to extract (default: smallest)")
    # 60 s on a GPU; the CPU fallback's extractions alone take about a minute.
    parser.add_argument(
        "--budget-s", type=float, default=60.0 if cuda else 100.0, help="no path starts after"
    )
    parser.add_argument("--deadline", type=float, help="epoch seconds: no path starts after")
    parser.add_argument("--progress", type=Path, help="rewrite the JSON here after each path")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )
    result = print_json_last(run, args, "gpu_smoke-")
    return 0 if result["all_pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
