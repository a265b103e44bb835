"""Metrics against hand-computed values (ties included) and brute-force definitions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from model.metrics import (
    average_precision,
    binary_metrics,
    classification_report,
    confusion_matrix,
    equal_error_rate,
    held_out_metrics,
    logit_of,
    probability,
    roc_auc,
    roc_curve,
)


def test_scikit_learn_documentation_example() -> None:
    labels, scores = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    fpr, tpr, thresholds = roc_curve(labels, scores)
    assert fpr.tolist() == [0, 0, 0.5, 0.5, 1]
    assert tpr.tolist() == [0, 0.5, 0.5, 1, 1]
    assert thresholds.tolist() == [np.inf, 0.8, 0.4, 0.35, 0.1]
    assert roc_auc(labels, scores) == pytest.approx(0.75)
    assert average_precision(labels, scores) == pytest.approx(5 / 6)
    assert equal_error_rate(labels, scores) == pytest.approx((0.5, 0.4))


def test_tied_scores_form_one_roc_point() -> None:
    labels = [0, 0, 1, 1, 1, 0]
    scores = [0.1, 0.5, 0.5, 0.9, 0.3, 0.3]
    # Pairs (fake, real) ranked right count 1, tied pairs 1/2: (2.5 + 3 + 1.5) / 9.
    assert roc_auc(labels, scores) == pytest.approx(7 / 9)
    # Thresholds 0.9, 0.5, 0.3, 0.1: precision 1, 2/3, 3/5, 1/2 at recall 1/3, 2/3, 1, 1.
    assert average_precision(labels, scores) == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    # FPR 0, 1/3, 2/3, 1 against FNR 2/3, 1/3, 0, 0: they meet at threshold 0.5.
    assert equal_error_rate(labels, scores) == pytest.approx((1 / 3, 0.5))


def test_all_scores_tied() -> None:
    labels, scores = [0, 1, 0, 1], [0.5] * 4
    assert roc_auc(labels, scores) == 0.5
    assert average_precision(labels, scores) == 0.5
    assert equal_error_rate(labels, scores) == pytest.approx((0.5, 0.5))


def test_eer_interpolates_between_roc_points() -> None:
    labels, scores = [0, 0, 0, 1, 1], [0.1, 0.2, 0.7, 0.6, 0.9]
    # (FPR, FNR): (0, .5) at 0.9, (1/3, .5) at 0.7, (1/3, 0) at 0.6: the sign change of
    # FPR - FNR lies one third of the way from the 0.7 point to the 0.6 point.
    assert equal_error_rate(labels, scores) == pytest.approx((1 / 3, 0.6))
    assert roc_auc(labels, scores) == pytest.approx(5 / 6)


def test_perfect_and_inverted_rankings() -> None:
    assert roc_auc([0, 0, 1], [0.1, 0.2, 0.9]) == 1.0
    assert equal_error_rate([0, 0, 1], [0.1, 0.2, 0.9])[0] == 0.0
    assert roc_auc([0, 1], [0.6, 0.4]) == 0.0
    assert equal_error_rate([0, 1], [0.6, 0.4])[0] == 1.0


def test_per_class_report_by_hand() -> None:
    labels, predictions = [1, 1, 1, 0, 0], [1, 0, 1, 0, 1]
    assert confusion_matrix(labels, predictions) == [[1, 1], [1, 2]]
    report = classification_report(labels, predictions)
    assert report["accuracy"] == pytest.approx(3 / 5)
    fake, real = report["per_class"]["fake"], report["per_class"]["real"]
    assert (fake["precision"], fake["recall"], fake["f1"]) == pytest.approx((2 / 3,) * 3)
    assert fake["support"] == 3 and real["support"] == 2
    assert (real["precision"], real["recall"], real["f1"]) == pytest.approx((0.5,) * 3)
    assert report["macro_avg"]["precision"] == pytest.approx(7 / 12)
    assert report["macro_avg"]["f1"] == pytest.approx(7 / 12)
    assert report["weighted_avg"]["recall"] == pytest.approx(3 / 5)
    assert report["weighted_avg"]["support"] == 5


def test_a_class_never_predicted_scores_zero() -> None:
    report = classification_report([0, 1, 1], [1, 1, 1])
    assert report["per_class"]["real"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


def test_one_class_only_leaves_ranking_metrics_undefined() -> None:
    metrics = binary_metrics([1, 1, 1], [0.2, 0.7, 0.9])
    assert metrics["roc_auc"] is None and metrics["eer"] is None
    assert metrics["average_precision"] == 1.0
    assert binary_metrics([0, 0], [0.2, 0.7])["average_precision"] is None


def test_binary_metrics_are_plain_json() -> None:
    metrics = binary_metrics(np.array([0, 1, 1, 0]), np.array([0.2, 0.6, 0.4, 0.5]))
    assert json.loads(json.dumps(metrics)) == metrics
    assert metrics["confusion_matrix"] == [[1, 1], [1, 1]]
    assert set(metrics) == {
        "num_videos", "threshold", "accuracy", "per_class", "macro_avg", "weighted_avg",
        "roc_auc", "average_precision", "eer", "eer_threshold", "confusion_matrix",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("labels", "scores"), [([0, 2], [0.1, 0.2]), ([0, 1], [0.1]), ([], []), ([0, 1], [0, np.nan])]
)
def test_bad_inputs_are_rejected(labels, scores) -> None:
    with pytest.raises(ValueError):
        binary_metrics(labels, scores)


def random_case(seed: int, ties: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 200)
    scores = rng.normal(0.5 + 0.2 * labels, 0.25)  # continuous: no ties
    return labels, np.round(np.clip(scores, 0, 1), 1) if ties else scores


@pytest.mark.parametrize("seed", range(5))
def test_auc_equals_the_mann_whitney_statistic(seed: int) -> None:
    labels, scores = random_case(seed, ties=True)
    fake, real = scores[labels == 1], scores[labels == 0]
    pairs = (fake[:, None] > real[None, :]) + 0.5 * (fake[:, None] == real[None, :])
    assert roc_auc(labels, scores) == pytest.approx(pairs.mean())


@pytest.mark.parametrize("seed", range(5))
def test_average_precision_equals_mean_precision_at_each_fake(seed: int) -> None:
    labels, scores = random_case(seed, ties=False)
    ranked = labels[np.argsort(-scores)]
    precision_at = np.cumsum(ranked) / np.arange(1, len(ranked) + 1)
    assert average_precision(labels, scores) == pytest.approx(precision_at[ranked == 1].mean())


@pytest.mark.parametrize("seed", range(5))
def test_eer_lies_where_the_error_rates_cross(seed: int) -> None:
    labels, scores = random_case(seed, ties=True)
    eer, _ = equal_error_rate(labels, scores)
    rates = []
    for threshold in np.unique(scores):
        predicted = scores >= threshold
        rates.append((predicted[labels == 0].mean(), 1 - predicted[labels == 1].mean()))
    rates.append((0.0, 1.0))  # nothing predicted fake
    assert max(min(r) for r in rates) - 1e-12 <= eer <= min(max(r) for r in rates) + 1e-12


@pytest.mark.parametrize("seed", range(3))
def test_agreement_with_scikit_learn(seed: int) -> None:
    sklearn_metrics = pytest.importorskip("sklearn.metrics")  # not a project dependency
    labels, scores = random_case(seed, ties=True)
    predictions = (scores >= 0.5).astype(int)
    ours = binary_metrics(labels, scores)
    assert ours["roc_auc"] == pytest.approx(sklearn_metrics.roc_auc_score(labels, scores))
    assert ours["average_precision"] == pytest.approx(
        sklearn_metrics.average_precision_score(labels, scores)
    )
    assert (
        ours["confusion_matrix"] == sklearn_metrics.confusion_matrix(labels, predictions).tolist()
    )
    report = sklearn_metrics.classification_report(labels, predictions, output_dict=True)
    assert ours["per_class"]["fake"]["f1"] == pytest.approx(report["1"]["f1-score"])
    assert ours["macro_avg"]["f1"] == pytest.approx(report["macro avg"]["f1-score"])
    assert ours["weighted_avg"]["precision"] == pytest.approx(report["weighted avg"]["precision"])


def test_logits_rank_where_their_probabilities_tie() -> None:
    # Logits above ~17 all become 1.0 in a float32 sigmoid: a confident false positive (the
    # real at 30) would tie with the fakes. Ranked by logit it is plainly the top real.
    labels = [0, 0, 1, 1, 1]
    logits = np.array([-3.0, 30.0, 20.0, 25.0, 40.0])
    rounded = torch.sigmoid(torch.tensor(logits, dtype=torch.float32)).double().numpy()
    assert (rounded[1:] == 1.0).all()
    m = binary_metrics(labels, probability(logits), logits=logits)
    assert m["roc_auc"] == pytest.approx(4 / 6)  # the real at 30 outranks two of three fakes
    # Rounded, the real at 30 ties with every fake and counts half right: biased upwards.
    assert binary_metrics(labels, rounded)["roc_auc"] == pytest.approx(4.5 / 6)
    assert m["accuracy"] == pytest.approx(0.8)
    assert 0.0 < m["eer_threshold"] <= 1.0


def test_probability_is_float64_and_never_overflows() -> None:
    p = probability([-1000.0, -40.0, 0.0, 40.0, 1000.0])
    assert p.dtype == np.float64 and np.isfinite(p).all()
    assert p[0] == 0.0 and 0.0 < p[1] < 1e-17 and p[2] == 0.5 and p[4] == 1.0
    assert logit_of(0.5) == 0.0 and probability(logit_of(0.8)) == pytest.approx(0.8)


def test_the_macro_average_leaves_out_an_absent_class() -> None:
    report = classification_report([1, 1, 1, 1], [1, 1, 0, 1])
    assert report["per_class"]["real"]["support"] == 0
    assert report["macro_avg"]["recall"] == pytest.approx(0.75)  # fake's alone, not halved


def test_held_out_metrics_leave_the_seen_videos_out_of_the_headline() -> None:
    labels, scores = [0, 1, 0, 1, 1], [0.2, 0.9, 0.8, 0.3, 0.7]
    split = held_out_metrics(labels, scores, [False, False, True, True, False])
    assert split["n_held_out"] == 3 and split["held_out"]["num_videos"] == 3
    assert split["held_out"]["roc_auc"] == 1.0 and split["pooled"]["roc_auc"] < 1.0
    unseen = held_out_metrics(labels, scores, [False] * 5)
    assert unseen["held_out"] is unseen["pooled"]
    assert held_out_metrics(labels, scores, [True] * 5)["held_out"] is None


def test_every_metric_is_the_same_whatever_the_order_of_tied_scores() -> None:
    # Ranks are taken by an unstable sort: only the counts at the end of each run of
    # tied scores enter a metric, so any order of the videos must give equal numbers.
    rng = np.random.default_rng(7)
    labels = (rng.random(5000) < 0.4).astype(np.int64)
    logits = np.round(rng.normal(size=5000), 1)  # about 80 distinct values
    expected = binary_metrics(labels, probability(logits), 0.5, logits=logits)
    assert expected["roc_auc"] is not None
    for _ in range(5):
        order = rng.permutation(len(labels))
        shuffled = binary_metrics(
            labels[order], probability(logits[order]), 0.5, logits=logits[order]
        )
        assert shuffled == expected
    assert (roc_auc(labels, logits), average_precision(labels, logits)) == (
        expected["roc_auc"],
        expected["average_precision"],
    )
