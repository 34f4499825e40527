"""`caffepipe build-db`: the Caffe databases the Data layers read, in LMDB and LevelDB.

    caffepipe build-db --params params.yaml --raw data/raw --out data/db

Writes, into --out: train_lmdb/, test_lmdb/, train_leveldb/, test_leveldb/ (the backends in params
build_db.backends), each holding one Datum record per image (raw uint8 pixels, channels x height x width, and the
label), exactly as Caffe's own converters write them: 1x28x28 under the key b'%08d' % index for MNIST and
Fashion-MNIST (convert_mnist_data), 3x32x32 under b'%05d' % index for CIFAR-10 (convert_cifar_data: the five
training batches in order, then the test batch); mean.binaryproto, the mean training image as Caffe's
compute_image_mean writes it (data/mean_image.py), for the nets' transform_param; and info.json (record counts,
image shape, and the dataset named in fetch's source.json, for class names). build_db.train_limit /
test_limit keep only the first N images (tiny runs).

With build_db.train_pad = P > 0 it also writes train_padded_<backend>: every training image with a border of P
black pixels (28x28 -> 32x32 for P = 2), same keys and order. The models in netgen.random_shift train on random
28x28 crops of it (Caffe's transform_param crop_size), i.e. on the digit shifted by up to P pixels each way.
Their test and deploy nets read the plain 28x28 images, uncropped, so every stage after training sees the same
inputs whichever way a model was trained.

The whole folder is built beside the old one and swapped in when complete: an interrupted build leaves the
previous databases (or nothing), never a database that looks complete and is not.

The same IDX files always give the same bytes, file for file, so DVC's hash of --out stays the same and nothing
below build-db re-runs when it was rebuilt for nothing. LMDB is written by one transaction into a fresh file,
without a lock file (nobody else can open the temporary folder). LevelDB gets the records in key order, so its
memtable flushes (one for MNIST's size, at compact_range) make tables that never overlap and are only moved, never
merged: the same file names and bytes whatever the timing of its background thread. Its LOG and LOG.old, text
logs with timestamps that LevelDB needs neither to open nor to read a database, are removed.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from caffepipe.core.atomic import atomic_output
from caffepipe.data import cifar
from caffepipe.data.datum import KEY_DIGITS, PADDED_TRAIN, SPLITS, db_path, encode_datum, record_key
from caffepipe.core.errors import CaffepipeError
from caffepipe.data.mean_image import MEAN_FILE, encode_blob_proto, mean_image
from caffepipe.data.raw_images import CIFAR_DATASETS, dataset_name, load_split
from caffepipe.pipeline.params import add_params_argument, load_params

log = logging.getLogger(__name__)

LEVELDB_BATCH = 10_000             # records per LevelDB write batch
# Caffe's own LevelDB write buffer (db_leveldb.cpp). A split that fits in it is flushed once, so rebuilds are
# byte-identical (MNIST's 60,000 training records take about 50 MB, CIFAR-10's 50,000 about 155 MB). A larger one flushes several tables, and
# LevelDB's background compaction then numbers files by timing: its records stay identical, its files may not.
LEVELDB_WRITE_BUFFER = 256 << 20
LEVELDB_INFO_LOGS = ("LOG", "LOG.old")   # LevelDB's diagnostic text logs, timestamped


def datum_records(images: np.ndarray, labels: np.ndarray, key_digits: int = KEY_DIGITS) -> list[tuple[bytes, bytes]]:
    return [(record_key(index, key_digits), encode_datum(image, int(label)))
            for index, (image, label) in enumerate(zip(images, labels))]


def lmdb_map_size(records: list[tuple[bytes, bytes]]) -> int:
    """Room for the records with LMDB's page overhead: twice their size, plus 16 MiB, whole MiB."""
    payload = sum(len(key) + len(value) for key, value in records)
    return ((2 * payload + (16 << 20)) >> 20) << 20


def write_lmdb(path: Path, records: list[tuple[bytes, bytes]]) -> None:
    import lmdb

    # No lock file: only this build sees the temporary folder, and lock.mdb's bytes differ from run to run.
    # Pages are zero-filled before use (meminit), so unused bytes hold no leftover memory either.
    with lmdb.open(str(path), map_size=lmdb_map_size(records), subdir=True, sync=False, lock=False, meminit=True) as env:
        with env.begin(write=True) as txn:      # one transaction: all records, or none
            cursor = txn.cursor()
            stored, _ = cursor.putmulti(records, append=True)   # keys are written in order
        env.sync(True)
    if stored != len(records):
        raise CaffepipeError(f"{path}: LMDB stored {stored} of {len(records)} records")


def write_leveldb(path: Path, records: list[tuple[bytes, bytes]]) -> None:
    import plyvel

    db = plyvel.DB(str(path), create_if_missing=True, error_if_exists=True, write_buffer_size=LEVELDB_WRITE_BUFFER)
    try:
        for start in range(0, len(records), LEVELDB_BATCH):
            with db.write_batch(sync=False) as batch:
                for key, value in records[start:start + LEVELDB_BATCH]:
                    batch.put(key, value)
        db.compact_range()
    finally:
        db.close()
    for name in LEVELDB_INFO_LOGS:
        (path / name).unlink(missing_ok=True)


WRITERS = {"lmdb": write_lmdb, "leveldb": write_leveldb}


def padded(images: np.ndarray, pad: int) -> np.ndarray:
    """Images (N, C, H, W) with `pad` black (0) pixels added on each side of every image."""
    return np.pad(images, ((0, 0), (0, 0), (pad, pad), (pad, pad)))


def write_split(folder: Path, name: str, backends: list[str], records: list[tuple[bytes, bytes]]) -> None:
    for backend in backends:
        started = time.perf_counter()
        WRITERS[backend](db_path(folder, name, backend), records)
        log.info("%s_%s: %d records in %.2f s", name, backend, len(records), time.perf_counter() - started)


def build_databases(raw: Path, out: Path, backends: list[str], limits: dict[str, int | None], train_pad: int = 0) -> dict:
    dataset = dataset_name(raw)
    key_digits = cifar.KEY_DIGITS if dataset in CIFAR_DATASETS else KEY_DIGITS
    info: dict = {"dataset": dataset, "backends": list(backends), "mean_file": MEAN_FILE, "train_pad": train_pad}
    with atomic_output(out, directory=True) as folder:
        for split in SPLITS:
            images, labels = load_split(raw, split, limits[split])
            if split == "train":
                (folder / MEAN_FILE).write_bytes(encode_blob_proto(mean_image(images)))
                if train_pad:
                    write_split(folder, PADDED_TRAIN, backends, datum_records(padded(images, train_pad), labels, key_digits))
            records = datum_records(images, labels, key_digits)
            write_split(folder, split, backends, records)
            info[split] = len(records)
            info["channels"], info["height"], info["width"] = (int(size) for size in images.shape[1:])
            info[f"{split}_label_counts"] = np.bincount(labels, minlength=10).tolist()
        (folder / "info.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="caffepipe build-db", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_params_argument(parser)
    parser.add_argument("--raw", type=Path, required=True, help="folder of what fetch wrote: IDX files or CIFAR-10 batches (data/raw)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the databases (data/db)")
    args = parser.parse_args(argv)
    params = load_params(args.params)["build_db"]
    limits = {"train": params["train_limit"], "test": params["test_limit"]}
    info = build_databases(args.raw, args.out, params["backends"], limits, params["train_pad"])
    print(f"built {', '.join(params['backends'])} databases in {args.out}: {info['train']} train, {info['test']} test records")
    return 0
