"""`ddm report` as one document: per-run metrics recomputed from the stored predictions, the
cross-dataset matrix over every stored evaluation, and the bias statistics (jobs layer).

Every number here is computed from `predictions` rows with `model.metrics`, never copied
from a job's summary, so each one can be traced to the per-video scores it came from. The
document's keys (`runs`, `cross_dataset`, `bias`) are a stable interface.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from ddm.catalog import evaluations, runs
from ddm.catalog.datasets import list_datasets
from ddm.catalog.stats import video_facts
from ddm.db import session_scope
from ddm.errors import DdmError, InvalidInput
from ddm.vocab import Label
from tasks.bias import catalog_bias, prediction_bias, prediction_sentences
from tasks.evaluation import EvaluationPlan

# A cell of the matrix shows one split of a (run, dataset) pair, the first of these found.
SPLIT_PREFERENCE = ("test", None, "val", "train")


class EvaluationFailed(DdmError):
    """An evaluation job did not succeed; the report shows the others."""


def build_report(factory: sessionmaker[Session], plan: EvaluationPlan) -> dict[str, Any]:
    """The report of `plan` once its jobs have finished.

    Returns:
        {"eval_dataset", "split", "runs", "cross_dataset", "bias", "notes", "failed"}.
    """
    with session_scope(factory) as session:
        entries, failed = [], []
        for planned in plan.planned:
            evaluation = evaluations.find_evaluation(session, planned.selection)
            if evaluation is None:
                failed.append(_failure(session, planned))
                continue
            predictions = evaluations.evaluation_predictions(session, evaluation.id)
            entries.append(run_entry(planned.run, evaluation, predictions, planned.is_reused))
        run_ids = [planned.run.id for planned in plan.planned]
        matrix = cross_dataset(session, run_ids, {e["evaluation_id"]: e for e in entries})
        known = {dataset.name for dataset in list_datasets(session)}
        datasets = [name for name in _datasets_of(plan, entries) if name in known]
        catalog = catalog_bias(video_facts(session, datasets))
    sentences = [s for entry in entries for s in entry.pop("sentences")]
    return {
        "eval_dataset": plan.dataset,
        "split": plan.split,
        "runs": entries,
        "cross_dataset": matrix,
        "bias": {
            "predictions": {str(e["run_id"]): e.pop("bias") for e in entries},
            "catalog": catalog["datasets"],
            "sentences": sentences + catalog["sentences"],
        },
        "notes": list(plan.notes),
        "failed": failed,
    }


def _failure(session: Session, planned: Any) -> str:
    from ddm.catalog.jobs import get_job

    job = get_job(session, planned.job_id) if planned.job_id is not None else None
    why = f"job {job.id} {job.status}: {job.error or 'no evaluation stored'}" if job else "?"
    return f"run {planned.run.id} ({planned.run.name}): {why}"


def _datasets_of(plan: EvaluationPlan, entries: list[dict[str, Any]]) -> list[str]:
    names = [plan.dataset]
    for entry in entries:
        names.extend(entry["train_datasets"])
    return list(dict.fromkeys(names))


def run_entry(
    run: Any, evaluation: Any, predictions: list[Any], is_reused: bool = False
) -> dict[str, Any]:
    """One run's evaluation as the report shows it, from its stored predictions."""
    from model.metrics import binary_metrics

    labels = [int(p.label == Label.FAKE) for p in predictions]
    scores = [p.score for p in predictions]
    m = binary_metrics(labels, scores, threshold=evaluation.threshold or 0.5)
    (tn, fp), (fn, tp) = m["confusion_matrix"]
    fake = m["per_class"][Label.FAKE.value]
    entry: dict[str, Any] = {
        "run_id": run.id,
        "run_name": run.name,
        "train_datasets": list(run.datasets),
        "eval_dataset": evaluation.dataset,
        "split": evaluation.split or evaluations.ALL_SPLITS,
        "evaluation_id": evaluation.id,
        "reused": is_reused,
        "held_out": evaluation.is_held_out,
        "leaked_videos": evaluation.leaked_videos,
        "n_videos": len(predictions),
        "threshold": m["threshold"],
        "accuracy": m["accuracy"],
        "precision": fake["precision"],
        "recall": fake["recall"],
        "f1": fake["f1"],
        "auc": m["roc_auc"],
        "ap": m["average_precision"],
        "eer": m["eer"],
        "confusion": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
        "per_class": {
            **m["per_class"],
            "macro_avg": m["macro_avg"],
            "weighted_avg": m["weighted_avg"],
        },
        "left_out": evaluation.left_out or {},
        "predictions": [_prediction(p) for p in predictions],
    }
    entry["bias"] = prediction_bias(predictions)
    entry["sentences"] = prediction_sentences(entry, entry["bias"])
    if not evaluation.is_held_out:
        entry["sentences"].insert(
            0,
            f"run {run.id} trained or validated on {evaluation.leaked_videos} of the "
            f"{len(predictions)} {evaluation.dataset} videos it was scored on: not held out",
        )
    return entry


def _prediction(p: Any) -> dict[str, Any]:
    return {
        "video_id": p.video_id,
        "path": p.path,
        "label": p.label,
        "score": p.score,
        "predicted_label": p.predicted_label,
        "leaked": p.is_leaked,
    }


def cross_dataset(
    session: Session, run_ids: list[int], computed: dict[int, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """AUC and accuracy of every stored evaluation of the runs: rows are runs, columns
    datasets; each cell is computed from its evaluation's predictions (`computed` holds
    entries already computed from them, by evaluation id, which are not read again)."""
    computed = computed or {}
    stored = evaluations.latest_evaluations(session, run_ids)
    columns = sorted({e.dataset for e in stored})
    rows = []
    for run_id in run_ids:
        run = runs.get_run(session, run_id)
        cells = {}
        for dataset in columns:
            evaluation = _preferred(
                e for e in stored if e.run_id == run_id and e.dataset == dataset
            )
            if evaluation is None:
                continue
            scores = computed.get(evaluation.id) or _scores(session, evaluation.id)
            cells[dataset] = {
                "split": evaluation.split or evaluations.ALL_SPLITS,
                "auc": scores["auc"],
                "accuracy": scores["accuracy"],
                "n_videos": scores["n_videos"],
                "held_out": evaluation.is_held_out,
                "evaluation_id": evaluation.id,
            }
        rows.append(
            {"run_id": run.id, "run_name": run.name, "train_datasets": run.datasets, "cells": cells}
        )
    return {"datasets": columns, "rows": rows}


def _scores(session: Session, evaluation_id: int) -> dict[str, Any]:
    from model.metrics import binary_metrics

    predictions = evaluations.evaluation_predictions(session, evaluation_id)
    labels = [int(p.label == Label.FAKE) for p in predictions]
    m = binary_metrics(labels, [p.score for p in predictions])
    return {"auc": m["roc_auc"], "accuracy": m["accuracy"], "n_videos": len(predictions)}


def _preferred(candidates: Any) -> Any:
    by_split = {e.split: e for e in candidates}
    return next((by_split[s] for s in SPLIT_PREFERENCE if s in by_split), None)


def require_reportable(report: dict[str, Any]) -> None:
    """Raises InvalidInput when no run could be evaluated at all."""
    if not report["runs"]:
        raise InvalidInput("; ".join(report["failed"]) or "nothing to report")
