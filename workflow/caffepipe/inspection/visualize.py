"""`caffepipe visualize`: what a trained net has learned, drawn from its weights and its activations.

    caffepipe visualize --params params.yaml --model lenet --nets data/nets/lenet
        --weights data/train/lenet/final.caffemodel --db data/db --out reports/visualize/lenet

pycaffe loads the deploy net with the trained weights and forwards the first `visualize.sample_count` test
images (transformed as the test net's Data layer does: training/input_transform.py). It draws:

- filters.png: the first learned layer's weights. For LeNet, conv1's 5x5 kernels (in colour, grey for 0, for
  a net of RGB input such as CIFAR-10's); for a net whose first
  layer is an InnerProduct (the MLP), each of its first units' weights reshaped to the input image (28x28):
  the template that unit matches. At most FILTER_LIMIT of them.
- features_<layer>.png for every Convolution and Pooling layer (LeNet: conv1 pool1 conv2 pool2): each sample
  digit beside all of that layer's channels. A net with neither (the MLP) gets the same for its hidden
  InnerProduct layers instead, each layer's outputs laid out as a square image.

index.json lists the figures in that order, each {"file", "caption", "kind", "layer"}, plus the samples drawn
({"index", "label", "prediction"}); `caffepipe report` reads it.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path

import numpy as np

from caffepipe.core import caffe_env

from caffepipe.data import datum

from caffepipe.core import figures
from caffepipe.core.atomic import atomic_output
from caffepipe.core.errors import CaffepipeError
from caffepipe.training.input_transform import InputTransform, nets_input_transform
from caffepipe.training.models import INPUT_SCALE
from caffepipe.training.net_files import open_net
from caffepipe.training.nets_folder import DEPLOY_NET_FILE
from caffepipe.pipeline.params import add_params_argument, load_params

log = logging.getLogger(__name__)

FILTER_LIMIT = 20
MAP_COLUMNS = 10                 # channels per row in a feature-map mosaic
FEATURE_LAYER_TYPES = ("Convolution", "Pooling")
HIDDEN_LAYER_TYPE = "InnerProduct"
INPUT_BLOB, OUTPUT_BLOB = "data", "prob"
# The colour maps every caffepipe figure of images, weights and activations uses.
IMAGE_CMAP = "gray"              # digits: white on black, as MNIST stores them
SIGNED_CMAP = "RdBu_r"           # weights and activations: red positive, blue negative, white zero
DB_BACKENDS = ("lmdb", "leveldb")
STAGE_THREADS = 1                # the stage list gives visualize and sobel one thread


def read_test_digits(db_dir: Path, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `count` test images (uint8 [count, C, H, W]) and labels, from the database build-db wrote.

    build-db writes LMDB, LevelDB or both (params build_db.backends); both hold the same records, so the first
    one present is read.
    """
    for backend in DB_BACKENDS:
        path = datum.db_path(db_dir, "test", backend)
        if path.exists():
            images, labels = datum.read_db(path, backend)
            if len(images) < count:
                raise CaffepipeError(f"{path} holds {len(images)} test images; {count} are asked for (visualize.sample_count)")
            return images[:count], labels[:count]
    raise CaffepipeError(f"{db_dir} holds no test database ({' or '.join(DB_BACKENDS)}); it is made by `caffepipe build-db`")


def load_deploy_net(caffe, nets: Path, weights: Path):
    deploy = nets / DEPLOY_NET_FILE
    for path, stage in ((deploy, "netgen"), (weights, "train")):
        if not path.is_file():
            raise CaffepipeError(f"{path} not found; it is made by `caffepipe {stage}`")
    net = open_net(caffe, deploy, weights)
    if INPUT_BLOB not in net.blobs or OUTPUT_BLOB not in net.blobs:
        raise CaffepipeError(f"{deploy} must have an input blob {INPUT_BLOB!r} and an output blob {OUTPUT_BLOB!r}")
    return net


def layer_types(net) -> dict[str, str]:
    """Layer name -> Caffe type, in net order."""
    return {name: layer.type for name, layer in zip(net._layer_names, net.layers)}


def forward_samples(net, images: np.ndarray, transform: InputTransform | None = None) -> dict[str, np.ndarray]:
    """Forward uint8 images through the deploy net, transformed as its Data layers do (without `transform`: scaled
    by INPUT_SCALE, as MNIST's nets do); a copy of every blob, keyed by blob name."""
    transform = transform or InputTransform(INPUT_SCALE, 0.0, "models.INPUT_SCALE")
    net.blobs[INPUT_BLOB].reshape(*images.shape)
    net.reshape()
    net.blobs[INPUT_BLOB].data[...] = transform.apply(images)
    net.forward()
    return {name: blob.data.copy() for name, blob in net.blobs.items()}


def first_layer_filters(net, input_shape: tuple[int, ...]) -> tuple[str, str, np.ndarray]:
    """(layer name, type, weights [F, H, W], or [F, 3, H, W] for RGB input) of the first layer with weights, at
    most FILTER_LIMIT of them.

    Convolution kernels are taken from the first input channel of a grey net, all three of an RGB one;
    InnerProduct rows are reshaped to the input.
    """
    types = layer_types(net)
    channels = input_shape[0]
    for name, blobs in net.params.items():
        weights = blobs[0].data
        if types[name] == "Convolution":
            return name, "Convolution", (weights[:FILTER_LIMIT] if channels == 3 else weights[:FILTER_LIMIT, 0]).copy()
        if types[name] == HIDDEN_LAYER_TYPE:
            if weights.shape[1] != int(np.prod(input_shape)) or channels not in (1, 3):
                raise CaffepipeError(f"{name}'s weights ({weights.shape}) do not match the input {input_shape}")
            unit_shape = input_shape if channels == 3 else input_shape[-2:]
            return name, HIDDEN_LAYER_TYPE, weights[:FILTER_LIMIT].reshape(-1, *unit_shape).copy()
        raise CaffepipeError(f"the first layer with weights, {name}, is a {types[name]}; only Convolution and InnerProduct are drawn")
    raise CaffepipeError("the net has no layer with weights")


def feature_layers(net) -> tuple[list[str], str]:
    """The layers whose outputs are drawn, and what they are: conv/pool layers, or else hidden InnerProducts."""
    types = layer_types(net)
    chosen = [name for name, kind in types.items() if kind in FEATURE_LAYER_TYPES]
    if chosen:
        return chosen, "feature_maps"
    # No spatial layer (an MLP): every InnerProduct but the last, which is the class scores.
    hidden = [name for name, kind in types.items() if kind == HIDDEN_LAYER_TYPE][:-1]
    return hidden, "activations"


def unit_grid(values: np.ndarray) -> np.ndarray:
    """A vector of unit outputs laid out row by row as a near-square image, the rest NaN."""
    side = math.ceil(math.sqrt(values.size))
    rows = math.ceil(values.size / side)
    grid = np.full(rows * side, np.nan, dtype=np.float64)
    grid[:values.size] = values
    return grid.reshape(rows, side)


def mosaic(maps: np.ndarray, columns: int = MAP_COLUMNS, gap: int = 1) -> np.ndarray:
    """Tile maps [C, H, W] into one image, `columns` to a row, separated by NaN gaps (drawn as background)."""
    count, height, width = maps.shape
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    tiled = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap), np.nan)
    for index in range(count):
        row, column = divmod(index, columns)
        top, left = row * (height + gap), column * (width + gap)
        tiled[top:top + height, left:left + width] = maps[index]
    return tiled


def symmetric_limit(values: np.ndarray) -> float:
    limit = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 0.0
    return limit if limit > 0 else 1.0


def signed_cmap():
    return figures.plt.get_cmap(SIGNED_CMAP).with_extremes(bad="#f2f2f2")     # NaN: the gaps between tiles


def plot_filters(name: str, kind: str, filters: np.ndarray, model: str, path: Path) -> None:
    figures.apply_style()
    count = len(filters)
    columns = min(MAP_COLUMNS, count)
    rows = math.ceil(count / columns)
    fig, axes = figures.plt.subplots(rows, columns, figsize=(columns * 0.85 + 1.2, rows * 0.95 + 0.7), squeeze=False,
                                     layout="constrained")
    limit = symmetric_limit(filters)
    colour = filters.ndim == 4
    shown = figures.signed_to_rgb(filters) if colour else filters
    for index, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if index < count:
            image = ax.imshow(shown[index], cmap=None if colour else signed_cmap(), vmin=None if colour else -limit,
                              vmax=None if colour else limit, interpolation="nearest")
            ax.set_title(str(index), fontsize=8, fontweight="normal", pad=2)
    what = f"{filters.shape[-2]}x{filters.shape[-1]} kernels" if kind == "Convolution" else f"unit weights as {filters.shape[-2]}x{filters.shape[-1]} images"
    fig.suptitle(f"{model}: {name} {what}", fontweight="bold")
    if not colour:          # an RGB kernel's colours are its weights (0.5 grey for 0), no colour map
        fig.colorbar(image, ax=axes, shrink=0.8, label="weight")
    figures.save_figure(fig, path)


def plot_layer_outputs(layer: str, kind: str, outputs: np.ndarray, images: np.ndarray, labels: np.ndarray,
                       predictions: np.ndarray, model: str, path: Path) -> None:
    """One row per sample: the digit, then a mosaic of every channel (or unit) of the layer's output."""
    figures.apply_style()
    count = len(images)
    if kind == "feature_maps":
        tiles = [mosaic(outputs[index]) for index in range(count)]
        shape_text = f"{outputs.shape[1]} channels of {outputs.shape[2]}x{outputs.shape[3]}"
    else:
        tiles = [unit_grid(outputs[index].ravel()) for index in range(count)]
        shape_text = f"{outputs[0].size} units"
    tile_ratio = tiles[0].shape[1] / tiles[0].shape[0]
    row_height = 1.6
    fig, axes = figures.plt.subplots(count, 1, figsize=(row_height * (tile_ratio + 1.2) + 0.8, row_height * count + 0.6),
                                     squeeze=False, layout="constrained")
    for index, map_ax in enumerate(axes[:, 0]):
        limit = symmetric_limit(tiles[index])
        image = map_ax.imshow(tiles[index], cmap=signed_cmap(), vmin=-limit, vmax=limit, interpolation="nearest")
        # The digit: a square as tall as the mosaic, just left of it (axes fractions of the mosaic's axes).
        width = 1 / tile_ratio
        digit_ax = map_ax.inset_axes([-1.12 * width, 0, width, 1])
        figures.show_image(digit_ax, images[index])
        digit_ax.set_title(f"label {labels[index]}, predicted {predictions[index]}", fontsize=8, fontweight="normal")
        for ax in (digit_ax, map_ax):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
        fig.colorbar(image, ax=map_ax, fraction=0.04, pad=0.02)
    fig.suptitle(f"{model}: {layer} outputs ({shape_text})", fontweight="bold")
    figures.save_figure(fig, path)


def visualize(caffe, model: str, nets: Path, weights: Path, db_dir: Path, sample_count: int, out: Path) -> dict:
    """Draw the figures into `out` (written as a whole) and return the index written as index.json."""
    from caffe.proto import caffe_pb2  # noqa: PLC0415

    net = load_deploy_net(caffe, nets, weights)
    images, labels = read_test_digits(db_dir, sample_count)
    blobs = forward_samples(net, images, nets_input_transform(caffe_pb2, nets))
    predictions = blobs[OUTPUT_BLOB].reshape(len(images), -1).argmax(axis=1)
    figures_index = []
    with atomic_output(out, directory=True) as temporary:
        name, kind, filters = first_layer_filters(net, images.shape[1:])
        plot_filters(name, kind, filters, model, temporary / "filters.png")
        colour_caption = (f"{model}: the first {len(filters)} {name} kernels in colour: each pixel shows the kernel's red, "
                          "green and blue weights (grey is 0, one scale for all)")
        caption = ((colour_caption if filters.ndim == 4 else
                    f"{model}: the first {len(filters)} {name} kernels; red weights respond to ink, blue to its absence")
                   if kind == "Convolution" else
                   f"{model}: the weights of the first {len(filters)} {name} units, each reshaped to the "
                   f"{filters.shape[-2]}x{filters.shape[-1]} input: the pattern the unit responds to")
        figures_index.append({"file": "filters.png", "caption": caption, "kind": "filters", "layer": name})
        layers, output_kind = feature_layers(net)
        tops = net.top_names
        for layer in layers:
            top = tops[layer][0]
            file = f"features_{layer}.png"
            plot_layer_outputs(layer, output_kind, blobs[top], images, labels, predictions, model, temporary / file)
            what = "feature maps" if output_kind == "feature_maps" else "unit outputs"
            figures_index.append({"file": file, "caption": f"{model}: {layer} {what} for {len(images)} test digits",
                                  "kind": output_kind, "layer": layer})
        index = {
            "model": model,
            "figures": figures_index,
            "samples": [{"index": i, "label": int(labels[i]), "prediction": int(predictions[i])} for i in range(len(images))],
        }
        (temporary / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    log.info("%s: %d figures in %s", model, len(figures_index), out)
    return index


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="caffepipe visualize", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_params_argument(parser)
    parser.add_argument("--model", required=True)
    parser.add_argument("--nets", required=True, type=Path, help="folder with deploy.prototxt")
    parser.add_argument("--weights", required=True, type=Path, help="the trained .caffemodel")
    parser.add_argument("--db", required=True, type=Path, help="the databases folder (build-db's output)")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    caffe = caffe_env.import_caffe(threads=STAGE_THREADS)
    visualize(caffe, args.model, args.nets, args.weights, args.db, params["visualize"]["sample_count"], args.out)
    return 0
