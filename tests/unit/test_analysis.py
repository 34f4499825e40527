"""caffepipe.evaluation.error_stats on small hand-made predictions whose right answers are worked out by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from caffepipe.evaluation import error_stats


def one_hot_probs(rows: list[dict[int, float]], n_classes: int = 10) -> np.ndarray:
    """Probabilities from {class: p} per image; what is left is spread evenly over the other classes."""
    probs = np.zeros((len(rows), n_classes))
    for i, row in enumerate(rows):
        rest = (1 - sum(row.values())) / (n_classes - len(row))
        probs[i] = rest
        for k, p in row.items():
            probs[i, k] = p
    return probs


# ---- per-snapshot metrics ----------------------------------------------------------------------------------

def test_confusion_matrix_rows_are_true_classes() -> None:
    labels = np.array([0, 0, 1, 2, 2, 2])
    predictions = np.array([0, 1, 1, 2, 0, 0])
    expected = np.array([[1, 1, 0], [0, 1, 0], [2, 0, 1]])
    np.testing.assert_array_equal(error_stats.confusion_matrix(labels, predictions, 3), expected)


def test_per_class_error_counts_and_rates_with_an_empty_class() -> None:
    confusion = np.array([[1, 1, 0, 0], [0, 1, 0, 0], [2, 0, 1, 0], [0, 0, 0, 0]])
    errors, totals, rates = error_stats.per_class_error(confusion)
    np.testing.assert_array_equal(errors, [1, 0, 2, 0])
    np.testing.assert_array_equal(totals, [2, 1, 3, 0])
    np.testing.assert_allclose(rates[:3], [0.5, 0.0, 2 / 3])
    assert math.isnan(rates[3])


def test_accuracy_and_cross_entropy() -> None:
    labels = np.array([3, 7])
    uniform = np.full((2, 10), 0.1)
    assert error_stats.cross_entropy(uniform, labels) == pytest.approx(math.log(10))
    probs = one_hot_probs([{3: 0.5}, {7: 0.25}])
    assert error_stats.cross_entropy(probs, labels) == pytest.approx((math.log(2) + math.log(4)) / 2)
    assert error_stats.accuracy(labels, np.array([3, 1])) == 0.5


def test_cross_entropy_clamps_a_zero_probability_like_caffe() -> None:
    probs = np.zeros((1, 10))
    probs[0, 1] = 1.0
    assert error_stats.cross_entropy(probs, np.array([0])) == pytest.approx(-math.log(np.finfo(np.float32).tiny))


# ---- which images are wrong, and why -------------------------------------------------------------------------

def test_top2_and_margin_with_a_tie_going_to_the_lower_class() -> None:
    probs = np.array([[0.1, 0.6, 0.3], [0.4, 0.2, 0.4]])
    first, second, p_first, p_second = error_stats.top2(probs)
    np.testing.assert_array_equal(first, [1, 0])
    np.testing.assert_array_equal(second, [2, 2])
    np.testing.assert_allclose(error_stats.margins(probs), [0.3, 0.0])


def test_error_table_lists_errors_most_confident_first_with_top2_and_margin() -> None:
    labels = np.array([4, 3, 3, 7])
    probs = one_hot_probs([
        {9: 0.7, 4: 0.2, 7: 0.1},            # a 4 read as 9; the 4 is the runner-up
        {3: 0.9},                            # right
        {5: 0.5, 8: 0.3, 3: 0.2},            # a 3 read as 5; the 3 only comes third
        {2: 0.95, 7: 0.05},                  # a 7 read as 2, very sure
    ])
    table = error_stats.error_table(probs, labels)
    assert table["index"].tolist() == [3, 0, 2]
    assert table["true"].tolist() == [7, 4, 3]
    assert table["predicted"].tolist() == [2, 9, 5]
    assert table["second"].tolist() == [7, 4, 8]
    np.testing.assert_allclose(table["p_predicted"], [0.95, 0.7, 0.5])
    np.testing.assert_allclose(table["p_true"], [0.05, 0.2, 0.2])
    np.testing.assert_allclose(table["margin"], [0.9, 0.5, 0.2])
    assert table["true_is_second"].tolist() == [True, True, False]
    assert table["true_rank"].tolist() == [2, 2, 3]


def test_error_table_follows_the_saved_predictions_and_is_empty_without_errors() -> None:
    labels = np.array([0, 1])
    probs = one_hot_probs([{0: 0.9}, {1: 0.8}])
    assert error_stats.error_table(probs, labels).empty
    table = error_stats.error_table(probs, labels, predictions=np.array([0, 2]))
    assert table["index"].tolist() == [1] and table["predicted"].tolist() == [2]


def test_confused_pairs_are_ranked_over_both_directions() -> None:
    confusion = np.diag(np.full(10, 100))
    confusion[4, 9], confusion[9, 4] = 5, 3     # 4/9: 8
    confusion[3, 5] = 4                         # 3/5: 4
    confusion[7, 2] = 2                         # 2/7: 2 (a 7 read as 2)
    pairs = error_stats.confused_pairs(confusion)
    assert pairs["pair"].tolist() == ["4/9", "3/5", "2/7"]
    assert pairs["count"].tolist() == [8, 4, 2]
    assert pairs.loc[0, ["a_as_b", "b_as_a"]].tolist() == [5, 3]
    assert pairs.loc[2, ["a", "b", "a_as_b", "b_as_a"]].tolist() == [2, 7, 0, 2]
    np.testing.assert_allclose(pairs["share"], [8 / 14, 4 / 14, 2 / 14])
    assert pairs["rank"].tolist() == [1, 2, 3]


def test_confused_pairs_of_a_perfect_model_is_empty() -> None:
    assert error_stats.confused_pairs(np.diag([5, 5, 5])).empty


# ---- is every class equally likely to be wrong? ------------------------------------------------------------------

def test_wilson_interval_known_values() -> None:
    low, high = error_stats.wilson_interval([0, 5, 10, 0], [10, 10, 10, 0])
    z2 = 1.959963984540054 ** 2
    np.testing.assert_allclose(low[:3], [0.0, 0.236593, 10 / (10 + z2)], atol=1e-6)
    np.testing.assert_allclose(high[:3], [z2 / (10 + z2), 0.763407, 1.0], atol=1e-6)
    assert math.isnan(low[3]) and math.isnan(high[3])


@given(st.integers(1, 5000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
@settings(max_examples=200, deadline=None)
def test_wilson_interval_holds_the_observed_rate(case: tuple[int, int]) -> None:
    k, n = case
    low, high = error_stats.wilson_interval(k, n)
    assert 0 <= low <= k / n + 1e-12 and k / n - 1e-12 <= high <= 1


def test_equal_error_test_worked_example() -> None:
    # 10/100 against 30/100 wrong: overall 0.2, expected 20 wrong and 80 right in each class, so
    # chi2 = 2 * 10^2/20 + 2 * 10^2/80 = 12.5 on 1 degree of freedom.
    test = error_stats.equal_error_test([10, 30], [100, 100])
    assert test.statistic == pytest.approx(12.5)
    assert test.dof == 1
    assert test.p_value == pytest.approx(stats.chi2.sf(12.5, 1))
    table = np.array([[10, 30], [90, 70]])
    assert test.statistic == pytest.approx(stats.chi2_contingency(table, correction=False)[0])


def test_equal_error_test_without_differences_or_errors() -> None:
    same = error_stats.equal_error_test([5, 10, 15], [50, 100, 150])
    assert same.statistic == pytest.approx(0.0) and same.p_value == pytest.approx(1.0)
    none = error_stats.equal_error_test([0, 0], [10, 20])
    assert (none.statistic, none.p_value) == (0.0, 1.0)


def test_class_error_table_shares_and_intervals() -> None:
    confusion = np.array([[8, 2], [0, 10]])
    table = error_stats.class_error_table(confusion)
    assert table["errors"].tolist() == [2, 0]
    np.testing.assert_allclose(table["error_rate"], [0.2, 0.0])
    np.testing.assert_allclose(table["share_of_errors"], [1.0, 0.0])
    np.testing.assert_allclose(table["share_of_images"], [0.5, 0.5])
    low, high = error_stats.wilson_interval([2, 0], [10, 10])
    np.testing.assert_allclose(table["ci_low"], low)
    np.testing.assert_allclose(table["ci_high"], high)


def test_errors_by_true_class_drops_the_diagonal() -> None:
    by_class = error_stats.errors_by_true_class(np.array([[5, 1], [2, 7]]))
    np.testing.assert_array_equal(by_class, [[0, 1], [2, 0]])


# ---- across snapshots ----------------------------------------------------------------------------------------------

LABELS = np.array([0, 1, 2, 3, 4])
ITERATIONS = np.array([10, 20, 30, 40])
# correct:   image 0: R R W R   image 1: W R R R   image 2: W R W R   image 3: W W W W   image 4: R W R W
PREDICTIONS = np.array([
    [0, 0, 0, 0, 4],
    [0, 1, 2, 0, 0],
    [1, 1, 0, 0, 4],
    [0, 1, 2, 0, 0],
])


def test_forgetting_events_constructed_on_purpose() -> None:
    forgetting = error_stats.forgetting_events(LABELS, PREDICTIONS)
    np.testing.assert_array_equal(forgetting.forgotten_per_transition, [1, 2, 1])
    np.testing.assert_array_equal(forgetting.learned_per_transition, [2, 1, 2])
    np.testing.assert_array_equal(forgetting.count_per_image, [1, 0, 1, 0, 2])
    assert forgetting.total == 4
    assert forgetting.images_forgotten == 3
    np.testing.assert_array_equal(forgetting.never_learned, [False, False, False, True, False])
    np.testing.assert_array_equal(forgetting.per_class(LABELS, 5), [1, 0, 1, 0, 2])
    np.testing.assert_array_equal(forgetting.per_class_per_transition(LABELS, 5),
                                  [[0, 0, 0, 0, 1], [1, 0, 1, 0, 0], [0, 0, 0, 0, 1]])


def test_most_forgotten_ranks_by_events_then_still_wrong() -> None:
    forgetting = error_stats.forgetting_events(LABELS, PREDICTIONS)
    table = error_stats.most_forgotten(forgetting, LABELS, PREDICTIONS[-1], ITERATIONS)
    assert table["index"].tolist() == [4, 0, 2]
    assert table["forgotten"].tolist() == [2, 1, 1]
    assert table["final_correct"].tolist() == [False, True, True]
    assert table["first_correct_iteration"].tolist() == [10, 10, 20]
    assert table["last_forgotten_iteration"].tolist() == [40, 30, 30]
    assert table["learned"].tolist() == [1, 1, 2]


def test_a_single_snapshot_has_no_forgetting() -> None:
    forgetting = error_stats.forgetting_events(LABELS, PREDICTIONS[:1])
    assert forgetting.total == 0 and forgetting.forgotten.shape == (0, 5)
    assert forgetting.per_class_per_transition(LABELS, 5).shape == (0, 5)
    assert error_stats.most_forgotten(forgetting, LABELS, PREDICTIONS[0], ITERATIONS[:1]).empty


def test_error_over_snapshots_total_and_per_class() -> None:
    labels = np.array([0, 0, 1, 1])
    predictions = np.array([[1, 1, 1, 0], [0, 0, 1, 1]])
    total, per_class = error_stats.error_over_snapshots(labels, predictions, 3)
    np.testing.assert_allclose(total, [0.75, 0.0])
    np.testing.assert_allclose(per_class[:, :2], [[1.0, 0.5], [0.0, 0.0]])
    assert np.isnan(per_class[:, 2]).all()


def test_snapshot_error_stats_of_a_known_snapshot() -> None:
    labels = np.array([4, 4, 9, 1])
    probs = one_hot_probs([{9: 0.8, 4: 0.1}, {4: 0.9}, {4: 0.6, 9: 0.3}, {1: 0.99}])
    stats_ = error_stats.snapshot_error_stats(probs, labels, np.argmax(probs, axis=1), 10)
    assert stats_["errors"] == 2 and stats_["error"] == 0.5
    assert stats_["top_pair"] == "4/9" and stats_["top_pair_count"] == 2 and stats_["top_pair_share"] == 1.0
    assert stats_["share_true_is_second"] == 1.0
    assert stats_["median_confidence_of_errors"] == pytest.approx(0.7)
    assert stats_["worst_class"] == 9


@given(st.integers(1, 60), st.integers(2, 6), st.integers(1, 4), st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_forgetting_and_learning_balance_the_change_in_correct_answers(n: int, k: int, s: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    predictions = rng.integers(0, k, (s, n))
    forgetting = error_stats.forgetting_events(labels, predictions)
    correct = (predictions == labels).sum(axis=1)
    np.testing.assert_array_equal(np.diff(correct), forgetting.learned_per_transition - forgetting.forgotten_per_transition)
    confusion = error_stats.confusion_matrix(labels, predictions[-1], k)
    assert confusion.sum() == n and np.trace(confusion) == correct[-1]


def test_wilson_interval_holds_rates_of_zero_and_one_exactly() -> None:
    for n in (1, 7, 100, 999, 10000):
        low, high = error_stats.wilson_interval([0, n], [n, n])
        assert low[0] == 0.0 and high[1] == 1.0
        assert low[1] <= 1.0 and high[0] >= 0.0
