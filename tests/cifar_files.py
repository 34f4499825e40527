"""CIFAR-10 in its real binary layout, generated small, for tests: the batch files (1 label byte + 3072 pixel bytes
per record, red, green and blue planes) and a cifar-10-binary.tar.gz with the official member names. The layout
is written here from the dataset's description, independently of caffepipe.data.cifar, so a round trip through
the reader checks it."""
from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np

MEMBER_FOLDER = "cifar-10-batches-bin"
TRAIN_FILES = [f"data_batch_{number}.bin" for number in range(1, 6)]
CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def synthetic_colour_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 3, 32, 32) uint8, labels (N,) uint8): noise plus a bar whose row and colour depend on the label,
    so a small net can learn it."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=count).astype(np.uint8)
    images = rng.integers(0, 60, size=(count, 3, 32, 32)).astype(np.uint8)
    for index, label in enumerate(labels):
        row = 2 + int(label) * 3
        images[index, int(label) % 3, row:row + 2, 4:28] = 255
    return images, labels


def batch_bytes(images: np.ndarray, labels: np.ndarray) -> bytes:
    return b"".join(bytes([int(label)]) + image.tobytes() for image, label in zip(images, labels))


def cifar_files(per_batch: int, test_count: int, seed: int = 0) -> dict[str, bytes]:
    """The batch files and batches.meta.txt of a dataset with `per_batch` images per training batch."""
    images, labels = synthetic_colour_images(5 * per_batch + test_count, seed)
    files = {name: batch_bytes(images[i * per_batch:(i + 1) * per_batch], labels[i * per_batch:(i + 1) * per_batch])
             for i, name in enumerate(TRAIN_FILES)}
    files["test_batch.bin"] = batch_bytes(images[5 * per_batch:], labels[5 * per_batch:])
    files["batches.meta.txt"] = ("\n".join(CLASS_NAMES) + "\n\n").encode()
    return files


def write_batches(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def archive_bytes(files: dict[str, bytes]) -> bytes:
    """A tar.gz of the files under cifar-10-batches-bin/, with a readme.html as the real one has; the same bytes
    every time (fixed times and owners)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for name, data in {**files, "readme.html": b"<html>CIFAR-10, generated for tests</html>\n"}.items():
            info = tarfile.TarInfo(f"{MEMBER_FOLDER}/{name}")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            archive.addfile(info, io.BytesIO(data))
    return gzip.compress(buffer.getvalue(), mtime=0)


def write_archive(folder: Path, files: dict[str, bytes]) -> str:
    """cifar-10-binary.tar.gz in `folder`; returns its SHA-256."""
    folder.mkdir(parents=True, exist_ok=True)
    data = archive_bytes(files)
    (folder / "cifar-10-binary.tar.gz").write_bytes(data)
    return hashlib.sha256(data).hexdigest()
