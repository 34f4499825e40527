"""The report's two inspection sections: each model's net diagram, and how its weights and activations evolved.

report.py lists them in its SECTIONS; each function takes the report's inputs (report.ReportInputs: the paths
--visualize and --weights, the models, and `link` for a figure's data files) and returns what its partial,
templates/sections/diagrams.html.j2 or weights.html.j2, reads as `s`:

- diagrams_section: net.svg and the "diagram" entry of --visualize/<model>/index.json (`caffepipe visualize`),
  embedded as an SVG data URI; where visualize ran without Graphviz, the entry's note says what to install;
- weights_section: the sentences and figures listed in --weights/<model>/summary.json (`caffepipe weight-stats`),
  and each layer's values at the last snapshot from weights.csv and activations.csv.

As everywhere in the report, a missing input is an error naming the file and the stage that makes it. Figures are
plain dicts (src, caption, alt, data), which the `figure` macro reads like report.Figure; this module imports
nothing from report.py, which imports it.
"""
from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any

import pandas as pd

from caffepipe.core.errors import CaffepipeError
from caffepipe.core.upstream import read_json, require
from caffepipe.report.images import PNG_SIGNATURE, compact_png

VISUALIZE, WEIGHT_STATS = "visualize", "weight-stats"


def png_figure(path: Path, caption: str, data: list[Any]) -> dict[str, Any]:
    content = require(path, WEIGHT_STATS).read_bytes()
    if not content.startswith(PNG_SIGNATURE):
        raise CaffepipeError(f"{path} is not a PNG file; re-run `caffepipe {WEIGHT_STATS}`")
    src = "data:image/png;base64," + base64.b64encode(compact_png(content)).decode("ascii")
    return {"src": src, "caption": caption, "alt": caption, "data": data}


def svg_figure(path: Path, caption: str, data: list[Any]) -> dict[str, Any]:
    content = require(path, VISUALIZE).read_bytes()
    if b"<svg" not in content[:2000]:
        raise CaffepipeError(f"{path} is not an SVG file; re-run `caffepipe {VISUALIZE}`")
    src = "data:image/svg+xml;base64," + base64.b64encode(content).decode("ascii")
    return {"src": src, "caption": caption, "alt": caption, "data": data}


def diagrams_section(inputs: Any) -> dict[str, Any]:
    """One entry per model: its diagram, or the note that says why there is none."""
    entries = []
    for model in inputs.models:
        folder = inputs.visualize / model
        diagram = read_json(folder / "index.json", VISUALIZE).get("diagram")
        if not isinstance(diagram, dict) or "file" not in diagram:
            raise CaffepipeError(f"{folder / 'index.json'} has no net diagram entry; re-run `caffepipe {VISUALIZE}`")
        if diagram["file"] is None:
            entries.append({"model": model, "figure": None, "note": diagram.get("note") or "no diagram"})
        else:
            path = folder / diagram["file"]
            entries.append({"model": model, "figure": svg_figure(path, diagram["caption"], [inputs.link(path)]),
                            "note": ""})
    return {"models": entries, "toc": [(f"diagram-{model}", model) for model in inputs.models]}


def percent_text(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.1%}"


def number_text(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.4g}"


def last_snapshot_table(folder: Path) -> dict[str, Any]:
    """Each layer at the last snapshot: its weights' norm, std and change per 1,000 iterations; its output's std
    and, for a ReLU, the share of dead units. Shaped like report.Table for the `table` macro, cells as text."""
    weights = pd.read_csv(require(folder / "weights.csv", WEIGHT_STATS))
    activations = pd.read_csv(require(folder / "activations.csv", WEIGHT_STATS))
    last = int(weights["iteration"].max())
    rows = [[row["layer"], "weights", number_text(row["norm"]), number_text(row["std"]),
             percent_text(row["change_per_1k"]), "–"]
            for _, row in weights[(weights["iteration"] == last) & (weights["blob"] == "weights")].iterrows()]
    rows += [[row["layer"], f"output ({row['type']})", "–", number_text(row["std"]), "–",
              percent_text(row["dead_fraction"])]
             for _, row in activations[activations["iteration"] == last].iterrows()]
    return {"caption": f"Each layer at the last snapshot (iteration {last:,}; weights.csv, activations.csv)",
            "columns": ["layer", "what", "norm", "std", "change per 1k iterations", "dead units"], "rows": rows,
            "numeric": [False, False, True, True, True, True], "note": "", "collapsed": False}


def weights_section(inputs: Any) -> dict[str, Any]:
    """Per model: the sentences, the small-multiples figures (each linking its CSV) and the last snapshot's table."""
    entries = []
    for model in inputs.models:
        folder = inputs.weights / model
        summary = read_json(folder / "summary.json", WEIGHT_STATS)
        data = {"weights.png": ["weights.csv", "norms.csv"], "histograms.png": ["histograms.csv"],
                "activations.png": ["activations.csv"]}
        entries.append({
            "model": model,
            "observations": [observation["text"] for observation in summary["observations"]],
            "figures": [png_figure(folder / entry["file"], entry["caption"],
                                   [inputs.link(folder / name) for name in data.get(entry["file"], [])])
                        for entry in summary["figures"]],
            "table": last_snapshot_table(folder),
        })
    return {"models": entries, "toc": [(f"weights-{model}", model) for model in inputs.models]}
