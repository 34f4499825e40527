"""CIFAR-10 without Caffe: the batch layout, fetch from a folder or a file URL with its checks, the raw reader,
the Datum keys, the mean image's bytes, and the colour paths of export-images and predict's image conversion."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from caffepipe.core.errors import CaffepipeError
from caffepipe.data import cifar, fetch
from caffepipe.data.build_db import build_databases
from caffepipe.data.datum import iterate_db, read_db, record_key
from caffepipe.data.export_images import export_images
from caffepipe.data.mean_image import decode_blob_proto, encode_blob_proto, mean_image
from caffepipe.data.raw_images import load_split
from caffepipe.inference.images import convert_image
from tests.cifar_files import cifar_files, synthetic_colour_images, write_archive, write_batches

PARAMS = {"dataset": "cifar10", "sources": ["local"], "timeout_s": 1, "local_dir": None, "url": None,
          "cifar10_sha256": None}


@pytest.fixture
def files() -> dict[str, bytes]:
    return cifar_files(per_batch=4, test_count=6, seed=1)


def test_a_batch_is_label_then_red_green_blue_planes(files) -> None:
    images, labels = synthetic_colour_images(2, seed=9)
    data = bytes([labels[0]]) + images[0].tobytes() + bytes([labels[1]]) + images[1].tobytes()
    parsed_images, parsed_labels = cifar.parse_batch(data, "x")
    assert np.array_equal(parsed_images, images) and parsed_labels.tolist() == labels.tolist()
    assert cifar.encode_batch(images, labels) == data


@pytest.mark.parametrize("damage,message", [
    (lambda data: data[:-10], "is not a whole number of 3073-byte CIFAR-10 records"),
    (lambda data: b"", "0 bytes is not a whole number"),
    (lambda data: bytes([12]) + data[1:], "record 0 has label 12"),
])
def test_a_damaged_batch_is_one_clear_error(files, damage, message) -> None:
    with pytest.raises(CaffepipeError, match=message):
        cifar.parse_batch(damage(files["data_batch_1.bin"]), "data_batch_1.bin")


def test_the_official_archive_pin_is_the_published_one() -> None:
    # TensorFlow Datasets' and other loaders' pin of cifar-10-binary.tar.gz (MD5 c32a1d4ab5d03f1284b67883e8d87530)
    assert cifar.ARCHIVE_SHA256 == "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"


def test_an_archive_of_another_digest_is_refused_with_both_digests(tmp_path, files) -> None:
    digest = write_archive(tmp_path / "local", files)
    with pytest.raises(CaffepipeError) as error:
        fetch.fetch_dataset("cifar10", {**PARAMS, "local_dir": str(tmp_path / "local")}, tmp_path / "raw")
    message = str(error.value)
    assert "\n" not in message
    assert f"SHA-256 mismatch: expected {cifar.ARCHIVE_SHA256}, got {digest}" in message
    assert not (tmp_path / "raw").exists()


def test_an_archive_with_its_pinned_digest_is_extracted_and_recorded(tmp_path, files) -> None:
    digest = write_archive(tmp_path / "local", files)
    params = {**PARAMS, "local_dir": str(tmp_path / "local"), "cifar10_sha256": digest}
    record = fetch.fetch_dataset("cifar10", params, tmp_path / "raw")
    for name in cifar.FILES:
        assert (tmp_path / "raw" / name).read_bytes() == files[name]
        assert record["files"][name]["sha256"] == hashlib.sha256(files[name]).hexdigest()
    assert record["sha256_pinned"] is True and record["archive_sha256"] == digest
    assert json.loads((tmp_path / "raw" / "source.json").read_text()) == record


def test_a_truncated_archive_is_a_checksum_failure(tmp_path, files) -> None:
    digest = write_archive(tmp_path / "local", files)
    archive = tmp_path / "local" / cifar.ARCHIVE
    archive.write_bytes(archive.read_bytes()[:5000])
    with pytest.raises(CaffepipeError, match=f"expected {digest}"):
        fetch.fetch_dataset("cifar10", {**PARAMS, "local_dir": str(archive.parent), "cifar10_sha256": digest},
                            tmp_path / "raw")


def test_the_archive_from_a_file_url(tmp_path, files) -> None:
    digest = write_archive(tmp_path / "served", files)
    params = {**PARAMS, "sources": ["mirrors"], "url": (tmp_path / "served" / cifar.ARCHIVE).as_uri(),
              "cifar10_sha256": digest}
    record = fetch.fetch_dataset("cifar10", params, tmp_path / "raw")
    assert record["source"] == "mirrors" and record["origin"].startswith("file://")


def test_extracted_batch_files_are_checked_for_layout_only_and_say_so(tmp_path, files) -> None:
    write_batches(tmp_path / "local" / "cifar-10-batches-bin", files)
    record = fetch.fetch_dataset("cifar10", {**PARAMS, "local_dir": str(tmp_path / "local")}, tmp_path / "raw")
    assert record["sha256_pinned"] is False and record["archive_sha256"] is None
    (tmp_path / "local" / "cifar-10-batches-bin" / "test_batch.bin").write_bytes(files["test_batch.bin"][:-1])
    with pytest.raises(CaffepipeError, match="test_batch.bin: .* is not a whole number of 3073-byte"):
        fetch.fetch_dataset("cifar10", {**PARAMS, "local_dir": str(tmp_path / "local")}, tmp_path / "raw2")


def test_a_missing_folder_and_no_package_are_one_line_each_in_one_error(tmp_path) -> None:
    params = {**PARAMS, "sources": ["package", "local"], "local_dir": str(tmp_path / "nowhere")}
    with pytest.raises(CaffepipeError) as error:
        fetch.fetch_dataset("cifar10", params, tmp_path / "raw")
    message = str(error.value)
    assert "package: no package registry ships CIFAR-10" in message
    assert f"local: fetch.local_dir {tmp_path / 'nowhere'}: no such folder" in message
    assert "\n" not in message


def test_raw_images_and_databases_keep_convert_cifar_datas_order_keys_and_split(tmp_path, files) -> None:
    write_batches(tmp_path / "raw", files)
    (tmp_path / "raw" / "source.json").write_text(json.dumps({"dataset": "cifar10"}))
    images, labels = load_split(tmp_path / "raw", "train")
    expected = [cifar.parse_batch(files[name], name) for name in cifar.TRAIN_BATCHES]
    assert np.array_equal(images, np.concatenate([batch for batch, _ in expected]))
    info = build_databases(tmp_path / "raw", tmp_path / "db", ["lmdb", "leveldb"], {"train": None, "test": None})
    assert (info["train"], info["test"], info["channels"], info["height"], info["width"]) == (20, 6, 3, 32, 32)
    for backend in ("lmdb", "leveldb"):
        keys = [key for key, _ in iterate_db(tmp_path / "db" / f"train_{backend}", backend)]
        assert keys == [b"%05d" % index for index in range(20)]       # caffe::format_int(index, 5)
        read, read_labels = read_db(tmp_path / "db" / f"test_{backend}", backend)
        assert np.array_equal(read, cifar.parse_batch(files["test_batch.bin"], "t")[0])
    mean = decode_blob_proto((tmp_path / "db" / "mean.binaryproto").read_bytes())
    np.testing.assert_array_equal(mean, images.sum(axis=0, dtype=np.int64).astype(np.float32) / np.float32(20))


def test_a_database_with_five_digit_keys_and_a_gap_is_damaged(tmp_path, files) -> None:
    from caffepipe.data.build_db import datum_records, write_lmdb

    images, labels = synthetic_colour_images(3, seed=2)
    records = datum_records(images, labels, key_digits=5)
    write_lmdb(tmp_path / "db", [records[0], records[2]])
    with pytest.raises(CaffepipeError, match="records are missing"):
        read_db(tmp_path / "db", "lmdb")
    assert record_key(7, 5) == b"00007"


def test_the_mean_image_bytes_are_a_blob_proto_in_field_order() -> None:
    images = np.array([[[[0, 255]]], [[[1, 0]]], [[[2, 0]]]], dtype=np.uint8)      # 3 images, 1x1x2
    mean = mean_image(images)
    assert mean.dtype == np.float32 and mean.tolist() == [[[1.0, np.float32(255) / np.float32(3)]]]
    encoded = encode_blob_proto(mean)
    assert encoded[:10] == b"\x08\x01\x10\x01\x18\x01\x20\x02\x2a\x08"
    np.testing.assert_array_equal(decode_blob_proto(encoded), mean)


def test_export_images_writes_colour_files_that_read_back_as_caffe_channels(tmp_path) -> None:
    images, labels = synthetic_colour_images(3, seed=4)
    manifest = export_images(images, labels, tmp_path / "images", jpeg_quality=95)
    assert (manifest["channels"], manifest["height"], manifest["width"]) == (3, 32, 32)
    with Image.open(tmp_path / "images" / "png" / "00001.png") as image:
        assert image.mode == "RGB"
        assert np.array_equal(np.asarray(image).transpose(2, 0, 1), images[1])


def test_a_colour_net_gets_rgb_pixels_fitted_square() -> None:
    images, _ = synthetic_colour_images(1, seed=6)
    photo = Image.fromarray(images[0].transpose(1, 2, 0)).resize((96, 96), Image.Resampling.NEAREST)
    converted = convert_image(photo, (32, 32), invert="auto", fit="square", channels=3)
    assert converted.pixels.shape == (3, 32, 32) and not converted.inverted
    assert np.array_equal(converted.pixels, images[0])       # a 3x enlargement comes back exactly
