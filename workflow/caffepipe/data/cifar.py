"""CIFAR-10's binary version: the archive, its batch files, and the images in them.

The official archive, cifar-10-binary.tar.gz, holds a folder cifar-10-batches-bin/ with five training batches
(data_batch_1.bin .. data_batch_5.bin), one test batch (test_batch.bin), the class names (batches.meta.txt, one
per line) and a readme.html. Each batch is a flat run of records of 1 + 3072 bytes: the label (0..9), then the
32x32 image as three planes, red, green, blue, each row by row. That is already Caffe's Datum layout (channels,
height, width), so a record's pixel bytes become a Datum's data unchanged, as Caffe's own
examples/cifar10/convert_cifar_data.cpp writes them.

The official batches hold 10,000 records each; this module reads any whole number of records, so a small file in
the same layout (the tests' generated one, a subset of your own) goes through the same code.
"""
from __future__ import annotations

import io
import tarfile
import zlib
from pathlib import Path

import numpy as np

from caffepipe.core.errors import CaffepipeError

ARCHIVE = "cifar-10-binary.tar.gz"
# The official archive (https://www.cs.toronto.edu/~kriz/cifar.html): 170,052,171 bytes, MD5
# c32a1d4ab5d03f1284b67883e8d87530 as that page publishes it; the SHA-256 is the one TensorFlow Datasets and
# other loaders pin for the same file, and records of the MD5 and SHA-256 of one download agree.
ARCHIVE_SHA256 = "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"
ARCHIVE_FOLDER = "cifar-10-batches-bin"
TRAIN_BATCHES = tuple(f"data_batch_{number}.bin" for number in range(1, 6))
TEST_BATCH = "test_batch.bin"
META = "batches.meta.txt"
FILES = (*TRAIN_BATCHES, TEST_BATCH, META)   # what fetch writes into data/raw
SPLIT_FILES = {"train": TRAIN_BATCHES, "test": (TEST_BATCH,)}

IMAGE_SHAPE = (3, 32, 32)                    # channels (R, G, B), height, width: Caffe's Datum order
RECORD_BYTES = 1 + int(np.prod(IMAGE_SHAPE))
CLASSES = 10
OFFICIAL_RECORDS_PER_BATCH = 10_000
# convert_cifar_data writes the keys with caffe::format_int(index, 5): b"00000" .. b"49999"
KEY_DIGITS = 5


def parse_batch(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 of one batch file; CaffepipeError if it is cut short,
    empty or holds a label that is no CIFAR-10 class."""
    if not data or len(data) % RECORD_BYTES:
        records, extra = divmod(len(data), RECORD_BYTES)
        raise CaffepipeError(f"{name}: {len(data)} bytes is not a whole number of {RECORD_BYTES}-byte CIFAR-10 records "
                             f"({records} records and {extra} bytes); the file is truncated or no CIFAR-10 batch")
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD_BYTES)
    labels = records[:, 0].astype(np.int64)
    if labels.max() >= CLASSES:
        first = int(np.argmax(labels >= CLASSES))
        raise CaffepipeError(f"{name}: record {first} has label {labels[first]}, CIFAR-10 has classes 0..{CLASSES - 1}; "
                             "the file is corrupt or no CIFAR-10 batch (CIFAR-100's records have 2 label bytes)")
    return records[:, 1:].reshape(-1, *IMAGE_SHAPE), labels


def encode_batch(images: np.ndarray, labels: np.ndarray) -> bytes:
    """The batch file bytes of images (N, 3, 32, 32) uint8 and their labels: the inverse of parse_batch."""
    records = np.empty((len(images), RECORD_BYTES), dtype=np.uint8)
    records[:, 0] = labels
    records[:, 1:] = images.reshape(len(images), -1)
    return records.tobytes()


def archive_members(data: bytes, origin: str) -> dict[str, bytes]:
    """FILES from a cifar-10-binary.tar.gz's bytes, by name; CaffepipeError naming the first one missing."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            found = {Path(member.name).name: archive.extractfile(member).read() for member in archive.getmembers()
                     if member.isfile() and Path(member.name).parent.name == ARCHIVE_FOLDER
                     and Path(member.name).name in FILES}
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise CaffepipeError(f"{origin}: not a readable tar.gz archive ({' '.join(str(error).split())})") from None
    missing = [name for name in FILES if name not in found]
    if missing:
        raise CaffepipeError(f"{origin}: the archive has no {ARCHIVE_FOLDER}/{missing[0]}; it is not CIFAR-10's binary version")
    return found


def class_names(meta: bytes) -> list[str]:
    """The class names of batches.meta.txt, one per line."""
    return [line.strip() for line in meta.decode("ascii", errors="replace").splitlines() if line.strip()]


def load_split(raw: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) and labels (N,) of one split from the batch files fetch wrote, batches in order."""
    parts = []
    for name in SPLIT_FILES[split]:
        path = raw / name
        try:
            parts.append(parse_batch(path.read_bytes(), str(path)))
        except FileNotFoundError:
            raise CaffepipeError(f"{path}: no such CIFAR-10 batch file; run `caffepipe fetch`") from None
        except CaffepipeError as error:
            raise CaffepipeError(f"{error}; re-run `caffepipe fetch`") from None
    return np.concatenate([images for images, _ in parts]), np.concatenate([labels for _, labels in parts])
