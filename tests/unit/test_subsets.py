"""Class-balanced, seeded, nested subsets of a training set (data/subsets.py), and their LMDB."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from caffepipe.core.errors import CaffepipeError
from caffepipe.data.build_db import datum_records, write_lmdb
from caffepipe.data.datum import db_path, decode_datum, iterate_db
from caffepipe.data.subsets import balanced_subsets, per_class_counts, write_subset


def labels_of(counts: list[int], seed: int = 0) -> np.ndarray:
    """Labels with `counts[c]` images of class c, shuffled."""
    labels = np.repeat(np.arange(len(counts)), counts)
    return np.random.default_rng(seed).permutation(labels)


def test_per_class_counts_give_the_remainder_to_the_lowest_classes() -> None:
    assert per_class_counts(100, 10) == [10] * 10
    assert per_class_counts(23, 10) == [3, 3, 3] + [2] * 7


def test_subsets_are_balanced_nested_sorted_and_fixed_by_the_seed() -> None:
    labels = labels_of([50, 80, 60, 70, 55, 65, 75, 52, 58, 90])
    subsets = balanced_subsets(labels, [100, 20, 300], seed=3)
    for size, indices in subsets.items():
        assert len(indices) == len(set(indices)) == size
        assert indices == sorted(indices)
        assert np.bincount(labels[indices], minlength=10).tolist() == per_class_counts(size, 10)
    assert set(subsets[20]) <= set(subsets[100]) <= set(subsets[300])
    assert balanced_subsets(labels, [100], seed=3)[100] == subsets[100]
    assert balanced_subsets(labels, [100], seed=4)[100] != subsets[100]


def test_a_class_too_small_for_a_size_is_one_error_naming_both() -> None:
    labels = labels_of([30] * 9 + [5])
    with pytest.raises(CaffepipeError, match=r"finetune.sizes: 100 images take 10 of class 9, but .* has 5"):
        balanced_subsets(labels, [100], seed=1)


def test_fewer_images_than_classes_is_an_error() -> None:
    with pytest.raises(CaffepipeError, match="at least 10"):
        balanced_subsets(labels_of([5] * 10), [7], seed=1)


def test_the_subset_database_holds_exactly_the_chosen_records_in_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(40, 1, 4, 4), dtype=np.uint8)
    labels = np.arange(40) % 10
    source = tmp_path / "train_lmdb"
    write_lmdb(source, datum_records(images, labels))
    chosen = [1, 5, 17, 39]
    write_subset(source, chosen, tmp_path / "subset")
    records = list(iterate_db(db_path(tmp_path / "subset", "train", "lmdb"), "lmdb"))
    assert [key for key, _ in records] == [b"%08d" % i for i in range(4)]
    for (_, value), index in zip(records, chosen):
        image, label = decode_datum(value)
        assert label == labels[index] and np.array_equal(image, images[index])
