"""`caffepipe sobel`: a Caffe Convolution layer with hand-set weights is an edge detector.

    caffepipe sobel --params params.yaml --db data/db --out reports/sobel

A one-layer net built with caffe.net_spec (an Input and a Convolution with two 3x3 outputs, no bias, padding 1)
gets the Sobel x and y kernels as its weights, set by hand through pycaffe. Forwarding a test digit gives the
horizontal gradient Gx (it lights up vertical strokes) and the vertical gradient Gy (horizontal strokes);
sqrt(Gx² + Gy²) is the edge magnitude. Caffe's Convolution is a cross-correlation (the kernel is not flipped),
so a dark-to-bright step from left to right gives a positive Gx. Colour images (CIFAR-10) are made grey first
(ITU-R 601 luma, as Pillow's convert("L")), and drawn in colour beside their gradients.

Outputs in --out: sobel.png (one row per digit: input, Gx, Gy, magnitude, for the first `visualize.sample_count`
test digits), sobel.prototxt (the generated net), and index.json ({"figures": [{"file", "caption", ...}],
"kernels": {"sobel_x": [[...]], "sobel_y": [[...]]}}), which `caffepipe report` reads.
"""
from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

import numpy as np

from caffepipe.core import caffe_env

from caffepipe.core import figures
from caffepipe.core.atomic import atomic_output
from caffepipe.training.models import INPUT_SCALE
from caffepipe.pipeline.params import add_params_argument, load_params
from caffepipe.inspection.visualize import STAGE_THREADS, read_test_digits, signed_cmap, symmetric_limit

log = logging.getLogger(__name__)

SOBEL_X = np.array([[-1, 0, 1],
                    [-2, 0, 2],
                    [-1, 0, 1]], dtype=np.float32)
SOBEL_Y = SOBEL_X.T.copy()           # [[-1, -2, -1], [0, 0, 0], [1, 2, 1]]: dark above, bright below -> positive
CONV_LAYER = "sobel"


def sobel_net_spec(caffe, height: int, width: int, batch: int = 1):
    """NetParameter of Input (batch, 1, height, width) -> Convolution 'sobel' (2 outputs, 3x3, pad 1, no bias)."""
    spec = caffe.NetSpec()
    spec.data = caffe.layers.Input(shape=dict(dim=[batch, 1, height, width]))
    spec.sobel = caffe.layers.Convolution(spec.data, num_output=2, kernel_size=3, pad=1, bias_term=False)
    return spec.to_proto()


def build_sobel_net(caffe, height: int, width: int, batch: int = 1):
    """The net, with the Sobel x kernel as output channel 0 and Sobel y as channel 1; returns (net, prototxt)."""
    prototxt = str(sobel_net_spec(caffe, height, width, batch))
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt") as file:
        file.write(prototxt)
        file.flush()
        net = caffe.Net(file.name, caffe.TEST)
    weights = net.params[CONV_LAYER][0].data          # shape (2, 1, 3, 3)
    weights[0, 0] = SOBEL_X
    weights[1, 0] = SOBEL_Y
    return net, prototxt


def sobel_gradients(net, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Gx, Gy), each [N, H, W], of float images [N, 1, H, W] forwarded through the Sobel net."""
    net.blobs["data"].reshape(*images.shape)
    net.reshape()
    net.blobs["data"].data[...] = images
    net.forward()
    output = net.blobs[CONV_LAYER].data
    return output[:, 0].copy(), output[:, 1].copy()


LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)    # R, G, B


def grey_images(images: np.ndarray) -> np.ndarray:
    """float32 [N, 1, H, W] pixels (0..255) of uint8 images [N, C, H, W]: as they are for one channel, luma for RGB."""
    if images.shape[1] == 3:
        return np.tensordot(images.astype(np.float32), LUMA_WEIGHTS, axes=([1], [0]))[:, np.newaxis]
    return images.astype(np.float32)


def plot_sobel(images: np.ndarray, labels: np.ndarray, gx: np.ndarray, gy: np.ndarray, path: Path) -> None:
    figures.apply_style()
    count = len(images)
    fig, axes = figures.plt.subplots(count, 4, figsize=(9, 2.1 * count + 0.6), squeeze=False,
                                     layout="constrained")
    magnitude = np.sqrt(gx ** 2 + gy ** 2)
    for row in range(count):
        limit = symmetric_limit(np.stack([gx[row], gy[row]]))
        panels = (
            (images[row], f"input (label {labels[row]})", None),
            (gx[row], "Gx (Sobel x)", dict(cmap=signed_cmap(), vmin=-limit, vmax=limit)),
            (gy[row], "Gy (Sobel y)", dict(cmap=signed_cmap(), vmin=-limit, vmax=limit)),
            (magnitude[row], "magnitude √(Gx²+Gy²)", dict(cmap="magma", vmin=0)),
        )
        for ax, (image, title, style) in zip(axes[row], panels):
            if style is None:
                figures.show_image(ax, image)
            else:
                shown = ax.imshow(image, interpolation="nearest", **style)
            ax.set_title(title, fontsize=9, fontweight="normal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if ax is not axes[row][0]:
                fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.03)
    fig.suptitle("Sobel kernels set by hand in a Caffe Convolution layer", fontweight="bold")
    figures.save_figure(fig, path)


def run_sobel(caffe, db_dir: Path, sample_count: int, out: Path) -> dict:
    images, labels = read_test_digits(db_dir, sample_count)
    _, _, height, width = images.shape
    net, prototxt = build_sobel_net(caffe, height, width, batch=len(images))
    gx, gy = sobel_gradients(net, grey_images(images) * np.float32(INPUT_SCALE))
    with atomic_output(out, directory=True) as temporary:
        (temporary / "sobel.prototxt").write_text(prototxt)
        plot_sobel(images, labels, gx, gy, temporary / "sobel.png")
        index = {
            "figures": [{"file": "sobel.png", "kind": "sobel",
                         "caption": "A Caffe Convolution layer with hand-set Sobel x and y kernels (3x3, no bias) "
                                    f"applied to {len(images)} test digit{'s' if len(images) != 1 else ''}: Gx marks "
                                    "vertical strokes, Gy horizontal ones (red: dark to bright, blue: bright to dark)"}],
            "kernels": {"sobel_x": SOBEL_X.tolist(), "sobel_y": SOBEL_Y.tolist()},
        }
        (temporary / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    log.info("Sobel x and y of %d test digits: wrote %s", len(images), out)
    return index


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="caffepipe sobel", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_params_argument(parser)
    parser.add_argument("--db", required=True, type=Path, help="the databases folder (build-db's output)")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    caffe = caffe_env.import_caffe(threads=STAGE_THREADS)
    run_sobel(caffe, args.db, params["visualize"]["sample_count"], args.out)
    return 0
