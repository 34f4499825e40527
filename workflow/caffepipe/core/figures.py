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
