"""Hard images: the test images every model gets wrong, against those only one model gets wrong.

An image every architecture misreads is most likely ambiguous or mislabelled (a property of the data); an
image only one model misreads says something about that model. `caffepipe analyze` calls write_hard_images
with every model's final snapshot; the selection itself (hard_image_table, every_model_wrong,
only_one_model_wrong) is pure, so tests/unit checks it on small arrays.

Files (in analyze's output folder):
    hard_images.csv           every test image at least one model gets wrong: index, label, wrong_by (how many
                              models), models_wrong (space-separated), then each model's prediction
    hard_every_model.png      the images every model gets wrong, titled with the label and each model's answer
    hard_only_one_model.png   the images exactly one model gets wrong, titled with that model and its answer
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

QUESTION = "hard"
QUESTION_TEXT = "Which images does every model get wrong, and which only one?"


def hard_image_table(labels: np.ndarray, predictions: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per image at least one model gets wrong, most models wrong first, then in test order."""
    models = list(predictions)
    wrong = np.stack([np.asarray(predictions[model]) != labels for model in models])     # [models, N]
    wrong_by = wrong.sum(axis=0)
    rows = np.flatnonzero(wrong_by > 0)
    table = pd.DataFrame({
        "index": rows,
        "label": np.asarray(labels)[rows],
        "wrong_by": wrong_by[rows],
        "models_wrong": [" ".join(model for model, flags in zip(models, wrong[:, row]) if flags) for row in rows],
        **{f"predicted_{model}": np.asarray(predictions[model])[rows] for model in models},
    })
    return table.sort_values(["wrong_by", "index"], ascending=[False, True], kind="stable").reset_index(drop=True)


def every_model_wrong(table: pd.DataFrame, models: int) -> pd.DataFrame:
    return table[table["wrong_by"] == models]


def only_one_model_wrong(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["wrong_by"] == 1]


def _answers(row: Any, models: list[str]) -> str:
    return " ".join(str(getattr(row, f"predicted_{model}")) for model in models)


def write_hard_images(labels: np.ndarray, predictions: dict[str, np.ndarray], images: np.ndarray, folder: Path,
                      index: Any, gallery_max: int) -> dict[str, int]:
    """Write the table and both galleries into `folder` and list them in analyze's `index`; returns the counts."""
    from caffepipe.evaluation.analyze_figures import draw_gallery  # noqa: PLC0415

    models = list(predictions)
    table = hard_image_table(labels, predictions)
    table.to_csv(folder / "hard_images.csv", index=False)
    every, only_one = every_model_wrong(table, len(models)), only_one_model_wrong(table)
    counts = {"every_model": len(every), "only_one_model": len(only_one)}
    shown_every = every.head(gallery_max)
    draw_gallery(images[shown_every["index"].to_numpy()],
                 [f"#{row.index} true {row.label}\n{_answers(row, models)}" for row in shown_every.itertuples()],
                 f"Wrong in every model ({len(every)}): true label, then {', '.join(models)}'s answers",
                 folder / "hard_every_model.png")
    shown_one = only_one.head(gallery_max)
    draw_gallery(images[shown_one["index"].to_numpy()],
                 [f"#{row.index} true {row.label}\n{row.models_wrong}: "
                  f"{getattr(row, 'predicted_' + row.models_wrong)}" for row in shown_one.itertuples()],
                 f"Wrong in exactly one model ({len(only_one)})", folder / "hard_only_one_model.png")
    text = (f"{len(every)} test images are wrong in all {len(models)} models; {len(only_one)} in exactly one"
            if len(models) > 1 else f"one model: its {len(every)} errors")
    per_model_only = {model: int((only_one["models_wrong"] == model).sum()) for model in models}
    index.add(QUESTION, "hard_every_model.png", f"The test images every model gets wrong (first {gallery_max}): "
              "ambiguous or mislabelled digits, most likely.", "wrong in every model", len(every), text)
    index.add(QUESTION, "hard_only_one_model.png", "The test images exactly one model gets wrong (first "
              f"{gallery_max}), titled with that model and its answer: that model's own mistakes.",
              "wrong in only this model", per_model_only,
              "; ".join(f"{model} {count}" for model, count in per_model_only.items()))
    index.add(QUESTION, "hard_images.csv", "Every test image at least one model gets wrong, with each model's answer.",
              "wrong in at least one model", len(table), f"{len(table)} images wrong in at least one model")
    return counts
