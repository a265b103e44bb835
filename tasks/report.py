"""`ddm report` as one document: per-run metrics recomputed from the stored predictions, the
cross-dataset matrix over every stored evaluation, and the bias statistics (jobs layer).

Every number here is computed from `predictions` rows with `model.metrics`, never copied
from a job's summary, so each one can be traced to the per-video scores it came from. The
document's keys (`runs`, `cross_dataset`, `bias`) are a stable interface.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, cast

from sqlalchemy.orm import Session, sessionmaker

from ddm.catalog import evaluations, runs
from ddm.catalog.datasets import list_datasets
from ddm.catalog.scores import StoredScores, evaluation_scores
from ddm.catalog.splits import split_changes
from ddm.catalog.stats import video_facts
from ddm.db import session_scope
from ddm.errors import DdmError, InvalidInput
from ddm.vocab import Label, Leak
from tasks.bias import catalog_bias, prediction_bias, prediction_sentences
from tasks.evaluation import EvaluationPlan

# A cell of the matrix shows one split of a (run, dataset) pair, the first of these found.
SPLIT_PREFERENCE = ("test", None, "val", "train")
# Evaluations stored before thresholds were kept used this one.
DEFAULT_THRESHOLD = 0.5
LEAK_WORDS = {
    Leak.FILE.value: "the same file",
    Leak.SEQUENCE.value: "the same sequence at another compression",
    Leak.SPLIT.value: "its training dataset's train/val split",
    Leak.IDENTITY.value: "a shared identity",
}


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
            entry = run_entry(planned.run, evaluation, predictions, planned.is_reused)
            _add_segments(session, entry, evaluation, predictions, plan.segments)
            entries.append(entry)
        _mark_split_changes(session, entries)
        run_ids = [planned.run.id for planned in plan.planned]
        matrix = cross_dataset(session, run_ids, {e["evaluation_id"]: e for e in entries})
        # The runs' extractor, when they share one: the caches they were scored on.
        fingerprints = {planned.run.fingerprint for planned in plan.planned}
        fingerprint = fingerprints.pop() if len(fingerprints) == 1 else None
        catalog = _catalog_bias(session, _datasets_of(plan, entries), fingerprint)
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
        "notes": [*plan.notes, *_split_change_notes(entries)],
        "failed": failed,
    }


def _add_segments(
    session: Session, entry: dict[str, Any], evaluation: Any, predictions: list[Any], spec: Any
) -> None:
    """The evaluation's windows (of `spec`, or the newest stored) as `entry["segments"]`,
    and a sentence on them; nothing for an evaluation without windows."""
    from ddm.catalog.windows import evaluation_windows
    from tasks.segments import segments_entry, segments_sentence

    setting = (None, None) if spec is None else (spec.window_seconds, spec.stride_seconds)
    stored = evaluation_windows(session, evaluation.id, *setting)
    if stored is None:
        return
    threshold = evaluation.threshold if evaluation.threshold is not None else DEFAULT_THRESHOLD
    entry["segments"] = segments_entry(stored, predictions, threshold)
    entry["sentences"].append(segments_sentence(entry["run_id"], entry["segments"]))


def _mark_split_changes(session: Session, entries: list[dict[str, Any]]) -> None:
    # A re-split (`ddm split`) after an evaluation leaves its numbers about the split as
    # it was: said, never recomputed, since runs and their predictions are history.
    changed = split_changes(session, [entry["evaluation_id"] for entry in entries])
    for entry in entries:
        entry["split_changed"] = changed.get(entry["evaluation_id"], 0)


def _split_change_notes(entries: list[dict[str, Any]]) -> list[str]:
    return [
        f"run {e['run_id']} ({e['run_name']}): {e['split_changed']} of its {e['n_videos']} "
        f"scored {e['eval_dataset']} videos changed split since evaluation "
        f"{e['evaluation_id']}; its numbers cover the {e['split']} split as it was then"
        for e in entries
        if e["split_changed"]
    ]


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


def _catalog_bias(session: Session, names: list[str], fingerprint: str | None) -> dict[str, Any]:
    """The report's catalog statistics: of the evaluated and training datasets still in
    the catalog, from the caches of `fingerprint`."""
    known = {dataset.name for dataset in list_datasets(session)}
    datasets = [name for name in names if name in known]
    return catalog_bias(video_facts(session, datasets, fingerprint=fingerprint))


def run_entry(
    run: Any, evaluation: Any, predictions: list[Any], is_reused: bool = False
) -> dict[str, Any]:
    """One run's evaluation as the report shows it, from its stored predictions.

    The headline metrics (top-level keys) cover the held-out videos only whenever the run
    saw any of the scored videos (`scope` says which); `pooled` holds every video's.
    """
    split = evaluation_metrics(predictions, evaluation.threshold)
    held_out = [p for p in predictions if not p.is_leaked]
    leaks = Counter(p.leak or "file" for p in predictions if p.is_leaked)
    entry: dict[str, Any] = {
        "run_id": run.id,
        "run_name": run.name,
        "train_datasets": list(run.datasets),
        "eval_dataset": evaluation.dataset,
        "split": evaluation.split or evaluations.ALL_SPLITS,
        "evaluation_id": evaluation.id,
        "reused": is_reused,
        "leaked_videos": sum(leaks.values()),
        "leaks": {leak.value: leaks[leak.value] for leak in Leak if leaks[leak.value]},
        **_headline(split, evaluation.threshold, len(predictions)),
        "ranked_by": "logit" if _logits([p.logit for p in predictions]) is not None else "score",
        "left_out": evaluation.left_out or {},
        "predictions": [_prediction(p) for p in predictions],
    }
    # Where the run errs, over the videos the headline covers (all, if it saw every one).
    judged = held_out or predictions
    entry["bias"] = prediction_bias(judged)
    view = entry if held_out else {**entry, **entry["pooled"]}
    entry["sentences"] = _leak_sentences(entry) + prediction_sentences(view, entry["bias"])
    return entry


def evaluation_document(session: Session, evaluation_id: int) -> dict[str, Any]:
    """One stored evaluation as `ddm report --json` gives its run's entry, with the entry's
    prediction bias and sentences kept in it (`bias`, `sentences`), and its predictions the
    most wrong first: the confident false positives and missed fakes at the top.

    Raises:
        NotFound: no such evaluation.
    """
    evaluation = evaluations.get_evaluation(session, evaluation_id)
    run = runs.get_run(session, evaluation.run_id)
    predictions = evaluations.evaluation_predictions(session, evaluation_id)
    entry = run_entry(run, evaluation, predictions)
    entry["split_changed"] = split_changes(session, [evaluation_id]).get(evaluation_id, 0)
    key = "logit" if entry["ranked_by"] == "logit" else "score"
    entry["predictions"].sort(key=lambda p: _wrongness(p, key), reverse=True)
    return entry


def evaluation_findings(session: Session, evaluation_id: int) -> dict[str, Any]:
    """`evaluation_document`, with what `ddm report --eval DATASET --runs RUN` gives around
    that entry: `cross_dataset` (the run's row of the matrix) and `catalog_bias`
    (`datasets` and `sentences`: the report's `bias.catalog` and its catalog sentences).

    Raises:
        NotFound: no such evaluation.
    """
    entry = evaluation_document(session, evaluation_id)
    run = runs.get_run(session, entry["run_id"])
    matrix = cross_dataset(session, [run.id], {evaluation_id: entry})
    catalog = _catalog_bias(session, [entry["eval_dataset"], *run.datasets], run.fingerprint)
    return {
        **entry,
        "cross_dataset": matrix,
        "catalog_bias": {"datasets": catalog["datasets"], "sentences": catalog["sentences"]},
    }


def _wrongness(prediction: dict[str, Any], key: str) -> float:
    """How far the detector leaned the wrong way: a real video's logit, a fake's negated
    (by scores: a real's score, a fake's 1 - score); unlabelled videos last."""
    value = prediction[key]
    if prediction["label"] == Label.FAKE:
        return -value if key == "logit" else 1.0 - value
    if prediction["label"] == Label.REAL:
        return value
    return float("-inf")


def evaluation_metrics(predictions: list[Any], threshold: float | None) -> dict[str, Any]:
    """`model.metrics.held_out_metrics` of stored predictions, ranked by their logits
    (by their scores for evaluations stored before logits were kept)."""
    scores = StoredScores.of(
        [p.label for p in predictions],
        [p.score for p in predictions],
        [p.logit for p in predictions],
        [p.is_leaked for p in predictions],
    )
    return stored_metrics(scores, threshold)


def stored_metrics(stored: StoredScores, threshold: float | None) -> dict[str, Any]:
    """`evaluation_metrics` of an evaluation's stored scores alone."""
    from model.metrics import held_out_metrics

    return held_out_metrics(
        stored.is_fake,
        stored.scores,
        stored.is_leaked,
        threshold if threshold is not None else DEFAULT_THRESHOLD,
        logits=stored.logits,
    )


def _logits(logits: list[float | None]) -> list[float] | None:
    return None if any(logit is None for logit in logits) else cast(list[float], logits)


def _metric_fields(m: dict[str, Any] | None, threshold: float | None) -> dict[str, Any]:
    """The report's metric keys from `binary_metrics` (None values without videos)."""
    if m is None:
        empty = dict.fromkeys(("accuracy", "precision", "recall", "f1", "auc", "ap", "eer"))
        t = threshold if threshold is not None else DEFAULT_THRESHOLD
        return {"threshold": t, **empty, "confusion": None, "per_class": None}
    (tn, fp), (fn, tp) = m["confusion_matrix"]
    fake = m["per_class"][Label.FAKE.value]
    return {
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
    }


def _leak_sentences(entry: dict[str, Any]) -> list[str]:
    if entry["held_out"]:
        return []
    how = ", ".join(f"{n} by {LEAK_WORDS[leak]}" for leak, n in entry["leaks"].items())
    seen = (
        f"run {entry['run_id']} saw {entry['leaked_videos']} of the {entry['n_videos']} "
        f"{entry['eval_dataset']} videos it was scored on ({how}): not held out"
    )
    if entry["n_held_out"]:
        return [f"{seen}; the headline numbers cover the {entry['n_held_out']} held-out ones"]
    return [f"{seen}; no video is held out, so only pooled numbers exist and none is a result"]


def _prediction(p: Any) -> dict[str, Any]:
    return {
        "video_id": p.video_id,
        "path": p.path,
        "label": p.label,
        "score": p.score,
        "logit": p.logit,
        "predicted_label": p.predicted_label,
        "leaked": p.is_leaked,
        "leak": p.leak,
    }


def cross_dataset(
    session: Session, run_ids: list[int], computed: dict[int, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """AUC and accuracy of every stored evaluation of the runs: rows are runs, columns
    datasets; each cell is computed from its evaluation's predictions with its stored
    threshold, over its held-out videos wherever the run saw any (`computed` holds entries
    already computed from them, by evaluation id, which are not read again)."""
    computed = computed or {}
    stored = evaluations.latest_evaluations(session, run_ids)
    changed = split_changes(session, [e.id for e in stored])
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
            entry = computed.get(evaluation.id) or _summary_of(session, evaluation)
            cells[dataset] = {
                **_cell(entry, evaluation),
                "split_changed": changed.get(evaluation.id, 0),
            }
        rows.append(
            {"run_id": run.id, "run_name": run.name, "train_datasets": run.datasets, "cells": cells}
        )
    return {"datasets": columns, "rows": rows}


def _summary_of(session: Session, evaluation: Any) -> dict[str, Any]:
    """The keys of a run entry that a cell shows, computed from the stored predictions."""
    # The scores alone: a matrix over 10 runs reads about a million of them.
    stored = evaluation_scores(session, evaluation.id)
    split = stored_metrics(stored, evaluation.threshold)
    return _headline(split, evaluation.threshold, len(stored.scores))


def _headline(split: dict[str, Any], threshold: float | None, n_videos: int) -> dict[str, Any]:
    """What the headline covers and its metrics, with the pooled ones beside: the keys a
    run entry and a matrix cell share, from `held_out_metrics`."""
    everything = split["n_held_out"] == n_videos
    return {
        "held_out": everything,
        "n_videos": n_videos,
        "n_held_out": split["n_held_out"],
        "scope": "all" if everything else "held_out",
        **_metric_fields(split["held_out"], threshold),
        "pooled": _metric_fields(split["pooled"], threshold),
    }


def _cell(entry: dict[str, Any], evaluation: Any) -> dict[str, Any]:
    return {
        "split": evaluation.split or evaluations.ALL_SPLITS,
        "auc": entry["auc"],
        "accuracy": entry["accuracy"],
        "n_videos": entry["n_videos"],
        "n_held_out": entry["n_held_out"],
        "scope": entry["scope"],
        "pooled_auc": entry["pooled"]["auc"],
        "pooled_accuracy": entry["pooled"]["accuracy"],
        "held_out": entry["held_out"],
        "evaluation_id": evaluation.id,
    }


def _preferred(candidates: Any) -> Any:
    by_split = {e.split: e for e in candidates}
    return next((by_split[s] for s in SPLIT_PREFERENCE if s in by_split), None)


def require_reportable(report: dict[str, Any]) -> None:
    """Raises InvalidInput when no run could be evaluated at all."""
    if not report["runs"]:
        raise InvalidInput("; ".join(report["failed"]) or "nothing to report")
