"""bench-io's pure parts: the readers return the right pixels, the table and metrics add up, the figure draws."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from caffepipe.data.bench_io import (decode_agreement, disk_usage, draw_figure, evict_from_page_cache, headline_metrics,
                                read_database, read_image_files, read_raw_array, run_benchmark, summarize,
                                CIFAR_LAYOUT, IDX_LAYOUT)
from caffepipe.data.cifar import encode_batch
from caffepipe.data.build_db import datum_records, write_leveldb, write_lmdb
from caffepipe.core.errors import CaffepipeError
from caffepipe.data.export_images import export_images
from tests.conftest import synthetic_digits
from tests.idx_files import write_idx


@pytest.fixture
def stores(tmp_path: Path) -> dict:
    images, labels = synthetic_digits(20, seed=3)
    write_idx(tmp_path / "train-images-idx3-ubyte", images)
    records = datum_records(images[:, None], labels)
    write_lmdb(tmp_path / "train_lmdb", records)
    write_leveldb(tmp_path / "train_leveldb", records)
    export_images(images, labels, tmp_path / "images", jpeg_quality=95)
    return {"root": tmp_path, "images": images}


@pytest.mark.parametrize("backend", ["lmdb", "leveldb"])
def test_database_reader_returns_the_first_count_images(stores: dict, backend: str) -> None:
    read = read_database(stores["root"] / f"train_{backend}", backend, 15, (1, 28, 28))
    assert np.array_equal(read, stores["images"][:15, None])


def test_file_and_raw_readers_return_the_images(stores: dict) -> None:
    names = [f"{i:05d}.png" for i in range(20)]
    assert np.array_equal(read_image_files(stores["root"] / "images/png", names, (1, 28, 28)), stores["images"][:, None])
    raw = read_raw_array(stores["root"] / "train-images-idx3-ubyte", 9, (1, 28, 28), IDX_LAYOUT((1, 28, 28)))
    assert np.array_equal(raw, stores["images"][:9, None])


def test_colour_readers_return_cifar_images_in_caffe_channel_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, size=(6, 3, 32, 32), dtype=np.uint8)
    labels = np.arange(6) % 10
    (tmp_path / "data_batch_1.bin").write_bytes(encode_batch(images, labels))
    write_lmdb(tmp_path / "train_lmdb", datum_records(images, labels, key_digits=5))
    export_images(images, labels, tmp_path / "images", jpeg_quality=95)
    names = [f"{i:05d}.png" for i in range(6)]
    assert np.array_equal(read_raw_array(tmp_path / "data_batch_1.bin", 4, (3, 32, 32), CIFAR_LAYOUT), images[:4])
    assert np.array_equal(read_database(tmp_path / "train_lmdb", "lmdb", 6, (3, 32, 32)), images)
    assert np.array_equal(read_image_files(tmp_path / "images/png", names, (3, 32, 32)), images)


def test_disk_usage_counts_whole_blocks_for_small_files(stores: dict) -> None:
    apparent, allocated = disk_usage(stores["root"] / "images/png")
    assert 0 < apparent <= allocated
    assert evict_from_page_cache(stores["root"] / "images/png") is True
    assert np.array_equal(read_image_files(stores["root"] / "images/png", ["00000.png"], (28, 28))[0], stores["images"][0])


def test_summary_takes_the_median_and_spread() -> None:
    row = summarize("python", "png", "warm", 100, [2.0, 1.0, 4.0], (5000, 8192), 50)
    assert row["format"] == "png (python, warm)"
    assert row["images_per_s"] == 50.0 and row["images_per_s_min"] == 25.0 and row["images_per_s_max"] == 100.0
    assert row["bytes_per_image"] == 100.0 and row["disk_bytes_per_image"] == 8192 / 50


def test_benchmark_times_every_reader_cold_and_warm_and_metrics_compare_lmdb_with_jpeg(stores: dict) -> None:
    root = stores["root"]
    calls: list[str] = []

    def reader(name: str):
        def read() -> np.ndarray:
            calls.append(name)
            return stores["images"]
        return read
    readers = {("python", "lmdb"): (reader("lmdb"), root / "train_lmdb", 20),
               ("python", "jpeg"): (reader("jpeg"), root / "images/jpeg", 20)}
    table = run_benchmark(readers, {"lmdb": (root / "train_lmdb", 20), "jpeg": (root / "images/jpeg", 20)},
                          repeats=3, cold=True)
    assert calls.count("lmdb") == calls.count("jpeg") == 1 + 3 * 2       # warm-up, then cold + warm per repeat
    assert sorted(table["format"]) == ["jpeg (python, cold)", "jpeg (python, warm)", "lmdb (python, cold)", "lmdb (python, warm)"]
    assert (table["repeats"] == 3).all() and table["format"].is_unique
    metrics = headline_metrics(table, {"jpeg_mean_abs_pixel_error": 0.5})
    rate = table.set_index("format")["images_per_s"]
    assert metrics["python_lmdb_over_jpeg_warm"] == round(rate["lmdb (python, warm)"] / rate["jpeg (python, warm)"], 2)
    assert metrics["images"] == 20 and metrics["jpeg_mean_abs_pixel_error"] == 0.5
    assert json.loads(json.dumps(metrics)) == metrics
    draw_figure(table, root / "io.png")
    assert (root / "io.png").read_bytes()[:4] == b"\x89PNG"


def test_decode_agreement_rejects_a_lossless_store_with_different_pixels(stores: dict) -> None:
    images = stores["images"]
    readers = {("python", "numpy"): (lambda: images, None, 20), ("python", "png"): (lambda: images, None, 20),
               ("python", "jpeg"): (lambda: np.clip(images.astype(int) + 1, 0, 255).astype(np.uint8), None, 20)}
    check = decode_agreement(readers)
    assert check["png_mean_abs_pixel_error"] == 0 and 0 < check["jpeg_mean_abs_pixel_error"] <= 1
    readers["python", "lmdb"] = (lambda: images[::-1].copy(), None, 20)
    with pytest.raises(CaffepipeError, match="lmdb decodes to different pixels"):
        decode_agreement(readers)
