"""`caffepipe analyze`: answer the error-analysis questions with a figure and a number each.

    caffepipe analyze --params params.yaml --eval data/eval --db data/db --out reports/analysis
        --out-metrics reports/analysis-metrics.json

Reads every model of params `netgen.models` from <eval>/<model>/ (written by `caffepipe evaluate`, see
evaluate.py) and the test images of the `netgen.backend` database (only for the galleries; their labels must
match the evaluation's). The analyses themselves are pure functions in error_stats.py, the figures are drawn by
analyze_figures.py; this module decides what goes where and writes it: analyze_model runs one step per
question, each writing its figures and tables and listing them in summary.json.

Output folder (--out, written as a whole), `<model>` for each model; "final" is the last snapshot:

Which images are misclassified?
  errors_<model>.csv             every error of the final model, most confident first: index (in the test set),
                                 true, predicted, p_predicted, p_true, second, p_second, margin, true_is_second,
                                 true_rank
  errors_gallery_<model>.png     the `analyze.gallery_max` most confident errors, titled predicted/true and p
Why?
  confused_pairs_<model>.csv     unordered pairs ranked: pair, a, b, a_as_b, b_as_a, count, share, rank
  confused_pairs_<model>.png     the most-confused pairs, both directions stacked
  confused_pairs_vs_iteration_<model>.png   the final top pairs' counts at every snapshot
  margins_<model>.png            top-1 minus top-2 probability of errors against correct answers
Is every class equally likely to be wrong?
  errors_by_class_<model>.png    one bar chart per true class: its errors by predicted label
  class_error_rates_<model>.csv  class, images, errors, error_rate, ci_low, ci_high (95% Wilson),
                                 share_of_errors, share_of_images
  class_error_rates_<model>.png  error rate per class with its interval; the chi-square test of equal rates
How does each class's error change over training?
  class_error_vs_iteration_<model>.csv / .png   iteration, total, class_0 ... (log iteration axis)
  total_error_vs_iteration.csv / .png           model, iteration, error, loss, errors (every model)
  snapshots_<model>.csv          per snapshot: iteration, errors, error, loss, median_confidence_of_errors,
                                 median_margin_of_errors, share_true_is_second, top_pair, top_pair_count,
                                 top_pair_share, chi2, chi2_p, worst_class, forgotten, learned (events into it)
Right first, wrong later?
  forgetting_<model>.csv         per pair of consecutive snapshots: from_iteration, to_iteration, forgotten,
                                 learned, forgotten_class_0 ...
  forgetting_<model>.png         events per transition and forgetting events per class
  forgotten_images_<model>.csv   images forgotten at least once, most-forgotten first (see error_stats.most_forgotten)
  forgotten_gallery_<model>.png  the `analyze.forgotten_max` most-forgotten images
CNN against MLP
  cnn_vs_mlp.csv                 one row per measure, one column per model
  cnn_vs_mlp.png                 error over training, error at the earliest snapshot, per-class error, forgetting
Index
  summary.json                   {"questions": {key: question}, "models": [...], "items": [{"question", "kind"
                                 (figure|table), "path" (relative to this folder), "model" (null: every model),
                                 "caption", "headline": {"label", "value", "text"}}, ...]}; a headline value is
                                 a number, a string or null, or for an item of every model {model: number}

--out-metrics (reports/analysis-metrics.json, a DVC metric): per model, numbers only: final_iteration,
final_error, final_errors, final_loss, earliest_iteration, earliest_error, top_pair_share, chi2_p,
worst_class_error, forgetting_events, images_forgotten, never_learned.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from caffepipe.evaluation import error_stats, hard_images
from caffepipe.evaluation.analyze_figures import (PAIRS_OVER_TRAINING, REPORTED_EARLY_ERROR, TOP_PAIRS_SHOWN, draw_class_error_over_training,
                                        draw_class_rates, draw_comparison, draw_confused_pairs, draw_errors_by_class,
                                        draw_forgetting, draw_gallery, draw_margins, draw_pairs_over_training,
                                        draw_total_error, model_label, pair_label, percent)
from caffepipe.core.atomic import atomic_output, write_text_atomic
from caffepipe.data.class_names import class_names
from caffepipe.core.errors import CaffepipeError
from caffepipe.evaluation.eval_files import Evaluation, read_evaluation
from caffepipe.pipeline.params import add_params_argument, load_params
from caffepipe.core.upstream import read_json

log = logging.getLogger(__name__)

QUESTIONS = {
    "which": "Which images are misclassified?",
    "why": "Why are they misclassified?",
    "per_class": "Is every class equally likely to be wrong?",
    "over_training": "How does each class's error change over training?",
    "forgetting": "Right first, wrong later?",
    "comparison": "CNN against MLP",
    hard_images.QUESTION: hard_images.QUESTION_TEXT,
}
def _plain(value: Any) -> Any:
    """JSON-friendly: numpy scalars to Python, NaN and infinities to null (inside dicts too)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass
class Index:
    """The summary.json being built: every figure and table with its caption and headline number."""
    models: list[str]
    items: list[dict[str, Any]] = field(default_factory=list)

    def add(self, question: str, path: str, caption: str, headline_label: str, headline_value: Any,
            headline_text: str, model: str | None = None) -> None:
        kind = "figure" if path.endswith(".png") else "table"
        self.items.append({"question": question, "kind": kind, "path": path, "model": model, "caption": caption,
                           "headline": {"label": headline_label, "value": _plain(headline_value), "text": headline_text}})

    def as_dict(self) -> dict[str, Any]:
        return {"questions": QUESTIONS, "models": self.models, "items": self.items}


# ---------------------------------------------------------------------------------------------------------
# One model

@dataclass
class ModelResult:
    """What the comparison needs from one model's analysis."""
    model: str
    iterations: np.ndarray
    total_error: np.ndarray
    loss: np.ndarray
    class_table: pd.DataFrame
    forgetting_table: pd.DataFrame
    measures: dict[str, Any]


@dataclass(frozen=True)
class ModelAnalysis:
    """One model's evaluation and what each analysis step of it shares: where its files go, the index that
    lists them, and the class names."""
    evaluation: Evaluation
    images: np.ndarray          # the test images, for the galleries
    folder: Path
    index: Index
    names: list[str]

    @property
    def model(self) -> str:
        return self.evaluation.model

    @property
    def title(self) -> str:
        """The model as titles and captions name it, e.g. "lenet (CNN)"."""
        return model_label(self.model)

    @property
    def final_iteration(self) -> int:
        return self.evaluation.final_iteration

    def add(self, question: str, path: str, caption: str, headline_label: str, headline_value: Any,
            headline_text: str) -> None:
        self.index.add(question, path, caption, headline_label, headline_value, headline_text, self.model)


def _gallery_images(images: np.ndarray, indices: np.ndarray) -> np.ndarray:
    return images[np.asarray(indices, dtype=np.int64)] if len(indices) else images[:0]


def final_error_rate(evaluation: Evaluation, errors: pd.DataFrame) -> float:
    return len(errors) / len(evaluation.labels) if len(evaluation.labels) else float("nan")


def misclassified_images(analysis: ModelAnalysis, gallery_max: int) -> pd.DataFrame:
    """Which images are misclassified? Every error of the final model in a table, the most confident in a
    gallery; returns the table."""
    evaluation, model, name, final_it, names = (analysis.evaluation, analysis.model, analysis.title,
                                                analysis.final_iteration, analysis.names)
    errors = error_stats.error_table(evaluation.probs[-1], evaluation.labels, evaluation.predictions[-1])
    errors.to_csv(analysis.folder / f"errors_{model}.csv", index=False, float_format="%.6g")
    count_text = f"{len(errors)} errors of {len(evaluation.labels)} ({percent(final_error_rate(evaluation, errors))})"
    analysis.add("which", f"errors_{model}.csv", f"Every test image {name} misclassifies at iteration {final_it}, most "
                 "confident first, with the top-2 classes and the margin.", "errors", len(errors), count_text)
    title_break = "\n" if max(map(len, names)) > 2 else "  "     # names that are words get their own line
    shown = errors.head(gallery_max)
    draw_gallery(_gallery_images(analysis.images, shown["index"].to_numpy()),
                 [f"{names[row.predicted]}/{names[row.true]}{title_break}p={row.p_predicted:.2f}" for row in shown.itertuples()],
                 f"{name}: which images are misclassified? {len(errors)} errors at iteration {final_it}"
                 + (f", the {len(shown)} most confident shown" if len(shown) < len(errors) else ""),
                 analysis.folder / f"errors_gallery_{model}.png")
    analysis.add("which", f"errors_gallery_{model}.png",
                 f"Misclassified test images of {name} at iteration {final_it}, titled predicted/true and the predicted "
                 f"class's probability, most confident first: {len(shown)} of {len(errors)} shown (analyze.gallery_max).",
                 "errors", len(errors), count_text)
    return errors


def most_confused_pairs(analysis: ModelAnalysis) -> dict[str, Any]:
    """Why? The class pairs the final model confuses, ranked, and whether they were confused all along;
    returns the top pair and its share of the errors."""
    evaluation, model, name, final_it, names = (analysis.evaluation, analysis.model, analysis.title,
                                                analysis.final_iteration, analysis.names)
    pairs = error_stats.confused_pairs(evaluation.confusion[-1])
    pairs.to_csv(analysis.folder / f"confused_pairs_{model}.csv", index=False, float_format="%.6g")
    top = pairs.iloc[0] if len(pairs) else None
    top_pair = pair_label(int(top["a"]), int(top["b"]), names) if top is not None else None
    top_text = (f"{top_pair}: {top['count']} errors ({percent(top['share'])} of all)" if top is not None else "no errors")
    analysis.add("why", f"confused_pairs_{model}.csv", f"Class pairs {name} confuses at iteration {final_it}, in either "
                 "direction, most confused first.", "most confused pair", top_pair, top_text)
    draw_confused_pairs(pairs, f"{name}: which classes are taken for each other? (iteration {final_it})",
                        analysis.folder / f"confused_pairs_{model}.png", names)
    analysis.add("why", f"confused_pairs_{model}.png", f"The {min(TOP_PAIRS_SHOWN, len(pairs))} most-confused pairs of "
                 f"{name} at iteration {final_it}, each direction stacked; the share of all errors in brackets.",
                 "most confused pair", top_pair, top_text)
    draw_pairs_over_training(evaluation.iterations, evaluation.confusion, pairs,
                             f"{name}: are the most-confused pairs confused all along?",
                             analysis.folder / f"confused_pairs_vs_iteration_{model}.png", names)
    analysis.add("why", f"confused_pairs_vs_iteration_{model}.png", f"Errors between the final model's "
                 f"{min(PAIRS_OVER_TRAINING, len(pairs))} most-confused pairs of {name}, at every snapshot.",
                 "most confused pair", top_pair, top_text)
    return {"top_pair": top_pair or "", "top_pair_share": float(top["share"]) if top is not None else float("nan")}


def error_margins(analysis: ModelAnalysis, errors: pd.DataFrame) -> dict[str, Any]:
    """Why? Whether errors are near misses: the top-1 minus top-2 margin of errors against right answers;
    returns how often the true class is the runner-up and the errors' median margin."""
    evaluation, model, name, final_it = analysis.evaluation, analysis.model, analysis.title, analysis.final_iteration
    all_margins = error_stats.margins(evaluation.probs[-1])
    wrong = evaluation.predictions[-1] != evaluation.labels
    runner_up = float(errors["true_is_second"].mean()) if len(errors) else float("nan")
    median_error_margin = float(np.median(all_margins[wrong])) if wrong.any() else float("nan")
    median_right_margin = float(np.median(all_margins[~wrong])) if (~wrong).any() else float("nan")
    draw_margins(all_margins[wrong], all_margins[~wrong],
                 f"{name}: are errors near misses? (iteration {final_it})", analysis.folder / f"margins_{model}.png")
    analysis.add("why", f"margins_{model}.png", f"Top-1 minus top-2 probability of {name}'s errors and right answers at "
                 f"iteration {final_it}: median {median_error_margin:.3f} for errors, {median_right_margin:.3f} for right "
                 f"answers; the true class is the runner-up in {percent(runner_up)} of the errors.",
                 "errors whose true class is the runner-up", runner_up,
                 f"the true class is the runner-up in {percent(runner_up)} of the errors")
    return {"share_true_is_second": runner_up, "median_margin_of_errors": median_error_margin}


def class_error_rates(analysis: ModelAnalysis, errors: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Is every class equally likely to be wrong? Each class's error rate with its interval, and the
    chi-square test of equal rates; returns the per-class table and the test's and worst class's numbers."""
    evaluation, model, name, final_it, names = (analysis.evaluation, analysis.model, analysis.title,
                                                analysis.final_iteration, analysis.names)
    class_table = error_stats.class_error_table(evaluation.confusion[-1])
    class_table.to_csv(analysis.folder / f"class_error_rates_{model}.csv", index=False, float_format="%.6g")
    test = error_stats.equal_error_test(class_table["errors"], class_table["images"])
    rated = class_table.dropna(subset=["error_rate"])
    worst = rated.loc[rated["error_rate"].idxmax()] if len(rated) else None
    best = rated.loc[rated["error_rate"].idxmin()] if len(rated) else None
    test_text = (f"chi-square {test.statistic:.1f} on {test.dof} degrees of freedom, p = {test.p_value:.2g}; "
                 + (f"class {names[int(worst['class'])]} worst at {percent(worst['error_rate'])}, class {names[int(best['class'])]} "
                    f"best at {percent(best['error_rate'])}" if worst is not None else "no class"))
    analysis.add("per_class", f"class_error_rates_{model}.csv", f"Per-class error rates of {name} at iteration {final_it} "
                 "with 95% Wilson intervals, and each class's share of all errors and of the images.",
                 "chi-square p-value (equal error rates)", test.p_value, test_text)
    draw_class_rates(class_table, final_error_rate(evaluation, errors),
                     f"{name}: is every class equally likely to be wrong? (χ² p = {test.p_value:.2g})",
                     analysis.folder / f"class_error_rates_{model}.png", names)
    analysis.add("per_class", f"class_error_rates_{model}.png", f"Error rate of each true class of {name} at iteration "
                 f"{final_it}, 95% Wilson intervals; dashed: all classes. {test_text}.",
                 "chi-square p-value (equal error rates)", test.p_value, test_text)
    return class_table, {
        "chi2": test.statistic,
        "chi2_p": test.p_value,
        "worst_class": names[int(worst["class"])] if worst is not None else "",
        "worst_class_error": float(worst["error_rate"]) if worst is not None else float("nan"),
    }


def what_each_class_is_mistaken_for(analysis: ModelAnalysis, class_table: pd.DataFrame, errors: pd.DataFrame) -> None:
    """Is every class equally likely to be wrong? What each true class is mistaken for, one panel per class."""
    evaluation, model, name, final_it, names = (analysis.evaluation, analysis.model, analysis.title,
                                                analysis.final_iteration, analysis.names)
    by_class = error_stats.errors_by_true_class(evaluation.confusion[-1])
    draw_errors_by_class(by_class, f"{name}: what is each class mistaken for? (iteration {final_it})",
                         analysis.folder / f"errors_by_class_{model}.png", names)
    worst_share = (f"class {names[int(class_table['share_of_errors'].idxmax())]} holds "
                   f"{percent(class_table['share_of_errors'].max())} of the errors") if len(errors) else "no errors"
    analysis.add("per_class", f"errors_by_class_{model}.png", f"For each true class of {name}, its errors at iteration "
                 f"{final_it} by predicted label; each panel's title gives its errors and share of all errors.",
                 "largest share of errors", class_table["share_of_errors"].max() if len(errors) else None, worst_share)


def error_change_text(iterations: np.ndarray, total_error: np.ndarray) -> str:
    return f"{percent(total_error[0])} at iteration {iterations[0]} down to {percent(total_error[-1])} at {iterations[-1]}"


def class_error_over_training(analysis: ModelAnalysis) -> np.ndarray:
    """How does each class's error change over training? Per-class and total error at every snapshot;
    returns the total error per snapshot."""
    evaluation, model, name = analysis.evaluation, analysis.model, analysis.title
    iterations, n_classes = evaluation.iterations, evaluation.n_classes
    total_error, per_class = error_stats.error_over_snapshots(evaluation.labels, evaluation.predictions, n_classes)
    over = pd.DataFrame({"iteration": iterations, "total": total_error,
                         **{f"class_{k}": per_class[:, k] for k in range(n_classes)}})
    over.to_csv(analysis.folder / f"class_error_vs_iteration_{model}.csv", index=False, float_format="%.6g")
    draw_class_error_over_training(iterations, total_error, per_class,
                                   f"{name}: how does each class's error change over training?",
                                   analysis.folder / f"class_error_vs_iteration_{model}.png", analysis.names)
    change_text = error_change_text(iterations, total_error)
    analysis.add("over_training", f"class_error_vs_iteration_{model}.png", f"Test error of each true class of {name} "
                 f"at every snapshot (log iteration axis); dashed: all classes. Error {change_text}.",
                 "final error", total_error[-1], change_text)
    analysis.add("over_training", f"class_error_vs_iteration_{model}.csv", f"Per-class and total test error of {name} "
                 "at every snapshot.", "final error", total_error[-1], change_text)
    return total_error


def forgetting_text(forgetting: error_stats.Forgetting, transitions: int) -> str:
    return (f"{forgetting.total} forgetting events over {transitions} transitions; "
            f"{forgetting.images_forgotten} images forgotten at least once; {int(forgetting.never_learned.sum())} never right")


def forgetting_over_training(analysis: ModelAnalysis) -> tuple[error_stats.Forgetting, pd.DataFrame]:
    """Right first, wrong later? Forgetting and learning events between consecutive snapshots, per class;
    returns the events and their table."""
    evaluation, model, name = analysis.evaluation, analysis.model, analysis.title
    labels, iterations, n_classes = evaluation.labels, evaluation.iterations, evaluation.n_classes
    forgetting = error_stats.forgetting_events(labels, evaluation.predictions)
    per_transition_class = forgetting.per_class_per_transition(labels, n_classes)
    forgetting_table = pd.DataFrame({
        "from_iteration": iterations[:-1], "to_iteration": iterations[1:],
        "forgotten": forgetting.forgotten_per_transition, "learned": forgetting.learned_per_transition,
        **{f"forgotten_class_{k}": per_transition_class[:, k] for k in range(n_classes)},
    })
    forgetting_table.to_csv(analysis.folder / f"forgetting_{model}.csv", index=False)
    text = forgetting_text(forgetting, len(iterations) - 1)
    analysis.add("forgetting", f"forgetting_{model}.csv", f"Images {name} gets right at one snapshot and wrong at the "
                 "next (forgotten), and the reverse (learned), per pair of consecutive snapshots and per true class.",
                 "forgetting events", forgetting.total, text)
    draw_forgetting(forgetting_table, forgetting.per_class(labels, n_classes), f"{name}: right first, wrong later?",
                    analysis.folder / f"forgetting_{model}.png", analysis.names)
    analysis.add("forgetting", f"forgetting_{model}.png", f"Forgetting and learning events of {name} between consecutive "
                 f"snapshots, and forgetting events per true class: {text}.",
                 "forgetting events", forgetting.total, text)
    return forgetting, forgetting_table


def most_forgotten_images(analysis: ModelAnalysis, forgetting: error_stats.Forgetting, forgotten_max: int) -> None:
    """Right first, wrong later? The images forgotten most often, in a table and a gallery."""
    evaluation, model, name, names = analysis.evaluation, analysis.model, analysis.title, analysis.names
    iterations = evaluation.iterations
    text = forgetting_text(forgetting, len(iterations) - 1)
    most = error_stats.most_forgotten(forgetting, evaluation.labels, evaluation.predictions[-1], iterations)
    most.to_csv(analysis.folder / f"forgotten_images_{model}.csv", index=False)
    analysis.add("forgetting", f"forgotten_images_{model}.csv", f"Every test image {name} forgets at least once, "
                 "most-forgotten first.", "images forgotten at least once", forgetting.images_forgotten, text)
    shown = most.head(forgotten_max)
    draw_gallery(_gallery_images(analysis.images, shown["index"].to_numpy()),
                 [f"{names[row.true]} forgotten {row.forgotten}×\nfinal {names[row.final_predicted]} "
                  f"({'right' if row.final_correct else 'wrong'})" for row in shown.itertuples()],
                 f"{name}: which images are forgotten most? {forgetting.images_forgotten} forgotten at least once"
                 + (f", {len(shown)} shown" if len(shown) < len(most) else "")
                 + "\n(titled true class, forgetting events, final answer: green right, orange wrong)",
                 analysis.folder / f"forgotten_gallery_{model}.png",
                 colors=["#029e73" if row.final_correct else "#d55e00" for row in shown.itertuples()])
    max_forgotten = int(most["forgotten"].max()) if len(most) else 0
    analysis.add("forgetting", f"forgotten_gallery_{model}.png", f"The test images {name} forgets most often (right at "
                 f"one snapshot, wrong at the next), titled with the true class, the number of forgetting events and "
                 f"the final answer: {len(shown)} of {len(most)} forgotten images shown (analyze.forgotten_max).",
                 "most forgetting events of one image", max_forgotten, f"up to {max_forgotten} forgetting events for one image")


def numbers_per_snapshot(analysis: ModelAnalysis, forgetting: error_stats.Forgetting,
                         total_error: np.ndarray) -> pd.DataFrame:
    """Every question's number at every snapshot, in one table; returns it."""
    evaluation, model, name = analysis.evaluation, analysis.model, analysis.title
    rows = []
    for s, iteration in enumerate(evaluation.iterations):
        row = {"iteration": int(iteration)}
        row.update(error_stats.snapshot_error_stats(evaluation.probs[s], evaluation.labels, evaluation.predictions[s],
                                                    evaluation.n_classes))
        row["forgotten"] = int(forgetting.forgotten_per_transition[s - 1]) if s else 0
        row["learned"] = int(forgetting.learned_per_transition[s - 1]) if s else 0
        rows.append(row)
    snapshots = pd.DataFrame(rows)
    snapshots.to_csv(analysis.folder / f"snapshots_{model}.csv", index=False, float_format="%.6g")
    analysis.add("over_training", f"snapshots_{model}.csv", f"Every question's number for {name} at every snapshot: "
                 "errors, loss, confidence and margin of the errors, the most-confused pair, the chi-square test of "
                 "equal class error rates, forgetting and learning events.", "final error", total_error[-1],
                 error_change_text(evaluation.iterations, total_error))
    return snapshots


def analyze_model(evaluation: Evaluation, images: np.ndarray, folder: Path, settings: dict[str, Any], index: Index,
                  dataset: str | None = None) -> ModelResult:
    """Every analysis of one model, question by question: each step writes its figures and tables into
    `folder`, lists them in `index`, and returns what later steps and the comparison need."""
    analysis = ModelAnalysis(evaluation, images, folder, index, class_names(dataset, evaluation.n_classes))
    errors = misclassified_images(analysis, int(settings["gallery_max"]))
    pair_measures = most_confused_pairs(analysis)
    margin_measures = error_margins(analysis, errors)
    class_table, class_measures = class_error_rates(analysis, errors)
    what_each_class_is_mistaken_for(analysis, class_table, errors)
    total_error = class_error_over_training(analysis)
    forgetting, forgetting_table = forgetting_over_training(analysis)
    most_forgotten_images(analysis, forgetting, int(settings["forgotten_max"]))
    snapshots = numbers_per_snapshot(analysis, forgetting, total_error)

    measures = {
        "earliest_iteration": int(evaluation.iterations[0]),
        "earliest_error": float(total_error[0]),
        "final_iteration": evaluation.final_iteration,
        "final_error": float(total_error[-1]),
        "final_errors": int(len(errors)),
        "final_loss": float(snapshots["loss"].iloc[-1]),
        **pair_measures,
        **margin_measures,
        **class_measures,
        "forgetting_events": forgetting.total,
        "images_forgotten": forgetting.images_forgotten,
        "never_learned": int(forgetting.never_learned.sum()),
    }
    return ModelResult(evaluation.model, evaluation.iterations, total_error, snapshots["loss"].to_numpy(), class_table,
                       forgetting_table, measures)


# ---------------------------------------------------------------------------------------------------------
# All models

COMPARISON_ROWS = (
    ("earliest_iteration", "earliest snapshot (iteration)"),
    ("earliest_error", "error at the earliest snapshot"),
    ("final_iteration", "final iteration"),
    ("final_error", "final error"),
    ("final_errors", "final errors (images)"),
    ("final_loss", "final loss"),
    ("top_pair", "most-confused pair"),
    ("top_pair_share", "its share of the errors"),
    ("share_true_is_second", "errors with the true class as runner-up"),
    ("median_margin_of_errors", "median top-2 margin of the errors"),
    ("chi2_p", "chi-square p (equal class error rates)"),
    ("worst_class", "worst class"),
    ("worst_class_error", "its error rate"),
    ("forgetting_events", "forgetting events"),
    ("images_forgotten", "images forgotten at least once"),
    ("never_learned", "images never right"),
)


# The numbers of each model in --out-metrics (a DVC metric).
METRIC_KEYS = ("final_iteration", "final_error", "final_errors", "final_loss", "earliest_iteration", "earliest_error",
               "top_pair_share", "chi2_p", "worst_class_error", "forgetting_events", "images_forgotten", "never_learned")


def total_error_over_training(results: list[ModelResult], evaluations: dict[str, Evaluation], folder: Path,
                              index: Index) -> None:
    """How does the total error change over training? Every model's test error at every snapshot."""
    total = pd.concat([pd.DataFrame({"model": r.model, "iteration": r.iterations, "error": r.total_error,
                                     "loss": r.loss, "errors": np.round(r.total_error * len(evaluations[r.model].labels)).astype(int)})
                       for r in results], ignore_index=True)
    total.to_csv(folder / "total_error_vs_iteration.csv", index=False, float_format="%.6g")
    draw_total_error({r.model: (r.iterations, r.total_error) for r in results},
                     "How does the total error change over training?", folder / "total_error_vs_iteration.png")
    final_text = "; ".join(f"{r.model} {percent(r.measures['final_error'])} at {r.measures['final_iteration']}" for r in results)
    for path in ("total_error_vs_iteration.png", "total_error_vs_iteration.csv"):
        index.add("over_training", path, f"Total test error of every model at every snapshot (log axes): {final_text}.",
                  "final error", {r.model: r.measures["final_error"] for r in results}, final_text)


def models_side_by_side(results: list[ModelResult], folder: Path, index: Index, dataset: str | None,
                        names: list[str]) -> None:
    """CNN against MLP: every headline number of every model in one table, and a figure that compares them."""
    comparison = pd.DataFrame({"measure": [label for _, label in COMPARISON_ROWS],
                               "key": [key for key, _ in COMPARISON_ROWS],
                               **{r.model: [r.measures[key] for key, _ in COMPARISON_ROWS] for r in results}})
    comparison.to_csv(folder / "cnn_vs_mlp.csv", index=False, float_format="%.6g")
    early_text = "; ".join(f"{model_label(r.model)} {percent(r.measures['earliest_error'])} at iteration "
                           f"{r.measures['earliest_iteration']}" for r in results)
    # What users reported is about MNIST: a reference only there.
    reported_errors = REPORTED_EARLY_ERROR if dataset in (None, "mnist") else {}
    reported = ", ".join(f"{model} {100 * value:.0f}%" for model, value in reported_errors.items())
    reported_text = f" (Caffe users reported about {reported} at iteration 10)" if reported else ""
    title = " against ".join(model_label(r.model) for r in results) if len(results) > 1 else model_label(results[0].model)
    draw_comparison(results, f"{title}: side by side", folder / "cnn_vs_mlp.png", names, reported_errors)
    for path, what in (("cnn_vs_mlp.png", "Error over training, error at the earliest snapshot, per-class final "
                        "error and forgetting events of every model side by side."),
                       ("cnn_vs_mlp.csv", "Every headline number of every model side by side.")):
        index.add("comparison", path, f"{what} Error at the earliest snapshot: {early_text}{reported_text}.",
                  "error at the earliest snapshot",
                  {r.model: r.measures["earliest_error"] for r in results}, early_text)


def write_analysis(evaluations: dict[str, Evaluation], images: np.ndarray, folder: Path, settings: dict[str, Any],
                   dataset: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Write every figure and table into `folder`; returns (summary.json contents, headline metrics).
    `dataset` (build-db's info.json) names the classes in figures and tables."""
    index = Index(models=list(evaluations))
    results = []
    for model, evaluation in evaluations.items():
        log.info("analysing %s: %d snapshots, %d test images", model, len(evaluation.iterations), len(evaluation.labels))
        results.append(analyze_model(evaluation, images, folder, settings, index, dataset))
    total_error_over_training(results, evaluations, folder, index)
    n_classes = next(iter(evaluations.values())).n_classes
    models_side_by_side(results, folder, index, dataset, class_names(dataset, n_classes))
    first = next(iter(evaluations.values()))
    hard_images.write_hard_images(first.labels, {model: evaluation.predictions[-1] for model, evaluation in evaluations.items()},
                                  images, folder, index, settings["gallery_max"])

    summary = index.as_dict()
    (folder / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
    metrics = {r.model: {key: _plain(r.measures[key]) for key in METRIC_KEYS} for r in results}
    return summary, metrics


def read_test_images(params: dict[str, Any], db: Path) -> tuple[np.ndarray, np.ndarray]:
    from caffepipe.data.datum import db_path, read_db  # noqa: PLC0415
    backend = params["netgen"]["backend"]
    return read_db(db_path(db, "test", backend), backend)


def analyze(params: dict[str, Any], eval_dir: Path, db: Path, out: Path, out_metrics: Path) -> dict[str, Any]:
    models = list(params["netgen"]["models"])
    evaluations = {model: read_evaluation(eval_dir / model, model) for model in models}
    images, labels = read_test_images(params, db)
    for model, evaluation in evaluations.items():
        if len(labels) != len(evaluation.labels) or not np.array_equal(labels, evaluation.labels):
            raise CaffepipeError(f"{eval_dir / model} was evaluated on other test images than those in {db} "
                                 f"({len(evaluation.labels)} against {len(labels)} images); re-run `caffepipe evaluate`")
    info = read_json(db / "info.json", "build-db")
    with atomic_output(out, directory=True) as folder:
        summary, metrics = write_analysis(evaluations, images, folder, params["analyze"], info.get("dataset"))
    write_text_atomic(out_metrics, json.dumps(metrics, indent=2, allow_nan=False) + "\n")
    log.info("wrote %d figures and tables to %s", len(summary["items"]), out)
    return metrics


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="caffepipe analyze", description=__doc__.split("\n")[0])
    add_params_argument(parser)
    parser.add_argument("--eval", required=True, type=Path, help="folder of the evaluations (data/eval)")
    parser.add_argument("--db", required=True, type=Path, help="the database folder (data/db), for the test images")
    parser.add_argument("--out", required=True, type=Path, help="output folder (reports/analysis)")
    parser.add_argument("--out-metrics", required=True, type=Path, help="headline numbers JSON (reports/analysis-metrics.json)")
    args = parser.parse_args(argv)
    analyze(load_params(args.params), args.eval, args.db, args.out, args.out_metrics)
    return 0
