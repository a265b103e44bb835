"""`ddm demo`: the whole system on generated face clips, inline on SQLite (jobs layer).

Two small datasets are generated in real layouts (an FF++-style tree and a DFDC-style
part, see `ddm.synthetic`), then the very functions behind `ddm ingest`, `ddm extract`,
`ddm train` and `ddm report` run on them: the detector is trained on the FF++-style
tree, reported on its held-out test split (in-domain) and on the DFDC-style part, whose
manipulation it never saw (cross-domain), as the seed does with DFDC.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from ddm.config import Settings
from ddm.synthetic.clips import ClipCfg
from ddm.vocab import Split

FF_NAME, DFDC_NAME = "demo-ff", "demo-dfdc"
BACKBONES = "small"  # CPU-sized pSp and Slow R50 variants, random weights


@dataclass(frozen=True)
class DemoSize:
    """How much the demo generates and trains."""

    name: str
    ff_pairs: dict[Split, int]  # official FF++ pairs per split; 2 reals + 2 fakes each
    dfdc_reals: int  # each with one fake
    clip: ClipCfg
    frames: int  # sampled per video (T)
    epochs: int
    lr: float = 1e-3
    batch_size: int = 8
    seed: int = 0


# Artefact strength, from measurements with the small backbones at random weights (T = 8,
# 40-frame clips; bench/README.md): at 0.15, 32 training videos reached test accuracy 0.69
# and AUC 0.70; at 0.3, 48 training videos reached 0.95 and 1.0.
CLIP = ClipCfg(frames=40, size=256, strength=0.3)
SIZES = {
    "default": DemoSize("default", {Split.TRAIN: 12, Split.VAL: 4, Split.TEST: 5}, 10, CLIP, 8, 30),
    "small": DemoSize("small", {Split.TRAIN: 8, Split.VAL: 3, Split.TEST: 4}, 5, CLIP, 8, 30),
}


@dataclass
class DemoHooks:
    """Progress: `start(step, total)` before a step, `advance()` per unit, `say(line)`."""

    start: Callable[[str, int], None] = lambda step, total: None
    advance: Callable[[], None] = lambda: None
    say: Callable[[str], None] = lambda line: None


@dataclass
class DemoResult:
    workspace: Path
    size: str
    steps: dict[str, float] = field(default_factory=dict)
    run_id: int | None = None
    in_domain: dict[str, Any] = field(default_factory=dict)  # report of demo-ff, test
    cross_domain: dict[str, Any] = field(default_factory=dict)  # report of demo-dfdc
    reports: dict[str, str] = field(default_factory=dict)  # report.md per evaluation
    fallback_rate: float | None = None
    seconds: float = 0.0


def demo_settings(workspace: Path, base: Settings) -> Settings:
    """The demo's own catalog and caches in `workspace`: SQLite, no broker."""
    return base.model_copy(
        update={
            "home": workspace,
            "database_url": SecretStr(f"sqlite:///{(workspace / 'ddm.sqlite3').as_posix()}"),
            "broker_url": None,
            "cache_dir": workspace / "cache",
            "weights_dir": workspace / "weights",
        }
    )


def run_demo(
    base: Settings, size: DemoSize, *, keep: bool = False, hooks: DemoHooks | None = None
) -> DemoResult:
    """Generate, ingest, extract, train and report; returns the numbers and where things are."""
    hooks = hooks or DemoHooks()
    workspace = Path(base.home) / "demo"
    if workspace.exists() and not keep:
        shutil.rmtree(workspace)
    workspace.mkdir(parents=True, exist_ok=True)
    settings = demo_settings(workspace, base)
    result = DemoResult(workspace, size.name)
    start = time.perf_counter()
    steps = _Steps(settings, size, hooks, result)
    for name, step in (
        ("generate", steps.generate),
        ("ingest", steps.ingest),
        ("extract", steps.extract),
        ("train", steps.train),
        ("report", steps.report),
    ):
        began = time.perf_counter()
        step()
        result.steps[name] = time.perf_counter() - began
    result.seconds = time.perf_counter() - start
    return result


class _Steps:
    """The demo's steps, each the code path of one command."""

    def __init__(self, settings: Settings, size: DemoSize, hooks: DemoHooks, result: DemoResult):
        from tasks.context import session_factory

        self.settings, self.size, self.hooks, self.result = settings, size, hooks, result
        self.data = result.workspace / "data"
        self.factory = session_factory(settings.db_url)

    def generate(self) -> None:
        from ddm.synthetic.trees import build_dfdc_tree, build_ffpp_tree

        size = self.size
        total = 4 * sum(size.ff_pairs.values()) + 2 * size.dfdc_reals
        self.hooks.start("generating face clips", total)
        on_clip = lambda path: self.hooks.advance()  # noqa: E731
        if not (self.data / "ff").exists():
            build_ffpp_tree(
                self.data / "ff", size.ff_pairs, size.clip, seed=size.seed, on_clip=on_clip
            )
            build_dfdc_tree(
                self.data / "dfdc", size.dfdc_reals, size.clip, seed=size.seed, on_clip=on_clip
            )

    def ingest(self) -> None:
        from ddm.services.ingest import ingest_dataset

        self.hooks.start("ingesting", 2)
        for root, fmt, name in (
            (self.data / "ff", "ffpp", FF_NAME),
            (self.data / "dfdc", "dfdc", DFDC_NAME),
        ):
            ingest_dataset(self.factory, root, format=fmt, name=name, workers=2)
            self.hooks.advance()

    def extract(self) -> None:
        from tasks.extraction import extract_dataset

        for name in (FF_NAME, DFDC_NAME):
            run = extract_dataset(
                self.settings,
                self.factory,
                name,
                frames=self.size.frames,
                backbones=BACKBONES,
                allow_random=True,
                on_plan=lambda plan, name=name: self.hooks.start(f"extracting {name}", plan.videos),
                on_video=lambda outcome: self.hooks.advance(),
            )
            failed = [s for s in run.dispatched.statuses.values() if s != "succeeded"]
            if failed:
                raise RuntimeError(f"extraction of {name}: {len(failed)} jobs did not succeed")

    def train(self) -> None:
        from model.train import TrainCfg
        from tasks.training import train_datasets

        size = self.size
        self.hooks.start(f"training on {FF_NAME}", size.epochs)
        cfg = TrainCfg(epochs=size.epochs, lr=size.lr, patience=size.epochs, seed=size.seed)
        run = train_datasets(
            self.settings,
            self.factory,
            [FF_NAME],
            train_cfg=cfg,
            batch_size=size.batch_size,
            on_epoch=lambda metrics: self.hooks.advance(),
        )
        self.result.run_id = run.plan.run.id

    def report(self) -> None:
        from ddm.catalog.stats import fallback_frame_rate
        from ddm.db import session_scope
        from tasks.evaluation import evaluate_runs
        from tasks.report import build_report
        from tasks.report_files import write_report_files

        self.hooks.start("reporting", 2)
        for key, name, split in (("in_domain", FF_NAME, "test"), ("cross_domain", DFDC_NAME, None)):
            plan, _ = evaluate_runs(self.settings, self.factory, name, split=split)
            document = build_report(self.factory, plan)
            out = self.result.workspace / f"report-{name}"
            write_report_files(document, out, self.factory, Path(self.settings.cache_dir or ""))
            setattr(self.result, key, document)
            self.result.reports[name] = str(out / "report.md")
            self.hooks.advance()
        with session_scope(self.factory) as session:
            self.result.fallback_rate = fallback_frame_rate(session, [FF_NAME, DFDC_NAME])


def rerun_commands(result: DemoResult, size: DemoSize) -> list[str]:
    """The commands that redo each step by hand on the demo's workspace."""
    env = f"DDM_HOME={result.workspace}"
    data = result.workspace / "data"
    extract = f"--frames {size.frames} --backbones {BACKBONES} --allow-random-weights"
    return [
        f"{env} ddm ingest {data / 'ff'} --format ffpp --name {FF_NAME}",
        f"{env} ddm ingest {data / 'dfdc'} --format dfdc --name {DFDC_NAME}",
        f"{env} ddm extract --dataset {FF_NAME} {extract}",
        f"{env} ddm extract --dataset {DFDC_NAME} {extract}",
        f"{env} ddm train --datasets {FF_NAME} --epochs {size.epochs} --lr {size.lr} "
        f"--batch-size {size.batch_size} --patience {size.epochs} --seed {size.seed}",
        f"{env} ddm report --eval {FF_NAME} --split test --out {result.workspace}/report-{FF_NAME}",
        f"{env} ddm report --eval {DFDC_NAME} --out {result.workspace}/report-{DFDC_NAME}",
        f"{env} ddm stats",
    ]


def serve_command(result: DemoResult) -> str:
    """The command that shows the demo's catalog, runs and reports in a browser."""
    return f"DDM_HOME={result.workspace} ddm serve"


def summary(result: DemoResult) -> dict[str, Any]:
    """The demo's numbers as one JSON-ready document (`ddm demo --json`)."""
    (own,) = result.in_domain["runs"]
    (other,) = result.cross_domain["runs"]
    return {
        "accuracy": own["accuracy"],
        "auc": own["auc"],
        "held_out": own["held_out"],
        "n_videos": own["n_held_out"],  # what accuracy and AUC cover
        "cross_dataset": {
            "dataset": DFDC_NAME,
            "accuracy": other["accuracy"],
            "auc": other["auc"],
            "n_videos": other["n_videos"],
        },
        "run_id": result.run_id,
        "size": result.size,
        "seconds": result.seconds,
        "steps": result.steps,
        "fallback_rate": result.fallback_rate,
        "workspace": str(result.workspace),
        "reports": result.reports,
    }
