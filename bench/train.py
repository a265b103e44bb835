"""Benchmark training from cached features (issue: training must not be the bottleneck).

Setup (untimed): a throwaway DDM_HOME on SQLite, and N videos' feature files of the
production shape (T = 32 frames, pSp level 9 only: style (32, 1, 512) float32, content
(2, 2048) float32, plus the small per-frame extras a real extraction writes) registered
in the catalog as tests/tasks/test_training.py does it (Dataset, Video, FeatureCache rows
of one extractor fingerprint). Default: 3,431 videos (the seed's FF++ training set), 80/20
train/val, 4 fakes per real. The features carry a weak learnable signal: fakes' style codes
jitter a little more from frame to frame and a few content dimensions shift slightly, so
the loss moves without the task being trivial.

Timed: the production path, `plan_training` then `run_job` inline (the `train` job kind,
what `ddm train` runs without a broker): the default detector (DetectorCfg), batch size 16,
TrainCfg defaults except `epochs` (and `patience`, by default as large as `epochs` so the
run is not stopped early). Per-epoch seconds come from the job's `on_event` callback
(one event per epoch, sent right after the epoch's row is written); preload seconds and
the start of training come from thin wrappers the benchmark puts around
`tasks.training_loop.CachedFeatureDataset`, `build_detector` and `train` (timers only; the
production code runs unchanged). Peak RSS is `resource.getrusage(RUSAGE_SELF).ru_maxrss`.

`--sweep` then times the training step itself on the same preloaded features, for each
batch size and torch thread count asked (default 16, 64, 128 x 1, 2 threads): the
production `_train_epoch` and `_validate` on the first `--sweep-videos` training and
validation videos (whole epoch projected from it), and an instrumented copy of one training
step that splits data (collate), forward (StyleGRU vs the rest), backward and optimiser
step. `--profile` adds a torch.profiler table of the top operators for a few batches.

    .venv/bin/python bench/train.py --quick                 # 200 videos, 2 epochs
    .venv/bin/python bench/train.py --epochs 1 --sweep      # one full epoch + sweep
    .venv/bin/python bench/train.py --epochs 60             # the whole run
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import resource
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (puts the repository root on sys.path)
import torch
from _common import machine, median, print_table, write_results

import tasks.training_loop as training_loop
from ddm.catalog.models import Dataset, Video
from ddm.catalog.runs import get_run, run_epochs
from ddm.config import load_settings
from ddm.db import session_scope
from ddm.fs import atomic_write
from model.train import TrainCfg
from tasks.context import session_factory
from tasks.lifecycle import run_job
from tasks.training import plan_training
from tests.tasks.synth import add_valid_cache

DATASET = "bench"
FINGERPRINT = "random-" + "b" * 40
FRAMES, LEVELS, STYLE_DIM, CLIPS, CONTENT_DIM = 32, 1, 512, 2, 2048
# Scales of random-weights pSp codes and Slow R50 vectors (model/standardize.py).
CODE_STD, FLOW_STD, CONTENT_SCALE = 0.007, 1e-4, 9.0
FAKE_JITTER, CONTENT_SHIFT, SHIFTED_DIMS = 1.25, 0.25, 32


# --------------------------------------------------------------------------- the catalog


def video_features(seed: int, is_fake: bool) -> dict[str, Any]:
    """One video's cached features, production shapes and dtypes, with a weak signal."""
    generator = torch.Generator().manual_seed(seed)
    base = CODE_STD * torch.randn(1, LEVELS, STYLE_DIM, generator=generator)
    scale = FLOW_STD * (FAKE_JITTER if is_fake else 1.0)
    steps = scale * torch.randn(FRAMES, LEVELS, STYLE_DIM, generator=generator)
    style = base + steps.cumsum(0)
    content = CONTENT_SCALE * torch.randn(CLIPS, CONTENT_DIM, generator=generator).abs()
    if is_fake:
        content[:, :SHIFTED_DIMS] += CONTENT_SHIFT * CONTENT_SCALE
    indices = torch.linspace(0, 299, FRAMES).long()
    return {
        "content": content.contiguous(),
        "style": style.float().contiguous(),
        "boxes": torch.zeros(FRAMES, 4, dtype=torch.int64),
        "fallback_per_frame": torch.zeros(FRAMES, dtype=torch.bool),
        "frame_source": torch.zeros(FRAMES, dtype=torch.uint8),
        "frame_source_names": ["detected", "interpolated", "fallback"],
        "frame_indices": indices,
        "num_fallback": 0,
        "has_fallback": False,
        "num_interpolated": 0,
        "num_video_frames": 300,
        "timings": {"total": 0.0},
        "fingerprint": FINGERPRINT,
    }


def make_catalog(settings, factory, videos: int, val_fraction: float, fakes_per_real: int):
    """Dataset `bench`: `videos` cached videos, split train/val, both classes."""
    val_every = round(1 / val_fraction) if val_fraction > 0 else 0
    counts: dict[str, int] = {}
    with session_scope(factory) as session:
        dataset = Dataset(name=DATASET, format="folder", root_path="/data/bench")
        session.add(dataset)
        session.flush()
        for index in range(videos):
            # Whole groups (one real, then its fakes) go to one split: both keep the ratio.
            group, member = divmod(index, fakes_per_real + 1)
            split = "val" if val_every and group % val_every == val_every - 1 else "train"
            is_fake = member != 0
            label = "fake" if is_fake else "real"
            counts[f"{split}/{label}"] = counts.get(f"{split}/{label}", 0) + 1
            _add_video(session, settings, dataset.id, index, split, label, is_fake)
    return counts


def _add_video(session, settings, dataset_id: int, index: int, split, label, is_fake) -> None:
    content_hash = f"{index + 1:064x}"
    video = Video(
        dataset_id=dataset_id,
        path=f"{split}/{label}/{index:05d}.mp4",
        content_hash=content_hash,
        split=split,
        label=label,
        probe_status="ok",
        is_present=True,
    )
    session.add(video)
    session.flush()
    features = {**video_features(index, is_fake), "video_hash": content_hash}
    add_valid_cache(session, settings, video, features, FINGERPRINT)


# --------------------------------------------------------------------------- timers


class Timers:
    """Wall-clock marks taken by thin wrappers around the training job's building blocks."""

    def __init__(self) -> None:
        self.marks: dict[str, float] = {}
        self.preload: list[dict[str, Any]] = []
        self.epochs: list[float] = []
        self.events: list[dict[str, Any]] = []
        self.datasets: list[Any] = []
        self.hooks: dict[str, list[float]] = {}
        self.loads: list[list[float]] = []

    def install(self) -> None:
        original_dataset = training_loop.CachedFeatureDataset
        original_build = training_loop.build_detector
        original_train = training_loop.train
        timers = self

        class TimedDataset(original_dataset):  # type: ignore[misc, valid-type]
            def __init__(self, items, *, preload: bool = False) -> None:
                start = time.perf_counter()
                super().__init__(items, preload=preload)
                timers.preload.append(
                    {"videos": len(items), "seconds": time.perf_counter() - start}
                )
                timers.datasets.append(self)

        def build_detector(cfg):
            model = original_build(cfg)
            fit = model.fit_input_stats

            def timed_fit(batches) -> None:
                start = time.perf_counter()
                fit(batches)
                timers.marks["fit_input_stats_s"] = time.perf_counter() - start

            model.fit_input_stats = timed_fit
            timers.marks["detector_params"] = sum(p.numel() for p in model.parameters())
            timers.marks["detector_cfg"] = cfg
            return model

        def train(*args, **kwargs):
            timers.marks["train_start"] = time.perf_counter()
            return original_train(*args, **kwargs)

        training_loop.CachedFeatureDataset = TimedDataset
        training_loop.build_detector = build_detector
        training_loop.train = train
        training_loop._save = self._timed("save", training_loop._save)
        training_loop._record_epoch = self._timed("record", training_loop._record_epoch)

    def _timed(self, name: str, function):
        """Wrap one per-epoch hook (checkpoint save, epoch row) to sum its seconds."""
        self.hooks.setdefault(name, [])

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.hooks[name].append(time.perf_counter() - start)

        return timed

    def on_event(self, event: Any) -> None:
        # Batches report progress with an "epoch" too; an epoch's row has its losses.
        if isinstance(event, dict) and "train_loss" in event:
            self.epochs.append(time.perf_counter())
            self.events.append(event)
            self.loads.append(_common.loadavg())
            log(
                f"  epoch {event['epoch']}: {self.epochs[-1] - self._previous():.1f} s, "
                f"train loss {event['train_loss']:.4f} acc {event['train_accuracy']:.3f}, "
                f"val loss {event['val_loss']:.4f} acc {event['val_accuracy']:.3f}"
            )

    def _previous(self) -> float:
        if len(self.epochs) >= 2:
            return self.epochs[-2]
        return self.marks["train_start"]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def current_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --------------------------------------------------------------------------- the run


def production_run(settings, factory, args, counts) -> dict[str, Any]:
    """`plan_training` + `run_job` inline, timed per epoch."""
    train_cfg = TrainCfg(epochs=args.epochs, patience=args.patience or args.epochs)
    timers = Timers()
    timers.install()
    rss_before = current_rss_mib()
    start = time.perf_counter()
    plan = plan_training(
        settings, factory, [DATASET], train_cfg=train_cfg, batch_size=args.batch_size
    )
    planned = time.perf_counter()
    status = run_job(plan.job_id, settings, factory, "bench", on_event=timers.on_event)
    end = time.perf_counter()
    with session_scope(factory) as session:
        run = get_run(session, plan.run.id)
        epochs = run_epochs(session, run.id)
    train_videos = sum(v for k, v in counts.items() if k.startswith("train/"))
    val_videos = sum(v for k, v in counts.items() if k.startswith("val/"))
    marks = timers.epochs
    epoch_s = [b - a for a, b in zip([timers.marks["train_start"], *marks], marks, strict=False)]
    fit_s = timers.marks.get("fit_input_stats_s", 0.0)
    # Epoch 1's interval also holds the one pass that fits the input standardisation.
    epoch_s_net = [epoch_s[0] - fit_s, *epoch_s[1:]] if epoch_s else []
    preload_s = sum(p["seconds"] for p in timers.preload)
    result = {
        "status": status,
        "run_status": run.status,
        "epochs_run": len(epochs),
        "best_epoch": run.best_epoch,
        "train_videos": train_videos,
        "val_videos": val_videos,
        "batch_size": args.batch_size,
        "torch_threads": torch.get_num_threads(),
        "train_cfg": {**train_cfg.__dict__, "pos_weight": run.config["train"]["pos_weight"]},
        "detector_cfg": timers.marks["detector_cfg"].__dict__,
        "detector_params": timers.marks["detector_params"],
        "plan_s": planned - start,
        "preload": timers.preload,
        "preload_s": preload_s,
        "setup_s": timers.marks["train_start"] - planned - preload_s,
        "fit_input_stats_s": fit_s,
        "epoch_s": epoch_s,
        "epoch_s_without_fit": epoch_s_net,
        "median_epoch_s": median(epoch_s_net) if epoch_s_net else None,
        "train_videos_per_s": (train_videos / median(epoch_s_net) if epoch_s_net else None),
        # Inside each epoch's interval: the checkpoints of the previous epoch (best.pt when
        # it improved, last.pt always) and this epoch's row (the event comes after it).
        "save_s": timers.hooks.get("save", []),
        "record_epoch_s": timers.hooks.get("record", []),
        "loadavg_per_epoch": timers.loads,
        "after_last_epoch_s": end - marks[-1] if marks else None,
        "job_wall_s": end - planned,
        "wall_s": end - start,
        "rss_before_mib": rss_before,
        "peak_rss_mib": peak_rss_mib(),
        "history": [
            {
                "epoch": e.epoch,
                "train_loss": e.train_loss,
                "train_accuracy": e.train_accuracy,
                "val_loss": e.val_loss,
                "val_accuracy": e.val_accuracy,
                "lr": e.learning_rate,
            }
            for e in epochs
        ],
    }
    if epoch_s_net:
        result["projected_60_epochs_s"] = 60 * median(epoch_s_net) + preload_s + fit_s
    result["_datasets"] = timers.datasets
    return result


# --------------------------------------------------------------------------- learning


def learning(datasets, args, pos_weight: float, work: Path) -> list[dict[str, Any]]:
    """Train with each (batch size, precision, lr) setting and score a held-out set.

    Each setting runs `model.train.train` (what the job calls) on the first
    `--learning-videos` training videos for `--learning-epochs` epochs, once per seed, and
    is scored in fp32 by `model.evaluate.evaluate` on held-out videos generated apart, so
    that settings are compared by what they learn, not by their own validation loss."""
    from torch.utils.data import Subset

    from model.data import CachedFeatureDataset, make_loader
    from model.detector import DetectorCfg, build_detector
    from model.evaluate import evaluate
    from model.features import save_features
    from model.train import train

    train_set, val_set = datasets
    train_part = Subset(train_set, range(min(args.learning_videos, len(train_set))))
    val_part = Subset(val_set, range(min(args.learning_videos // 4, len(val_set))))
    test_items = []
    for index in range(args.learning_test_videos):
        path = work / "test" / f"{index}.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        is_fake = index % 5 != 0  # the training set's 4 fakes per real
        save_features(path, video_features(10**6 + index, is_fake))
        test_items.append((str(path), float(is_fake)))
    test_set = CachedFeatureDataset(test_items, preload=True)
    test_loader = make_loader(test_set, batch_size=512, shuffle=False)
    rows = []
    for setting, seed in itertools.product(args.learning_settings, args.learning_seeds):
        batch_size, precision, lr = setting
        cfg = TrainCfg(
            epochs=args.learning_epochs,
            patience=args.learning_epochs,
            lr=lr,
            precision=precision,
            pos_weight=pos_weight,
            seed=seed,
        )
        torch.manual_seed(seed)
        model = build_detector(DetectorCfg())
        start = time.perf_counter()
        result = train(
            model,
            make_loader(train_part, batch_size=batch_size, shuffle=True),
            make_loader(val_part, batch_size=512, shuffle=False),
            cfg,
        )
        seconds = time.perf_counter() - start
        metrics = evaluate(model, test_loader).metrics
        row = {"batch_size": batch_size, "precision": precision, "lr": lr, "seed": seed}
        row.update(
            seconds=seconds,
            best_epoch=result.best_epoch,
            best_val_loss=result.best_val_loss,
            test_accuracy=metrics["accuracy"],
            test_roc_auc=metrics["roc_auc"],
            val_loss=[round(row["val_loss"], 4) for row in result.history],
            loadavg=_common.loadavg(),
        )
        rows.append(row)
        log(
            f"  batch {batch_size}, {precision}, lr {lr:g}, seed {seed}: {seconds:.0f} s, best "
            f"epoch {result.best_epoch}, test accuracy {metrics['accuracy']:.4f}, "
            f"AUC {metrics['roc_auc']:.4f}"
        )
    return rows


def _settings(text: str) -> list[tuple[int, str, float]]:
    """'16:fp32:1e-4,128:bf16:3e-4' -> [(16, 'fp32', 1e-4), (128, 'bf16', 3e-4)]."""
    settings = []
    for part in filter(None, text.split(",")):
        batch, precision, lr = part.split(":")
        settings.append((int(batch), precision, float(lr)))
    return settings


# --------------------------------------------------------------------------- the sweep


def sweep(datasets, args, pos_weight: float) -> list[dict[str, Any]]:
    """Time the training step for each (threads, batch size) on the preloaded features."""
    from torch.utils.data import Subset

    train_set, val_set = datasets
    n_train = min(args.sweep_videos, len(train_set))
    n_val = min(max(args.sweep_videos // 4, 1), len(val_set))
    train_part = Subset(train_set, range(n_train))
    val_part = Subset(val_set, range(n_val))
    rows = []
    # Thread counts alternate within each batch size, so load drifting on this shared
    # machine hits both alike.
    settings = itertools.product(args.sweep_batch_sizes, args.sweep_variants, args.sweep_threads)
    for batch_size, variant, threads in settings:
        torch.set_num_threads(threads)
        cpu, wall = time.process_time(), time.perf_counter()
        row = sweep_one(train_part, val_part, batch_size, pos_weight, variant)
        # Cores this process got on average (near `threads` on an idle machine).
        row["cores_used"] = (time.process_time() - cpu) / (time.perf_counter() - wall)
        row.update(threads=threads, batch_size=batch_size, variant=variant)
        row.update(train_videos=n_train, val_videos=n_val)
        per_train, per_val = row["train_s"] / n_train, row["val_s"] / n_val
        row["projected_epoch_s"] = per_train * len(train_set) + per_val * len(val_set)
        row["loadavg"] = _common.loadavg()
        rows.append(row)
        log(
            f"  threads {threads}, batch {batch_size}, {variant}: train {row['train_s']:.1f} s "
            f"({n_train / row['train_s']:.1f} videos/s), val {row['val_s']:.1f} s, "
            f"projected epoch {row['projected_epoch_s']:.1f} s, cores used {row['cores_used']:.2f}"
        )
    return rows


VARIANTS = (
    "default",
    "fused",
    "bf16",
    "bf16+fused",
    "native",
    "fused+native",
    "bf16+fused+native",
)


def sweep_one(
    train_part, val_part, batch_size: int, pos_weight: float, variant: str = "default"
) -> dict[str, Any]:
    """One setting: the production epoch functions on the subset, then the split pass.
    "default" is fp32 with AdamW's default (foreach) step, what production ran before
    precision and fused steps were settings; "fused" builds AdamW with `fused=True`;
    "bf16" trains and validates with `TrainCfg.precision="bf16"`; "native" runs the
    StyleGRU through `nn.GRU` instead of model/gru.py's CPU kernel, as production did
    before the kernel. Production today is "bf16+fused" where the CPU has AMX, "fused"
    elsewhere."""
    parts = set(variant.split("+"))
    precision = "bf16" if "bf16" in parts else "fp32"
    return _sweep_one(
        train_part,
        val_part,
        batch_size,
        pos_weight,
        "fused" in parts,
        precision,
        kernel="native" not in parts,
    )


def _sweep_one(
    train_part,
    val_part,
    batch_size: int,
    pos_weight: float,
    fused: bool,
    precision: str,
    kernel: bool = True,
) -> dict[str, Any]:
    from model.data import make_loader
    from model.detector import DetectorCfg, build_detector
    from model.precision import autocast_for
    from model.train import Mixup, _train_epoch, _validate

    cfg = TrainCfg(pos_weight=pos_weight, precision=precision)
    torch.manual_seed(0)
    model = build_detector(DetectorCfg())
    model.style_gru.cpu_kernel = kernel
    train_loader = make_loader(train_part, batch_size=batch_size, shuffle=True)
    val_loader = make_loader(val_part, batch_size=max(batch_size, 512), shuffle=False)
    model.fit_input_stats(train_loader)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused
    )
    mixer = Mixup(cfg.mixup_alpha, cfg.mixup_prob, cfg.seed)
    device = torch.device("cpu")

    def epoch(loader) -> None:
        _train_epoch(model, loader, optimizer, mixer, device, cfg, lambda index, loss: None)

    epoch(itertools.islice(train_loader, 1))  # warm
    start = time.perf_counter()
    epoch(train_loader)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    with autocast_for(precision, device):
        _validate(model, val_loader, device, cfg.pos_weight)
    val_s = time.perf_counter() - start
    split = split_step(model, train_loader, optimizer, mixer, cfg)
    return {"train_s": train_s, "val_s": val_s, "videos_per_s": len(train_part) / train_s, **split}


def split_step(model, loader, optimizer, mixer, cfg) -> dict[str, Any]:
    """The steps of `_train_epoch`, timed apart over one pass of `loader` (seconds summed)."""
    from model.detector import bce_loss
    from model.precision import autocast_for

    gru_s = [0.0]
    mark = [0.0]
    pre = model.style_gru.register_forward_pre_hook(
        lambda *_: mark.__setitem__(0, time.perf_counter())
    )
    post = model.style_gru.register_forward_hook(
        lambda *_: gru_s.__setitem__(0, gru_s[0] + time.perf_counter() - mark[0])
    )
    parts = dict.fromkeys(("data", "forward", "backward", "optimizer"), 0.0)
    videos = 0
    model.train()
    try:
        iterator = iter(loader)
        while True:
            t0 = time.perf_counter()
            batch = next(iterator, None)
            if batch is None:
                break
            content, style, target = mixer(batch["content"], batch["style"], batch["label"].float())
            t1 = time.perf_counter()
            with autocast_for(cfg.precision, torch.device("cpu")):
                logits = model(content, style).float()
            loss = bce_loss(logits, target, cfg.pos_weight)
            t2 = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            t3 = time.perf_counter()
            optimizer.step()
            loss.item()
            t4 = time.perf_counter()
            for key, seconds in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                parts[key] += seconds
            videos += len(target)
    finally:
        pre.remove()
        post.remove()
    total = sum(parts.values())
    return {
        "split_s": parts,
        "split_total_s": total,
        "forward_gru_s": gru_s[0],
        "split_share": {key: value / total for key, value in parts.items()},
    }


def optimizer_steps(threads: list[int], steps: int = 20) -> list[dict[str, Any]]:
    """Seconds per AdamW step on the detector's parameters: torch's default (foreach)
    implementation, which `model.train` uses, against `fused=True`."""
    from model.detector import DetectorCfg, build_detector

    rows = []
    model = build_detector(DetectorCfg())
    params = [p for p in model.parameters() if p.requires_grad]
    for param in params:
        param.grad = torch.randn_like(param) * 1e-3
    for count, fused in itertools.product(threads, (False, True)):
        torch.set_num_threads(count)
        optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01, fused=fused)
        for _ in range(2):
            optimizer.step()  # warm: creates the state
        start = time.perf_counter()
        for _ in range(steps):
            optimizer.step()
        seconds = (time.perf_counter() - start) / steps
        rows.append({"threads": count, "fused": fused, "step_s": seconds})
        log(f"  AdamW {'fused' if fused else 'foreach'}, {count} threads: {seconds:.4f} s/step")
    return rows


def profile(datasets, args, pos_weight: float) -> dict[str, Any]:
    """torch.profiler over a few training batches: the operators that take the time."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from model.data import make_loader
    from model.detector import DetectorCfg, bce_loss, build_detector
    from model.precision import autocast_for, resolve_precision

    torch.set_num_threads(args.threads or torch.get_num_threads())
    cpu = torch.device("cpu")
    precision = resolve_precision(TrainCfg().precision, cpu)  # as production resolves it
    cfg = TrainCfg(pos_weight=pos_weight, precision=precision)
    torch.manual_seed(0)
    model = build_detector(DetectorCfg()).train()
    loader = make_loader(datasets[0], batch_size=args.batch_size, shuffle=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, fused=True)
    batches = list(itertools.islice(loader, args.profile_batches + 1))

    def step(batch) -> None:
        with autocast_for(precision, cpu):
            logits = model(batch["content"], batch["style"]).float()
        loss = bce_loss(logits, batch["label"].float(), cfg.pos_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step(batches[0])  # warm
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for batch in batches[1:]:
            step(batch)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:15]
    rows = [
        {
            "op": e.key,
            "calls": e.count,
            "self_cpu_s": e.self_cpu_time_total / 1e6,
            "share": e.self_cpu_time_total / total,
        }
        for e in top
    ]
    return {
        "batches": len(batches) - 1,
        "batch_size": args.batch_size,
        "precision": precision,
        "threads": torch.get_num_threads(),
        "total_self_cpu_s": total / 1e6,
        "top_ops": rows,
    }


# --------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 videos, 2 epochs")
    parser.add_argument("--videos", type=int, help="cached videos (default 3431, quick 200)")
    parser.add_argument("--epochs", type=int, help="epochs (default 60, quick 2)")
    parser.add_argument("--patience", type=int, help="early-stopping patience (default: epochs)")
    parser.add_argument("--batch-size", type=int, default=16, help="videos per batch (16)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--fakes-per-real", type=int, default=4)
    parser.add_argument("--sweep", action="store_true", help="time batch sizes x threads")
    parser.add_argument("--sweep-batch-sizes", type=_ints, default=[16, 64, 128])
    parser.add_argument("--sweep-threads", type=_ints, default=[1, 2])
    parser.add_argument("--sweep-videos", type=int, default=512, help="train videos per row")
    parser.add_argument(
        "--sweep-variants",
        type=_variants,
        default=["default"],
        help=f"comma-separated, of {', '.join(VARIANTS)} (default: default)",
    )
    parser.add_argument(
        "--learning", action="store_true", help="compare what batch/precision/lr settings learn"
    )
    parser.add_argument(
        "--learning-settings",
        type=_settings,
        default=_settings("16:fp32:1e-4,128:bf16:1e-4,128:bf16:3e-4"),
        help="comma-separated batch:precision:lr (default 16:fp32:1e-4,128:bf16:1e-4,...)",
    )
    parser.add_argument("--learning-seeds", type=_ints, default=[0, 1])
    parser.add_argument("--learning-epochs", type=int, default=15)
    parser.add_argument("--learning-videos", type=int, default=1024, help="train videos")
    parser.add_argument("--learning-test-videos", type=int, default=1000)
    parser.add_argument("--profile", action="store_true", help="torch.profiler top operators")
    parser.add_argument("--profile-batches", type=int, default=10)
    parser.add_argument("--no-train", action="store_true", help="skip the production run")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--out", type=Path, help="write the JSON here (default bench/results)")
    parser.add_argument("--no-write", action="store_true", help="write no results file")
    args = parser.parse_args(argv)
    args.videos = args.videos or (200 if args.quick else 3431)
    args.epochs = args.epochs or (2 if args.quick else 60)
    return args


def _variants(text: str) -> list[str]:
    names = [x for x in text.split(",") if x]
    unknown = [x for x in names if x not in VARIANTS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown variants {unknown}; known: {VARIANTS}")
    return names


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main(argv=None) -> int:
    args = parse_args(argv)
    # A SIGTERM (a benchmark stopped by hand) still removes the temporary DDM_HOME.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine()
    info.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
    work = Path(tempfile.mkdtemp(prefix="ddm-bench-train-"))
    result: dict[str, Any] = {"benchmark": "train", "quick": args.quick, "machine": info}
    try:
        settings = load_settings(
            home=str(work / "home"), database_url=f"sqlite:///{work / 'catalog.sqlite3'}"
        )
        factory = session_factory(settings.db_url)  # migrates the new catalog
        start = time.perf_counter()
        counts = make_catalog(
            settings, factory, args.videos, args.val_fraction, args.fakes_per_real
        )
        files = list(Path(settings.cache_dir).rglob("*.pt"))
        result["generate"] = {
            "videos": args.videos,
            "counts": counts,
            "seconds": time.perf_counter() - start,
            "file_bytes_median": median([f.stat().st_size for f in files]),
            "total_mib": sum(f.stat().st_size for f in files) / 2**20,
        }
        seconds = result["generate"]["seconds"]
        log(f"generated {args.videos} cached videos {counts} in {seconds:.1f} s")
        datasets = None
        pos_weight = counts.get("train/real", 1) / max(counts.get("train/fake", 1), 1)
        if not args.no_train:
            run = production_run(settings, factory, args, counts)
            datasets = run.pop("_datasets")
            result["run"] = run
            if "projected_60_epochs_s" in run:
                # The interface: measured epochs over the 3,431 videos, projected.
                result["minutes_for_60_epochs"] = run["projected_60_epochs_s"] / 60
            log(
                f"run {run['status']}: {run['epochs_run']} epochs, "
                f"preload {run['preload_s']:.1f} s, median epoch {run['median_epoch_s']:.1f} s, "
                f"peak RSS {run['peak_rss_mib']:.0f} MiB"
            )
        if args.learning:
            datasets = datasets or _load_datasets(settings, factory)
            result["learning"] = learning(datasets, args, pos_weight, work)
        if args.sweep or args.profile:
            if datasets is None:
                datasets = _load_datasets(settings, factory)
            threads = torch.get_num_threads()
            if args.sweep:
                result["sweep"] = sweep(datasets, args, pos_weight)
                result["optimizer_step"] = optimizer_steps(args.sweep_threads)
            if args.profile:
                result["profile"] = profile(datasets, args, pos_weight)
            torch.set_num_threads(threads)
        result["peak_rss_mib"] = peak_rss_mib()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    # With --json the tables go to stderr and the JSON alone to stdout.
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        show(result)
        if not args.no_write:
            _write(result, args)
    if args.json:
        print(json.dumps(result, default=str))
    return 0


def _load_datasets(settings, factory):
    from ddm.catalog import runs
    from model.data import CachedFeatureDataset

    with session_scope(factory) as session:
        selection = runs.training_selection(session, [DATASET])
    items = {
        role: [
            (settings.cache_dir / m.cache_path, float(m.label == "fake"))
            for m in getattr(selection, role)
        ]
        for role in ("train", "val")
    }
    return tuple(CachedFeatureDataset(items[r], preload=True) for r in ("train", "val"))


def _write(result: dict[str, Any], args) -> None:
    if args.out is None:
        write_results("train.quick" if args.quick else "train", result)
        return
    from _common import loadavg

    with atomic_write(args.out, "w") as handle:
        json.dump({**result, "loadavg_end": loadavg()}, handle, indent=2, default=str)
        handle.write("\n")
    print(f"\nresults written to {args.out}")


def show(result: dict[str, Any]) -> None:
    run = result.get("run")
    if run:
        rows = [
            [h["epoch"], s, h["train_loss"], h["train_accuracy"], h["val_loss"], h["val_accuracy"]]
            for h, s in zip(run["history"], run["epoch_s"], strict=True)
        ]
        print_table(
            f"train job: {run['train_videos']} train + {run['val_videos']} val videos, batch "
            f"{run['batch_size']}, {run['torch_threads']} threads (epoch 1 includes fitting "
            f"the input statistics, {run['fit_input_stats_s']:.2f} s)",
            ["epoch", "seconds", "train loss", "train acc", "val loss", "val acc"],
            rows,
        )
        print(
            f"preload {run['preload_s']:.2f} s, setup {run['setup_s']:.2f} s, median epoch "
            f"{run['median_epoch_s']:.2f} s ({run['train_videos_per_s']:.1f} train videos/s), "
            f"job wall {run['job_wall_s']:.1f} s, peak RSS {run['peak_rss_mib']:.0f} MiB"
        )
        if run["save_s"]:
            print(
                f"per epoch, inside the intervals above: checkpoint save median "
                f"{median(run['save_s']):.2f} s, epoch row median "
                f"{median(run['record_epoch_s']):.3f} s"
            )
        if "projected_60_epochs_s" in run:
            print(f"60 epochs at this rate: {run['projected_60_epochs_s'] / 60:.1f} min")
    if result.get("sweep"):
        print_table(
            "training step by threads and batch size (seconds over the subset; split = one "
            "more instrumented pass)",
            [
                "threads",
                "batch",
                "variant",
                "train s",
                "videos/s",
                "val s",
                "epoch s (proj.)",
                "data",
                "forward",
                "of which GRU",
                "backward",
                "optimizer",
            ],
            [
                [
                    r["threads"],
                    r["batch_size"],
                    r["variant"],
                    r["train_s"],
                    r["videos_per_s"],
                    r["val_s"],
                    r["projected_epoch_s"],
                    *(r["split_s"][k] for k in ("data", "forward")),
                    r["forward_gru_s"],
                    *(r["split_s"][k] for k in ("backward", "optimizer")),
                ]
                for r in result["sweep"]
            ],
        )
    if result.get("optimizer_step"):
        print_table(
            "AdamW step on the detector's parameters (s/step)",
            ["threads", "implementation", "s/step"],
            [
                [r["threads"], "fused" if r["fused"] else "foreach (default)", r["step_s"]]
                for r in result["optimizer_step"]
            ],
        )
    if result.get("profile"):
        prof = result["profile"]
        print_table(
            f"top operators, {prof['batches']} batches of {prof['batch_size']}, "
            f"{prof['threads']} threads (self CPU)",
            ["op", "calls", "self s", "share"],
            [[r["op"], r["calls"], r["self_cpu_s"], r["share"]] for r in prof["top_ops"]],
        )


if __name__ == "__main__":
    sys.exit(main())
