"""The figures of `caffepipe analyze`, one function per figure; analyze.py decides what to draw and where.

Matplotlib comes in with the house style (figures.py) only when something is drawn.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

MODEL_KINDS = {"lenet": "CNN", "mlp": "MLP"}
# What Caffe users reported for the error at iteration 10 (the issue that asked for this analysis).
REPORTED_EARLY_ERROR = {"lenet": 0.30, "mlp": 0.80}
TOP_PAIRS_SHOWN = 12
PAIRS_OVER_TRAINING = 5
GALLERY_COLUMNS = 10


def model_label(model: str) -> str:
    kind = MODEL_KINDS.get(model)
    return f"{model} ({kind})" if kind else model


def percent(value: float) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.2f}%"



def _figures():
    from caffepipe.core import figures  # noqa: PLC0415
    figures.apply_style()
    return figures


def _class_colors(n_classes: int) -> list:
    import seaborn as sns  # noqa: PLC0415
    return sns.color_palette("colorblind", max(n_classes, 10))[:n_classes] if n_classes <= 10 else sns.color_palette("husl", n_classes)


def class_labels(names: list[str] | None, n_classes: int) -> list[str]:
    """The classes' names (datasets.class_names), or their numbers."""
    return list(names) if names is not None else [str(k) for k in range(n_classes)]


def pair_label(a: int, b: int, names: list[str] | None) -> str:
    return f"{a}/{b}" if names is None else f"{names[a]}/{names[b]}"


def _class_ticks(ax, positions, labels: list[str], fontsize: float | None = None) -> None:
    """Class names on an x axis, slanted when they are words rather than digits."""
    long = max((len(label) for label in labels), default=0) > 2
    ax.set_xticks(positions, labels, rotation=40 if long else 0, ha="right" if long else "center", fontsize=fontsize)


def _iteration_axis(ax, iterations: np.ndarray) -> None:
    if len(iterations) and np.min(iterations) > 0:
        ax.set_xscale("log")
        _plain_ticks(ax.xaxis)
    else:
        ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("iteration (log scale)")


def _plain_ticks(axis) -> None:
    """Log-axis tick labels as plain numbers (0.5, 2, 30), not powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator  # noqa: PLC0415
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda value, _: ""))


def _error_axis(ax, errors: list[np.ndarray]) -> None:
    """A log y axis for errors in percent: late-training errors of a few tenths of a percent stay visible."""
    values = np.concatenate([np.ravel(error) for error in errors]) if errors else np.array([])
    values = values[~np.isnan(values)]
    if values.size and np.all(values > 0):
        ax.set_yscale("log")
        _plain_ticks(ax.yaxis)
    else:  # an error of 0 has no place on a log axis: linear below 0.1%
        ax.set_yscale("symlog", linthresh=0.1)
        ax.set_ylim(bottom=0)
    ax.set_ylabel("test error, % (log scale)")


def draw_gallery(images: np.ndarray, titles: list[str], title: str, path: Path, colors: list[str] | None = None) -> None:
    """A grid of images (grey digits, or colour for RGB ones) with a small title each; a note instead when there is
    nothing to show."""
    figures = _figures()
    import matplotlib.pyplot as plt  # noqa: PLC0415
    count = len(images)
    columns = min(GALLERY_COLUMNS, max(count, 1))
    rows = max(1, math.ceil(count / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.25 * columns + 0.6, 1.45 * rows + 0.9), squeeze=False)
    longest = max((len(line) for text in titles for line in text.split("\n")), default=0)
    title_size = 8 if longest <= 16 else 6.5       # class names that are words must not run into each other
    for position, ax in enumerate(axes.flat):
        ax.axis("off")
        if position < count:
            image = np.asarray(images[position])
            figures.show_image(ax, image if image.ndim == 3 else image.reshape(1, *images.shape[-2:]))
            ax.set_title(titles[position], fontsize=title_size, color=(colors[position] if colors else "black"))
    if not count:
        axes.flat[0].text(0.5, 0.5, "nothing to show", ha="center", va="center", fontsize=11)
    fig.suptitle(title, fontsize=11, fontweight="bold")
    fig.tight_layout()
    figures.save_figure(fig, path)


def draw_confused_pairs(pairs: pd.DataFrame, title: str, path: Path, names: list[str] | None = None) -> None:
    figures = _figures()
    import matplotlib.pyplot as plt  # noqa: PLC0415
    shown = pairs.head(TOP_PAIRS_SHOWN).iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.42 * max(len(shown), 3) + 1.4))
    if len(shown):
        y = np.arange(len(shown))
        ax.barh(y, shown["a_as_b"], label="lower class read as the higher (a→b)", color="#0173b2")
        ax.barh(y, shown["b_as_a"], left=shown["a_as_b"], label="higher class read as the lower (b→a)", color="#de8f05")
        ax.set_yticks(y, [f"{pair_label(row.a, row.b, names)}  ({100 * row.share:.1f}%)" for row in shown.itertuples()])
        ax.legend(loc="lower right", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no errors", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("errors (either direction)")
    ax.set_title(title, fontsize=11)
    figures.save_figure(fig, path)


def draw_pairs_over_training(iterations: np.ndarray, confusion: np.ndarray, pairs: pd.DataFrame, title: str, path: Path,
                             names: list[str] | None = None) -> None:
    figures = _figures()
    import matplotlib.pyplot as plt  # noqa: PLC0415
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for row in pairs.head(PAIRS_OVER_TRAINING).itertuples():
        counts = confusion[:, row.a, row.b] + confusion[:, row.b, row.a]
        ax.plot(iterations, counts, marker="o", label=pair_label(row.a, row.b, names))
    if len(pairs):
        ax.legend(title="pair", fontsize=8)
    _iteration_axis(ax, iterations)
    ax.set_ylabel("errors between the pair")
    ax.set_title(title, fontsize=11)
    figures.save_figure(fig, path)


def draw_margins(error_margins: np.ndarray, correct_margins: np.ndarray, title: str, path: Path) -> None:
    figures = _figures()
    import matplotlib.pyplot as plt  # noqa: PLC0415
    fig, ax = plt.subplots(figsize=(7, 4.2))
    bins = np.linspace(0, 1, 41)
    for values, label, color in ((correct_margins, "right", "#029e73"), (error_margins, "wrong", "#d55e00")):
        if len(values):
            weights = np.full(len(values), 1 / len(values))
            ax.hist(values, bins=bins, weights=weights, alpha=0.6, label=f"{label} ({len(values)} images)", color=color)
    ax.set_yscale("log")
    ax.set_xlabel("margin: top-1 minus top-2 probability")
    ax.set_ylabel("share of each group (log scale)")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=11)
    figures.save_figure(fig, path)


def draw_errors_by_class(by_class: np.ndarray, title: str, path: Path, names: list[str] | None = None) -> None:
    """Grid of bar charts: for each true class, its errors by predicted label."""
    figures = _figures()
    import matplotlib.pyplot as plt  # noqa: PLC0415
    n_classes = by_class.shape[0]
    labels = class_labels(names, n_classes)
    columns = min(5, n_classes)
    rows = math.ceil(n_classes / columns)
    colors = _class_colors(n_classes)
    fig, axes = plt.subplots(rows, columns, figsize=(2.7 * columns, 2.3 * rows + 0.8), sharey=True, squeeze=False)
    total = by_class.sum()
    for true, ax in enumerate(axes.flat):
        if true >= n_classes:
            ax.axis("off")
            continue
        ax.bar(np.arange(n_classes), by_class[true], color=colors)
        _class_ticks(ax, np.arange(n_classes), labels, fontsize=7)
        share = f", {100 * by_class[true].sum() / total:.0f}%" if total else ""
        ax.set_title(f"true {labels[true]}: {by_class[true].sum()} errors{share}", fontsize=9)
        if true % columns == 0:
            ax.set_ylabel("errors")
        if true // columns == rows - 1:
            ax.set_xlabel("predicted label", fontsize=8)
    fig.suptitle(title, fontsize=11, fontweight="bold")
    fig.tight_layout()
    figures.save_figure(fig, path)


def draw_class_rates(table: pd.DataFrame, overall: float, title: str, path: Path, names: list[str] | None = None) -> None:
    figures = _figures()
    import matplotlib.pyplot as plt  # noqa: PLC0415
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    x = table["class"].to_numpy()
    rates = table["error_rate"].to_numpy()
    below = np.maximum(np.nan_to_num(rates - table["ci_low"].to_numpy()), 0)
    above = np.maximum(np.nan_to_num(table["ci_high"].to_numpy() - rates), 0)
    ax.bar(x, 100 * rates, color=_class_colors(len(x)), yerr=100 * np.vstack([below, above]), capsize=4)
    ax.axhline(100 * overall, color="black", linestyle="--", linewidth=1, label=f"all classes: {percent(overall)}")
    for position, row in enumerate(table.itertuples()):
        if not math.isnan(row.share_of_errors):
            ax.text(position, 100 * row.ci_high if not math.isnan(row.ci_high) else 0, f"{100 * row.share_of_errors:.0f}%",
                    ha="center", va="bottom", fontsize=7, color="dimgray")
    _class_ticks(ax, x, [class_labels(names, len(x))[k] for k in x])
    ax.set_xlabel("true class (grey: its share of all errors)")
    ax.set_ylabel("error rate, % (95% Wilson interval)")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=11)
    figures.save_figure(fig, path)


def draw_class_error_over_training(iterations: np.ndarray, total: np.ndarray, per_class: np.ndarray, title: str, path: Path,
                                   names: list[str] | None = None) -> None:
    figures = _figures()
    import matplotlib.pyplot as plt  # noqa: PLC0415
    fig, ax = plt.subplots(figsize=(8, 4.8))
    labels = class_labels(names, per_class.shape[1])
    for k, color in enumerate(_class_colors(per_class.shape[1])):
        ax.plot(iterations, 100 * per_class[:, k], marker="o", markersize=3, color=color, label=labels[k])
    ax.plot(iterations, 100 * total, color="black", linewidth=2.2, linestyle="--", label="all")
    _iteration_axis(ax, iterations)
    _error_axis(ax, [100 * per_class, 100 * total])
    ax.legend(title="true class", fontsize=8, ncol=2, bbox_to_anchor=(1.01, 1), loc="upper left")
    ax.set_title(title, fontsize=11)
    figures.save_figure(fig, path)


def draw_total_error(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str, path: Path, ax=None) -> None:
    figures = _figures()
    import matplotlib.pyplot as plt  # noqa: PLC0415
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(7, 4.2))
    for model, (iterations, error) in curves.items():
        ax.plot(iterations, 100 * error, marker="o", color=figures.model_color(model), label=model_label(model))
        _iteration_axis(ax, iterations)
    _error_axis(ax, [error for _, error in curves.values()])
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=11)
    if own:
        figures.save_figure(fig, path)


def draw_forgetting(table: pd.DataFrame, per_class: np.ndarray, title: str, path: Path, names: list[str] | None = None) -> None:
    figures = _figures()
    import matplotlib.pyplot as plt  # noqa: PLC0415
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.3), gridspec_kw={"width_ratios": [3, 2]})
    x = np.arange(len(table))
    labels = [f"{a}→{b}" for a, b in zip(table["from_iteration"], table["to_iteration"])]
    for offset, column, color, label in ((-0.2, "forgotten", "#d55e00", "forgotten (right → wrong)"),
                                         (0.2, "learned", "#029e73", "learned (wrong → right)")):
        bars = left.bar(x + offset, table[column], width=0.4, color=color, label=label)
        left.bar_label(bars, fontsize=7)
    left.set_xticks(x, labels, rotation=45, ha="right", fontsize=8)
    left.set_yscale("symlog", linthresh=10)
    peak = max(int(table[["forgotten", "learned"]].to_numpy().max()), 1) if len(table) else 1
    left.set_ylim(0, peak * 4)
    left.set_ylabel("images (symlog scale)")
    left.set_xlabel("between snapshots (iterations)")
    left.legend(fontsize=8, loc="upper right", ncol=2)
    left.set_title("events per pair of consecutive snapshots", fontsize=10)
    classes = np.arange(len(per_class))
    right.bar(classes, per_class, color=_class_colors(len(per_class)))
    _class_ticks(right, classes, class_labels(names, len(per_class)))
    right.set_xlabel("true class")
    right.set_ylabel("forgetting events")
    right.set_title("forgetting events per class", fontsize=10)
    fig.suptitle(title, fontsize=11, fontweight="bold")
    fig.tight_layout()
    figures.save_figure(fig, path)


def draw_comparison(results: list[Any], title: str, path: Path, names: list[str] | None = None,
                    reported_errors: dict[str, float] | None = None) -> None:
    """reported_errors: model -> error at iteration 10 that users reported, drawn as a reference (MNIST only)."""
    figures = _figures()
    import matplotlib.pyplot as plt  # noqa: PLC0415
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))
    draw_total_error({r.model: (r.iterations, r.total_error) for r in results}, "test error over training", path, ax=axes[0, 0])

    ax = axes[0, 1]
    x = np.arange(len(results))
    early = [100 * r.measures["earliest_error"] for r in results]
    bars = ax.bar(x, early, color=[figures.model_color(r.model) for r in results])
    reported_label = "reported by Caffe users at iteration 10"
    for bar, r in zip(bars, results):
        ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), f"{bar.get_height():.1f}%", ha="center", va="bottom")
        reported = (REPORTED_EARLY_ERROR if reported_errors is None else reported_errors).get(r.model)
        if reported is not None:
            ax.hlines(100 * reported, bar.get_x() - 0.05, bar.get_x() + bar.get_width() + 0.05, colors="black",
                      linestyles=":", linewidth=2, label=reported_label)
            reported_label = None
    ax.set_xticks(x, [f"{model_label(r.model)}\niteration {r.measures['earliest_iteration']}" for r in results])
    ax.set_ylim(0, 105)
    ax.set_ylabel("test error, %")
    if reported_label is None:
        ax.legend(fontsize=8)
    ax.set_title("error at the earliest snapshot", fontsize=10)

    ax = axes[1, 0]
    width = 0.8 / max(len(results), 1)
    for position, r in enumerate(results):
        table = r.class_table
        offset = (position - (len(results) - 1) / 2) * width
        rates = table["error_rate"].to_numpy()
        yerr = np.maximum(np.vstack([np.nan_to_num(rates - table["ci_low"]), np.nan_to_num(table["ci_high"] - rates)]), 0)
        ax.bar(table["class"] + offset, 100 * rates, width=width, yerr=100 * yerr, capsize=2,
               color=figures.model_color(r.model), label=model_label(r.model))
    if results:
        classes = results[0].class_table["class"].to_numpy()
        _class_ticks(ax, classes, [class_labels(names, len(classes))[k] for k in classes])
    ax.set_xlabel("true class")
    ax.set_ylabel("final error rate, % (95% Wilson)")
    ax.legend(fontsize=8)
    ax.set_title("per-class error of the final model", fontsize=10)

    ax = axes[1, 1]
    for r in results:
        table = r.forgetting_table
        if len(table):
            ax.plot(table["to_iteration"], table["forgotten"], marker="o", color=figures.model_color(r.model),
                    label=f"{model_label(r.model)}: {r.measures['forgetting_events']} in all")
            _iteration_axis(ax, table["to_iteration"].to_numpy())
    ax.set_ylabel("images forgotten since the previous snapshot")
    ax.set_xlabel("snapshot iteration (log scale)")
    if any(len(r.forgetting_table) for r in results):
        ax.legend(fontsize=8)
    ax.set_title("forgetting events", fontsize=10)
    fig.suptitle(title, fontsize=12, fontweight="bold")
    fig.tight_layout()
    figures.save_figure(fig, path)
