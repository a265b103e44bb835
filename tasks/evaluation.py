"""Evaluations: score runs on a dataset split as the `evaluate` job kind, storing every
per-video score (jobs layer).

`plan_evaluations` is the first half of `ddm report`: it picks the runs, reuses a stored
evaluation whose run, dataset, split and caches are unchanged, and queues one `evaluate`
job per run that needs one. `run_evaluation` is that kind's run function: it scores the
run's best checkpoint on exactly the selected cache files (checked against the checksums
it selected) and stores the evaluation with its predictions in one transaction.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from ddm.catalog import evaluations, runs, windows
from ddm.catalog.datasets import get_dataset
from ddm.catalog.jobs import create_job
from ddm.catalog.leakage import MemberKeys
from ddm.config import Settings
from ddm.db import session_scope
from ddm.errors import InvalidInput
from ddm.vocab import JobStatus, Label
from tasks.dispatch import Dispatched, dispatch
from tasks.kinds import EVALUATE
from tasks.lifecycle import JobContext, JobOutcome, abandon_stale_jobs
from tasks.training import checked_items

logger = logging.getLogger(__name__)

THRESHOLD = 0.5
LATEST, ALL_RUNS = "latest", "all"


def predicted_label(score: float, threshold: float = THRESHOLD) -> str:
    """The label a score predicts: fake at or above the threshold."""
    return Label.FAKE.value if score >= threshold else Label.REAL.value


@dataclass(frozen=True)
class PlannedEvaluation:
    """One run's evaluation: stored already (`evaluation_id`) or queued as `job_id`."""

    run: Any  # RunRecord
    selection: evaluations.EvaluationSelection
    evaluation_id: int | None = None
    job_id: int | None = None

    @property
    def is_reused(self) -> bool:
        return self.evaluation_id is not None


@dataclass(frozen=True)
class EvaluationPlan:
    dataset: str
    split: str  # as named to the user: test, val, train or all
    planned: list[PlannedEvaluation]
    notes: list[str] = field(default_factory=list)
    segments: Any = None  # tasks.segments.WindowSpec when windows were asked for

    @property
    def job_ids(self) -> list[int]:
        return [p.job_id for p in self.planned if p.job_id is not None]


def select_runs(session: Session, spec: str) -> list[Any]:
    """The runs `--runs` names: `latest` (the newest succeeded run), `all` (every succeeded
    run) or ids and names separated by commas (each must have a best checkpoint).

    Raises:
        NotFound: a named run does not exist.
        InvalidInput: no run has succeeded yet, or a named run has no checkpoint.
    """
    if spec in (LATEST, ALL_RUNS):
        found = runs.list_runs(session, limit=1_000_000, status=JobStatus.SUCCEEDED.value)
        if not found:
            raise InvalidInput("no trained run to report on; run `ddm train --datasets NAME` first")
        return found[:1] if spec == LATEST else sorted(found, key=lambda run: run.id)
    named = [runs.get_run(session, ref) for ref in _refs(spec)]
    for run in named:
        if not run.checkpoint_path:
            raise InvalidInput(
                f"run {run.id} ({run.name}) has no checkpoint (status {run.status}); "
                "only a run that finished an epoch can be evaluated"
            )
    return list({run.id: run for run in named}.values())


def _refs(spec: str) -> list[int | str]:
    refs = [part.strip() for part in spec.split(",") if part.strip()]
    if not refs:
        raise InvalidInput("--runs: name runs by id or name, or use latest or all")
    return [int(ref) if ref.isdigit() else ref for ref in refs]


def plan_evaluations(
    settings: Settings,
    factory: sessionmaker[Session],
    dataset: str,
    *,
    split: str | None = None,
    run_spec: str = LATEST,
    segments: Any = None,
) -> EvaluationPlan:
    """Reuse or queue one evaluation per selected run; commits the queued jobs.

    With `segments` (a `tasks.segments.WindowSpec`), a stored evaluation is reused only if
    it holds windows of that setting; one without them gets a job that adds them.

    Raises:
        NotFound: an unknown dataset or run.
        InvalidInput: nothing to evaluate (no run, no valid cache for any selected run).
    """
    with session_scope(factory) as session:
        get_dataset(session, dataset)  # an unknown dataset is named before any run
        selected = select_runs(session, run_spec)
        planned, notes = [], []
        member_keys = MemberKeys(session)
        for run in selected:
            try:
                selection = evaluations.evaluation_selection(
                    session, run.id, dataset, split, member_keys=member_keys
                )
            except InvalidInput as exc:
                if run_spec not in (LATEST, ALL_RUNS) or len(selected) == 1:
                    raise
                notes.append(f"run {run.id} ({run.name}) not evaluated: {exc}")
                continue
            planned.append(_plan_one(session, run, selection, segments))
            if selection.note and selection.note not in notes:
                notes.append(selection.note)
        if not planned:
            raise InvalidInput(f"no selected run can be scored on {dataset}: {'; '.join(notes)}")
        split_name = (
            evaluations.ALL_SPLITS
            if planned[0].selection.split is None
            else (planned[0].selection.split)
        )
    return EvaluationPlan(dataset, split_name, planned, notes, segments)


def _plan_one(session: Session, run: Any, selection: Any, segments: Any) -> PlannedEvaluation:
    stored = evaluations.find_evaluation(session, selection)
    has_windows = stored is not None and (
        segments is None
        or windows.has_windows(session, stored.id, segments.window_seconds, segments.stride_seconds)
    )
    if stored is not None and has_windows:
        return PlannedEvaluation(run, selection, evaluation_id=stored.id)
    params = {"run_id": run.id, "dataset": selection.dataset, "split": selection.split}
    params["all_splits"] = selection.split is None
    # One unit per video scored whole (unless stored) and one per video judged in windows.
    total = len(selection.videos) * ((stored is None) + (segments is not None))
    if segments is not None:
        params["segments"] = segments.as_json()
    job = create_job(session, EVALUATE.name, params, total=total)
    return PlannedEvaluation(run, selection, job_id=job.id)


def evaluate_runs(
    settings: Settings,
    factory: sessionmaker[Session],
    dataset: str,
    *,
    split: str | None = None,
    run_spec: str = LATEST,
    segments: Any = None,
) -> tuple[EvaluationPlan, Dispatched]:
    """Plan the evaluations and run the queued ones here (no broker) or send them."""
    if not settings.broker:
        abandon_stale_jobs(settings, factory)
    plan = plan_evaluations(
        settings, factory, dataset, split=split, run_spec=run_spec, segments=segments
    )
    return plan, dispatch(settings, factory, plan.job_ids)


# --------------------------------------------------------------------------- running


def run_evaluation(context: JobContext) -> JobOutcome:
    """The `evaluate` kind: score the run's best checkpoint and store the predictions, and
    with `segments` in its parameters, each video's windows too."""
    params = context.params
    split = evaluations.ALL_SPLITS if params.get("all_splits") else params["split"]
    with session_scope(context.factory) as session:
        run = runs.get_run(session, params["run_id"])
        selection = evaluations.evaluation_selection(session, run.id, params["dataset"], split)
        stored = evaluations.find_evaluation(session, selection)
    if stored is not None:  # stored meanwhile, or before: only windows may be missing
        summary = {"evaluation_id": stored.id, "reused": True}
        return JobOutcome(JobStatus.SUCCEEDED.value, summary | _windows(context, run, stored.id))
    items = _items(selection, Path(context.settings.cache_dir or ""))
    logits = _logits(context, run, items)
    _require_finite(selection, logits, run.id)
    scores = _probabilities(logits)
    context.check()
    metrics = _metrics(selection, logits, scores)
    with session_scope(context.factory) as session:
        record = evaluations.record_evaluation(
            session,
            selection,
            logits,
            scores,
            threshold=THRESHOLD,
            metrics=metrics,
            job_id=context.job_id,
        )
    summary = {"evaluation_id": record.id, "n_videos": record.n_videos}
    summary.update(held_out=record.is_held_out, auc=metrics["roc_auc"], scope=metrics["scope"])
    return JobOutcome(JobStatus.SUCCEEDED.value, summary | _windows(context, run, record.id))


def _windows(context: JobContext, run: Any, evaluation_id: int) -> dict[str, Any]:
    """Judge and store each video's windows when the job asks for segments and they are
    not stored yet (see `tasks.segments.record_evaluation_windows`)."""
    wanted = context.params.get("segments")
    if not wanted:
        return {}
    from tasks.segments import WindowSpec, record_evaluation_windows

    spec = WindowSpec(**wanted)
    with session_scope(context.factory) as session:
        if windows.has_windows(session, evaluation_id, spec.window_seconds, spec.stride_seconds):
            return {"windows": "reused"}
    return record_evaluation_windows(context, run, evaluation_id, spec)


def _items(selection: Any, cache_dir: Path) -> list[tuple[Path, float]]:
    """(cache file, label) per selected video, each checked against its selected checksum."""
    return checked_items(
        selection.videos,
        cache_dir,
        "while it was being evaluated; run `ddm cache verify`, then report again",
    )


def _logits(context: JobContext, run: Any, items: list[tuple[Path, float]]) -> list[float]:
    import torch

    from model.checkpoint import model_from_checkpoint
    from model.data import CachedFeatureDataset, make_loader
    from tasks.devices import scoring_device

    if not run.checkpoint_path or not Path(run.checkpoint_path).is_file():
        raise InvalidInput(f"run {run.id}'s checkpoint {run.checkpoint_path} is missing")
    device = scoring_device()  # not the run's training device: any machine may score it
    model, _ = model_from_checkpoint(run.checkpoint_path, device=device)
    loader = make_loader(CachedFeatureDataset(items), batch_size=64, shuffle=False)
    logits: list[float] = []
    with torch.no_grad():
        for batch in loader:
            batch_logits = model(batch["content"].to(device), batch["style"].to(device))
            # The raw logits are stored: a probability rounds confident ones to 1.0.
            logits.extend(batch_logits.double().cpu().tolist())
            context.advance(units=len(batch_logits))
    return logits


def _require_finite(selection: Any, logits: list[float], run_id: int) -> None:
    # A NaN would sort anywhere and corrupt every ranking metric: refuse, do not store.
    bad = [
        video.path
        for video, logit in zip(selection.videos, logits, strict=True)
        if not math.isfinite(logit)
    ]
    if bad:
        raise InvalidInput(
            f"run {run_id} gave {len(bad)} video(s) a score that is not a number, first "
            f"{bad[0]}; its checkpoint or these caches are broken (`ddm cache verify`)"
        )


def _probabilities(logits: list[float]) -> list[float]:
    from model.metrics import probability

    return probability(logits).tolist()


def _metrics(selection: Any, logits: list[float], scores: list[float]) -> dict[str, Any]:
    """The headline metrics of the job's summary and row: held-out videos only when the run
    saw any of them, with the pooled ones beside (`model.metrics.held_out_metrics`)."""
    from model.metrics import held_out_metrics

    labels = [int(video.label == Label.FAKE) for video in selection.videos]
    leaked = [video.is_leaked for video in selection.videos]
    split = held_out_metrics(labels, scores, leaked, THRESHOLD, logits=logits)
    headline = split["held_out"] or {"roc_auc": None, "accuracy": None}
    scope = "held_out" if split["n_held_out"] < len(labels) else "all"
    return {
        **headline,
        "scope": scope,
        "n_held_out": split["n_held_out"],
        "pooled": split["pooled"],
    }
