"""The Datum decoder against Caffe's own protobuf classes: the message tests/datum_records.py builds for the unit
tests is caffe_pb2.Datum, and the readers give caffe_pb2's images and labels for random records, from a real LMDB."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2
from hypothesis import HealthCheck, given, settings, strategies as st

from caffepipe.core.caffe_env import import_caffe
from caffepipe.core.errors import CaffepipeError
from caffepipe.data.build_db import write_lmdb
from caffepipe.data.datum import DatumError, decode_datums, read_db, record_key
from tests.datum_records import (assert_decodes_to, check_against_protobuf, datum_batches, datum_message,
                                 expected_decode, one_byte_labels)

pytestmark = pytest.mark.integration

caffe = import_caffe(threads=1)
from caffe.proto import caffe_pb2  # noqa: E402

# Labels of any int32, and of one byte (MNIST's): most records then take the decoder's whole-chunk copy.
random_batches = st.one_of(datum_batches(caffe_pb2.Datum), datum_batches(caffe_pb2.Datum, label_values=one_byte_labels))


def field_list(message) -> list[tuple]:
    """(name, number, type, label, default) of each field, from the message's descriptor as a .proto declares it."""
    declared = descriptor_pb2.DescriptorProto()
    message.DESCRIPTOR.CopyToProto(declared)
    return [(f.name, f.number, f.type, f.label, f.default_value, f.options.packed) for f in declared.field]


def test_the_unit_tests_datum_is_caffes() -> None:
    assert field_list(datum_message()) == field_list(caffe_pb2.Datum)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(random_batches)
def test_random_batches_decode_as_caffe_pb2_parses_them(records) -> None:
    check_against_protobuf(decode_datums, DatumError, caffe_pb2.Datum, records)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(random_batches)
def test_read_db_gives_caffe_pb2s_images_from_an_lmdb(records) -> None:
    """Through the bulk LMDB read: the good records of a random batch, then the whole batch (its first bad
    record named by key)."""
    expected = expected_decode(caffe_pb2.Datum, records)
    with tempfile.TemporaryDirectory(prefix="caffepipe-test-datum-") as work:
        if expected.good:
            write_lmdb(Path(work) / "good", [(record_key(i), records[k]) for i, k in enumerate(expected.good)])
            assert_decodes_to(read_db(Path(work) / "good", "lmdb"), expected)
        write_lmdb(Path(work) / "all", [(record_key(i), record) for i, record in enumerate(records)])
        if expected.first_bad is not None:
            with pytest.raises(CaffepipeError, match=f"record {record_key(expected.first_bad)!r}: "):
                read_db(Path(work) / "all", "lmdb")
