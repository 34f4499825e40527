"""The images and labels of data/raw, whatever format fetch wrote there.

MNIST and Fashion-MNIST arrive as IDX files (one grey channel), CIFAR-10 as its binary batch files (three
channels). Every stage that reads data/raw (build-db, export-images, bench-io, the report) asks here, so they
all see the same arrays: images (N, channels, height, width) uint8, in Caffe's Datum order, and labels (N,).
Which format it is comes from the dataset that fetch recorded in source.json.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from caffepipe.core.errors import CaffepipeError
from caffepipe.data import cifar
from caffepipe.data.idx import read_idx

# IDX file names of each split, as MNIST and Fashion-MNIST ship them
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
CIFAR_DATASETS = ("cifar10",)


def dataset_name(raw: Path) -> str | None:
    """Which dataset fetch put in `raw` (its source.json), so later stages can name the classes; None if unknown."""
    try:
        return json.loads((raw / "source.json").read_text()).get("dataset")
    except (FileNotFoundError, json.JSONDecodeError, AttributeError):
        return None


def split_files(raw: Path, split: str) -> tuple[Path, ...]:
    """The files of data/raw that hold one split (for a stage that checks or times them)."""
    names = cifar.SPLIT_FILES[split] if dataset_name(raw) in CIFAR_DATASETS else IDX_FILES[split]
    return tuple(raw / name for name in names)


def load_split(raw: Path, split: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, C, H, W) uint8 and labels (N,) int64 of one split, checked to belong together; the first
    `limit` only, when given."""
    if dataset_name(raw) in CIFAR_DATASETS:
        images, labels = cifar.load_split(raw, split)
    else:
        images, labels = _load_idx_split(raw, split)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return images, labels


def _load_idx_split(raw: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    images_file, labels_file = (raw / name for name in IDX_FILES[split])
    images, labels = read_idx(images_file), read_idx(labels_file)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise CaffepipeError(f"{images_file}: expected (N, height, width) uint8 images, got {images.dtype} {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise CaffepipeError(f"{labels_file}: {labels.shape} labels for {len(images)} images; the files do not belong together")
    return images[:, np.newaxis], labels.astype(np.int64)
