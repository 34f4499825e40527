"""The mean image of a training set as Caffe's binaryproto, the file a Data layer's transform_param mean_file reads.

Caffe's tools/compute_image_mean writes a BlobProto: num 1, channels, height, width, then `data`, the mean of
each pixel over all images, as packed float32. It adds the pixels into float32 sums one image at a time and
divides each sum by the image count in float32. The sums are whole numbers, exact in float32 while below 2^24
(65,793 images of 255): both MNIST and CIFAR-10 stay below. mean_image gives the same float32 values, and
encode_blob_proto the same bytes protobuf writes (fields in number order, `data` packed), so the file is
byte-identical to compute_image_mean's (tests/integration/test_cifar10.py checks it against the tool).
Encoded by hand, like datum.py's records, to keep pycaffe out of build-db.
"""
from __future__ import annotations

import numpy as np

from caffepipe.core.errors import CaffepipeError
from caffepipe.data.datum import _varint

MEAN_FILE = "mean.binaryproto"       # in build-db's output folder, beside the databases
EXACT_SUM_LIMIT = 1 << 24            # float32 holds every whole number up to here


def mean_image(images: np.ndarray) -> np.ndarray:
    """The float32 mean (C, H, W) of images (N, C, H, W) uint8, as compute_image_mean computes it."""
    if images.ndim != 4 or images.dtype != np.uint8 or not len(images):
        raise CaffepipeError(f"a mean image needs (N, C, H, W) uint8 images, not {images.dtype} {images.shape}")
    sums = images.sum(axis=0, dtype=np.int64)
    if sums.max(initial=0) >= EXACT_SUM_LIMIT:
        # Caffe's float32 running sum rounds beyond 2^24; summing exactly would then differ from its file.
        raise CaffepipeError(f"{len(images)} images are too many for a mean byte-identical to compute_image_mean's "
                             "(its float32 sums round); lower build_db.train_limit")
    return sums.astype(np.float32) / np.float32(len(images))


def encode_blob_proto(mean: np.ndarray) -> bytes:
    """caffe_pb2.BlobProto(num=1, channels=C, height=H, width=W, data=mean).SerializeToString()."""
    channels, height, width = mean.shape
    floats = mean.astype("<f4").tobytes()
    return b"".join((b"\x08\x01", b"\x10", _varint(channels), b"\x18", _varint(height), b"\x20", _varint(width),
                     b"\x2a", _varint(len(floats)), floats))


def decode_blob_proto(data: bytes, name: str = "mean file") -> np.ndarray:
    """The (C, H, W) float32 mean of a binaryproto as encode_blob_proto (and compute_image_mean) write it."""
    position, fields = 0, {}
    try:
        while position < len(data):
            tag = data[position]
            position += 1
            length_or_value, position = _read_varint(data, position)
            if tag == 0x2a:
                fields[5] = data[position:position + length_or_value]
                position += length_or_value
            elif tag in (0x08, 0x10, 0x18, 0x20):
                fields[tag >> 3] = length_or_value
            else:
                raise CaffepipeError(f"{name}: unexpected field tag 0x{tag:02x}")
        shape = tuple(fields[number] for number in (2, 3, 4))
        values = np.frombuffer(fields[5], dtype="<f4")
    except (KeyError, IndexError, ValueError):
        raise CaffepipeError(f"{name}: not a mean image binaryproto as build-db writes it; re-run `caffepipe build-db`") from None
    if values.size != int(np.prod(shape)):
        raise CaffepipeError(f"{name}: {values.size} values for a {shape} mean; the file is truncated")
    return values.reshape(shape).astype(np.float32)


def _read_varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, position

