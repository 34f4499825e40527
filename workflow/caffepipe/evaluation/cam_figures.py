"""The figures of `caffepipe cam`: class activation maps drawn over the digits (cam.py decides what to draw).

An overlay is the grey digit with the map on top, half transparent, in a sequential colour map (bright: the
place adds most to the class's score). For an error, the predicted and the true class's maps share one colour
scale, so their brightness compares: where the net found more evidence for the wrong class than for the right.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from caffepipe.core import figures

MAP_CMAP = "inferno"
MAP_ALPHA = 0.55
COLUMNS = 10


def _overlay(ax: Any, image: np.ndarray, cam: np.ndarray, vmin: float, vmax: float) -> Any:
    ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    drawn = ax.imshow(cam, cmap=MAP_CMAP, alpha=MAP_ALPHA, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_axis_off()
    return drawn


def draw_right(model: str, images: np.ndarray, maps: np.ndarray, entries: list[dict[str, Any]], path: Path) -> None:
    """Per image, two rows: the digit, and its predicted (= true) class's map over it (own scale)."""
    figures.apply_style()
    count = len(entries)
    columns = max(1, min(COLUMNS, count))
    fig, axes = figures.plt.subplots(2, columns, figsize=(1.3 * columns + 0.4, 3.1), squeeze=False)
    for position in range(columns):
        for ax in axes[:, position]:
            ax.set_axis_off()
    for position, entry in enumerate(entries[:columns]):
        image, cam = images[position, 0], maps[position, entry["prediction"]]
        axes[0, position].imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        axes[0, position].set_title(f"{entry['label']}  p={entry['p_prediction']:.2f}", fontsize=8)
        _overlay(axes[1, position], image, cam, float(cam.min()), float(cam.max()))
    if not count:
        axes[0, 0].text(0.5, 0.5, "nothing to show", ha="center", va="center")
    fig.suptitle(f"{model}: where it looked, right answers (map of the class it predicted)", fontsize=11,
                 fontweight="bold")
    fig.tight_layout()
    figures.save_figure(fig, path)


def draw_wrong(model: str, images: np.ndarray, maps: np.ndarray, entries: list[dict[str, Any]], path: Path) -> None:
    """One row per error: the digit, the predicted class's map, the true class's map (one scale per row)."""
    figures.apply_style()
    rows = max(1, len(entries))
    fig, axes = figures.plt.subplots(rows, 3, figsize=(4.6, 1.55 * rows + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for row, entry in enumerate(entries):
        image = images[row, 0]
        predicted, true = maps[row, entry["prediction"]], maps[row, entry["label"]]
        vmin, vmax = float(min(predicted.min(), true.min())), float(max(predicted.max(), true.max()))
        axes[row, 0].imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        axes[row, 0].set_title(f"test #{entry['index']}", fontsize=8)
        _overlay(axes[row, 1], image, predicted, vmin, vmax)
        axes[row, 1].set_title(f"said {entry['prediction']} (p={entry['p_prediction']:.2f})", fontsize=8, color="#c0392b")
        _overlay(axes[row, 2], image, true, vmin, vmax)
        axes[row, 2].set_title(f"true {entry['label']} (p={entry['p_label']:.2f})", fontsize=8, color="#1e8449")
    if not entries:
        axes[0, 1].text(0.5, 0.5, "no errors", ha="center", va="center")
    fig.suptitle(f"{model}: where it looked, errors", fontsize=11, fontweight="bold")
    fig.tight_layout()
    figures.save_figure(fig, path)


def draw_all(model: str, images: np.ndarray, maps: np.ndarray, entries: list[dict[str, Any]], head: Any,
             folder: Path) -> list[dict[str, str]]:
    """Both figures into `folder`; their index entries. maps: [n, C, H, W], upsampled to the images."""
    right = [position for position, entry in enumerate(entries) if entry["correct"]]
    wrong = [position for position, entry in enumerate(entries) if not entry["correct"]]
    draw_right(model, images[right], maps[right], [entries[p] for p in right], folder / "cam_right.png")
    draw_wrong(model, images[wrong], maps[wrong], [entries[p] for p in wrong], folder / "cam_wrong.png")
    source = f"{head.classifier}'s weights over {head.features}'s maps"
    return [
        {"file": "cam_right.png", "kind": "right",
         "caption": f"{model}: one correctly classified test image per class, and the class activation map of its class "
                    f"({source}, upsampled to the image): bright places added most to the class's score."},
        {"file": "cam_wrong.png", "kind": "wrong",
         "caption": f"{model}: the most confident error of each class. Middle: the map of the class it said; right: the "
                    f"map of the true class, on the same colour scale: where it found evidence for each."},
    ]
