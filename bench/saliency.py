"""Saliency on the face crops (`ddm predict --explain`): which method points at the
manipulation, and what each costs per video.

Renders pairs of the demo's clips (a real and a fake of one seed differ by the artefact
alone, whose mask the generator returns), extracts them with the demo's small backbones
(random weights, T = 8), trains the demo-size detector with the demo's settings, then
explains the held-out videos with every method. For each: the pointing game (the share of
a video's saliency inside the artefact's mask, against the mask's share of the crop; a
real is measured on its fake twin's region) and the seconds per video. A last row,
"input only", is |x - still copy| without the detector: what the videos' own frame-to-frame
change localises, so the gradient's part can be told from the input's.

    .venv/bin/python bench/saliency.py [--quick] [--method Mouth] [--full-cost]

`--full-cost` also times the default method on a real clip with the full backbones
(pSp IR-SE-50 at 256 px, Slow R50 at 112 px, T = 32; random weights, same cost).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (puts the repository on sys.path)
import numpy as np
import torch
from _common import MEDIA, machine, print_table, write_results

from ddm.synthetic.clips import ARTEFACTS, ClipCfg, render_clip_with_masks
from model.detector import DetectorCfg, build_detector
from model.faces import crop_resize
from model.features import build_extractor
from model.saliency import (
    GRADCAM,
    GRADIENT,
    INTEGRATED,
    SMOOTHGRAD,
    CropScorer,
    SaliencyCfg,
    pointing_share,
    saliency_maps,
)
from model.train import TrainCfg, train
from tasks.demo import CLIP, SIZES
from tasks.extraction import RANDOM_WEIGHTS_SEED, extractor_cfg

VARIANTS = (
    SaliencyCfg(GRADIENT),
    SaliencyCfg(SMOOTHGRAD, samples=4),
    SaliencyCfg(INTEGRATED, samples=4),
    SaliencyCfg(INTEGRATED, samples=4, baseline="black"),
    SaliencyCfg(GRADCAM),
)


def render_pairs(root: Path, seeds: range, clip: ClipCfg, method: str) -> list[dict[str, Any]]:
    """A real and a fake per seed, each with the generator's masks (a real: its twin's)."""
    items = []
    for seed in seeds:
        _, masks = render_clip_with_masks(root / f"{seed}-fake.mp4", seed, clip, ARTEFACTS[method])
        render_clip_with_masks(root / f"{seed}-real.mp4", seed, clip)
        for label in ("real", "fake"):
            items.append({"path": root / f"{seed}-{label}.mp4", "label": label, "masks": masks})
    return items


def extract(extractor: Any, items: list[dict[str, Any]]) -> None:
    side = extractor.cfg.face_size
    for item in items:
        features = extractor.extract(item["path"])
        track = extractor.face_track(item["path"])
        item["content"], item["style"], item["crops"] = (
            features["content"],
            features["style"],
            track.crops,
        )
        item["region"] = np.stack(
            [
                crop_resize(item["masks"][int(i)], box, side) > 0.5
                for i, box in zip(track.frame_indices, track.boxes, strict=True)
            ]
        )


class Loader:
    def __init__(self, items: list[dict[str, Any]], shuffle: bool, batch: int = 8) -> None:
        self.items, self.shuffle, self.batch = items, shuffle, batch

    def __iter__(self):  # noqa: ANN204
        order = torch.randperm(len(self.items)).tolist() if self.shuffle else range(len(self.items))
        items = [self.items[i] for i in order]
        for start in range(0, len(items), self.batch):
            chunk = items[start : start + self.batch]
            yield {
                "content": torch.stack([x["content"] for x in chunk]),
                "style": torch.stack([x["style"] for x in chunk]),
                "label": torch.tensor([float(x["label"] == "fake") for x in chunk]),
            }

    def __len__(self) -> int:
        return -(-len(self.items) // self.batch)


def trained_detector(train_items: list, val_items: list, epochs: int) -> torch.nn.Module:
    size = SIZES["default"]
    model = build_detector(DetectorCfg())
    cfg = TrainCfg(epochs=epochs, lr=size.lr, patience=epochs, seed=size.seed, precision="fp32")
    train(model, Loader(train_items, True), Loader(val_items, False), cfg)
    return model.eval()


def measure(detector: Any, extractor: Any, items: list, cfg: SaliencyCfg | None) -> dict:
    shares: dict[str, list[float]] = {"real": [], "fake": []}
    seconds = []
    for item in items:
        if cfg is None:  # input only: the frame-to-frame change, no detector
            pixels = torch.from_numpy(item["crops"]).float()
            maps = (pixels - pixels.mean(0, keepdim=True)).abs().sum(-1).numpy()
        else:
            result = saliency_maps(detector, extractor, item["crops"], cfg)
            maps = result.maps
            seconds.append(result.seconds)
        shares[item["label"]].append(pointing_share(maps, item["region"]))
    return {
        "fake_share": float(np.mean(shares["fake"])),
        "fake_share_min": float(np.min(shares["fake"])),
        "real_share": float(np.mean(shares["real"])),
        "real_share_max": float(np.max(shares["real"])),
        "seconds_per_video": float(np.mean(seconds)) if seconds else None,
    }


def full_cost(cfg: SaliencyCfg) -> dict[str, Any]:
    """Seconds of the saliency maps of one real clip with the full backbones, T = 32."""
    clip = MEDIA / "ff++" / "original_sequences" / "youtube" / "c23" / "videos" / "004.mp4"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_WEIGHTS_SEED)
        extractor = build_extractor(extractor_cfg(32), allow_random_weights=True)
    crops = extractor.face_track(clip).crops
    detector = build_detector(DetectorCfg()).eval()
    start = time.perf_counter()
    extractor.extract(clip)
    extract_seconds = time.perf_counter() - start
    scorer = CropScorer(detector, extractor)
    prepared = scorer.prepare(crops)
    start = time.perf_counter()
    scorer.gradient(prepared, prepared.pixels)
    gradient_seconds = time.perf_counter() - start
    result = saliency_maps(detector, extractor, crops, cfg)
    return {
        "clip": str(clip.relative_to(MEDIA)),
        "method": f"{cfg.method} x{cfg.samples}",
        "extract_seconds": extract_seconds,
        "one_gradient_seconds": gradient_seconds,
        "saliency_seconds": result.seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer videos and epochs")
    parser.add_argument("--method", default="Mouth", choices=sorted(ARTEFACTS))
    parser.add_argument("--full-cost", action="store_true")
    args = parser.parse_args()
    counts = (6, 3, 2, 15) if args.quick else (12, 4, 2, 30)  # train, val, test pairs; epochs
    results: dict[str, Any] = {"machine": machine(), "artefact": args.method, "pairs": counts[:3]}
    torch.manual_seed(RANDOM_WEIGHTS_SEED)
    extractor = build_extractor(extractor_cfg(8, "small"), allow_random_weights=True)
    clip = ClipCfg(frames=24, size=CLIP.size, strength=CLIP.strength)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        train_items, val_items, test_items = (
            render_pairs(Path(folder), range(base, base + count), clip, args.method)
            for base, count in zip((0, 1000, 2000), counts[:3], strict=True)
        )
        for items in (train_items, val_items, test_items):
            extract(extractor, items)
        results["data_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    detector = trained_detector(train_items, val_items, counts[3])
    results["train_seconds"] = time.perf_counter() - start
    with torch.no_grad():
        logits = [float(detector(x["content"][None], x["style"][None])[0]) for x in test_items]
    results["test_accuracy"] = float(
        np.mean(
            [(s >= 0) == (x["label"] == "fake") for s, x in zip(logits, test_items, strict=True)]
        )
    )
    results["area_share"] = float(np.mean([x["region"].mean() for x in test_items]))
    rows, variants = [], {}
    for cfg in (*VARIANTS, None):
        name = "input only" if cfg is None else _name(cfg)
        variants[name] = measure(detector, extractor, test_items, cfg)
        v = variants[name]
        rows.append(
            [
                name,
                v["fake_share"],
                v["fake_share_min"],
                v["real_share"],
                v["real_share_max"],
                v["seconds_per_video"],
            ]
        )
        print(name, v, flush=True)
    results["variants"] = variants
    print(f"area share {results['area_share']:.3f}, test accuracy {results['test_accuracy']:.2f}")
    if args.full_cost:
        results["full_cost"] = full_cost(SaliencyCfg())
        print("full backbones:", results["full_cost"], flush=True)
    print_table(
        f"pointing game ({args.method}; mask area share {results['area_share']:.3f}, "
        f"test accuracy {results['test_accuracy']:.2f})",
        ["method", "fake share", "fake min", "real share", "real max", "s/video"],
        rows,
    )
    write_results("saliency.quick" if args.quick else "saliency", results)


def _name(cfg: SaliencyCfg) -> str:
    if cfg.method == INTEGRATED:
        return f"integrated x{cfg.samples} ({cfg.baseline})"
    return cfg.method if cfg.method in (GRADIENT, GRADCAM) else f"{cfg.method} x{cfg.samples}"


if __name__ == "__main__":
    main()
