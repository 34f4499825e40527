"""Class-balanced subsets of a training database, for the fine-tuning sweep over training-set sizes.

Every size gets the same number of images of each class (the remainder of size / classes goes one each to
the lowest classes), drawn by a seeded permutation of each class's images. The subsets are nested: each
class's first n images in its permutation, so the 100 images of the smallest run are also in the 1,000 of
the next. Every mode trains on the very same subset of a size, and the seed fixes it across runs and
machines (numpy's PCG64 stream is stable). The chosen indices are kept in order of the source database, so
the classes stay interleaved as in the original and SGD never sees one class in a block.

A subset is written as its own small LMDB, records copied byte for byte from the source (keys renumbered
0..n-1, as Caffe's Data layer reads them in key order), so Caffe reads it like any database build-db makes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from caffepipe.core.atomic import atomic_output
from caffepipe.core.errors import CaffepipeError
from caffepipe.data.build_db import write_lmdb
from caffepipe.data.datum import db_path, iterate_db, record_key


def per_class_counts(size: int, classes: int) -> list[int]:
    """How many images of each class a balanced subset of `size` takes."""
    base, remainder = divmod(size, classes)
    return [base + (1 if label < remainder else 0) for label in range(classes)]


def class_permutations(labels: np.ndarray, classes: int, seed: int) -> list[np.ndarray]:
    """Each class's indices in a seeded random order (one generator, classes in order: reproducible)."""
    rng = np.random.default_rng(seed)
    return [rng.permutation(np.flatnonzero(labels == label)) for label in range(classes)]


def balanced_subsets(labels: np.ndarray, sizes: list[int], seed: int, where: str = "the target training set") -> dict[int, list[int]]:
    """{size: sorted indices into `labels`}, class-balanced and nested; an error if a class is too small."""
    labels = np.asarray(labels)
    classes = int(labels.max()) + 1
    permutations = class_permutations(labels, classes, seed)
    subsets = {}
    for size in sorted(sizes):
        counts = per_class_counts(size, classes)
        for label, (count, available) in enumerate(zip(counts, permutations)):
            if count > len(available):
                raise CaffepipeError(f"finetune.sizes: {size} images take {count} of class {label}, but {where} has "
                                     f"{len(available)}; lower the size (or raise build_db.train_limit)")
        if min(counts) < 1:
            raise CaffepipeError(f"finetune.sizes: {size} images cannot hold one image of each of the {classes} classes; "
                                 f"use at least {classes}")
        chosen = np.concatenate([permutation[:count] for permutation, count in zip(permutations, counts)])
        subsets[size] = sorted(int(index) for index in chosen)
    return subsets


def subset_records(source: Path, indices: list[int]) -> list[tuple[bytes, bytes]]:
    """The records at `indices` (in the source's key order) of an LMDB, under new keys 0..n-1."""
    wanted = set(indices)
    values = [value for position, (_, value) in enumerate(iterate_db(source, "lmdb")) if position in wanted]
    if len(values) != len(wanted):
        raise CaffepipeError(f"{source} holds fewer records than the subset needs; rebuild it with `caffepipe build-db`")
    return [(record_key(index), value) for index, value in enumerate(values)]


def write_subset(source: Path, indices: list[int], out: Path) -> None:
    """Write the subset as an LMDB folder `out` (train_lmdb inside), whole or not at all."""
    records = subset_records(source, indices)
    with atomic_output(out, directory=True) as folder:
        write_lmdb(db_path(folder, "train", "lmdb"), records)
