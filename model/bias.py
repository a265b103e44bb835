"""Dataset-bias checks in numpy only (model layer): how well a single per-video attribute
separates real from fake, human buckets for grouping videos, per-group error breakdowns,
and the style-flow magnitude of one video over time.

A detector that scores well may simply have learned an attribute that differs between
the classes by accident of collection (frame count, resolution, frame rate). These
helpers make such shortcuts visible. Label 1 is "fake", 0 is "real", as in
model/metrics.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from model.metrics import roc_auc

UNKNOWN = "unknown"

# (upper bound exclusive, bucket) by frame count; anything above the last is "500+".
_FRAME_BUCKETS = ((100, "<100"), (300, "100-299"), (500, "300-499"))
# (upper bound inclusive, bucket) by the shorter side in pixels.
_RESOLUTION_BUCKETS = ((360, "<=360p"), (480, "480p"), (720, "720p"), (1080, "1080p"))


def _labels_and_values(
    labels: Sequence[int] | np.ndarray, values: Sequence[float | None] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """0/1 labels and float64 values, None and NaN both NaN (numpy scalars of any width
    too): whole arrays, since a DFDC-sized dataset has 128k videos per attribute."""
    if len(labels) != len(values):
        raise ValueError(f"{len(labels)} labels but {len(values)} values")
    return np.asarray(labels, dtype=np.int64), np.asarray(values, dtype=np.float64)


def attribute_separation(
    labels: Sequence[int] | np.ndarray, values: Sequence[float | None] | np.ndarray
) -> dict[str, Any] | None:
    """How well one per-video attribute alone separates real from fake.

    Args:
        labels: 0 (real) or 1 (fake) per video.
        values: the attribute per video (frame count, width, fps, ...); None or NaN
            entries are ignored together with their labels.

    Returns:
        {"auc", "separation", "direction", "n_real", "n_fake"}: `auc` treats the value as
        a fake score, `separation` is max(auc, 1 - auc) (0.5 = no signal, 1.0 = the
        attribute alone splits the classes), and `direction` says which class has the
        higher values. None when either class has no video left.
    """
    y, v = _labels_and_values(labels, values)
    kept = ~np.isnan(v)
    y, v = y[kept], v[kept]
    n_fake = int(y.sum())
    n_real = len(y) - n_fake
    if n_real == 0 or n_fake == 0:
        return None
    auc = roc_auc(y, v)
    assert auc is not None  # both classes are present
    if auc > 0.5:
        direction = "higher in fake"
    elif auc < 0.5:
        direction = "lower in fake"
    else:
        direction = "none"
    return {
        "auc": auc,
        "separation": max(auc, 1.0 - auc),
        "direction": direction,
        "n_real": n_real,
        "n_fake": n_fake,
    }


def missing_by_class(
    labels: Sequence[int] | np.ndarray, values: Sequence[float | None] | np.ndarray
) -> dict[str, Any]:
    """How many values are missing (None or NaN) per class, and how well missingness alone
    separates the classes (AUC of the missing indicator as a fake score, folded to >= 0.5).

    Returns:
        {"real", "fake"}: missing counts; {"n_real", "n_fake"}: videos per class;
        "separation": 0.5 when both classes miss values at the same rate (or one class
        has no video), 1.0 when exactly one class misses them all.
    """
    y, v = _labels_and_values(labels, values)
    n_fake = int(y.sum())
    n_real = len(y) - n_fake
    gone = np.isnan(v)
    fake = int(np.count_nonzero(gone & (y != 0)))
    real = int(np.count_nonzero(gone)) - fake
    separation = 0.5
    if n_real and n_fake:
        # For a 0/1 score, AUC = 0.5 + (rate among fakes - rate among reals) / 2.
        separation = 0.5 + abs(fake / n_fake - real / n_real) / 2
    return {
        "real": real,
        "fake": fake,
        "n_real": n_real,
        "n_fake": n_fake,
        "separation": separation,
    }


def frame_count_bucket(frames: int | None) -> str:
    """Bucket by frame count: "<100", "100-299", "300-499", "500+"; "unknown" for None."""
    if frames is None:
        return UNKNOWN
    for bound, name in _FRAME_BUCKETS:
        if frames < bound:
            return name
    return "500+"


def resolution_bucket(width: int | None, height: int | None) -> str:
    """Bucket by the shorter side: "<=360p", "480p", "720p", "1080p", ">1080p".

    A portrait 1080x1920 video is "1080p" like a landscape one. "unknown" when either
    side is None.
    """
    if width is None or height is None:
        return UNKNOWN
    short_side = min(width, height)
    for bound, name in _RESOLUTION_BUCKETS:
        if short_side <= bound:
            return name
    return ">1080p"


def prediction_breakdown(
    labels: Sequence[int], predicted: Sequence[int], groups: Sequence[str | None]
) -> list[dict[str, Any]]:
    """Counts and error rates of 0/1 predictions per group, groups sorted by name.

    Args:
        labels: 0 (real) or 1 (fake) per video.
        predicted: the predicted 0/1 label per video.
        groups: the group name per video; None becomes "unknown".

    Returns:
        One dict per group: group, n, n_real, n_fake, predicted_fake_rate, error_rate
        (both in [0, 1]) and errors (a count).
    """
    if not len(labels) == len(predicted) == len(groups):
        raise ValueError("labels, predicted and groups must have equal lengths")
    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(predicted, dtype=np.int64)
    names = np.array([UNKNOWN if g is None else str(g) for g in groups], dtype=object)
    rows = []
    for name in sorted(set(names)):
        mask = names == name
        n = int(mask.sum())
        errors = int((y[mask] != p[mask]).sum())
        n_fake = int(y[mask].sum())
        rows.append(
            {
                "group": name,
                "n": n,
                "n_real": n - n_fake,
                "n_fake": n_fake,
                "predicted_fake_rate": float(p[mask].sum()) / n,
                "error_rate": errors / n,
                "errors": errors,
            }
        )
    return rows


def flow_magnitude(style: Any) -> np.ndarray:
    """L2 norm of the style flow at each step: how much the style changes frame to frame.

    Args:
        style: (T, L, D) per-frame style codes (numpy, a CPU tensor, nested lists).

    Returns:
        (T-1,) float64 norms of the differences of consecutive flattened codes.
    """
    codes = np.asarray(style, dtype=np.float64)
    if codes.ndim != 3:
        raise ValueError(f"style must be (T, L, D), got shape {codes.shape}")
    flat = codes.reshape(len(codes), -1)
    return np.linalg.norm(np.diff(flat, axis=0), axis=1)
