"""Bias statistics: of the catalog (what a detector could learn instead of the manipulation)
and of stored predictions (where a run errs), each strong skew said in one sentence (jobs
layer: catalog facts in, `model.bias` numbers out).
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ddm.vocab import Label, Split

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

# An attribute separating real from fake at least this well is called a shortcut.
SHORTCUT_SEPARATION = 0.75
# Fewer videos of a class than this and no sentence is made of a separation: with three
# clips anything "separates" them.
MIN_PER_CLASS = 5
# A group whose error rate exceeds the run's overall rate by this much is called out.
GROUP_SKEW = 0.25
MIN_GROUP = 5

# Each attribute from a dataset's columns (`_columns`: float64, NaN where unknown).
ATTRIBUTES: dict[str, Callable[[dict[str, np.ndarray]], np.ndarray]] = {
    "frame count": lambda c: c["frame_count"],
    "width": lambda c: c["width"],
    "height": lambda c: c["height"],
    "fps": lambda c: c["fps"],
    "duration": lambda c: c["duration_s"],
    "file size": lambda c: c["size_bytes"],
    "bitrate": lambda c: _ratio(c["size_bytes"] * 8, c["duration_s"], zero_numerator=False),
    "fallback rate": lambda c: _ratio(c["fallback_frames"], c["frames_sampled"]),
}
# The facts read as columns, one array each for a dataset's videos.
COLUMNS = (
    "frame_count",
    "width",
    "height",
    "fps",
    "duration_s",
    "size_bytes",
    "fallback_frames",
    "frames_sampled",
)


def _columns(videos: Sequence[Any]) -> dict[str, np.ndarray]:
    # Whole columns: per-video Python over DFDC's 128k videos took seconds of `ddm stats`.
    return {
        name: np.array(list(map(operator.attrgetter(name), videos)), dtype=np.float64)
        for name in COLUMNS
    }


def _ratio(
    numerator: np.ndarray, denominator: np.ndarray, *, zero_numerator: bool = True
) -> np.ndarray:
    """numerator / denominator where both are known, the denominator is not 0 and (unless
    `zero_numerator`) neither is the numerator; NaN elsewhere."""
    known = ~np.isnan(numerator) & ~np.isnan(denominator) & (denominator != 0)
    if not zero_numerator:
        known &= numerator != 0
    out = np.full(len(numerator), np.nan)
    np.divide(numerator, denominator, out=out, where=known)
    return out


# --------------------------------------------------------------------------- catalog


def catalog_stats(session: Session, datasets: Sequence[str] | None = None) -> dict[str, Any]:
    """`ddm stats`: `catalog_bias` of the videos of `datasets` (default: every dataset).

    Raises:
        NotFound: an unknown dataset name.
    """
    from ddm.catalog.stats import video_facts

    return catalog_bias(video_facts(session, datasets))


def catalog_bias(facts: Sequence[Any]) -> dict[str, Any]:
    """Per dataset: per-label summaries, and how well each attribute alone separates the
    labels (`model.bias.attribute_separation`), with a sentence per shortcut."""
    by_dataset: dict[str, list[Any]] = {}
    for fact in facts:
        by_dataset.setdefault(fact.dataset, []).append(fact)
    datasets = {name: _dataset_bias(name, videos) for name, videos in by_dataset.items()}
    sentences = [s for entry in datasets.values() for s in entry.pop("sentences")]
    return {"datasets": datasets, "sentences": sentences}


def _dataset_bias(name: str, videos: list[Any]) -> dict[str, Any]:
    from model.bias import attribute_separation, missing_by_class

    columns = _columns(videos)
    labels = np.array([v.label == Label.FAKE for v in videos], dtype=np.int64)
    separation, missing = {}, {}
    sentences = []
    for attribute, values_of in ATTRIBUTES.items():
        values = values_of(columns)
        result = attribute_separation(labels, values)
        separation[attribute] = result
        missing[attribute] = missing_by_class(labels, values)
        if _is_shortcut(result):
            sentences.append(
                f"{name}: {attribute} alone separates real from fake with AUC "
                f"{result['separation']:.2f} ({result['direction']}); a detector can learn "
                "it instead of the manipulation"
            )
        sentences.extend(_missing_sentence(name, attribute, missing[attribute]))
    label_of = np.array([v.label for v in videos], dtype=object)
    by_label = {}
    for label in Label:
        chosen = label_of == label.value
        subset = [v for v, is_chosen in zip(videos, chosen, strict=True) if is_chosen]
        by_label[label.value] = _label_summary(
            subset, {column: values[chosen] for column, values in columns.items()}
        )
    fingerprints = sorted({v.cache_fingerprint for v in videos if v.cache_fingerprint})
    return {
        "by_label": by_label,
        "separation": separation,
        "missing": missing,
        "cache_fingerprint": fingerprints[0] if len(fingerprints) == 1 else None,
        "sentences": sentences,
    }


def _missing_sentence(name: str, attribute: str, missing: dict[str, Any]) -> list[str]:
    """A sentence when whether a value is missing alone separates the classes: a detector
    (or a loader that drops such videos) can key on it as on the value itself."""
    n_real, n_fake = missing["n_real"], missing["n_fake"]
    if min(n_real, n_fake) < MIN_PER_CLASS or missing["separation"] < SHORTCUT_SEPARATION:
        return []
    return [
        f"{name}: {attribute} is missing for {missing['fake']} of {n_fake} fakes but "
        f"{missing['real']} of {n_real} reals; its absence alone separates real from fake "
        f"with AUC {missing['separation']:.2f}"
    ]


def _is_shortcut(result: dict[str, Any] | None) -> bool:
    return bool(
        result
        and min(result["n_real"], result["n_fake"]) >= MIN_PER_CLASS
        and result["separation"] >= SHORTCUT_SEPARATION
    )


def _label_summary(videos: list[Any], columns: dict[str, np.ndarray]) -> dict[str, Any]:
    sampled = columns["frames_sampled"]
    with_cache = ~np.isnan(sampled) & (sampled != 0)
    fallback = columns["fallback_frames"][with_cache]
    n_cache = int(with_cache.sum())
    return {
        "videos": len(videos),
        "splits": _splits(videos),
        "frame_count": _median(columns["frame_count"]),
        "resolution": _most_common([_resolution(v) for v in videos]),
        "fps": _median(columns["fps"]),
        "duration_s": _median(columns["duration_s"]),
        "with_cache": n_cache,
        "fallback_rate": _nonzero(fallback) / n_cache if n_cache else None,
    }


def _splits(videos: list[Any]) -> dict[str, int]:
    counts = Counter(v.split or "none" for v in videos)
    return {name: counts.get(name, 0) for name in (*(s.value for s in Split), "none")}


def _median(values: np.ndarray) -> float | None:
    present = values[~np.isnan(values)]
    return float(np.median(present)) if len(present) else None


def _most_common(values: list[str | None]) -> str | None:
    present = Counter(value for value in values if value is not None)
    return present.most_common(1)[0][0] if present else None


def _resolution(video: Any) -> str | None:
    return f"{video.width}x{video.height}" if video.width and video.height else None


def _nonzero(values: np.ndarray) -> int:
    """How many values are known (not NaN) and not 0."""
    return int(np.count_nonzero(~np.isnan(values) & (values != 0)))


# --------------------------------------------------------------------------- predictions

GROUPINGS: dict[str, Callable[[Any], str | None]] = {
    "label": lambda p: p.label,
    "method": lambda p: p.method or ("none" if p.label == Label.REAL else None),
    "compression": lambda p: p.compression,
    "fallback": lambda p: (
        None
        if p.fallback_frames is None
        else ("any fallback frame" if p.fallback_frames else "none")
    ),
}


def prediction_bias(predictions: Sequence[Any]) -> dict[str, list[dict[str, Any]]]:
    """Predicted-fake rate and error rate per group, for every grouping of the videos."""
    from model.bias import frame_count_bucket, prediction_breakdown, resolution_bucket

    groupings = {
        **GROUPINGS,
        "frame_count": lambda p: frame_count_bucket(p.frame_count),
        "resolution": lambda p: resolution_bucket(p.width, p.height),
    }
    labels = [int(p.label == Label.FAKE) for p in predictions]
    predicted = [int(p.predicted_label == Label.FAKE) for p in predictions]
    return {
        name: prediction_breakdown(labels, predicted, [group_of(p) for p in predictions])
        for name, group_of in groupings.items()
    }


def prediction_sentences(entry: dict[str, Any], by: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Plain sentences for a run's strong skews on one evaluated dataset."""
    who = f"run {entry['run_id']} ({'+'.join(entry['train_datasets'])})"
    dataset = entry["eval_dataset"]
    c = entry["confusion"]
    sentences = []
    fakes, reals = c["tp"] + c["fn"], c["tn"] + c["fp"]
    if fakes and c["fn"] * 2 >= fakes:
        sentences.append(f"{who} predicts real for {c['fn']} of {fakes} {dataset} fakes")
    if reals and c["fp"] * 2 >= reals:
        sentences.append(f"{who} predicts fake for {c['fp']} of {reals} {dataset} reals")
    overall = 1 - entry["accuracy"]
    for grouping, groups in by.items():
        if grouping == "label":
            continue
        for group in groups:
            if group["n"] >= MIN_GROUP and group["error_rate"] >= overall + GROUP_SKEW:
                sentences.append(
                    f"{who} errs on {group['errors']} of {group['n']} {dataset} videos with "
                    f"{grouping} {group['group']} (overall error rate {overall:.0%})"
                )
    return sentences
