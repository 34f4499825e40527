"""`caffepipe report`: one self-contained HTML page of the whole run, readable straight from disk.

    caffepipe report --params params.yaml --raw data/raw --bench reports/bench --train reports/train
        --eval reports/eval --analysis reports/analysis --analysis-metrics reports/analysis-metrics.json
        --time reports/time --visualize reports/visualize --sobel reports/sobel --finetune reports/finetune
        --weights reports/weights --out reports/index.html

Every figure is embedded as a base64 PNG data URI (re-encoded with a 256-colour palette, images.py), the
stylesheet and the table of contents' few lines of script are inline, so the file needs no server and no other
file; each figure links to its data file by a path relative to the page. The page is rendered from the Jinja2
templates in templates/: report.html.j2 (layout, table of contents), macros.html.j2 (figure, table) and one
partial per section, sections/<id>.html.j2. The sections, in page order, are the SECTIONS list below; the table
of contents is built from it. To add a section: write a function `(ReportInputs) -> dict`, its partial (which
sees that dict as `s`), and one Section line.

Sections and where each one's numbers come from:

- summary: per model, final accuracy with its 95% interval, errors, training time and it/s; the read benchmark's
  headline ratios; the most-confused pair; the three findings most worth a look (summary.py), each number with
  its change against the baseline (params report.baseline: a git revision, HEAD by default; baseline.py);
- data: image counts and a sample grid, from the IDX files in --raw (`caffepipe fetch`);
- read benchmark: io.csv, io.png and metrics.json from --bench (`caffepipe bench-io`);
- training curves: <model>/train.csv and test.csv from --train (`caffepipe parse-log`), drawn here over the
  baseline's, and a warning when a model's weights are not bit-reproducible: <model>/reproducibility.json from
  --train (`caffepipe train`);
- model comparison: final test metrics (--eval, `caffepipe evaluate`), training metrics (--train) and timings;
- error analyses: every figure and table listed in --analysis/summary.json (`caffepipe analyze`), and
  --analysis-metrics for the summary;
- layer timings: --time/<model>/ (`caffepipe time`), with the share of the CPU's peak FLOP rate each model and
  layer reaches from its flop_rate.json and machine.json (flop_rate_section.py);
- visualisations: --visualize/<model>/index.json (`caffepipe visualize`) and --sobel/index.json (`caffepipe sobel`);
- fine-tuning: runs.csv, curves.csv and weight_change.csv from --finetune (`caffepipe finetune`);
- the zoo and class activation maps: zoo_section.py and cam_section.py (--cam, `caffepipe cam`);
- net diagrams, and weights and activations over training: --visualize/<model>/net.svg and --weights/<model>/
  (`caffepipe visualize`, `caffepipe weight-stats`), built by inspection_sections.py;
- run information: the data's provenance (--raw/source.json), the baseline commit, the params, tool versions,
  the git commit and its date.

A missing input is an error naming the file and the stage that makes it; nothing is left out silently. A
missing baseline is not an error: the numbers then show no change.
"""
from __future__ import annotations

import argparse
import base64
import importlib.metadata
import io
import json
import logging
import math
import os
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import jinja2
import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter

from caffepipe.core import caffe_env, figures
from caffepipe.core.atomic import write_text_atomic
from caffepipe.core.errors import CaffepipeError
from caffepipe.core.upstream import read_json, require
from caffepipe.data import raw_images
from caffepipe.data.class_names import class_names
from caffepipe.pipeline.params import add_params_argument, load_params
from caffepipe.report import inspection_sections, summary
from caffepipe.report.baseline import Baseline, resolve_baseline
from caffepipe.report.images import compact_png
from caffepipe.report.cam_section import cam_section
from caffepipe.report.flop_rate_section import flop_rate_numbers
from caffepipe.report.zoo_section import zoo_section

log = logging.getLogger(__name__)

TEMPLATE = "report.html.j2"
TABLE_ROWS = 12                   # rows of a long CSV shown in the page; the file has them all
COLLAPSE_ROWS = 11                # a table with more rows than this starts folded (<details>): a class table does not
SAMPLES_PER_CLASS = 10            # sample grid: this many training digits of each class
RAW_SPLITS = {"train": "train", "test": "t10k"}
PYTHON_PACKAGES = ("numpy", "pandas", "matplotlib", "seaborn", "protobuf", "lmdb", "plyvel", "dvc", "snakemake")


# ---------------------------------------------------------------------------------------------------------
# What the template gets

@dataclass(frozen=True)
class DataLink:
    """A figure's data file, as a path relative to the page (reports/index.html links reports/bench/io.csv as
    bench/io.csv), so the link works wherever the workspace is, opened from disk."""
    label: str
    href: str


@dataclass
class Figure:
    src: str                      # a data: URI
    caption: str
    alt: str = ""
    data: list[DataLink] = field(default_factory=list)


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]
    caption: str = ""
    note: str = ""                # e.g. "first 12 of 87 rows; the whole table: reports/analysis/errors_lenet.csv"
    numeric: list[bool] = field(default_factory=list)

    @property
    def collapsed(self) -> bool:
        """Long tables start folded, so the page reads as its figures and headlines."""
        return len(self.rows) > COLLAPSE_ROWS


@dataclass(frozen=True)
class ReportInputs:
    """Everything a section may read: the command line's paths, the params, and the resolved baseline."""
    params: dict[str, Any]
    params_path: Path
    raw: Path
    bench: Path
    train: Path
    eval: Path
    analysis: Path
    analysis_metrics: Path
    time: Path
    visualize: Path
    sobel: Path
    finetune: Path
    cam: Path
    weights: Path
    out: Path
    baseline: Baseline

    @property
    def models(self) -> list[str]:
        return list(self.params["netgen"]["models"])

    def link(self, path: Path, label: str | None = None) -> DataLink:
        """A link from the page to `path` (relative to the page's folder, '/'-separated)."""
        relative = os.path.relpath(Path(path).absolute(), self.out.absolute().parent)
        return DataLink(label or Path(path).name, Path(relative).as_posix())


# ---------------------------------------------------------------------------------------------------------
# Reading inputs: a missing one is an error that names the stage that makes it

def read_csv(path: Path, stage: str) -> pd.DataFrame:
    try:
        return pd.read_csv(require(path, stage))
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise CaffepipeError(f"{path} is not a readable CSV ({error}); re-run `caffepipe {stage}`") from None


def png_data_uri(data: bytes) -> str:
    """A PNG as a data: URI, re-encoded with a palette first (images.py: the page's bytes are mostly figures)."""
    return "data:image/png;base64," + base64.b64encode(compact_png(data)).decode("ascii")


def embed_png(path: Path, stage: str) -> str:
    data = require(path, stage).read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise CaffepipeError(f"{path} is not a PNG file; re-run `caffepipe {stage}`")
    return png_data_uri(data)


def figure_data_uri(fig) -> str:
    """A matplotlib figure as an embedded PNG (closed afterwards)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    figures.plt.close(fig)
    return png_data_uri(buffer.getvalue())


# ---------------------------------------------------------------------------------------------------------
# Formatting

def format_value(value: Any) -> str:
    """Numbers with about four significant digits, never in scientific notation for the usual ranges."""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return "–"
        if math.isinf(value) or value == 0:
            return str(value) if value else "0"
        magnitude = math.floor(math.log10(abs(value)))
        if magnitude >= 4:
            return f"{value:,.0f}"
        if magnitude >= -4:
            return f"{value:,.{max(0, 3 - magnitude)}f}"
        return f"{value:.3e}"
    if value is None:
        return "–"
    return str(value)


def format_cell(value: Any) -> str:
    """A table cell: a column of mixed values reads from CSV as text, so numbers written as text are formatted too."""
    if isinstance(value, str):
        for number in (int, float):
            try:
                return format_value(number(value))
            except ValueError:
                continue
    return format_value(value)


def frame_table(frame: pd.DataFrame, caption: str = "", source: str = "", max_rows: int | None = TABLE_ROWS) -> Table:
    shown = frame if max_rows is None else frame.head(max_rows)
    note = ""
    if max_rows is not None and len(frame) > max_rows:
        note = f"first {max_rows} of {len(frame)} rows" + (f"; the whole table: {source}" if source else "")
    numeric = [pd.api.types.is_numeric_dtype(frame[column]) and not pd.api.types.is_bool_dtype(frame[column])
               for column in frame.columns]
    rows = [[format_cell(value) for value in row] for row in shown.itertuples(index=False, name=None)]
    return Table(columns=[str(column) for column in frame.columns], rows=rows, caption=caption, note=note, numeric=numeric)


def flatten(mapping: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists of scalars are joined."""
    if not isinstance(mapping, dict):
        return {prefix: mapping}
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(flatten(value, name))
        elif isinstance(value, list) and not any(isinstance(item, (dict, list)) for item in value):
            flat[name] = ", ".join(format_value(item) for item in value)
        elif isinstance(value, list):
            flat[name] = json.dumps(value)
        else:
            flat[name] = value
    return flat


def key_value_table(mapping: dict[str, Any], caption: str = "") -> Table:
    flat = flatten(mapping)
    return Table(columns=["", "value"], rows=[[key, format_value(value)] for key, value in flat.items()],
                 caption=caption, numeric=[False, all(isinstance(value, (int, float)) for value in flat.values())])


# ---------------------------------------------------------------------------------------------------------
# Sections

def data_section(inputs: ReportInputs) -> dict[str, Any]:
    """Counts per split and class, and a grid of training digits of every class. (Where the data came from, with
    its checksums, is under Run information.)"""
    raw = inputs.raw
    labels, images = {}, {}
    for split in RAW_SPLITS:
        for path in raw_images.split_files(raw, split):
            require(path, "fetch")
        images[split], labels[split] = raw_images.load_split(raw, split)
    source = read_json(raw / "source.json", "fetch")
    classes = sorted(set(np.unique(labels["train"]).tolist()) | set(np.unique(labels["test"]).tolist()))
    names = class_names(source.get("dataset"), max(classes) + 1)
    shown = [names[label] if names[label] == str(label) else f"{label} {names[label]}" for label in classes]
    per_class = {split: [int(np.sum(labels[split] == label)) for label in classes] for split in RAW_SPLITS}
    counts = pd.DataFrame({"class": [*shown, "all"],
                           **{split: [*per_class[split], len(labels[split])] for split in RAW_SPLITS}})
    channels, height, width = images["train"].shape[1:]
    return {
        "counts": frame_table(counts, "Images per class", max_rows=None),
        "totals": {split: len(labels[split]) for split in RAW_SPLITS},
        "shape": f"{height}x{width}" + (" RGB" if channels == 3 else ""),
        "grid": Figure(sample_grid(images["train"], labels["train"], classes, shown),
                       f"The first {SAMPLES_PER_CLASS} training images of each class", "sample grid of training digits",
                       [inputs.link(path) for path in raw_images.split_files(raw, "train")]),
    }


def sample_grid(images: np.ndarray, labels: np.ndarray, classes: list[int], names: list[str]) -> str:
    """One row per class, its first SAMPLES_PER_CLASS training images (N, C, H, W), tiled into one image with thin
    white gaps: grey for one channel, colour for three."""
    channels, height, width = images.shape[1:]
    gap = 2
    grid = np.full((len(classes) * (height + gap) - gap, SAMPLES_PER_CLASS * (width + gap) - gap, channels), np.nan)
    for row, label in enumerate(classes):
        for column, index in enumerate(np.flatnonzero(labels == label)[:SAMPLES_PER_CLASS]):
            top, left = row * (height + gap), column * (width + gap)
            grid[top:top + height, left:left + width] = images[index].transpose(1, 2, 0)
    figures.apply_style()
    fig, ax = figures.plt.subplots(figsize=(SAMPLES_PER_CLASS * 0.55 + 0.6, len(classes) * 0.55 + 0.3), layout="constrained")
    if channels == 3:
        ax.imshow(np.nan_to_num(grid, nan=255).astype(np.uint8), interpolation="nearest")
    else:
        cmap = figures.plt.get_cmap("gray").with_extremes(bad="white")
        ax.imshow(grid[..., 0], cmap=cmap, vmin=0, vmax=255, interpolation="nearest")
    ax.set_yticks([row * (height + gap) + height / 2 for row in range(len(classes))], names)
    ax.set_xticks([])
    ax.set_ylabel("class")
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    return figure_data_uri(fig)


def log_tick_label(value: float, _position: int) -> str:
    """Plain numbers at 1, 2 and 5 times a power of ten, nothing at the other ticks of a log axis."""
    if value <= 0:
        return ""
    mantissa = round(value / 10 ** math.floor(math.log10(value)), 6)
    return f"{value:g}" if mantissa in (1, 2, 5) else ""


def bench_section(inputs: ReportInputs) -> dict[str, Any]:
    bench = inputs.bench
    frame = read_csv(bench / "io.csv", "bench-io")
    metrics = read_json(bench / "metrics.json", "bench-io")
    return {
        "figure": Figure(embed_png(bench / "io.png", "bench-io"), "Read throughput of each storage format", "read benchmark",
                         [inputs.link(bench / "io.csv"), inputs.link(bench / "metrics.json")]),
        "table": frame_table(frame, "Every format and measurement (io.csv)", source=str(bench / "io.csv"), max_rows=None),
        "metrics": key_value_table(metrics, "Headline numbers (metrics.json)"),
    }


TRAIN_COLUMNS = ("iteration", "loss")
TEST_COLUMNS = ("iteration", "loss", "accuracy")


def read_curves(train: Path, model: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A model's train.csv and test.csv (parse-log), checked for the columns the figure draws."""
    frames = []
    for name, columns in (("train.csv", TRAIN_COLUMNS), ("test.csv", TEST_COLUMNS)):
        frame = read_csv(train / model / name, "parse-log")
        missing = [column for column in columns if column not in frame.columns]
        if missing:
            raise CaffepipeError(f"{train / model / name} has no column {', '.join(missing)}; re-run `caffepipe parse-log`")
        frames.append(frame)
    return frames[0], frames[1]


def baseline_curves(inputs: ReportInputs, model: str) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The baseline's train.csv and test.csv of a model, or None when it lacks either or their columns."""
    frames = [inputs.baseline.read_csv(inputs.train / model / name) for name in ("train.csv", "test.csv")]
    if any(frame is None for frame in frames):
        return None
    if not set(TRAIN_COLUMNS) <= set(frames[0].columns) or not set(TEST_COLUMNS) <= set(frames[1].columns):
        return None
    return frames[0], frames[1]


def training_curves(inputs: ReportInputs) -> dict[str, Any]:
    """Train loss per display step; test loss and accuracy per test pass; every model on the same axes, each
    over its baseline's curves (dashed) when the baseline commit has them."""
    curves = {model: read_curves(inputs.train, model) for model in inputs.models}
    before = {model: baseline_curves(inputs, model) for model in inputs.models}
    before = {model: frames for model, frames in before.items() if frames is not None}
    figures.apply_style()
    fig, axes = figures.plt.subplots(1, 3, figsize=(13, 3.8), layout="constrained")
    panels = ((axes[0], 0, "loss", "train loss (each display step)"),
              (axes[1], 1, "loss", "test loss"),
              (axes[2], 1, "accuracy", "test accuracy"))
    for ax, which, column, title in panels:
        for model, frames in before.items():
            ax.plot(frames[which]["iteration"], frames[which][column], color=figures.model_color(model),
                    label=f"{model}, baseline {inputs.baseline.short}", linestyle="--", linewidth=1.0, alpha=0.55)
        for model, frames in curves.items():
            frame = frames[which]
            ax.plot(frame["iteration"], frame[column], color=figures.model_color(model), label=model,
                    marker="o" if which == 1 else None, markersize=3, linewidth=1.4 if which == 1 else 1.0)
        ax.set_title(title)
        ax.set_xlabel("iteration")
        ax.set_ylabel(column)
    for ax in axes[:2]:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(log_tick_label))
        ax.yaxis.set_minor_formatter(FuncFormatter(log_tick_label))
    axes[2].legend(title="model", loc="lower right")
    summary_rows = []
    for model, (train_frame, test_frame) in curves.items():
        last_test = test_frame.iloc[-1]
        summary_rows.append({"model": model, "display steps": len(train_frame), "test passes": len(test_frame),
                             "last iteration": int(max(train_frame["iteration"].max(), test_frame["iteration"].max())),
                             "last train loss": float(train_frame["loss"].iloc[-1]),
                             "last test loss": float(last_test["loss"]), "last test accuracy": float(last_test["accuracy"])})
    overlay = (f"; dashed: the same curves at the baseline commit {inputs.baseline.short}" if before else "")
    links = [inputs.link(inputs.train / model / name, f"{model}/{name}") for model in inputs.models
             for name in ("train.csv", "test.csv")]
    return {
        "figure": Figure(figure_data_uri(fig), "Training loss at every display step (log scale), and test loss and "
                                               f"accuracy at every test pass, from Caffe's log{overlay}",
                         "training curves", links),
        "table": frame_table(pd.DataFrame(summary_rows), "The last values of each curve", max_rows=None),
        "not_reproducible": not_reproducible(inputs.train, inputs.models),
    }


# Fine-tuning modes in a fixed order and colour (the colour-blind palette's first three)
FINETUNE_MODES = {"last_layer": "#0173b2", "full": "#de8f05", "scratch": "#029e73"}


def finetune_section(inputs: ReportInputs) -> dict[str, Any]:
    """Accuracy against the number of target images per mode (log x), the smallest size's accuracy over
    iterations, every run, and how far each mode moved each source layer (`caffepipe finetune`)."""
    finetune = inputs.finetune
    runs = read_csv(finetune / "runs.csv", "finetune")
    curves = read_csv(finetune / "curves.csv", "finetune")
    changes = read_csv(finetune / "weight_change.csv", "finetune")
    figures.apply_style()
    fig, (by_size, over_time) = figures.plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    for mode, color in FINETUNE_MODES.items():
        sized, curve = runs[runs["mode"] == mode], curves[curves["mode"] == mode]
        if len(sized):
            by_size.plot(sized["size"], sized["accuracy"], marker="o", color=color, label=mode)
            over_time.plot(curve["iteration"], curve["accuracy"], marker="o", markersize=3, color=color, label=mode)
    by_size.set_xscale("log")
    by_size.xaxis.set_major_formatter(FuncFormatter(log_tick_label))
    by_size.xaxis.set_minor_formatter(FuncFormatter(log_tick_label))
    by_size.set(title="test accuracy after fine-tuning", xlabel="target training images", ylabel="test accuracy")
    smallest = int(runs["size"].min())
    over_time.set(title=f"test accuracy during training, {smallest} images", xlabel="iteration", ylabel="test accuracy")
    by_size.legend(title="mode", loc="lower right")
    table = runs.rename(columns={"seconds": "training seconds"})
    layers = changes.pivot_table(index=["mode", "size"], columns="layer", values="relative_change", sort=False).reset_index()
    return {
        "figure": Figure(figure_data_uri(fig), "Test accuracy on the whole target test set against the number of target "
                                               "training images (log scale), one line per mode; and during training at "
                                               "the smallest size", "fine-tuning",
                         [inputs.link(finetune / "runs.csv"), inputs.link(finetune / "curves.csv")]),
        "runs": frame_table(table, "Every run (runs.csv)", max_rows=None),
        "layers": frame_table(layers, "Relative change of each source layer, ||W − W_source|| / ||W_source|| "
                                      "(weight_change.csv): 0 means the layer was frozen", max_rows=None),
    }


def not_reproducible(train: Path, models: list[str]) -> list[str]:
    """'<model> (<why>)' for each model whose weights no uninterrupted run reproduces bit for bit: its training
    resumed with another BLAS thread count (<model>/reproducibility.json, written by `caffepipe train`)."""
    found = []
    for model in models:
        path = train / model / "reproducibility.json"
        verdict = read_json(path, "train")
        flag = verdict.get("bit_reproducible") if isinstance(verdict, dict) else None
        note = verdict.get("reproducibility_note") if isinstance(verdict, dict) else None
        if not isinstance(flag, bool) or (not flag and not isinstance(note, str)):
            raise CaffepipeError(f"{path} does not say whether its weights are bit-reproducible; re-run `caffepipe train`")
        if not flag:
            found.append(f"{model} ({note})")
    return found


def timing_numbers(time_dir: Path, models: list[str]) -> dict[str, list[dict[str, Any]]]:
    """caffe time's whole-net averages and the deploy net's throughput, one row per model (and batch size)."""
    totals_rows, throughput_rows = [], []
    for model in models:
        totals = read_json(time_dir / model / "totals.json", "time")
        throughput = read_json(time_dir / model / "throughput.json", "time")
        totals_rows.append({"model": model, "batch": totals["batch_size"], "iterations": totals["iterations"],
                            "threads": totals["threads"], "forward ms": totals["forward_ms"],
                            "backward ms": totals["backward_ms"], "forward-backward ms": totals["forward_backward_ms"]})
        for row in throughput["batch_sizes"]:
            throughput_rows.append({"model": model, "batch size": row["batch_size"], "ms per batch (median)": row["median_ms_per_batch"],
                                    "ms per image": row["ms_per_image"], "images/s": row["images_per_s"], "threads": throughput["threads"]})
    return {"totals": totals_rows, "throughput": throughput_rows}


def timing_section(inputs: ReportInputs) -> dict[str, Any]:
    per_model = []
    numbers = timing_numbers(inputs.time, inputs.models)
    rates = flop_rate_numbers(inputs.time, inputs.models)
    for model, totals in zip(inputs.models, numbers["totals"]):
        folder = inputs.time / model
        layers = read_csv(folder / "layers.csv", "time")
        per_model.append({
            "model": model,
            "figure": Figure(embed_png(folder / "layers.png", "time"),
                             f"{model}: average forward and backward milliseconds of each layer over "
                             f"{totals['iterations']} caffe time iterations (batch {totals['batch']})", f"{model} layer timings",
                             [inputs.link(folder / "layers.csv", f"{model}/layers.csv")]),
            "table": frame_table(layers, f"{model}: per-layer milliseconds (layers.csv)", max_rows=None),
            "rates": frame_table(rates["layers"][model], f"{model}: FLOP rate of the layers with multiply-adds, per "
                                 f"training batch (flop_rate.json)", max_rows=None),
        })
    return {
        "models": per_model,
        "totals": frame_table(pd.DataFrame(numbers["totals"]), "Whole-net averages per training batch (caffe time, CPU)", max_rows=None),
        "throughput": frame_table(pd.DataFrame(numbers["throughput"]), "Deploy-net inference throughput (pycaffe forward, trained weights, CPU)", max_rows=None),
        "rates": frame_table(rates["net"], "Share of the peak FLOP rate per training batch (caffe time; flop_rate.json, machine.json)", max_rows=None),
        "rate_sentences": rates["sentences"],
        "peaks": rates["peaks"],
    }


def comparison_section(inputs: ReportInputs) -> dict[str, Any]:
    return {"table": comparison_table(inputs.train, inputs.eval, inputs.models, timing_numbers(inputs.time, inputs.models))}


def comparison_table(train: Path, eval_dir: Path, models: list[str], timing: dict[str, Any]) -> Table:
    """One row per measure, one column per model: final test metrics, training metrics, speed."""
    measures: dict[str, dict[str, Any]] = {}

    def put(measure: str, model: str, value: Any) -> None:
        measures.setdefault(measure, {})[model] = value

    for model in models:
        for key, value in flatten(read_json(eval_dir / model / "metrics.json", "evaluate")).items():
            put(f"test (final snapshot): {key}", model, value)
        for key, value in flatten(read_json(train / model / "metrics.json", "parse-log")).items():
            put(f"training log: {key}", model, value)
    for row in timing["totals"]:
        put(f"caffe time: forward-backward ms (batch {row['batch']})", row["model"], row["forward-backward ms"])
    for row in timing["throughput"]:
        put(f"deploy net: images/s at batch {row['batch size']}", row["model"], row["images/s"])
    rows = [[measure, *(format_value(values.get(model)) for model in models)] for measure, values in measures.items()]
    return Table(columns=["measure", *models], rows=rows, caption="The models side by side",
                 numeric=[False, *([True] * len(models))])


def figure_tables(item: dict[str, Any], items: list[dict[str, Any]]) -> list[str]:
    """The tables a figure of summary.json draws: the table of the same name (confused_pairs_lenet.png:
    confused_pairs_lenet.csv), else every table of its question and model (errors_gallery_lenet.png:
    errors_lenet.csv)."""
    tables = [entry["path"] for entry in items if entry["kind"] == "table"]
    same_name = str(Path(item["path"]).with_suffix(".csv"))
    if same_name in tables:
        return [same_name]
    return [entry["path"] for entry in items if entry["kind"] == "table" and entry["question"] == item["question"]
            and entry.get("model") == item.get("model")]


def analysis_section(inputs: ReportInputs) -> dict[str, Any]:
    """The figures and tables of summary.json, grouped by question (each a sub-section, id analysis-<key>), each
    with its headline."""
    analysis = inputs.analysis
    summary = read_json(analysis / "summary.json", "analyze")
    groups = []
    for key, question in summary["questions"].items():
        items = []
        for item in (entry for entry in summary["items"] if entry["question"] == key):
            path = analysis / item["path"]
            entry = {"model": item.get("model"), "caption": item["caption"], "headline": headline_text(item["headline"]),
                     "figure": None, "table": None}
            if item["kind"] == "figure":
                links = [inputs.link(analysis / table) for table in figure_tables(item, summary["items"])]
                entry["figure"] = Figure(embed_png(path, "analyze"), item["caption"], item["caption"], links)
            elif item["kind"] == "table":
                entry["table"] = frame_table(read_csv(path, "analyze"), source=str(path))
            else:
                raise CaffepipeError(f"{analysis / 'summary.json'}: item {item['path']} has unknown kind {item['kind']!r}")
            items.append(entry)
        groups.append({"id": f"analysis-{key}", "question": question, "entries": items})
    return {"groups": groups, "models": summary.get("models", []),
            "toc": [(group["id"], group["question"]) for group in groups]}


def headline_text(headline: dict[str, Any]) -> str:
    if headline.get("text"):
        return str(headline["text"])
    value = headline.get("value")
    if isinstance(value, dict):
        value = ", ".join(f"{model} {format_value(number)}" for model, number in value.items())
    else:
        value = format_value(value)
    return f"{headline.get('label', '')}: {value}".strip(": ")


def visualization_section(inputs: ReportInputs) -> dict[str, Any]:
    """Filters and feature maps (their data: the trained weights, which index.json names with each figure's layer)."""
    visualize, sobel = inputs.visualize, inputs.sobel
    per_model = []
    for model in inputs.models:
        index = read_json(visualize / model / "index.json", "visualize")
        link = inputs.link(visualize / model / "index.json", f"{model}/index.json")
        per_model.append({"model": model, "figures": [
            Figure(embed_png(visualize / model / entry["file"], "visualize"), entry["caption"], entry["caption"], [link])
            for entry in index["figures"]]})
    sobel_index = read_json(sobel / "index.json", "sobel")
    sobel_link = inputs.link(sobel / "index.json", "sobel/index.json")
    sobel_figures = [Figure(embed_png(sobel / entry["file"], "sobel"), entry["caption"], entry["caption"], [sobel_link])
                     for entry in sobel_index["figures"]]
    kernels = {name: "\n".join(" ".join(f"{value:>3g}" for value in row) for row in kernel)
               for name, kernel in sobel_index["kernels"].items()}
    return {"models": per_model, "sobel": sobel_figures, "kernels": kernels}


# ---------------------------------------------------------------------------------------------------------
# Run information

def git_commit(cwd: Path | None = None) -> str:
    """HEAD's commit, noting uncommitted changes to tracked files; "not a git checkout" outside one."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        return "not a git checkout (git is not installed)"
    if head.returncode != 0:
        return "not a git checkout"
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], cwd=cwd, capture_output=True).returncode != 0
    return head.stdout.strip() + (" (with uncommitted changes)" if dirty else "")


def git_commit_date(cwd: Path | None = None) -> str:
    try:
        result = subprocess.run(["git", "log", "-1", "--format=%cI"], cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        return "no commit (git is not installed)"
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else "no commit"


def caffe_version() -> str:
    binary = caffe_env.caffe_tool("caffe")
    result = subprocess.run([str(binary), "--version"], capture_output=True, text=True)
    if result.returncode != 0:
        raise CaffepipeError(f"`{binary} --version` exited {result.returncode}; run `caffepipe doctor`")
    return (result.stdout + result.stderr).strip().splitlines()[-1].removeprefix("caffe version ").strip()


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def baseline_text(baseline: Baseline) -> str:
    if baseline.commit:
        return f"{baseline.commit} ({baseline.revision})"
    return f"none: {baseline.reason}"


def run_section(inputs: ReportInputs) -> dict[str, Any]:
    """Where the data came from (source.json, with the files' SHA-256), the baseline, the params, tool versions,
    the commit."""
    versions = {"python": platform.python_version(), "caffe": caffe_version()}
    versions.update({name: package_version(name) for name in PYTHON_PACKAGES})
    source = read_json(inputs.raw / "source.json", "fetch")
    return {
        "source": key_value_table(source, "Where the data came from (source.json)"),
        "source_link": inputs.link(inputs.raw / "source.json"),
        "params_file": str(inputs.params_path),
        "params_yaml": inputs.params_path.read_text(),         # as written, comments included; load_params checked it
        "versions": Table(columns=["tool", "version"], rows=[[name, version] for name, version in versions.items()],
                          caption="Tool versions"),
        "commit": git_commit(),
        # The commit's date, not the clock's: the same inputs render the same bytes, so DVC sees no change
        # when either orchestrator renders the report again.
        "date": git_commit_date(),
        "baseline": baseline_text(inputs.baseline),
        "platform": platform.platform(),
    }


# ---------------------------------------------------------------------------------------------------------
# The summary: the first screen

def top_pairs(analysis: Path) -> dict[str, str]:
    """Per model, analyze's headline of its most-confused pair ("4/9: 11 errors (11.83% of all)")."""
    found: dict[str, str] = {}
    for item in read_json(analysis / "summary.json", "analyze")["items"]:
        if item["question"] == "why" and item.get("model") and item["headline"].get("label") == "most confused pair":
            found.setdefault(item["model"], headline_text(item["headline"]))
    return found


def slowest_layers(time_dir: Path, models: list[str]) -> dict[str, tuple[str, float]]:
    """Per model, the layer with the most forward + backward milliseconds and its share of them all."""
    slowest = {}
    for model in models:
        layers = read_csv(time_dir / model / "layers.csv", "time")
        if not {"layer", "forward_ms", "backward_ms"} <= set(layers.columns) or layers.empty:
            continue
        total = layers["forward_ms"] + layers["backward_ms"]
        if total.sum() > 0:
            top = int(total.to_numpy().argmax())
            slowest[model] = (str(layers["layer"].iloc[top]), float(total.iloc[top] / total.sum()))
    return slowest


def summary_section(inputs: ReportInputs) -> dict[str, Any]:
    """Per model the headline numbers with their change against the baseline; the read benchmark's ratios; the
    three things most worth a look (summary.py decides which)."""
    base = inputs.baseline
    runs, before = {}, {}
    for model in inputs.models:
        eval_path, train_path = inputs.eval / model / "metrics.json", inputs.train / model / "metrics.json"
        runs[model] = summary.model_run(model, read_json(eval_path, "evaluate"), read_json(train_path, "parse-log"))
        old_eval, old_train = base.read_json(eval_path), base.read_json(train_path)
        if old_eval is not None or old_train is not None:
            before[model] = summary.model_run(model, old_eval, old_train)
    pairs = top_pairs(inputs.analysis)
    bench_metrics = read_json(inputs.bench / "metrics.json", "bench-io")
    analysis_metrics = read_json(inputs.analysis_metrics, "analyze")
    findings = summary.Findings(
        runs=runs, baseline_runs=before, not_reproducible=not_reproducible(inputs.train, inputs.models),
        test_losses={model: read_curves(inputs.train, model)[1]["loss"].astype(float).tolist() for model in inputs.models},
        analysis={model: analysis_metrics.get(model, {}) for model in inputs.models} if isinstance(analysis_metrics, dict) else {},
        top_pairs=pairs, bench=bench_metrics if isinstance(bench_metrics, dict) else {},
        finetune_runs=read_csv(inputs.finetune / "runs.csv", "finetune").to_dict("records"),
        slowest_layers=slowest_layers(inputs.time, inputs.models))
    return {
        "models": [summary.model_summary(runs[model], before.get(model), pairs.get(model, "")) for model in inputs.models],
        "ratios": summary.bench_ratios(bench_metrics, base.read_json(inputs.bench / "metrics.json")),
        "highlights": summary.highlights(findings),
        "baseline": inputs.baseline,
        "compared": bool(before),
        "links": [inputs.link(inputs.eval / model / "metrics.json", f"{model} evaluation") for model in inputs.models]
                 + [inputs.link(inputs.train / model / "metrics.json", f"{model} training") for model in inputs.models],
    }


# ---------------------------------------------------------------------------------------------------------
# The page: its sections in order (the table of contents is built from this list)

@dataclass(frozen=True)
class Section:
    id: str                                           # the anchor, and the partial templates/sections/<id>.html.j2
    title: str                                        # its heading and its entry in the table of contents
    build: Callable[[ReportInputs], dict[str, Any]]   # the partial's data (`s` in it); "toc": [(id, title)] adds sub-entries


SECTIONS: tuple[Section, ...] = (
    Section("summary", "Summary", summary_section),
    Section("data", "Data", data_section),
    Section("bench", "Read benchmark", bench_section),
    Section("training", "Training curves", training_curves),
    Section("comparison", "Model comparison", comparison_section),
    Section("zoo", "The zoo: every model side by side",
            lambda inputs: zoo_section(inputs.models, inputs.train, inputs.eval, inputs.time, inputs.analysis)),
    Section("cam", "Where it looked: class activation maps", lambda inputs: cam_section(inputs.cam, inputs.models)),
    Section("analysis", "Error analyses", analysis_section),
    Section("timing", "Layer timings", timing_section),
    Section("visualizations", "Visualisations", visualization_section),
    Section("finetune", "Fine-tuning", finetune_section),
    Section("diagrams", "Net diagrams", inspection_sections.diagrams_section),
    Section("weights", "Weights over training", inspection_sections.weights_section),
    Section("run", "Run information", run_section),
)


# ---------------------------------------------------------------------------------------------------------
# Rendering

def template_environment() -> jinja2.Environment:
    environment = jinja2.Environment(loader=jinja2.PackageLoader("caffepipe.report", "templates"),
                                     autoescape=jinja2.select_autoescape(["html", "j2"]),
                                     undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    environment.filters["number"] = format_value
    return environment


def render_report(context: dict[str, Any]) -> str:
    return template_environment().get_template(TEMPLATE).render(**context)


def build_context(inputs: ReportInputs, sections: tuple[Section, ...] = SECTIONS) -> dict[str, Any]:
    built = []
    for section in sections:
        log.info("section %s", section.id)
        data = section.build(inputs)
        built.append({"id": section.id, "title": section.title, "template": f"sections/{section.id}.html.j2",
                      "data": data, "toc": data.get("toc", [])})
    by_id = {section["id"]: section["data"] for section in built}
    return {"title": inputs.params["report"]["title"], "models": inputs.models, "sections": built,
            "run": by_id.get("run") or run_section(inputs)}


def read_inputs(args: argparse.Namespace) -> ReportInputs:
    params = load_params(args.params)
    return ReportInputs(params=params, params_path=Path(args.params), raw=args.raw, bench=args.bench,
                        train=args.train, eval=args.eval, analysis=args.analysis,
                        analysis_metrics=args.analysis_metrics, time=args.time, visualize=args.visualize,
                        sobel=args.sobel, finetune=args.finetune, cam=args.cam, weights=args.weights, out=args.out,
                        baseline=resolve_baseline(params["report"]["baseline"], args.out.absolute().parent))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="caffepipe report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_params_argument(parser)
    for name, what in (("raw", "the IDX files (fetch)"), ("bench", "read benchmark (bench-io)"),
                       ("train", "parsed training logs (parse-log) and training's reproducibility.json (train)"),
                       ("eval", "evaluation metrics (evaluate)"),
                       ("analysis", "error analyses (analyze)"), ("time", "layer timings (time)"),
                       ("visualize", "visualisations (visualize)"), ("sobel", "Sobel figure (sobel)"),
                       ("finetune", "fine-tuning tables (finetune)"), ("cam", "class activation maps (cam)"),
                       ("weights", "weight and activation statistics (weight-stats)")):
        parser.add_argument(f"--{name}", required=True, type=Path, help=f"folder of {what}")
    parser.add_argument("--analysis-metrics", required=True, type=Path,
                        help="analyze's headline numbers per model (reports/analysis-metrics.json)")
    parser.add_argument("--out", required=True, type=Path, help="the HTML file to write (reports/index.html)")
    args = parser.parse_args(argv)
    inputs = read_inputs(args)
    html = render_report(build_context(inputs))
    write_text_atomic(args.out, html)
    log.info("wrote %s (%.1f MB; baseline: %s)", args.out, len(html.encode()) / 1e6, baseline_text(inputs.baseline))
    return 0
