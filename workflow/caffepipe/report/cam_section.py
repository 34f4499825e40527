"""The report's class activation map section: where each global-average-pooling model looked.

Reads --cam/<model>/index.json and its figures (`caffepipe cam`, evaluation/cam.py) for every model. Models
without CAMs (no global average pooling before a single classifier) are named with the reason.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from caffepipe.core.errors import CaffepipeError
from caffepipe.core.upstream import read_json


def cam_section(cam: Path, models: list[str]) -> dict[str, Any]:
    from caffepipe.report.report import Figure, embed_png  # noqa: PLC0415

    with_maps, without = [], []
    for model in models:
        index = read_json(cam / model / "index.json", "cam")
        if not isinstance(index, dict) or "has_cam" not in index:
            raise CaffepipeError(f"{cam / model / 'index.json'} does not say whether {model} has CAMs; re-run `caffepipe cam`")
        if not index["has_cam"]:
            without.append(f"{model} ({index['reason']})")
            continue
        errors = [entry for entry in index["images"] if not entry["correct"]]
        with_maps.append({
            "model": model,
            "summary": (f"{index['classifier']} over {index['features']} ({'x'.join(map(str, index['feature_shape']))} "
                        f"maps); {len(index['images']) - len(errors)} right and {len(errors)} wrong test images; "
                        f"mean of each map + bias = logit to within {index['identity_max_error']:.1g}"),
            "figures": [Figure(embed_png(cam / model / entry["file"], "cam"), entry["caption"], entry["caption"])
                        for entry in index["figures"]],
        })
    return {"models": with_maps, "without": without}
