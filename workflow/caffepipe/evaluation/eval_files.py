"""The evaluation folder (data/eval/<model>/): written by `caffepipe evaluate`, read by `caffepipe analyze`.

Its layout is documented in evaluate.py's docstring. This module holds only the format (writing, reading back
with checks, the per-snapshot metrics it stores), so that analyze does not depend on the Caffe side of evaluate.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from caffepipe.evaluation import error_stats
from caffepipe.core.atomic import atomic_output
from caffepipe.core.errors import CaffepipeError

FORMAT = 1
PREDICTIONS_FILE = "predictions.npz"
SUMMARY_FILE = "summary.csv"
CONFUSION_FILE = "confusion.csv"
INFO_FILE = "info.json"


def snapshot_metrics(probs: np.ndarray, labels: np.ndarray, predictions: np.ndarray, n_classes: int) -> dict[str, Any]:
    confusion = error_stats.confusion_matrix(labels, predictions, n_classes)
    _, _, rates = error_stats.per_class_error(confusion)
    accuracy = error_stats.accuracy(labels, predictions)
    return {
        "accuracy": accuracy,
        "error": 1.0 - accuracy,
        "loss": error_stats.cross_entropy(probs, labels),
        "errors": int(np.count_nonzero(predictions != labels)),
        "images": int(labels.size),
        "per_class_error": rates,
        "confusion": confusion,
    }


def summary_frame(iterations: np.ndarray, metrics: list[dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for iteration, values in zip(iterations, metrics):
        row = {"iteration": int(iteration)}
        row.update({key: values[key] for key in ("accuracy", "error", "loss", "errors", "images")})
        row.update({f"error_class_{k}": rate for k, rate in enumerate(values["per_class_error"])})
        rows.append(row)
    return pd.DataFrame(rows)


def confusion_frame(iterations: np.ndarray, confusion: np.ndarray) -> pd.DataFrame:
    n_snapshots, n_classes, _ = confusion.shape
    true, predicted = np.meshgrid(np.arange(n_classes), np.arange(n_classes), indexing="ij")
    return pd.DataFrame({
        "iteration": np.repeat(np.asarray(iterations, dtype=np.int64), n_classes * n_classes),
        "true": np.tile(true.ravel(), n_snapshots),
        "predicted": np.tile(predicted.ravel(), n_snapshots),
        "count": confusion.reshape(-1),
    })


def final_metrics(summary: pd.DataFrame) -> dict[str, Any]:
    last = summary.iloc[-1]
    return {
        "iteration": int(last["iteration"]),
        "accuracy": float(last["accuracy"]),
        "error": float(last["error"]),
        "loss": float(last["loss"]),
        "errors": int(last["errors"]),
        "images": int(last["images"]),
    }


def write_evaluation(out: Path, iterations: np.ndarray, labels: np.ndarray, probs: np.ndarray,
                     info: dict[str, Any]) -> pd.DataFrame:
    """Write the whole folder (layout: evaluate.py's docstring) from probs [S, N, K]; returns the summary."""
    iterations = np.asarray(iterations, dtype=np.int64)
    labels = np.asarray(labels)
    probs = np.asarray(probs)
    if probs.ndim != 3 or probs.shape[:2] != (len(iterations), len(labels)):
        raise ValueError(f"probs of shape {probs.shape} for {len(iterations)} snapshots of {len(labels)} images")
    n_classes = probs.shape[2]
    if n_classes > 256 or (labels.size and (labels.min() < 0 or labels.max() >= n_classes)):
        raise CaffepipeError(f"test labels span {labels.min()}..{labels.max()} but the net outputs {n_classes} classes; "
                             "do the database and the net belong together?")
    predictions = np.argmax(probs, axis=2).astype(np.uint8)
    metrics = [snapshot_metrics(probs[s], labels, predictions[s], n_classes) for s in range(len(iterations))]
    confusion = np.stack([values["confusion"] for values in metrics]).astype(np.int64)
    summary = summary_frame(iterations, metrics)
    info = {"format": FORMAT, **info, "images": int(labels.size), "classes": int(n_classes),
            "iterations": [int(i) for i in iterations], "final_iteration": int(iterations[-1])}
    with atomic_output(out, directory=True) as folder:
        np.savez_compressed(folder / PREDICTIONS_FILE, iterations=iterations, labels=labels.astype(np.uint8),
                            probs=probs.astype(np.float32), predictions=predictions, confusion=confusion)
        summary.to_csv(folder / SUMMARY_FILE, index=False, float_format="%.6g")
        confusion_frame(iterations, confusion).to_csv(folder / CONFUSION_FILE, index=False)
        (folder / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    return summary


@dataclass(frozen=True)
class Evaluation:
    """One model's evaluation folder, loaded."""
    model: str
    iterations: np.ndarray     # int64 [S]
    labels: np.ndarray         # int64 [N]
    probs: np.ndarray          # float32 [S, N, K]
    predictions: np.ndarray    # int64 [S, N]
    confusion: np.ndarray      # int64 [S, K, K]
    info: dict[str, Any]

    @property
    def n_classes(self) -> int:
        return int(self.probs.shape[2])

    @property
    def final_iteration(self) -> int:
        return int(self.iterations[-1])


def read_evaluation(directory: str | Path, model: str | None = None) -> Evaluation:
    """Load an evaluation folder, checking its format version and that its arrays agree."""
    directory = Path(directory)
    hint = f"run `caffepipe evaluate` for {model or 'this model'}"
    try:
        info = json.loads((directory / INFO_FILE).read_text())
        with np.load(directory / PREDICTIONS_FILE) as arrays:
            loaded = {name: arrays[name] for name in ("iterations", "labels", "probs", "predictions", "confusion")}
    except FileNotFoundError as error:
        raise CaffepipeError(f"{directory}: no evaluation ({Path(error.filename).name} missing); {hint}") from None
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as error:  # JSONDecodeError is a ValueError
        raise CaffepipeError(f"{directory}: unreadable evaluation ({error}); {hint} again") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        found = info.get("format") if isinstance(info, dict) else None
        raise CaffepipeError(f"{directory}: evaluation format {found}, expected {FORMAT}; {hint} again")
    if loaded["probs"].ndim != 3:
        raise CaffepipeError(f"{directory}/{PREDICTIONS_FILE}: probs is not [snapshots, images, classes]; {hint} again")
    n_snapshots, n_images, n_classes = loaded["probs"].shape
    if (loaded["iterations"].shape != (n_snapshots,) or loaded["labels"].shape != (n_images,)
            or loaded["predictions"].shape != (n_snapshots, n_images)
            or loaded["confusion"].shape != (n_snapshots, n_classes, n_classes)):
        raise CaffepipeError(f"{directory}/{PREDICTIONS_FILE}: arrays of inconsistent shapes; {hint} again")
    return Evaluation(
        model=str(info.get("model", model or directory.name)),
        iterations=loaded["iterations"].astype(np.int64),
        labels=loaded["labels"].astype(np.int64),
        probs=loaded["probs"],
        predictions=loaded["predictions"].astype(np.int64),
        confusion=loaded["confusion"].astype(np.int64),
        info=info,
    )


