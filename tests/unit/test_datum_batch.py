"""datum.decode_datums, the batch decoder every database reader uses: the same images and labels as protobuf's
parse of each record, exactly, whichever path a record takes (tests/datum_records.py writes them with protobuf)."""
from __future__ import annotations

import re
import tempfile
from pathlib import Path
from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from caffepipe.core.errors import CaffepipeError
from caffepipe.data import datum as datum_module
from caffepipe.data.build_db import write_lmdb
from caffepipe.data.datum import (READ_CHUNK, DatumError, decode_datum, decode_datum_chunks, decode_datums,
                                  encode_datum, read_db, record_key)
from tests.datum_records import check_against_protobuf, datum_batches, datum_message, one_byte_labels

Datum = datum_message()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(datum_batches(Datum))
def test_random_batches_decode_as_protobuf_parses_them(records) -> None:
    check_against_protobuf(decode_datums, DatumError, Datum, records)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(datum_batches(Datum), st.lists(st.integers(1, 8), min_size=1, max_size=40))
def test_random_batches_in_chunks_decode_as_protobuf_parses_them(records, sizes) -> None:
    """Read in chunks (read_db's LMDB path): the same, whatever the chunks' boundaries."""
    check_against_protobuf(lambda batch: decode_datum_chunks(in_chunks(batch, sizes), len(batch)), DatumError,
                           Datum, records)


def in_chunks(batch: list[bytes], sizes: list[int]) -> list[list[bytes]]:
    chunks, start = [], 0
    for size in sizes * len(batch):
        chunks.append(batch[start:start + size])
        start += size
    return chunks


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(datum_batches(Datum, label_values=one_byte_labels), st.lists(st.integers(1, 8), min_size=1, max_size=40))
def test_random_batches_of_one_byte_labels_in_chunks_decode_as_protobuf_parses_them(records, sizes) -> None:
    """Labels of one byte: chunks whose records all have the layout's length (copied whole, checked later, together)
    between chunks of other lengths (checked at once), with records in and out of the layout in both."""
    check_against_protobuf(lambda batch: decode_datum_chunks(in_chunks(batch, sizes), len(batch)), DatumError,
                           Datum, records)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.one_of(datum_batches(Datum, label_values=one_byte_labels), datum_batches(Datum)), st.integers(1, 8))
def test_random_lmdbs_read_as_protobuf_parses_them(records, chunk) -> None:
    """read_db itself (LMDB's values as memoryviews into its map, read in chunks of `chunk` records): protobuf's
    images and labels, or an error naming the first record that is no image of record 0's shape, by its key."""
    with tempfile.TemporaryDirectory() as work, patch.object(datum_module, "READ_CHUNK", chunk):
        def read(batch: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
            path = Path(work) / f"db{len(list(Path(work).iterdir()))}"
            write_lmdb(path, [(record_key(i), record) for i, record in enumerate(batch)])
            try:
                return read_db(path, "lmdb")
            except CaffepipeError as error:
                key = re.search(r"record b'(\d{8})'", str(error))
                assert key, error
                raise DatumError(int(key[1]), str(error)) from None
        check_against_protobuf(read, DatumError, Datum, records)


def test_an_lmdb_of_several_read_chunks(tmp_path) -> None:
    """read_db on more records than READ_CHUNK: labels of 1, 2 and 10 bytes, one record in another field order
    past the first chunk, and then a record of another shape, named by its key."""
    rng = np.random.default_rng(1)
    count = 2 * READ_CHUNK + 100
    images = rng.integers(0, 256, (count, 1, 5, 4), dtype=np.uint8)
    labels = rng.choice([3, 200, 70_000, -5], size=count)
    records = [Datum(channels=1, height=5, width=4, data=image.tobytes(), label=int(label)).SerializeToString()
               for image, label in zip(images, labels)]
    moved = READ_CHUNK + 7
    records[moved] = (Datum(label=int(labels[moved])).SerializeToString()
                      + Datum(channels=1, height=5, width=4, data=images[moved].tobytes()).SerializeToString())
    write_lmdb(tmp_path / "good", [(record_key(i), record) for i, record in enumerate(records)])
    decoded_images, decoded_labels = read_db(tmp_path / "good", "lmdb")
    np.testing.assert_array_equal(decoded_images, images)
    np.testing.assert_array_equal(decoded_labels, labels)
    records[READ_CHUNK + 50] = encode_datum(np.zeros((1, 4, 5), np.uint8), 1)
    write_lmdb(tmp_path / "bad", [(record_key(i), record) for i, record in enumerate(records)])
    with pytest.raises(CaffepipeError, match=f"record {record_key(READ_CHUNK + 50)!r}: a 1x4x5 image where record 0"):
        read_db(tmp_path / "bad", "lmdb")


@settings(max_examples=100, deadline=None)
@given(datum_batches(Datum, max_size=1))
def test_one_record_decodes_as_protobuf_parses_it(records) -> None:
    """decode_datum alone (the general parse) against protobuf: fields in any order, twice, unknown, missing."""
    check_against_protobuf(decode_one, DatumError, Datum, records)


def decode_one(records: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    try:
        image, label = decode_datum(records[0])
    except CaffepipeError as error:
        raise DatumError(0, str(error)) from None
    return image[None], np.array([label], dtype=np.int64)


def test_records_in_caffes_layout_never_take_the_general_parse(monkeypatch) -> None:
    """The speed: records as Caffe and build-db write them (labels of one byte, of two, and negative ones of ten)
    are decoded as columns; only record 0 is parsed on its own, for its shape."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (500, 1, 28, 28), dtype=np.uint8)
    labels = np.concatenate([rng.integers(0, 10, 300), rng.integers(128, 70_000, 100), rng.integers(-2**31, 0, 100)])
    records = [Datum(channels=1, height=28, width=28, data=image.tobytes(), label=int(label)).SerializeToString()
               for image, label in zip(images, labels)]
    assert records[:10] == [encode_datum(image, int(label)) for image, label in zip(images[:10], labels[:10])]
    parsed = []
    monkeypatch.setattr(datum_module, "decode_datum", lambda record: parsed.append(record) or decode_datum(record))
    decoded_images, decoded_labels = decode_datums(records)
    assert parsed == [records[0]]
    np.testing.assert_array_equal(decoded_images, images)
    np.testing.assert_array_equal(decoded_labels, labels)


def test_an_error_names_the_first_bad_record() -> None:
    good = encode_datum(np.zeros((1, 2, 2), np.uint8), 3)
    other_shape = encode_datum(np.zeros((1, 2, 3), np.uint8), 3)
    with pytest.raises(DatumError, match=r"^record 2: a 1x2x3 image where record 0 holds 1x2x2; "):
        decode_datums([good, good, other_shape, good + b"\x38\x01"])
    with pytest.raises(DatumError, match=r"^record 1: this Datum holds an encoded \(JPEG/PNG\) image"):
        decode_datums([good, good + b"\x38\x01", other_shape])
    with pytest.raises(DatumError, match=r"^record 0: this Datum holds float_data"):
        decode_datums([good + b"\x35\x00\x00\x80\x3f"])
    cut_in_its_label = encode_datum(np.zeros((1, 2, 2), np.uint8), 200)[:-1]     # as long as `good`, cut short
    assert len(cut_in_its_label) == len(good)
    with pytest.raises(DatumError, match=r"^record 1: a Datum record ends inside a number"):
        decode_datums([good, cut_in_its_label, good])


def test_an_empty_batch_is_empty_arrays() -> None:
    images, labels = decode_datums([])
    assert images.shape == (0, 0, 0, 0) and labels.shape == (0,)
