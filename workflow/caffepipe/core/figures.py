"""One figure style for every plot caffepipe draws, and atomic PNG writing.

Matplotlib runs headless (Agg): stages run under orchestrators and in CI, with no display.
"""
from __future__ import annotations

import os
import zlib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import seaborn as sns  # noqa: E402

from caffepipe.core.atomic import atomic_output  # noqa: E402

DPI = 110
PALETTE = "colorblind"
MODEL_COLORS = {"lenet": "#0173b2", "mlp": "#de8f05"}


def apply_style() -> None:
    """The house style: seaborn whitegrid, colour-blind palette, readable sizes."""
    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE)
    plt.rcParams.update({"figure.dpi": DPI, "savefig.dpi": DPI, "savefig.bbox": "tight", "axes.titleweight": "bold"})


def model_color(model: str) -> str:
    palette = sns.color_palette(PALETTE).as_hex()
    # crc32, not hash(): Python salts str hashes per process, and a figure must not change colour between runs
    return MODEL_COLORS.get(model, palette[zlib.crc32(model.encode()) % len(palette)])


def save_figure(fig: plt.Figure, path: str | os.PathLike) -> Path:
    """Write the figure as PNG atomically and close it."""
    path = Path(path)
    with atomic_output(path) as temporary:
        fig.savefig(temporary, format="png")
    plt.close(fig)
    return path


def show_image(ax, image, **options) -> None:
    """Draw a uint8 image (C, H, W) as the data holds it: one channel in grey (MNIST's white on black), three as
    RGB colour (CIFAR-10; Caffe's channel order is R, G, B)."""
    image = image if getattr(image, "ndim", 0) == 3 else image[None]
    if image.shape[0] == 3:
        ax.imshow(image.transpose(1, 2, 0), interpolation="nearest", **options)
    else:
        ax.imshow(image[0], cmap="gray", vmin=0, vmax=255, interpolation="nearest", **options)


def signed_to_rgb(weights):
    """RGB kernels (F, 3, H, W) of any sign as displayable images (F, H, W, 3) in [0, 1]: 0.5 grey is zero, and
    one scale for all of them, so their strengths compare."""
    import numpy as np  # noqa: PLC0415

    limit = float(np.abs(weights).max()) or 1.0
    return np.clip(0.5 + 0.5 * weights / limit, 0, 1).transpose(0, 2, 3, 1)
