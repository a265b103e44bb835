"""Training runs: plan one from the catalog, run it as the `train` job kind (jobs layer).

`plan_training` is `ddm train`: it chooses the run's videos (the `train` and `val` splits
of the named datasets, with a valid cache of one extractor), freezes them as the run's
membership, and queues one `train` job. `run_training` is that kind's run function:
it reads exactly the frozen cache files (checking their checksums), trains, and stores
every epoch, the best checkpoint and the full last state, from which a run whose worker
died resumes instead of starting again.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

import ddm
from ddm.catalog import runs
from ddm.catalog.jobs import create_job
from ddm.config import Settings
from ddm.db import session_scope
from ddm.errors import DdmError, InvalidInput
from ddm.fs import sha256_of
from ddm.vocab import JobStatus, Label
from tasks.dispatch import Dispatched, dispatch
from tasks.kinds import TRAIN
from tasks.lifecycle import JobContext, JobOutcome, abandon_stale_jobs, error_line

logger = logging.getLogger(__name__)

DETECTOR = "style_flow_detector"
BEST, LAST = "best.pt", "last.pt"


@dataclass(frozen=True)
class TrainingPlan:
    """What `ddm train` queued: the run, its job, and how its videos were chosen."""

    run: Any  # RunRecord
    job_id: int
    selection: Any  # TrainingSelection
    class_counts: dict[str, dict[str, int]]  # role -> label -> videos


def plan_training(
    settings: Settings,
    factory: sessionmaker[Session],
    datasets: list[str],
    *,
    train_cfg: Any,
    name: str | None = None,
    fingerprint: str | None = None,
    device: str = "auto",
    batch_size: int = 16,
    class_balance: bool = True,
) -> TrainingPlan:
    """Freeze the run's membership and queue its `train` job; commit both.

    Raises:
        NotFound: an unknown dataset.
        InvalidInput: no valid cache, a dataset without train or val videos cached by the
            run's extractor, an empty split, or a split with one class.
    """
    with session_scope(factory) as session:
        selection = runs.training_selection(session, datasets, fingerprint)
        _check_every_dataset(session, datasets, selection)
        counts = {role: _labels(getattr(selection, role)) for role in ("train", "val")}
        _check_splits(datasets, selection.fingerprint, counts)
        if class_balance:
            pos_weight = counts["train"][Label.REAL] / counts["train"][Label.FAKE]
            train_cfg = dataclasses.replace(train_cfg, pos_weight=pos_weight)
        config = _config(train_cfg, selection.fingerprint, device, class_balance)
        config["batch_size"] = batch_size
        run = runs.create_run(
            session,
            name=name or runs.next_run_name(session, datasets),
            datasets=datasets,
            config=config,
            fingerprint=selection.fingerprint,
            train=selection.train,
            val=selection.val,
        )
        job = create_job(session, TRAIN.name, {"run_id": run.id}, total=train_cfg.epochs)
        runs.set_run_job(session, run.id, job.id)
    return TrainingPlan(run, job.id, selection, counts)


def _labels(members: list[Any]) -> dict[str, int]:
    return {label.value: sum(m.label == label for m in members) for label in Label}


def _check_every_dataset(session: Session, datasets: list[str], selection: Any) -> None:
    """Every named dataset contributes train and val videos, or the run is not planned: a
    combined run that silently trained on some of its datasets would be misreported."""
    for name in dict.fromkeys(datasets):
        for role in ("train", "val"):
            if not any(member.dataset == name for member in getattr(selection, role)):
                shares = runs.extractor_shares(session, datasets)
                raise InvalidInput(_lacking(name, role, selection.fingerprint, shares))


def _lacking(name: str, role: str, chosen: str, shares: list[Any]) -> str:
    """One line: what `name` lacks in `role`, what its caches are instead, and the fix."""
    short = runs.SHORT_FINGERPRINT
    frames = next((share.frames for share in shares if share.fingerprint == chosen), None)
    with_frames = f" (T={frames})" if frames else ""
    head = f"dataset {name!r} has no {role} videos cached with extractor {chosen[:short]}"
    head += f"{with_frames}, the one this run uses"
    frames_option = f" --frames {frames}" if frames else ""
    if chosen.startswith("random-"):  # caches made without pretrained weights
        frames_option += " --allow-random-weights"
    theirs = [share for share in shares if share.dataset == name and share.role == role]
    if not theirs:
        return (
            f"{head}, nor with any other: run `ddm extract --dataset {name}{frames_option}` "
            f"first, or leave {name} out of --datasets"
        )
    other = theirs[0]  # the extractor covering most of them
    described = f"extractor {other.fingerprint[:short]} (T={other.frames or '?'}, "
    described += f"{other.videos} videos)"
    if frames and other.frames != frames:
        fix = f"run `ddm extract --dataset {name}{frames_option}` to cache them for "
        fix += f"{chosen[:short]} too"
    else:
        fix = f"extract {name} with the settings and weights of {chosen[:short]}"
    return (
        f"{head}; its {role} caches are of {described}: {fix}, or train on {name} "
        f"alone (`ddm train --datasets {name}`)"
    )


def _check_splits(datasets: list[str], fingerprint: str, counts: dict[str, dict[str, int]]) -> None:
    names = ", ".join(datasets)
    for role, by_label in counts.items():
        if not sum(by_label.values()):
            raise InvalidInput(
                f"the {role} split of {names} has no video with a valid cache of extractor "
                f"{fingerprint[:19]}; run `ddm extract` for it first"
            )
        missing = [label for label, count in by_label.items() if count == 0]
        if missing:
            raise InvalidInput(
                f"the {role} split of {names} has only {_other(missing[0])} videos "
                f"({by_label}); a detector needs both classes: no {missing[0]} video in "
                f"{role}; add {missing[0]} videos or re-split with "
                f"{' or '.join(f'`ddm split {name}`' for name in datasets)}"
            )


def _other(label: str) -> str:
    return Label.FAKE.value if label == Label.REAL else Label.REAL.value


def _config(train_cfg: Any, fingerprint: str, device: str, class_balance: bool) -> dict:
    return {
        "train": dataclasses.asdict(train_cfg),
        "fingerprint": fingerprint,
        "device": device,
        "class_balance": "weighted loss (n_real / n_fake)" if class_balance else "none",
        "code_version": ddm.__version__,
    }


@dataclass(frozen=True)
class TrainingRun:
    """What `ddm train` did: the plan, and its job run here or sent to a worker."""

    plan: TrainingPlan
    dispatched: Dispatched


def train_datasets(
    settings: Settings,
    factory: sessionmaker[Session],
    datasets: list[str],
    *,
    on_plan: Callable[[TrainingPlan], None] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    on_batch: Callable[[dict[str, Any]], None] | None = None,
    **options: Any,
) -> TrainingRun:
    """Plan a run on `datasets` and train it: here without a broker (`on_epoch` hears of
    each epoch's metrics, `on_batch` of each training batch's loss), on a worker with one.
    `options` are `plan_training`'s."""
    if not settings.broker:
        abandon_stale_jobs(settings, factory)
    plan = plan_training(settings, factory, datasets, **options)
    if on_plan is not None:
        on_plan(plan)

    def on_event(event: dict[str, Any]) -> None:
        hook = on_batch if "batch" in event else on_epoch
        if hook is not None:
            hook(event)

    return TrainingRun(plan, dispatch(settings, factory, [plan.job_id], on_event))


# --------------------------------------------------------------------------- running


def run_training(context: JobContext) -> JobOutcome:
    """The `train` kind: train the run's detector on its frozen membership."""
    run_id = context.params["run_id"]
    with session_scope(context.factory) as session:
        run = runs.get_run(session, run_id)
        members = runs.run_members(session, run_id)
    run_dir = Path(context.settings.home) / "runs" / str(run_id)
    with session_scope(context.factory) as session:
        runs.start_run(session, run_id, str(run_dir))
    try:
        result = _train(context, run, members, run_dir)
        if not context.lost.is_set():
            _require_best_checkpoint(result, run_dir)
    except BaseException as exc:
        _finish_stopped(context, run_id, run_dir, exc)
        raise
    if context.lost.is_set():
        _finish_stopped(context, run_id, run_dir, None)
        context.check()
    with session_scope(context.factory) as session:
        runs.finish_run(
            session,
            run_id,
            JobStatus.SUCCEEDED.value,
            best_epoch=result.best_epoch,
            checkpoint_path=str(run_dir / BEST),
        )
    return JobOutcome(JobStatus.SUCCEEDED.value, _summary(run_id, result))


def _require_best_checkpoint(result: Any, run_dir: Path) -> None:
    """A run succeeds only with the checkpoint it will be recorded with (the loop itself
    refuses a run without a finite validation epoch; this keeps the record honest)."""
    if not result.has_best or not (run_dir / BEST).is_file():
        raise DdmError(
            f"the run ended after {result.epochs_run} epochs without a best checkpoint "
            f"({run_dir / BEST}); nothing it learned can be evaluated"
        )


def _summary(run_id: int, result: Any) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "best_epoch": result.best_epoch,
        "best_val_loss": result.best_val_loss,
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
    }


def _finish_stopped(
    context: JobContext, run_id: int, run_dir: Path, exc: BaseException | None
) -> None:
    """A cancelled or interrupted run keeps its best checkpoint; a failed one says why."""
    stopped = exc is None or isinstance(exc, KeyboardInterrupt)
    status = JobStatus.CANCELLED.value if stopped else JobStatus.FAILED.value
    best = run_dir / BEST
    with session_scope(context.factory) as session:
        runs.finish_run(
            session,
            run_id,
            status,
            checkpoint_path=str(best) if best.is_file() else None,
            error=None if exc is None else error_line(exc),
        )


def _train(context: JobContext, run: Any, members: list[Any], run_dir: Path) -> Any:
    from tasks.training_loop import train_run

    cache_dir = Path(context.settings.cache_dir or "")
    items = {role: _items(members, role, cache_dir) for role in ("train", "val")}
    video_ids = {cache_dir / member.cache_path: member.video_id for member in members}
    return train_run(context, run, items, run_dir, video_ids)


def _items(members: list[Any], role: str, cache_dir: Path) -> list[tuple[Path, float]]:
    """(cache file, 0/1 label) of the run's members in `role`, each checked against the
    checksum frozen with the run: a run trains on what it says it trained on, or not at all."""
    chosen = [m for m in members if m.role == role]
    return checked_items(
        chosen, cache_dir, "since the run was planned; plan a new run (`ddm train`)"
    )


def checked_items(entries: list[Any], cache_dir: Path, advice: str) -> list[tuple[Path, float]]:
    """(cache file, 0/1 label) per entry (`video_id`, `label`, `cache_path`,
    `cache_checksum`), each file checked against its recorded checksum.

    Raises:
        InvalidInput: a file vanished or changed; `advice` says when and what to do.
    """
    items = []
    for entry in entries:
        path = cache_dir / entry.cache_path
        if not path.is_file() or sha256_of(path) != entry.cache_checksum:
            raise InvalidInput(
                f"the cache file of video {entry.video_id} ({path}) changed or vanished {advice}"
            )
        items.append((path, float(entry.label == Label.FAKE)))
    return items
