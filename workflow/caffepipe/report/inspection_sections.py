"""The report's two inspection sections: each model's net diagram, and how its weights and activations evolved.

report.py calls these and hands their results to the template partial templates/inspection.html.j2:

- diagrams_section: net.svg and the "diagram" entry of --visualize/<model>/index.json (`caffepipe visualize`),
  embedded as an SVG data URI; where visualize ran without Graphviz, the entry's note says what to install;
- weights_section: the figures and sentences listed in --weights/<model>/summary.json (`caffepipe weight-stats`),
  and each layer's values at the last snapshot from weights.csv and activations.csv.

Like the rest of the report, a missing input is an error naming the file and the stage that makes it. This
module only reads files and returns plain dicts (the template reads `figure.src`, `figure.caption` ...), so it
needs nothing from report.py.
"""
from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any

import pandas as pd

from caffepipe.core.errors import CaffepipeError
from caffepipe.core.upstream import read_json, require

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def data_uri(path: Path, stage: str, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(require(path, stage).read_bytes()).decode("ascii")


def png_figure(path: Path, stage: str, caption: str) -> dict[str, str]:
    if not require(path, stage).read_bytes().startswith(PNG_MAGIC):
        raise CaffepipeError(f"{path} is not a PNG file; re-run `caffepipe {stage}`")
    return {"src": data_uri(path, stage, "image/png"), "caption": caption, "alt": caption}


def svg_figure(path: Path, stage: str, caption: str) -> dict[str, str]:
    text = require(path, stage).read_bytes()
    if b"<svg" not in text[:2000]:
        raise CaffepipeError(f"{path} is not an SVG file; re-run `caffepipe {stage}`")
    return {"src": data_uri(path, stage, "image/svg+xml"), "caption": caption, "alt": caption}


def diagrams_section(visualize: Path, models: list[str]) -> dict[str, Any]:
    """One entry per model: its diagram, or the note that says why there is none."""
    entries = []
    for model in models:
        index_path = visualize / model / "index.json"
        diagram = read_json(index_path, "visualize").get("diagram")
        if not isinstance(diagram, dict) or ("file" not in diagram):
            raise CaffepipeError(f"{index_path} has no net diagram entry; re-run `caffepipe visualize`")
        if diagram["file"] is None:
            entries.append({"model": model, "figure": None, "note": diagram.get("note", "no diagram")})
        else:
            figure = svg_figure(visualize / model / diagram["file"], "visualize", diagram["caption"])
            entries.append({"model": model, "figure": figure, "note": ""})
    return {"models": entries}


def last_snapshot_table(folder: Path) -> dict[str, Any]:
    """Each layer at the last snapshot: its weights' norm, std and change per 1,000 iterations; its output's std
    and, for a ReLU, the share of dead units. Shares are formatted here as percentages."""
    weights = pd.read_csv(require(folder / "weights.csv", "weight-stats"))
    activations = pd.read_csv(require(folder / "activations.csv", "weight-stats"))
    last = int(weights["iteration"].max())
    rows = []
    for _, row in weights[(weights["iteration"] == last) & (weights["blob"] == "weights")].iterrows():
        change = "" if math.isnan(row["change_per_1k"]) else f"{row['change_per_1k']:.1%}"
        rows.append([row["layer"], "weights", row["norm"], row["std"], change, ""])
    for _, row in activations[activations["iteration"] == last].iterrows():
        dead = "" if math.isnan(row["dead_fraction"]) else f"{row['dead_fraction']:.1%}"
        rows.append([row["layer"], f"output ({row['type']})", math.nan, row["std"], "", dead])
    return {"caption": f"At the last snapshot (iteration {last:,})",
            "columns": ["layer", "what", "norm", "std", "change per 1k iterations", "dead units"],
            "rows": rows}


def weights_section(weights: Path, models: list[str]) -> dict[str, Any]:
    """Per model: the sentences, the small-multiples figures and the last snapshot's table."""
    entries = []
    for model in models:
        folder = weights / model
        summary = read_json(folder / "summary.json", "weight-stats")
        entries.append({
            "model": model,
            "observations": [observation["text"] for observation in summary["observations"]],
            "figures": [png_figure(folder / entry["file"], "weight-stats", entry["caption"])
                        for entry in summary["figures"]],
            "table": last_snapshot_table(folder),
            "images": summary["activation_images"],
            "settled_change": summary["settled_change"],
        })
    return {"models": entries}
