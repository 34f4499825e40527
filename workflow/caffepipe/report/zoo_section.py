"""The report's zoo section: every model of the run in one table, and their test error over the snapshots.

One row per model, each number from the stage that measures it:
- parameters and multiply-adds per image: --time/<model>/complexity.json (`caffepipe time`, from the deploy
  net's blob shapes; inspection/complexity.py says what counts);
- `caffe time` forward and backward milliseconds per training batch: --time/<model>/totals.json;
- training seconds, iterations per second and peak resident memory: --train/<model>/metrics.json
  (`caffepipe parse-log`; seconds of Caffe's log, peak memory from `caffepipe train`'s marker line);
- final test accuracy with its 95% Wilson interval: --eval/<model>/metrics.json (`caffepipe evaluate`).
The error curves come from --analysis/total_error_vs_iteration.csv (`caffepipe analyze`); the hard-image
galleries are in the error analyses (analyze's hard_images.py), linked from here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from caffepipe.core import figures
from caffepipe.core.errors import CaffepipeError
from caffepipe.core.upstream import read_json
from caffepipe.evaluation.error_stats import wilson_interval


def zoo_row(model: str, train: Path, eval_dir: Path, time_dir: Path) -> dict[str, Any]:
    cost = read_json(time_dir / model / "complexity.json", "time")
    timing = read_json(time_dir / model / "totals.json", "time")
    training = read_json(train / model / "metrics.json", "parse-log")
    final = read_json(eval_dir / model / "metrics.json", "evaluate")
    correct = final["images"] - final["errors"]
    low, high = wilson_interval(np.array([correct]), np.array([final["images"]]))
    seconds = float(training["seconds"])
    return {
        "model": model,
        "parameters": int(cost["parameters"]),
        "multiply-adds per image": int(cost["multiply_adds"]),
        "caffe time forward ms": float(timing["forward_ms"]),
        "caffe time backward ms": float(timing["backward_ms"]),
        "batch": int(timing["batch_size"]),
        "training s": seconds,
        "it/s": training["iteration"] / seconds if seconds > 0 else float("nan"),
        "peak memory MB": training.get("peak_memory_mb"),
        "test accuracy": float(final["accuracy"]),
        "95% interval": f"{100 * float(low[0]):.2f}–{100 * float(high[0]):.2f}%",
    }


def zoo_table(models: list[str], train: Path, eval_dir: Path, time_dir: Path) -> pd.DataFrame:
    return pd.DataFrame([zoo_row(model, train, eval_dir, time_dir) for model in models])


def error_curves_figure(analysis: Path, models: list[str]) -> Any:
    """Test error of every model at every snapshot, log-log, from analyze's table."""
    from caffepipe.report.report import read_csv  # noqa: PLC0415 — the report's CSV reader, one error message

    path = analysis / "total_error_vs_iteration.csv"
    frame = read_csv(path, "analyze")
    missing = sorted(set(models) - set(frame["model"]))
    if missing:
        raise CaffepipeError(f"{path} has no rows of {', '.join(missing)}; re-run `caffepipe analyze`")
    figures.apply_style()
    fig, ax = figures.plt.subplots(figsize=(7.5, 4.2), layout="constrained")
    for model in models:
        rows = frame[frame["model"] == model]
        ax.plot(rows["iteration"], 100 * rows["error"], marker="o", markersize=3, label=model,
                color=figures.model_color(model))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("iteration (snapshot)")
    ax.set_ylabel("test error (%)")
    ax.set_title("Test error at every snapshot")
    ax.legend(title="model")
    return fig


def zoo_section(models: list[str], train: Path, eval_dir: Path, time_dir: Path, analysis: Path) -> dict[str, Any]:
    from caffepipe.report.report import Figure, figure_data_uri, frame_table  # noqa: PLC0415

    table = zoo_table(models, train, eval_dir, time_dir)
    best = table.loc[table["test accuracy"].idxmax()]
    return {
        "table": frame_table(table, "One row per model: size, cost per image, speed and final test accuracy", max_rows=None),
        "best": f"{best['model']}: {100 * best['test accuracy']:.2f}% ({best['95% interval']})",
        "curves": Figure(figure_data_uri(error_curves_figure(analysis, models)),
                         "Test error of every model at each training snapshot (log axes), from the evaluations",
                         "test error over snapshots"),
    }
