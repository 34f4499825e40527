"""`caffepipe weight-stats`: how each layer's weights and activations evolve over a model's training snapshots.

    caffepipe weight-stats --params params.yaml --model lenet --nets data/nets/lenet
        --snapshots data/train/lenet/snapshots.json --db data/db --out reports/weights/lenet

pycaffe loads the deploy net once and copies in every scheduled snapshot listed in snapshots.json (each checked
against the net first, as `caffepipe evaluate` does). At each snapshot it reads every learnable layer's weights
and biases, and forwards a fixed test batch: the first params `weight_stats.activation_images` test images of the
`netgen.backend` database, pixels scaled as the Data layers scale them. The net runs one layer at a time, so the
output of a layer that a ReLU then overwrites in place (LeNet's ip1) is measured before the ReLU. Statistics are
computed in float64 from Caffe's float32 blobs.

Files in --out (e.g. reports/weights/lenet/), each written whole or not at all:

- weights.csv: iteration, layer, blob (weights | biases), count, mean, std (population, numpy's default), norm
  (L2), relative_change (||w_t - w_prev|| / ||w_prev||, from the previous listed snapshot; empty at the first) and
  change_per_1k (relative_change scaled to 1,000 iterations, since the snapshots are unevenly spaced).
- norms.csv: iteration, layer, weight_norm: the weights' L2 norm (the DVC plot: one line per layer).
- histograms.csv: iteration, layer, left, right, count: each layer's weight histogram at params
  `weight_stats.histogram_snapshots` snapshots (first, last, evenly spaced between), `histogram_bins` bins whose
  edges are the same at every snapshot of a layer (from -max|w| to +max|w| over those snapshots), so they compare.
- activations.csv: iteration, layer, type, top, mean, std and dead_fraction of each layer's output on the fixed
  batch (every layer but the Input and the final Softmax). dead_fraction, for ReLU layers only: the share of the
  output's units (every value of one image's output: a neuron, or a channel at one position) that are zero for
  every image of the batch.
- weights.png (per layer: the norm, and the change per 1,000 iterations against `settled_change`), histograms.png
  and activations.png (per layer: mean ± std; then the dead ReLU units): small multiples, one panel (or column)
  per layer, iterations on a log axis.
- summary.json: {"model", "iterations", "activation_images", "settled_change", "figures": [{"file", "caption"}],
  "observations": [{"layer", "kind", "text"}]}: one sentence per observation, computed from the tables above,
  which `caffepipe report` shows beside the figures.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.ticker import PercentFormatter

from caffepipe.core import caffe_env
from caffepipe.core import figures
from caffepipe.core.atomic import write_text_atomic
from caffepipe.core.errors import CaffepipeError
from caffepipe.core.progress import Progress
from caffepipe.data import datum
from caffepipe.pipeline.params import add_params_argument, load_params
from caffepipe.training.input_transform import nets_input_transform
from caffepipe.training.net_files import open_net
from caffepipe.training.nets_folder import DEPLOY_NET_FILE
from caffepipe.training.snapshots import Manifest, check_caffemodel, net_param_shapes, read_manifest

log = logging.getLogger(__name__)

INPUT_BLOB = "data"
BLOB_NAMES = ("weights", "biases")            # a learnable layer's parameter blobs, in Caffe's order
UNMEASURED_TYPES = ("Input", "Softmax")       # the images themselves, and probabilities that always average 1/K
RELU_TYPE = "ReLU"
NOT_LEARNED_TYPES = ("BatchNorm",)            # parameter blobs that SGD does not update
PER_ITERATIONS = 1000                         # change_per_1k: relative change scaled to this many iterations
STAGE_THREADS = 1                             # a few forward passes of a small batch: one BLAS thread is plenty
PANEL_COLUMNS = 4
SETTLED_COLOR = DEAD_COLOR = "#d55e00"        # the colour-blind palette's vermilion: thresholds and dead units


# ---------------------------------------------------------------------------------------------------------
# Statistics of arrays (pure)

def blob_summary(values: np.ndarray) -> dict[str, float]:
    """count, mean, std (population) and L2 norm of every value of an array, in float64."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    return {"count": int(flat.size), "mean": float(flat.mean()), "std": float(flat.std()),
            "norm": float(np.sqrt(np.dot(flat, flat)))}


def relative_change(current: np.ndarray, previous: np.ndarray) -> float:
    """||current - previous|| / ||previous|| (L2 over every value); NaN when previous is all zeros."""
    before = np.asarray(previous, dtype=np.float64).ravel()
    difference = np.asarray(current, dtype=np.float64).ravel() - before
    scale = math.sqrt(float(np.dot(before, before)))
    return math.sqrt(float(np.dot(difference, difference))) / scale if scale > 0 else math.nan


def dead_fraction(outputs: np.ndarray) -> float:
    """The share of units (every value of one image's output) that are zero for every image: outputs [N, ...]."""
    always_zero = np.all(np.asarray(outputs).reshape(len(outputs), -1) == 0, axis=0)
    return float(always_zero.mean())


def histogram_positions(snapshot_count: int, wanted: int) -> list[int]:
    """Indices of `wanted` snapshots out of `snapshot_count`: the first, the last, and evenly spaced between."""
    if wanted >= snapshot_count:
        return list(range(snapshot_count))
    if wanted == 1:
        return [snapshot_count - 1]
    return sorted({round(position) for position in np.linspace(0, snapshot_count - 1, wanted)})


def shared_bin_edges(arrays: list[np.ndarray], bins: int) -> np.ndarray:
    """Edges from -max|w| to +max|w| over all arrays, so that one layer's histograms at several snapshots compare."""
    limit = max(float(np.max(np.abs(array))) for array in arrays)
    limit = limit if limit > 0 else 1.0
    return np.linspace(-limit, limit, bins + 1)


# ---------------------------------------------------------------------------------------------------------
# Tables from per-snapshot arrays (pure): {layer: [weights, biases]} for each iteration

LayerParams = dict[str, list[np.ndarray]]


def weight_rows(iteration: int, params: LayerParams, previous: tuple[int, LayerParams] | None) -> list[dict[str, Any]]:
    """The rows of weights.csv for one snapshot; `previous` is (iteration, params) of the snapshot before it."""
    rows = []
    for layer, blobs in params.items():
        for name, values in zip(BLOB_NAMES, blobs):
            change = per_1k = math.nan
            if previous is not None:
                before_iteration, before = previous
                change = relative_change(values, before[layer][BLOB_NAMES.index(name)])
                per_1k = change * PER_ITERATIONS / (iteration - before_iteration)
            rows.append({"iteration": iteration, "layer": layer, "blob": name, **blob_summary(values),
                         "relative_change": change, "change_per_1k": per_1k})
    return rows


def histogram_rows(snapshots: dict[int, LayerParams], bins: int) -> list[dict[str, Any]]:
    """The rows of histograms.csv: each layer's weights at each given iteration, on the layer's shared edges."""
    rows = []
    layers = next(iter(snapshots.values())).keys() if snapshots else []
    for layer in layers:
        edges = shared_bin_edges([params[layer][0] for params in snapshots.values()], bins)
        for iteration, params in snapshots.items():
            counts, _ = np.histogram(np.asarray(params[layer][0], dtype=np.float64), bins=edges)
            rows.extend({"iteration": iteration, "layer": layer, "left": float(left), "right": float(right),
                         "count": int(count)} for left, right, count in zip(edges[:-1], edges[1:], counts))
    return rows


def activation_rows(iteration: int, outputs: list[tuple[str, str, str, np.ndarray]]) -> list[dict[str, Any]]:
    """The rows of activations.csv for one snapshot: outputs are (layer, type, top blob, values [N, ...])."""
    rows = []
    for layer, kind, top, values in outputs:
        summary = blob_summary(values)
        rows.append({"iteration": iteration, "layer": layer, "type": kind, "top": top, "mean": summary["mean"],
                     "std": summary["std"], "dead_fraction": dead_fraction(values) if kind == RELU_TYPE else math.nan})
    return rows


# ---------------------------------------------------------------------------------------------------------
# Observations: one sentence each, from the tables

def percent(share: float) -> str:
    if share == 0:
        return "0%"
    if share < 0.001:
        return "under 0.1%"
    return f"{share:.1%}" if share < 0.1 else f"{share:.0%}"


def settled_from(iterations: list[int], change_per_1k: list[float], threshold: float) -> int | None:
    """The earliest iteration from which every later step changes less than `threshold` per 1,000 iterations;
    None if the last step still does. change_per_1k[i] is the step from iterations[i-1] to iterations[i]."""
    settled = None
    for index in range(len(iterations) - 1, 0, -1):
        if not change_per_1k[index] < threshold:
            break
        settled = iterations[index - 1]
    return settled


def weight_observations(weights: pd.DataFrame, threshold: float) -> list[dict[str, str]]:
    """Per learnable layer: when its weights stop moving (or how fast they still move) and how its norm changed."""
    observations = []
    rows = weights[weights["blob"] == "weights"]
    for layer, frame in rows.groupby("layer", sort=False):
        iterations = frame["iteration"].tolist()
        norms = frame["norm"].tolist()
        if len(iterations) < 2:
            continue
        growth = norms[-1] / norms[0] if norms[0] > 0 else math.inf
        norm_text = (f"its norm went from {norms[0]:.3g} at iteration {iterations[0]:,} to {norms[-1]:.3g} "
                     f"({growth:.2f}x)")
        settled = settled_from(iterations, frame["change_per_1k"].tolist(), threshold)
        if settled is None:
            change, per_1k = float(frame["relative_change"].iloc[-1]), float(frame["change_per_1k"].iloc[-1])
            text = (f"{layer}'s weights still move at the end: they changed by {percent(change)} between iterations "
                    f"{iterations[-2]:,} and {iterations[-1]:,} ({percent(per_1k)} per 1,000 iterations); {norm_text}.")
        elif settled == iterations[0]:
            text = (f"{layer}'s weights change by less than {percent(threshold)} per 1,000 iterations from the first "
                    f"snapshot (iteration {settled:,}) on; {norm_text}.")
        else:
            text = (f"{layer}'s weights stop moving after iteration ~{settled:,}: from there to iteration "
                    f"{iterations[-1]:,} they change by less than {percent(threshold)} per 1,000 iterations; "
                    f"{norm_text}.")
        observations.append({"layer": str(layer), "kind": "weights", "text": text})
    return observations


def dead_relu_observations(activations: pd.DataFrame, images: int) -> list[dict[str, str]]:
    """Per ReLU layer: its share of dead units at the last snapshot, against the first."""
    observations = []
    relus = activations[activations["type"] == RELU_TYPE]
    for layer, frame in relus.groupby("layer", sort=False):
        first, last = frame.iloc[0], frame.iloc[-1]
        text = (f"{layer} (on {last['top']}) has {percent(last['dead_fraction'])} dead units at the end (zero for all "
                f"{images} test images at iteration {int(last['iteration']):,})")
        if len(frame) > 1:
            text += f", against {percent(first['dead_fraction'])} at iteration {int(first['iteration']):,}"
        observations.append({"layer": str(layer), "kind": "dead_relu", "text": text + "."})
    return observations


# ---------------------------------------------------------------------------------------------------------
# Figures: small multiples, one panel per layer

def panel_grid(count: int, height: float = 2.4, width: float = 3.2):
    columns = min(PANEL_COLUMNS, count)
    rows = math.ceil(count / columns)
    fig, axes = figures.plt.subplots(rows, columns, figsize=(width * columns, height * rows + 0.6), squeeze=False,
                                     layout="constrained")
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:count])


def plot_weights(weights: pd.DataFrame, threshold: float, model: str, path: Path) -> None:
    """One column per layer: the weights' norm (top) and their relative change per 1,000 iterations (bottom, log),
    with the `settled_change` line below which the layer counts as no longer moving."""
    figures.apply_style()
    rows = weights[weights["blob"] == "weights"]
    layers = list(dict.fromkeys(rows["layer"]))
    fig, axes = figures.plt.subplots(2, len(layers), figsize=(3.2 * len(layers), 5.2), sharex=True, squeeze=False,
                                     layout="constrained")
    color = figures.model_color(model)
    for column, layer in enumerate(layers):
        frame = rows[rows["layer"] == layer]
        norm_ax, change_ax = axes[0, column], axes[1, column]
        norm_ax.plot(frame["iteration"], frame["norm"], marker="o", markersize=3, color=color)
        norm_ax.set(title=layer, ylabel="weight norm" if column == 0 else None)
        change_ax.plot(frame["iteration"], frame["change_per_1k"], marker="o", markersize=3, color=color)
        change_ax.axhline(threshold, color=SETTLED_COLOR, linewidth=1, linestyle="--")
        change_ax.set(xscale="log", yscale="log", xlabel="iteration",
                      ylabel="change per 1,000 iterations" if column == 0 else None)
        change_ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=None))
    fig.suptitle(f"{model}: weight norm (top), change per 1,000 iterations (bottom; settled below the dashed line)",
                 fontweight="bold")
    figures.save_figure(fig, path)


def plot_histograms(histograms: pd.DataFrame, model: str, path: Path) -> None:
    """Per layer: its weight histograms at the chosen snapshots, on the layer's shared bins (log counts)."""
    figures.apply_style()
    layers = list(dict.fromkeys(histograms["layer"]))
    iterations = sorted(set(histograms["iteration"]))
    colors = figures.sns.color_palette("viridis", len(iterations)).as_hex()
    fig, axes = panel_grid(len(layers))
    for ax, layer in zip(axes, layers):
        for color, iteration in zip(colors, iterations):
            frame = histograms[(histograms["layer"] == layer) & (histograms["iteration"] == iteration)]
            edges = [*frame["left"], frame["right"].iloc[-1]]
            ax.stairs(frame["count"], edges, color=color, linewidth=1.4, label=f"{iteration:,}")
        ax.set(title=layer, xlabel="weight", ylabel="weights", yscale="symlog")
    fig.legend(*axes[0].get_legend_handles_labels(), title="iteration", loc="outside right upper")
    fig.suptitle(f"{model}: weight histograms at {len(iterations)} snapshots", fontweight="bold")
    figures.save_figure(fig, path)


def plot_activations(activations: pd.DataFrame, images: int, model: str, path: Path) -> None:
    """One panel per layer: its output's mean with a band of ±1 std; then one panel with every ReLU layer's share
    of dead units."""
    figures.apply_style()
    layers = list(dict.fromkeys(activations["layer"]))
    relus = activations[activations["type"] == RELU_TYPE]
    fig, axes = panel_grid(len(layers) + (1 if len(relus) else 0))
    color = figures.model_color(model)
    for ax, layer in zip(axes, layers):
        frame = activations[activations["layer"] == layer]
        ax.plot(frame["iteration"], frame["mean"], marker="o", markersize=3, color=color)
        ax.fill_between(frame["iteration"], frame["mean"] - frame["std"], frame["mean"] + frame["std"], color=color,
                        alpha=0.2, linewidth=0)
        ax.set(title=f"{layer} ({frame['type'].iloc[0]})", xscale="log", xlabel="iteration", ylabel="output")
    if len(relus):
        dead_ax = axes[-1]
        for (layer, frame), marker in zip(relus.groupby("layer", sort=False), "osD^v<>"):
            dead_ax.plot(frame["iteration"], frame["dead_fraction"], marker=marker, markersize=3, color=DEAD_COLOR,
                         label=layer)
        dead_ax.set(title="dead ReLU units", xscale="log", xlabel="iteration", ylabel="share of units", ylim=(0, None))
        dead_ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        dead_ax.legend(fontsize=8)
    fig.suptitle(f"{model}: layer outputs on {images} test images (mean, band ±1 std), and dead ReLU units",
                 fontweight="bold")
    figures.save_figure(fig, path)


# ---------------------------------------------------------------------------------------------------------
# pycaffe: reading a snapshot's weights and the layer outputs

def layer_params(net: Any) -> LayerParams:
    """Copies of every learnable layer's parameter blobs (weights, then biases when the layer has them). A
    BatchNorm layer's blobs are running statistics (mean, variance, their scale factor), not learned weights."""
    types = {name: layer.type for name, layer in zip(net._layer_names, net.layers)}
    return {name: [blob.data.copy() for blob in blobs] for name, blobs in net.params.items()
            if types[name] not in NOT_LEARNED_TYPES}


def layer_outputs(net: Any, inputs: np.ndarray) -> list[tuple[str, str, str, np.ndarray]]:
    """(layer, type, first top blob, copy of its values) for every measured layer, running the net one layer at
    a time so that a layer's output is read before an in-place layer (a ReLU) overwrites it. `inputs` are
    float32 images already transformed as the Data layers do (input_transform.py)."""
    data = net.blobs[INPUT_BLOB]
    if data.data.shape[0] != len(inputs):
        data.reshape(len(inputs), *inputs.shape[1:])
        net.reshape()
    data.data[...] = inputs
    outputs = []
    for layer, caffe_layer in zip(net._layer_names, net.layers):
        if caffe_layer.type == "Input":
            continue
        net.forward(start=layer, end=layer)
        if caffe_layer.type in UNMEASURED_TYPES:
            continue
        top = net.top_names[layer][0]
        outputs.append((layer, caffe_layer.type, top, net.blobs[top].data.copy()))
    return outputs


def read_test_batch(db: Path, backend: str, count: int) -> np.ndarray:
    """The first `count` test images. The whole database is read (10,000 MNIST images: a few hundredths of a
    second) so that one damaged anywhere is reported, as by every other stage that reads it."""
    path = datum.db_path(db, "test", backend)
    images, _ = datum.read_db(path, backend)
    if len(images) < count:
        raise CaffepipeError(f"{path} holds {len(images)} test images, fewer than weight_stats.activation_images "
                             f"({count}); lower it in params.yaml")
    return images[:count]


def checked_manifest(path: Path, model: str) -> Manifest:
    manifest = read_manifest(path)
    if manifest.model != model:
        raise CaffepipeError(f"{path} lists snapshots of model {manifest.model!r}, not {model!r}; check --snapshots")
    if not manifest.snapshots:
        raise CaffepipeError(f"{path} lists no snapshot; re-run `caffepipe train`")
    return manifest


def collect(caffe: Any, deploy: Path, manifest: Manifest, images: np.ndarray, histogram_at: set[int],
            model: str) -> tuple[list[dict], list[dict], dict[int, LayerParams]]:
    """Walk the snapshots: weights.csv rows, activations.csv rows, and the weights of the histogram snapshots."""
    from caffe.proto import caffe_pb2  # noqa: PLC0415 — Caffe's own messages, to check each snapshot

    net = open_net(caffe, deploy)
    expected = net_param_shapes(net)
    weights, activations, kept = [], [], {}
    previous = None
    with Progress(total=len(manifest.snapshots), desc=f"weight-stats {model}", unit="snapshot") as progress:
        for position, snapshot in enumerate(manifest.snapshots):
            problem = check_caffemodel(caffe_pb2, snapshot.caffemodel, expected)
            if problem:
                raise CaffepipeError(f"{snapshot.caffemodel} is no snapshot of {deploy}: {problem}; re-run "
                                     "`caffepipe train` after `caffepipe netgen`")
            net.copy_from(str(snapshot.caffemodel))
            params = layer_params(net)
            weights += weight_rows(snapshot.iteration, params, previous)
            activations += activation_rows(snapshot.iteration, layer_outputs(net, images))
            if position in histogram_at:
                kept[snapshot.iteration] = params
            previous = (snapshot.iteration, params)
            progress.update(step=1, iteration=snapshot.iteration)
    return weights, activations, kept


# ---------------------------------------------------------------------------------------------------------
# The stage

def write_csv(frame: pd.DataFrame, path: Path) -> None:
    write_text_atomic(path, frame.to_csv(index=False, lineterminator="\n"))


def write_tables(weights: pd.DataFrame, activations: pd.DataFrame, histograms: pd.DataFrame, out: Path) -> None:
    norms = weights[weights["blob"] == "weights"][["iteration", "layer", "norm"]].rename(columns={"norm": "weight_norm"})
    for frame, name in ((weights, "weights.csv"), (norms, "norms.csv"), (histograms, "histograms.csv"),
                        (activations, "activations.csv")):
        write_csv(frame, out / name)


def figure_index(model: str, histogram_iterations: list[int], images: int) -> list[dict[str, str]]:
    iterations = ", ".join(f"{iteration:,}" for iteration in histogram_iterations)
    return [
        {"file": "weights.png", "caption": f"{model}: each learnable layer's weight norm and how fast its weights still "
                                           "change, at every scheduled snapshot (weights.csv, norms.csv)"},
        {"file": "histograms.png", "caption": f"{model}: weight histograms of each layer at iterations {iterations}, "
                                              "the same bins for a layer at every snapshot (histograms.csv)"},
        {"file": "activations.png", "caption": f"{model}: each layer's output on the first {images} test images at "
                                               "every snapshot, and the share of dead ReLU units (activations.csv)"},
    ]


def weight_stats(params: dict[str, Any], model: str, nets: Path, snapshots_path: Path, db: Path, out: Path) -> dict:
    """Compute the tables, figures and sentences into `out`; returns summary.json's content."""
    settings = params["weight_stats"]
    threshold = float(settings["settled_change"])
    deploy = nets / DEPLOY_NET_FILE
    if not deploy.is_file():
        raise CaffepipeError(f"{deploy}: no deploy net; run `caffepipe netgen --model {model}` first")
    manifest = checked_manifest(snapshots_path, model)
    # Caffe first: its BLAS thread cap only takes effect if set before it loads
    caffe = caffe_env.import_caffe(threads=STAGE_THREADS)
    from caffe.proto import caffe_pb2  # noqa: PLC0415

    # the pixels the nets were trained on: scaled, and for CIFAR-10 less the mean image (input_transform.py)
    raw = read_test_batch(db, params["netgen"]["backend"], int(settings["activation_images"]))
    images = nets_input_transform(caffe_pb2, nets).apply(raw)
    positions = histogram_positions(len(manifest.snapshots), int(settings["histogram_snapshots"]))
    weight_list, activation_list, kept = collect(caffe, deploy, manifest, images, set(positions), model)

    weights, activations = pd.DataFrame(weight_list), pd.DataFrame(activation_list)
    histograms = pd.DataFrame(histogram_rows(kept, int(settings["histogram_bins"])))
    write_tables(weights, activations, histograms, out)
    plot_weights(weights, threshold, model, out / "weights.png")
    plot_histograms(histograms, model, out / "histograms.png")
    plot_activations(activations, len(images), model, out / "activations.png")
    summary = {
        "model": model,
        "iterations": [snapshot.iteration for snapshot in manifest.snapshots],
        "activation_images": len(images),
        "settled_change": threshold,
        "figures": figure_index(model, list(kept), len(images)),
        "observations": weight_observations(weights, threshold) + dead_relu_observations(activations, len(images)),
    }
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    log.info("%s: %d snapshots, %d observations in %s", model, len(manifest.snapshots), len(summary["observations"]), out)
    return summary


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="caffepipe weight-stats", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_params_argument(parser)
    parser.add_argument("--model", required=True, help="model name (lenet, mlp)")
    parser.add_argument("--nets", required=True, type=Path, help="the model's net folder (holds deploy.prototxt)")
    parser.add_argument("--snapshots", required=True, type=Path, help="snapshots.json written by `caffepipe train`")
    parser.add_argument("--db", required=True, type=Path, help="the database folder (data/db)")
    parser.add_argument("--out", required=True, type=Path, help="output folder (reports/weights/<model>)")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    weight_stats(params, args.model, args.nets, args.snapshots, args.db, args.out)
    return 0
