"""Random Datum records, written and read by protobuf itself, for the tests of caffepipe's Datum decoder.

Unit tests may not import Caffe, so `datum_message()` builds caffe.proto's Datum with protobuf alone (the same
fields, numbers, types and default); tests/integration/test_datum_protobuf.py checks that it is caffe_pb2.Datum
and runs the same property with caffe_pb2 itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from hypothesis import strategies as st

Field = descriptor_pb2.FieldDescriptorProto
# caffe.proto: message Datum { optional int32 channels = 1; optional int32 height = 2; optional int32 width = 3;
# optional bytes data = 4; optional int32 label = 5; repeated float float_data = 6; optional bool encoded = 7
# [default = false]; }
DATUM_FIELDS = (
    ("channels", 1, Field.TYPE_INT32, Field.LABEL_OPTIONAL, ""),
    ("height", 2, Field.TYPE_INT32, Field.LABEL_OPTIONAL, ""),
    ("width", 3, Field.TYPE_INT32, Field.LABEL_OPTIONAL, ""),
    ("data", 4, Field.TYPE_BYTES, Field.LABEL_OPTIONAL, ""),
    ("label", 5, Field.TYPE_INT32, Field.LABEL_OPTIONAL, ""),
    ("float_data", 6, Field.TYPE_FLOAT, Field.LABEL_REPEATED, ""),
    ("encoded", 7, Field.TYPE_BOOL, Field.LABEL_OPTIONAL, "false"),
)


def datum_message() -> Any:
    """A message class with caffe_pb2.Datum's wire format, in a pool of its own."""
    file = descriptor_pb2.FileDescriptorProto(name="caffepipe_tests_datum.proto", package="caffepipe_tests",
                                              syntax="proto2")
    message = file.message_type.add(name="Datum")
    for name, number, kind, label, default in DATUM_FIELDS:
        field = message.field.add(name=name, number=number, type=kind, label=label)
        if default:
            field.default_value = default
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(file.SerializeToString())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("caffepipe_tests.Datum"))


# How a record is written: its image, its label, the order of its fields and what follows them. Most are as
# Caffe's convert_mnist_data, caffe_pb2 and build-db write every record; the others are valid Datums in other
# forms, or Datums that hold no uint8 image of the batch's shape.
IMAGES = ("batch_shape",) * 6 + ("other_shape", "wrong_length", "negative_size")
ORDERS = ("as_written",) * 4 + ("reordered",)
EXTRAS = ("none",) * 6 + ("label_twice", "unknown_field", "other_wire_type", "encoded_false", "float_data", "encoded")
# A known field with another wire type than its own: protobuf keeps it as an unknown field, the value unchanged.
OTHER_WIRE_TYPES = (b"\x2a\x01\x07", b"\x0d\x01\x00\x00\x00", b"\x20\x05", b"\x39" + bytes(8))

labels = st.one_of(st.integers(-2**31, 2**31 - 1), st.sampled_from([0, 1, 127, 128, 255, 16_383, 16_384, -1, -128,
                                                                       2**31 - 1, -2**31]))
shapes = st.tuples(st.integers(0, 3), st.integers(0, 30), st.integers(0, 30))


@st.composite
def datum_record(draw: st.DrawFn, datum: Any, shape: tuple[int, int, int], label_values: st.SearchStrategy = labels
                 ) -> bytes:
    image = draw(st.sampled_from(IMAGES))
    channels, height, width = draw(shapes) if image == "other_shape" else shape
    size = channels * height * width
    if image == "wrong_length":
        size = draw(st.integers(0, size + 3).filter(lambda n: n != channels * height * width))
    fields = dict(channels=channels, height=height, width=width, data=draw(st.binary(min_size=size, max_size=size)))
    if image == "negative_size":
        fields.update(channels=-draw(st.integers(1, 3)), height=0, data=b"")
    if draw(st.integers(0, 4)):         # one record in five has no label
        fields["label"] = draw(label_values)
    if draw(st.sampled_from(ORDERS)) == "reordered":    # each field serialized alone, concatenated: the same message
        order = draw(st.permutations(list(fields)))
        record = b"".join(datum(**{name: fields[name]}).SerializeToString() for name in order)
    else:
        record = datum(**fields).SerializeToString()
    extra = draw(st.sampled_from(EXTRAS))
    return record + {
        "none": lambda: b"",
        "label_twice": lambda: datum(label=draw(labels)).SerializeToString(),      # the last one counts
        "unknown_field": lambda: b"\x48" + bytes([draw(st.integers(0, 127))]),     # field 9, a varint
        "other_wire_type": lambda: draw(st.sampled_from(OTHER_WIRE_TYPES)),
        "encoded_false": lambda: datum(encoded=False).SerializeToString(),
        "float_data": lambda: datum(float_data=draw(st.lists(st.floats(width=32), min_size=1, max_size=3)))
        .SerializeToString(),
        "encoded": lambda: datum(encoded=True).SerializeToString(),
    }[extra]()


@st.composite
def datum_batches(draw: st.DrawFn, datum: Any, max_size: int = 40, label_values: st.SearchStrategy = labels
                  ) -> list[bytes]:
    shape = draw(shapes)
    return draw(st.lists(datum_record(datum, shape, label_values), min_size=1, max_size=max_size))


# Labels of one byte (0-127), as MNIST's and CIFAR's: most records then have the same length, the one the batch
# decoder copies in whole chunks at a time (datum.DatumRows), reordered ones and other shapes of the same size too.
one_byte_labels = st.integers(0, 127)


@dataclass
class Expected:
    """What protobuf's parse makes of a batch. The batch as a whole: the first record that is no uint8 image of
    record 0's shape (None if every one is). The records that are images of the first image's shape (`good`):
    their images and labels."""
    first_bad: int | None
    good: list[int]
    images: np.ndarray
    labels: np.ndarray


def image_of(message: Any) -> np.ndarray | None:
    """The uint8 image a parsed Datum holds, or None where it holds none."""
    dims = (message.channels, message.height, message.width)
    if message.encoded or len(message.float_data) or min(dims) < 0 or len(message.data) != np.prod(dims):
        return None
    return np.frombuffer(message.data, dtype=np.uint8).reshape(dims)


def same_shape(images: list[np.ndarray | None], shape: tuple[int, ...] | None) -> list[int]:
    return [i for i, image in enumerate(images) if image is not None and image.shape == shape]


def expected_decode(datum: Any, records: list[bytes]) -> Expected:
    messages = [datum.FromString(record) for record in records]
    images = [image_of(message) for message in messages]
    as_first = same_shape(images, images[0].shape if images[0] is not None else None)
    first_bad = next((i for i in range(len(records)) if i not in as_first), None)
    first_image = next((image for image in images if image is not None), None)
    good = same_shape(images, first_image.shape if first_image is not None else None)
    stacked = np.stack([images[i] for i in good]) if good else np.empty((0, 0, 0, 0), dtype=np.uint8)
    return Expected(first_bad, good, stacked, np.array([messages[i].label for i in good], dtype=np.int64))


def check_against_protobuf(decode: Any, error_type: type, datum: Any, records: list[bytes]) -> None:
    """decode(records) -> (images, labels) gives protobuf's images and labels exactly, or, where a record is no
    uint8 image of record 0's shape, raises error_type naming the first such record (its .index)."""
    expected = expected_decode(datum, records)
    if expected.first_bad is None:
        assert_decodes_to(decode(records), expected)
    else:
        try:
            decode(records)
        except error_type as error:
            assert error.index == expected.first_bad, (error, expected.first_bad)
        else:
            raise AssertionError(f"record {expected.first_bad} is no image of record 0's shape, yet it decoded")
    if expected.good:       # the rest of the batch: fast-path and general records side by side
        assert_decodes_to(decode([records[i] for i in expected.good]), expected)


def assert_decodes_to(decoded: tuple[np.ndarray, np.ndarray], expected: Expected) -> None:
    images, labels = decoded
    assert images.dtype == np.uint8 and labels.dtype == np.int64
    assert images.shape == expected.images.shape
    np.testing.assert_array_equal(images, expected.images)
    np.testing.assert_array_equal(labels, expected.labels)
