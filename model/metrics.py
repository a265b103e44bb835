"""Binary classification metrics for per-video scores, in numpy only (model layer).

Definitions follow scikit-learn's so numbers are comparable with the literature:
ROC points at every distinct score (tied scores move together, so AUC counts a tied
real/fake pair as half right), average precision as the step-wise sum
sum_n (R_n - R_{n-1}) P_n, and the confusion matrix as [[TN, FP], [FN, TP]].
Label 1 is "fake" (the positive class), 0 is "real".

Detectors output logits. Ranking metrics take the logits' order whenever they are at hand:
a probability rounds every logit above about 17 (float32) or 37 (float64) to exactly 1.0,
so confident fakes and confident false positives would tie and bias AUC, AP and EER.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

CLASS_NAMES = ("real", "fake")
ArrayLike = Sequence[float] | np.ndarray


def _as_arrays(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.shape != y.shape or len(y) == 0:
        raise ValueError(f"labels and scores must be equal-length 1-d arrays: {y.shape}, {s.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (real) or 1 (fake)")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    return y.astype(np.int64), s


def probability(logits: ArrayLike) -> np.ndarray:
    """P(fake) = sigmoid(logit) in float64, without overflow for logits of either sign."""
    x = np.asarray(logits, dtype=np.float64)
    small = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + small), small / (1.0 + small))


def logit_of(p: float) -> float:
    """The logit whose probability is `p` (the decision threshold in logit space)."""
    with np.errstate(divide="ignore"):
        return float(np.log(p) - np.log1p(-p))


def _roc_counts(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, ...]:
    # False and true positive counts at every distinct score, highest first, after a
    # (0, 0) point at +inf. Tied scores move together, forming a single ROC point.
    y, s = _as_arrays(labels, scores)
    # Counts are taken at the last of each run of tied scores, so the order within a run
    # does not matter: an unstable sort gives the same counts, 6x faster than a stable one.
    order = np.argsort(-s)
    y, s = y[order], s[order]
    last_of_group = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.r_[0, np.cumsum(y)[last_of_group]]
    fps = np.r_[0, (last_of_group + 1) - tps[1:]]
    return fps, tps, np.r_[np.inf, s[last_of_group]]


def roc_curve(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positive rates at every distinct score, highest threshold first.

    Returns:
        (fpr, tpr, thresholds); the first point is (0, 0) at threshold +inf. A sample is
        predicted fake when its score >= threshold. Rates are NaN for an absent class.
    """
    return _rates(_roc_counts(labels, scores))


def _rates(counts: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    fps, tps, thresholds = counts
    with np.errstate(invalid="ignore", divide="ignore"):
        return fps / fps[-1], tps / tps[-1], thresholds


def roc_auc(labels: ArrayLike, scores: ArrayLike) -> float | None:
    """Area under the ROC curve, or None when only one class is present."""
    return _auc(_roc_counts(labels, scores))


def _auc(counts: tuple[np.ndarray, ...]) -> float | None:
    fpr, tpr, _ = _rates(counts)
    if np.isnan(fpr).any() or np.isnan(tpr).any():
        return None
    # Trapezoids by hand: np.trapz was renamed in numpy 2 and we support numpy >= 1.26.
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def average_precision(labels: ArrayLike, scores: ArrayLike) -> float | None:
    """Step-wise area under the precision-recall curve; None without fake samples."""
    return _average_precision(_roc_counts(labels, scores))


def _average_precision(counts: tuple[np.ndarray, ...]) -> float | None:
    fps, tps, _ = counts
    if tps[-1] == 0:
        return None
    # At each distinct score: fakes found over videos ranked so far, and over all fakes.
    precision = tps[1:] / (tps[1:] + fps[1:])
    recall = tps[1:] / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def equal_error_rate(labels: ArrayLike, scores: ArrayLike) -> tuple[float | None, float | None]:
    """The error rate where false positive and false negative rates are equal.

    Interpolates linearly between the two ROC points where FPR - FNR changes sign.

    Returns:
        (eer, threshold): the threshold is that of the first ROC point with
        FPR >= FNR. Both are None when only one class is present.
    """
    return _equal_error_rate(_roc_counts(labels, scores))


def _equal_error_rate(counts: tuple[np.ndarray, ...]) -> tuple[float | None, float | None]:
    fps, tps, thresholds = counts
    negatives, positives = fps[-1], tps[-1]
    if negatives == 0 or positives == 0:
        return None, None
    # FPR - FNR scaled by N * P: integer, so an exact crossing is found exactly.
    gap = fps * positives - (positives - tps) * negatives  # -N*P first, +N*P last
    i = int(np.argmax(gap >= 0))
    fpr = fps / negatives
    if gap[i] == 0:
        return float(fpr[i]), float(thresholds[i])
    t = gap[i - 1] / (gap[i - 1] - gap[i])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1])), float(thresholds[i])


def confusion_matrix(labels: ArrayLike, predictions: ArrayLike) -> list[list[int]]:
    """[[TN, FP], [FN, TP]]: rows are true classes, columns predicted (real, fake)."""
    y, p = _as_arrays(labels, predictions)
    p = p.astype(np.int64)
    return [[int(np.sum((y == t) & (p == q))) for q in (0, 1)] for t in (0, 1)]


def _safe_div(numerator: float, denominator: float) -> float:
    # scikit-learn's zero_division=0 convention: an empty denominator scores 0.
    return numerator / denominator if denominator else 0.0


def classification_report(labels: ArrayLike, predictions: ArrayLike) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1 with support, macro and weighted averages.

    Returns:
        {"accuracy", "per_class": {"real": {...}, "fake": {...}}, "macro_avg": {...},
        "weighted_avg": {...}}; each inner dict has precision, recall, f1 and support.
    """
    (tn, fp), (fn, tp) = confusion_matrix(labels, predictions)
    per_class = {}
    for name, (hit, false_pos, false_neg) in zip(
        CLASS_NAMES, ((tn, fn, fp), (tp, fp, fn)), strict=True
    ):
        precision = _safe_div(hit, hit + false_pos)
        recall = _safe_div(hit, hit + false_neg)
        f1 = _safe_div(2 * precision * recall, precision + recall)
        per_class[name] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": hit + false_neg,
        }
    total = tn + fp + fn + tp
    return {
        "accuracy": (tn + tp) / total,
        "per_class": per_class,
        "macro_avg": _average(per_class, weighted=False),
        "weighted_avg": _average(per_class, weighted=True),
    }


def _average(per_class: dict[str, dict[str, float]], *, weighted: bool) -> dict[str, float]:
    support = np.array([per_class[name]["support"] for name in CLASS_NAMES], dtype=np.float64)
    # The macro average is over the classes present: an absent class has no recall to
    # average, and counting its zeros would halve a one-class evaluation's scores.
    present = (support > 0).astype(np.float64)
    weights = support / support.sum() if weighted else present / max(present.sum(), 1.0)
    averaged = {
        key: float(np.dot(weights, [per_class[name][key] for name in CLASS_NAMES]))
        for key in ("precision", "recall", "f1")
    }
    averaged["support"] = int(support.sum())
    return averaged


def binary_metrics(
    labels: ArrayLike,
    scores: ArrayLike,
    threshold: float = 0.5,
    *,
    logits: ArrayLike | None = None,
) -> dict[str, Any]:
    """Every reported metric for per-video probabilities of fake.

    Args:
        labels: 0 (real) or 1 (fake) per video.
        scores: probability of fake per video.
        threshold: scores >= threshold are labelled fake.
        logits: the logits the scores came from; when given, ranking metrics use their
            order and a video is labelled fake when its logit >= logit(threshold), so
            confident scores rounded to 1.0 still rank apart.

    Returns:
        Plain JSON-ready values: num_videos, threshold, accuracy, per_class, macro_avg,
        weighted_avg, roc_auc, average_precision, eer, eer_threshold (a probability),
        confusion_matrix. Ranking metrics are None when a class is absent.
    """
    y, s = _as_arrays(labels, scores)
    if logits is not None:
        _, s = _as_arrays(y, logits)
    predictions = (s >= (threshold if logits is None else logit_of(threshold))).astype(np.int64)
    counts = _roc_counts(y, s)  # one ranking for AUC, AP and EER
    eer, eer_threshold = _equal_error_rate(counts)
    if logits is not None and eer_threshold is not None:
        eer_threshold = float(probability(eer_threshold))
    return {
        "num_videos": int(len(y)),
        "threshold": float(threshold),
        **classification_report(y, predictions),
        "roc_auc": _auc(counts),
        "average_precision": _average_precision(counts),
        "eer": eer,
        "eer_threshold": eer_threshold,
        "confusion_matrix": confusion_matrix(y, predictions),
    }


def held_out_metrics(
    labels: ArrayLike,
    scores: ArrayLike,
    is_leaked: Sequence[bool],
    threshold: float = 0.5,
    *,
    logits: ArrayLike | None = None,
) -> dict[str, Any]:
    """`binary_metrics` over the held-out videos only, and over every video (pooled).

    A video the run saw (in training, validation, or by sharing a sequence or an identity
    with them) flatters any metric it enters, so the held-out ones are the headline.

    Returns:
        {"n_held_out", "held_out", "pooled"}: `held_out` is None when every video leaked
        and equals `pooled` when none did.
    """
    y, s = _as_arrays(labels, scores)
    leaked = np.asarray(is_leaked, dtype=bool)
    if leaked.shape != y.shape:
        raise ValueError(f"{len(leaked)} leak flags for {len(y)} videos")
    z = None if logits is None else _as_arrays(y, logits)[1]
    pooled = binary_metrics(y, s, threshold, logits=z)
    kept = ~leaked
    if kept.all():
        return {"n_held_out": int(len(y)), "held_out": pooled, "pooled": pooled}
    held_out = None
    if kept.any():
        held_out = binary_metrics(
            y[kept], s[kept], threshold, logits=None if z is None else z[kept]
        )
    return {"n_held_out": int(kept.sum()), "held_out": held_out, "pooled": pooled}
