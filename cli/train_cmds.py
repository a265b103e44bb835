"""`ddm train` and `ddm runs list|show` (CLI layer)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import click

from cli.app import App
from cli.output import output_options, table, write_json
from ddm.errors import DdmError
from ddm.vocab import JobStatus

EPOCH_COLUMNS = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"]
RUN_COLUMNS = ["id", "name", "datasets", "status", "train_videos", "val_videos", "best_epoch"]
DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


class TrainingDidNotSucceed(DdmError):
    """The training job failed or was cancelled."""


def _datasets(_: Any, __: Any, value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise click.BadParameter("name at least one dataset, e.g. --datasets ff,celebdf")
    return list(dict.fromkeys(names))


def _device(_: Any, __: Any, value: str) -> str:
    # Checked here, before any row is written; whether the machine has it is the job's.
    if not DEVICE.match(value):
        raise click.BadParameter(f"{value!r}: one of auto, cpu, cuda or cuda:N")
    return value


class TrainCfgDefault(click.Option):
    """An option whose default is the `TrainCfg` field of the same name, read when it is
    needed (parsing, or rendering `ddm train --help`): the command cannot disagree with the
    training configuration, and importing the CLI still imports no torch."""

    def get_default(self, ctx: click.Context, call: bool = True) -> Any:
        import dataclasses

        from model.train import TrainCfg

        fields = {field.name: field.default for field in dataclasses.fields(TrainCfg)}
        return fields[self.name or ""]


@click.command("train")
@click.option("--datasets", required=True, callback=_datasets, help="Comma-separated names.")
@click.option("--name", help="Run name (default: the datasets and a number, e.g. ff-1).")
@click.option("--epochs", cls=TrainCfgDefault, type=click.IntRange(1), show_default=True)
@click.option(
    "--lr", cls=TrainCfgDefault, type=click.FloatRange(min=0, min_open=True), show_default=True
)
@click.option("--batch-size", type=click.IntRange(1), default=16, show_default=True)
@click.option("--mixup-alpha", cls=TrainCfgDefault, type=click.FloatRange(min=0), show_default=True)
@click.option("--mixup-prob", cls=TrainCfgDefault, type=click.FloatRange(0, 1), show_default=True)
@click.option("--patience", cls=TrainCfgDefault, type=click.IntRange(1), show_default=True)
# numpy's and torch's generators both take seeds in [0, 2**32).
@click.option("--seed", cls=TrainCfgDefault, type=click.IntRange(0, 2**32 - 1), show_default=True)
@click.option(
    "--device",
    default="auto",
    show_default=True,
    callback=_device,
    help="auto, cpu, cuda or cuda:N.",
)
@click.option(
    "--precision",
    cls=TrainCfgDefault,
    type=click.Choice(["auto", "fp32", "bf16"]),
    show_default=True,
    help="bf16 autocast (fp32 weights); auto: bf16 on AMX CPUs and bf16 GPUs, else fp32.",
)
@click.option(
    "--deterministic", is_flag=True, help="Deterministic GPU kernels: repeatable, slower."
)
@click.option("--fingerprint", help="Extractor whose caches to use (default: most videos).")
@click.option("--no-class-balance", is_flag=True, help="Do not weight the loss by the class sizes.")
@click.option("--wait", is_flag=True, help="With a broker: follow the job until it ends.")
@output_options
@click.pass_obj
def train(app: App, datasets: list[str], wait: bool, as_json: bool, **options: Any) -> None:
    """Train a detector on the cached features of the datasets' train and val splits.

    The test split is never read. Without DDM_BROKER_URL the run trains here, an epoch
    per line; with a broker it is submitted to a GPU worker.

    \b
    Examples:
      ddm train --datasets ff
      ddm train --datasets ff,celebdf --epochs 60 --name paper-union
      DDM_BROKER_URL=redis://localhost:6379/0 ddm train --datasets ff --wait
    """
    from tasks.training import train_datasets

    with _training_progress(app, options["epochs"]) as live:
        run = train_datasets(
            app.settings,
            app.session_factory,
            datasets,
            on_plan=lambda plan: _describe_plan(app, plan),
            on_epoch=lambda metrics: (_describe_epoch(app, metrics), live.epoch(metrics)),
            on_batch=live.batch,
            **_plan_options(options),
        )
    plan, dispatched = run.plan, run.dispatched
    if dispatched.sent and not wait:
        app.err.print(f"submitted run {plan.run.id} ({plan.run.name}) as job {plan.job_id}")
        _print_run(app, plan.run.id, as_json)
        return
    if dispatched.sent:
        from cli.job_cmds import follow_jobs

        follow_jobs(app, [plan.job_id], interval=1.0)
    _print_run(app, plan.run.id, as_json)
    _fail_unless_succeeded(app, plan.run.id)


def _plan_options(options: dict[str, Any]) -> dict[str, Any]:
    from model.train import TrainCfg

    train_cfg = TrainCfg(
        epochs=options["epochs"],
        lr=options["lr"],
        mixup_alpha=options["mixup_alpha"],
        mixup_prob=options["mixup_prob"],
        patience=options["patience"],
        seed=options["seed"],
        deterministic=options["deterministic"],
        precision=options["precision"],
    )
    return {
        "train_cfg": train_cfg,
        "name": options["name"],
        "fingerprint": options["fingerprint"],
        "device": options["device"],
        "batch_size": options["batch_size"],
        "class_balance": not options["no_class_balance"],
    }


def _describe_plan(app: App, plan: Any) -> None:
    selection = plan.selection
    covered = selection.coverage.get(selection.fingerprint, 0)
    total = sum(selection.coverage.values())
    say = app.err.print
    say(
        f"run {plan.run.id} ({plan.run.name}): extractor {selection.fingerprint[:19]}, "
        f"the one covering most videos ({covered} of {total} with a valid cache)",
        markup=False,
        highlight=False,
    )
    for role, counts in plan.class_counts.items():
        say(f"  {role}: {counts['real']} real, {counts['fake']} fake", markup=False)
    left_out = {reason: n for reason, n in selection.left_out.items() if n}
    if left_out:
        reasons = ", ".join(f"{n} {reason}" for reason, n in left_out.items())
        say(f"  left out of train/val: {reasons}", markup=False, highlight=False)


def _describe_epoch(app: App, metrics: dict[str, Any]) -> None:
    app.err.print(
        f"epoch {metrics['epoch']}: loss {metrics['train_loss']:.4f} / "
        f"{metrics['val_loss']:.4f}, accuracy {metrics['train_accuracy']:.3f} / "
        f"{metrics['val_accuracy']:.3f} (train / val), lr {metrics['lr']:.2e}",
        markup=False,
        highlight=False,
    )


class _Live:
    """Bars for the epochs and the current epoch's batches, with the latest losses; does
    nothing without a terminal, where the line per epoch says it all."""

    def __init__(self, progress: Any = None, epochs: int = 0) -> None:
        self.progress = progress
        if progress is not None:
            self.epochs = progress.add_task("epochs", total=epochs, loss="")
            self.batches = progress.add_task("batches", total=None, loss="")

    def batch(self, event: dict[str, Any]) -> None:
        if self.progress is not None:
            loss = f"loss {event['loss']:.4f}"
            self.progress.update(
                self.batches, total=event["batches"], completed=event["batch"], loss=loss
            )

    def epoch(self, metrics: dict[str, Any]) -> None:
        if self.progress is not None:
            losses = f"loss {metrics['train_loss']:.4f} / {metrics['val_loss']:.4f}"
            self.progress.update(self.epochs, completed=metrics["epoch"], loss=losses)
            self.progress.reset(self.batches, loss="")


@contextlib.contextmanager
def _training_progress(app: App, epochs: int) -> Iterator[_Live]:
    """Live bars on stderr in a terminal (not with --quiet, nor when piped)."""
    from rich.progress import TextColumn

    from cli.progress import live_progress

    with live_progress(app, TextColumn("{task.fields[loss]}")) as progress:
        yield _Live(progress, epochs)


def _fail_unless_succeeded(app: App, run_id: int) -> None:
    from ddm.catalog.runs import get_run

    with app.session() as session:
        run = get_run(session, run_id)
    if run.status != JobStatus.SUCCEEDED:
        kept = f"; best checkpoint kept: {run.checkpoint_path}" if run.checkpoint_path else ""
        raise TrainingDidNotSucceed(f"run {run_id} {run.status}: {run.error or ''}{kept}")


# --------------------------------------------------------------------------- ddm runs


@click.group("runs")
def runs_group() -> None:
    """List or show training runs.

    \b
    Examples:
      ddm runs list
      ddm runs show 3 --json
    """


@runs_group.command("list")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@output_options
@click.pass_obj
def runs_list(app: App, limit: int, as_json: bool) -> None:
    """List the most recent runs first.

    \b
    Examples:
      ddm runs list --json | jq '.[] | select(.status == "succeeded") | .id'
    """
    from ddm.services.listings import run_rows

    with app.session() as session:
        rows = run_rows(session, limit=limit)
    if as_json:
        write_json(rows)
        return
    for row in rows:
        row["datasets"] = ",".join(row["datasets"])
    table(app.out, rows, RUN_COLUMNS, empty="no runs yet; `ddm train --datasets NAME`")


@runs_group.command("show")
@click.argument("run")
@output_options
@click.pass_obj
def runs_show(app: App, run: str, as_json: bool) -> None:
    """Show one run (by id or name): its config, sizes, curve and files.

    \b
    Examples:
      ddm runs show 3
      ddm runs show ff-1 --json | jq .epochs
    """
    _print_run(app, int(run) if run.isdigit() else run, as_json)


def _print_run(app: App, run_ref: int | str, as_json: bool) -> None:
    from ddm.services.listings import run_document

    with app.session() as session:
        data = run_document(session, run_ref)
    epochs = data["epochs"]
    if as_json:
        write_json(data)
        return
    fields = ["id", "name", "status", "fingerprint", "train_videos", "val_videos"]
    fields += ["best_epoch", "checkpoint_path", "run_dir", "error"]
    rows = [{"field": key, "value": data[key]} for key in fields]
    rows.append({"field": "datasets", "value": ",".join(data["datasets"])})
    rows += [{"field": key, "value": value} for key, value in _ran_with(data["config"]).items()]
    table(app.out, rows, ["field", "value"], title=f"run {data['id']}")
    curve = [{**row, "lr": row.get("learning_rate")} for row in epochs]
    table(app.out, curve, EPOCH_COLUMNS, title="training curve", empty="no epoch finished yet")
    columns = ["dataset", "role", "label", "videos"]
    table(app.out, data["membership"], columns, title="members", empty="no members recorded")


def _ran_with(config: dict[str, Any]) -> dict[str, str]:
    """Device, precision and batch size: as the worker resolved them once it started,
    as planned ("auto ...") before."""
    resolved = config.get("resolved", {})
    planned = {
        "device": config.get("device", "auto"),
        "precision": config.get("train", {}).get("precision", "fp32"),
    }
    shown = {key: resolved.get(key) or f"{value} (not started)" for key, value in planned.items()}
    return {**shown, "batch_size": str(config.get("batch_size", ""))}


COMMANDS = (train, runs_group)
