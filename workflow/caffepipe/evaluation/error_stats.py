"""The error analyses, as pure functions on arrays: no file I/O, no Caffe, no plotting.

Conventions shared by every function:
- `labels` int [N]: the true class of each test image, in test-database order;
- `predictions` int [N] for one snapshot, or [S, N] for S snapshots (sorted by iteration);
- `probs` float [N, K] (one snapshot) or [S, N, K]: the softmax output, rows summing to 1;
- a confusion matrix has true classes as rows and predicted classes as columns.

`caffepipe analyze` (analyze.py) loads the evaluations, calls these, and draws and writes the results.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

# Caffe's SoftmaxWithLoss clamps the probability of the true class at FLT_MIN before taking the log.
FLT_MIN = float(np.finfo(np.float32).tiny)
# The per-class error intervals: analyze's captions and axis labels call them 95% intervals.
INTERVAL_CONFIDENCE = 0.95


def _as_2d(predictions: np.ndarray) -> np.ndarray:
    predictions = np.asarray(predictions)
    return predictions[None, :] if predictions.ndim == 1 else predictions


# ---------------------------------------------------------------------------------------------------------
# Per-snapshot metrics

def accuracy(labels: np.ndarray, predictions: np.ndarray) -> float:
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    return float(np.mean(labels == predictions)) if labels.size else float("nan")


def cross_entropy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean −log p[true] over the images: Caffe's SoftmaxWithLoss, computed from the probabilities."""
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels)
    if not labels.size:
        return float("nan")
    p_true = probs[np.arange(labels.size), labels]
    return float(np.mean(-np.log(np.maximum(p_true, FLT_MIN))))


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, n_classes: int) -> np.ndarray:
    """[K, K] counts: row = true class, column = predicted class."""
    labels, predictions = np.asarray(labels, dtype=np.int64), np.asarray(predictions, dtype=np.int64)
    flat = np.bincount(labels * n_classes + predictions, minlength=n_classes * n_classes)
    return flat.reshape(n_classes, n_classes)


def per_class_error(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(errors [K], totals [K], error rates [K]) for each true class; a class with no image has rate NaN."""
    confusion = np.asarray(confusion)
    totals = confusion.sum(axis=1)
    errors = totals - np.diag(confusion)
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.where(totals > 0, errors / np.maximum(totals, 1), np.nan)
    return errors, totals, rates


# ---------------------------------------------------------------------------------------------------------
# Which images are wrong, and why

def top2(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(first class, second class, p of first, p of second) for each row; ties go to the lower class."""
    probs = np.asarray(probs)
    order = np.argsort(-probs, axis=1, kind="stable")
    first, second = order[:, 0], order[:, 1]
    rows = np.arange(probs.shape[0])
    return first, second, probs[rows, first], probs[rows, second]


def error_table(probs: np.ndarray, labels: np.ndarray, predictions: np.ndarray | None = None) -> pd.DataFrame:
    """One row per misclassified image, most confident error first.

    Columns: index (position in the test set), true, predicted, p_predicted, p_true, second (the runner-up
    class), p_second, margin (p_predicted − p_second: how close the net was to changing its mind),
    true_is_second (the right answer was the runner-up), true_rank (1 = top; 2 = runner-up, ...).
    `predictions` defaults to the argmax of probs; when given (as saved by evaluate) it decides which images
    are errors, and the top-2 columns still come from probs.
    """
    probs, labels = np.asarray(probs), np.asarray(labels, dtype=np.int64)
    first, second, p_first, p_second = top2(probs)
    predicted = first if predictions is None else np.asarray(predictions, dtype=np.int64)
    wrong = np.flatnonzero(predicted != labels)
    rows = np.arange(labels.size)
    p_true = probs[rows, labels]
    # rank of the true class: 1 + number of classes with a strictly higher probability
    true_rank = 1 + np.sum(probs > p_true[:, None], axis=1)
    table = pd.DataFrame({
        "index": wrong,
        "true": labels[wrong],
        "predicted": predicted[wrong],
        "p_predicted": probs[wrong, predicted[wrong]].astype(np.float64),
        "p_true": p_true[wrong].astype(np.float64),
        "second": second[wrong],
        "p_second": p_second[wrong].astype(np.float64),
        "margin": (p_first[wrong] - p_second[wrong]).astype(np.float64),
        "true_is_second": second[wrong] == labels[wrong],
        "true_rank": true_rank[wrong],
    })
    table = table.sort_values(["p_predicted", "index"], ascending=[False, True], kind="stable")
    return table.reset_index(drop=True)


def margins(probs: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability of every image."""
    _, _, p_first, p_second = top2(probs)
    return p_first - p_second


def confused_pairs(confusion: np.ndarray) -> pd.DataFrame:
    """Unordered class pairs ranked by how often either is taken for the other.

    Columns: pair ("4/9", lower class first), a, b, a_as_b (true a predicted b), b_as_a, count (both
    directions), share (of all errors), rank (1 = most confused). Pairs never confused are left out; ties keep
    the order of (a, b).
    """
    confusion = np.asarray(confusion)
    n_classes = confusion.shape[0]
    total_errors = confusion.sum() - np.trace(confusion)
    rows = []
    for a in range(n_classes):
        for b in range(a + 1, n_classes):
            a_as_b, b_as_a = int(confusion[a, b]), int(confusion[b, a])
            if a_as_b + b_as_a:
                rows.append((f"{a}/{b}", a, b, a_as_b, b_as_a, a_as_b + b_as_a))
    table = pd.DataFrame(rows, columns=["pair", "a", "b", "a_as_b", "b_as_a", "count"])
    table["share"] = table["count"] / total_errors if total_errors else np.nan
    table = table.sort_values("count", ascending=False, kind="stable").reset_index(drop=True)
    table["rank"] = np.arange(1, len(table) + 1)
    return table


# ---------------------------------------------------------------------------------------------------------
# Is every class equally likely to be wrong?

def wilson_interval(successes, trials) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval (INTERVAL_CONFIDENCE) for a binomial proportion; (NaN, NaN) where trials is 0."""
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    z = stats.norm.ppf(0.5 + INTERVAL_CONFIDENCE / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denominator = 1 + z**2 / n
        centre = (p + z**2 / (2 * n)) / denominator
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denominator
        # the interval always holds the observed rate (rounding could nudge an end past it at 0 or 1)
        low, high = np.clip(np.minimum(centre - half, p), 0, 1), np.clip(np.maximum(centre + half, p), 0, 1)
    low = np.where(n > 0, low, np.nan)
    high = np.where(n > 0, high, np.nan)
    return low, high


@dataclass(frozen=True)
class HomogeneityTest:
    """Pearson chi-square test that every class has the same error rate (a 2 x K contingency table)."""
    statistic: float
    dof: int
    p_value: float


def equal_error_test(errors: np.ndarray, totals: np.ndarray) -> HomogeneityTest:
    """Test "every class is equally likely to be wrong" on per-class error counts and image counts.

    Classes without images are left out. With no error at all (or nothing right), nothing can differ:
    statistic 0 and p-value 1.
    """
    errors, totals = np.asarray(errors, dtype=np.float64), np.asarray(totals, dtype=np.float64)
    keep = totals > 0
    errors, totals = errors[keep], totals[keep]
    if errors.size == 0:
        return HomogeneityTest(0.0, 0, 1.0)
    dof = int(errors.size - 1)
    overall = errors.sum() / totals.sum()
    if dof == 0 or overall in (0.0, 1.0):
        return HomogeneityTest(0.0, dof, 1.0)
    expected_wrong = totals * overall
    expected_right = totals * (1 - overall)
    statistic = float(np.sum((errors - expected_wrong) ** 2 / expected_wrong)
                      + np.sum(((totals - errors) - expected_right) ** 2 / expected_right))
    return HomogeneityTest(statistic, dof, float(stats.chi2.sf(statistic, dof)))


def class_error_table(confusion: np.ndarray) -> pd.DataFrame:
    """Per true class: images, errors, error rate with its Wilson interval, share of all errors and of images."""
    errors, totals, rates = per_class_error(confusion)
    low, high = wilson_interval(errors, totals)
    total_errors = errors.sum()
    return pd.DataFrame({
        "class": np.arange(len(errors)),
        "images": totals,
        "errors": errors,
        "error_rate": rates,
        "ci_low": low,
        "ci_high": high,
        "share_of_errors": errors / total_errors if total_errors else np.full(len(errors), np.nan),
        "share_of_images": totals / totals.sum() if totals.sum() else np.full(len(errors), np.nan),
    })


def errors_by_true_class(confusion: np.ndarray) -> np.ndarray:
    """The confusion matrix with its diagonal zeroed: row t = errors on true class t by predicted label."""
    confusion = np.array(confusion, copy=True)
    np.fill_diagonal(confusion, 0)
    return confusion


# ---------------------------------------------------------------------------------------------------------
# Across snapshots

def error_over_snapshots(labels: np.ndarray, predictions: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(total error [S], per-class error [S, K]) of each snapshot's predictions [S, N]."""
    predictions = _as_2d(predictions)
    labels = np.asarray(labels)
    wrong = predictions != labels[None, :]
    totals = np.bincount(labels, minlength=n_classes)
    per_class = np.stack([np.bincount(labels, weights=row, minlength=n_classes) for row in wrong.astype(np.float64)])
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(totals > 0, per_class / np.maximum(totals, 1), np.nan)
    return wrong.mean(axis=1), per_class


@dataclass(frozen=True)
class Forgetting:
    """Forgetting and learning events between consecutive snapshots.

    A forgetting event of image i at transition t: right at snapshot t, wrong at snapshot t + 1 (a learning
    event: the reverse). Arrays have S − 1 transitions.
    """
    forgotten: np.ndarray        # bool [S-1, N]
    learned: np.ndarray          # bool [S-1, N]
    correct: np.ndarray          # bool [S, N]

    @property
    def forgotten_per_transition(self) -> np.ndarray:
        return self.forgotten.sum(axis=1)

    @property
    def learned_per_transition(self) -> np.ndarray:
        return self.learned.sum(axis=1)

    @property
    def count_per_image(self) -> np.ndarray:
        return self.forgotten.sum(axis=0)

    @property
    def total(self) -> int:
        return int(self.forgotten.sum())

    @property
    def images_forgotten(self) -> int:
        """Images forgotten at least once."""
        return int(np.count_nonzero(self.count_per_image))

    @property
    def never_learned(self) -> np.ndarray:
        """bool [N]: wrong at every snapshot."""
        return ~self.correct.any(axis=0)

    def per_class(self, labels: np.ndarray, n_classes: int) -> np.ndarray:
        """Forgetting events [K] by the image's true class, summed over transitions."""
        return np.bincount(np.asarray(labels), weights=self.count_per_image, minlength=n_classes).astype(np.int64)

    def per_class_per_transition(self, labels: np.ndarray, n_classes: int) -> np.ndarray:
        """Forgetting events [S-1, K] by transition and true class."""
        labels = np.asarray(labels)
        rows = [np.bincount(labels, weights=row, minlength=n_classes) for row in self.forgotten.astype(np.float64)]
        return np.array(rows, dtype=np.float64).reshape(len(self.forgotten), n_classes).astype(np.int64)


def forgetting_events(labels: np.ndarray, predictions: np.ndarray) -> Forgetting:
    """Find forgetting and learning events in predictions [S, N] (snapshots in iteration order)."""
    correct = _as_2d(predictions) == np.asarray(labels)[None, :]
    return Forgetting(forgotten=correct[:-1] & ~correct[1:], learned=~correct[:-1] & correct[1:], correct=correct)


def most_forgotten(forgetting: Forgetting, labels: np.ndarray, final_predictions: np.ndarray,
                   iterations: np.ndarray) -> pd.DataFrame:
    """Images forgotten at least once, most-forgotten first.

    Columns: index, true, final_predicted, final_correct, forgotten (event count), learned (event count),
    first_correct_iteration, last_forgotten_iteration (the snapshot at which it was last found wrong again).
    Ties: the image still wrong at the end first, then the later last forgetting, then the index.
    """
    counts = forgetting.count_per_image
    indices = np.flatnonzero(counts)
    iterations = np.asarray(iterations)
    correct = forgetting.correct
    first_correct = np.where(correct.any(axis=0), iterations[np.argmax(correct, axis=0)], -1)
    # transition t ends at snapshot t + 1; the last transition with an event, for the images that have one
    forgotten_any = forgetting.forgotten
    last_t = (forgotten_any.shape[0] - 1 - np.argmax(forgotten_any[::-1], axis=0)) if len(forgotten_any) else np.zeros_like(counts)
    final_predictions = np.asarray(final_predictions)
    labels = np.asarray(labels)
    table = pd.DataFrame({
        "index": indices,
        "true": labels[indices],
        "final_predicted": final_predictions[indices],
        "final_correct": final_predictions[indices] == labels[indices],
        "forgotten": counts[indices],
        "learned": forgetting.learned.sum(axis=0)[indices],
        "first_correct_iteration": first_correct[indices],
        "last_forgotten_iteration": iterations[last_t[indices] + 1] if indices.size else np.array([], dtype=np.int64),
    })
    table = table.sort_values(["forgotten", "final_correct", "last_forgotten_iteration", "index"],
                              ascending=[False, True, False, True], kind="stable")
    return table.reset_index(drop=True)


def snapshot_error_stats(probs: np.ndarray, labels: np.ndarray, predictions: np.ndarray, n_classes: int) -> dict:
    """Headline numbers of one snapshot's errors, for the across-snapshots table."""
    errors = error_table(probs, labels, predictions)
    confusion = confusion_matrix(labels, predictions, n_classes)
    class_errors, totals, _ = per_class_error(confusion)
    test = equal_error_test(class_errors, totals)
    pairs = confused_pairs(confusion)
    return {
        "errors": int(len(errors)),
        "error": float(len(errors) / len(labels)) if len(labels) else float("nan"),
        "loss": cross_entropy(probs, labels),
        "median_confidence_of_errors": float(errors["p_predicted"].median()) if len(errors) else float("nan"),
        "median_margin_of_errors": float(errors["margin"].median()) if len(errors) else float("nan"),
        "share_true_is_second": float(errors["true_is_second"].mean()) if len(errors) else float("nan"),
        "top_pair": pairs["pair"].iloc[0] if len(pairs) else "",
        "top_pair_count": int(pairs["count"].iloc[0]) if len(pairs) else 0,
        "top_pair_share": float(pairs["share"].iloc[0]) if len(pairs) else float("nan"),
        "chi2": test.statistic,
        "chi2_p": test.p_value,
        "worst_class": int(np.argmax(class_errors / np.maximum(totals, 1))) if totals.sum() else -1,
    }
