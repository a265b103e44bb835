"""Dataset-bias checks: attribute separation, buckets, per-group breakdowns, flow norms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from model.bias import (
    attribute_separation,
    flow_magnitude,
    frame_count_bucket,
    prediction_breakdown,
    resolution_bucket,
)


def test_a_perfectly_separating_attribute() -> None:
    labels = [0, 0, 0, 1, 1]
    higher = attribute_separation(labels, [10, 20, 30, 40, 50])
    assert higher == {
        "auc": 1.0,
        "separation": 1.0,
        "direction": "higher in fake",
        "n_real": 3,
        "n_fake": 2,
    }
    lower = attribute_separation(labels, [50, 40, 30, 20, 10])
    assert lower is not None
    assert (lower["auc"], lower["separation"], lower["direction"]) == (0.0, 1.0, "lower in fake")


def test_an_attribute_equal_in_both_classes_has_no_direction() -> None:
    result = attribute_separation([0, 1, 0, 1], [30.0, 30.0, 30.0, 30.0])
    assert result is not None
    assert (result["auc"], result["separation"], result["direction"]) == (0.5, 0.5, "none")


def test_auc_matches_scikit_learn_on_random_data() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=200)
    values = rng.integers(0, 20, size=200).astype(float)  # many ties
    result = attribute_separation(labels.tolist(), values.tolist())
    assert result is not None
    expected = roc_auc_score(labels, values)
    assert result["auc"] == pytest.approx(expected, abs=1e-12)
    assert result["separation"] == pytest.approx(max(expected, 1 - expected), abs=1e-12)
    assert (result["n_real"], result["n_fake"]) == (int((labels == 0).sum()), int(labels.sum()))


def test_missing_values_are_dropped_with_their_labels() -> None:
    # Without the drop, the fake with None/NaN would sit below every real video.
    labels = [0, 0, 1, 1, 1, 0]
    values = [1.0, 2.0, 5.0, None, math.nan, np.float32("nan")]
    result = attribute_separation(labels, values)
    assert result is not None
    assert (result["auc"], result["n_real"], result["n_fake"]) == (1.0, 2, 1)


def test_one_class_left_gives_none() -> None:
    assert attribute_separation([1, 1, 1], [1.0, 2.0, 3.0]) is None
    assert attribute_separation([0, 1, 1], [None, 2.0, 3.0]) is None
    assert attribute_separation([], []) is None


@pytest.mark.parametrize(
    ("frames", "bucket"),
    [
        (None, "unknown"),
        (0, "<100"),
        (99, "<100"),
        (100, "100-299"),
        (299, "100-299"),
        (300, "300-499"),
        (499, "300-499"),
        (500, "500+"),
        (10_000, "500+"),
    ],
)
def test_frame_count_buckets(frames: int | None, bucket: str) -> None:
    assert frame_count_bucket(frames) == bucket


@pytest.mark.parametrize(
    ("width", "height", "bucket"),
    [
        (None, 720, "unknown"),
        (1280, None, "unknown"),
        (640, 360, "<=360p"),
        (640, 361, "480p"),
        (854, 480, "480p"),
        (1280, 481, "720p"),
        (1280, 720, "720p"),
        (720, 1280, "720p"),  # portrait: the shorter side counts
        (1920, 1080, "1080p"),
        (1920, 1081, ">1080p"),
        (3840, 2160, ">1080p"),
    ],
)
def test_resolution_buckets(width: int | None, height: int | None, bucket: str) -> None:
    assert resolution_bucket(width, height) == bucket


def test_prediction_breakdown_by_hand() -> None:
    labels = [0, 1, 1, 0, 1, 0]
    predicted = [0, 1, 0, 1, 1, 0]
    groups = ["b", "b", "a", "a", None, "b"]
    assert prediction_breakdown(labels, predicted, groups) == [
        {
            "group": "a",
            "n": 2,
            "n_real": 1,
            "n_fake": 1,
            "predicted_fake_rate": 0.5,
            "error_rate": 1.0,
            "errors": 2,
        },
        {
            "group": "b",
            "n": 3,
            "n_real": 2,
            "n_fake": 1,
            "predicted_fake_rate": pytest.approx(1 / 3),
            "error_rate": 0.0,
            "errors": 0,
        },
        {
            "group": "unknown",
            "n": 1,
            "n_real": 0,
            "n_fake": 1,
            "predicted_fake_rate": 1.0,
            "error_rate": 0.0,
            "errors": 0,
        },
    ]


def test_prediction_breakdown_rejects_unequal_lengths() -> None:
    with pytest.raises(ValueError, match="equal lengths"):
        prediction_breakdown([0, 1], [0, 1], ["a"])


def test_flow_magnitude_by_hand() -> None:
    # T=3 frames, L=2 levels, D=2: the per-frame code is flattened to 4 numbers.
    style = np.array(
        [
            [[0.0, 0.0], [0.0, 0.0]],
            [[3.0, 0.0], [0.0, 4.0]],  # change (3, 0, 0, 4): norm 5
            [[3.0, 1.0], [0.0, 4.0]],  # change (0, 1, 0, 0): norm 1
        ]
    )
    magnitude = flow_magnitude(style)
    assert magnitude.dtype == np.float64
    np.testing.assert_array_equal(magnitude, [5.0, 1.0])
    np.testing.assert_allclose(flow_magnitude(torch.from_numpy(style).float()), [5.0, 1.0])


def test_flow_magnitude_needs_three_dimensions() -> None:
    with pytest.raises(ValueError, match=r"\(T, L, D\)"):
        flow_magnitude(np.zeros((4, 512)))
