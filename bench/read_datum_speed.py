"""How fast do the pipeline's readers read and decode a database of 28x28 Datum records into arrays?

Target (issue #13): at least 1,000,000 images/s warm for the 60,000 MNIST training images in LMDB, with the
images and labels of a protobuf parse. In one invocation, interleaved, each warm (read once before timing):
- per-record reader: what read_db did before the batch decoder, iterate_db + its decode_datum per record +
  np.stack; and the same with today's decode_datum, the general parse the batch decoder falls back to;
- protobuf loop: a plain loop over an LMDB cursor, caffe_pb2.Datum.ParseFromString, then np.frombuffer into
  one preallocated array (the baseline: what anyone would write with pycaffe's protobuf classes);
- read_db: the pipeline's reader now (LMDB's values as memoryviews into its map, in chunks of datum.READ_CHUNK,
  each chunk decoded as it comes);
- and its two halves: its LMDB read alone (the same memoryviews in the same chunks, dropped: the floor for any
  decoder on py-lmdb's iterator) and its decode alone (decode_datums of the values as bytes);
- read_values: LMDB's values as bytes (what check_database reads), for the cost of a bytes object per record.
All must give the same images and labels (checked before timing).

    .venv/bin/python bench/read_datum_speed.py --raw data/raw --repeats 7 --out bench/results/read_datum_speed.md

--raw is a folder `caffepipe fetch` wrote (the four MNIST IDX files).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from caffepipe.core.caffe_env import import_caffe
from caffepipe.data.build_db import datum_records, load_split, write_lmdb
from caffepipe.data import datum
from caffepipe.data.datum import decode_datum, decode_datums, iterate_db, read_db, read_values

TARGET_IMAGES_PER_S = 1_000_000
BASELINE = "protobuf loop (baseline)"


# The per-record parse read_db used before the batch decoder (commit 6880c4c), its hot path as it was; the
# general parse that replaced it (datum.decode_datum) does more per record: int32 labels, skipped fields.
def old_read_varint(buffer: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buffer[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7


def old_decode_datum(record: bytes) -> tuple[np.ndarray, int]:
    fields: dict[int, int | bytes] = {}
    position = 0
    while position < len(record):
        tag, position = old_read_varint(record, position)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == 0:
            fields[number], position = old_read_varint(record, position)
        else:
            length, position = old_read_varint(record, position)
            fields[number], position = record[position:position + length], position + length
    channels, height, width = (int(fields.get(number, 0)) for number in (1, 2, 3))
    pixels = fields.get(4, b"")
    return np.frombuffer(pixels, dtype=np.uint8).reshape(channels, height, width), int(fields.get(5, 0))


def per_record_reader(path: Path, decode: Callable[[bytes], tuple[np.ndarray, int]]) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for _, value in iterate_db(path, "lmdb"):
        image, label = decode(value)
        images.append(image)
        labels.append(label)
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def protobuf_loop(caffe_pb2: Any, path: Path, count: int, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    import lmdb

    images, labels = np.empty((count, *shape), dtype=np.uint8), np.empty(count, dtype=np.int64)
    datum = caffe_pb2.Datum()
    with lmdb.open(str(path), readonly=True, lock=False) as env, env.begin() as txn:
        for index, (_, value) in enumerate(txn.cursor()):
            datum.ParseFromString(value)
            images[index] = np.frombuffer(datum.data, dtype=np.uint8).reshape(shape)
            labels[index] = datum.label
    return images, labels


def lmdb_read_alone(path: Path) -> int:
    """read_db's LMDB read without its decode: the values as memoryviews, in its chunks, dropped."""
    def drain(values: Any, count: int) -> int:
        return sum(len(chunk) for chunk in datum._in_chunks(values))
    return datum._read_lmdb(path, None, drain, buffers=True)


def timed(read: Callable[[], Any]) -> float:
    start = time.perf_counter()
    read()
    return time.perf_counter() - start


def check_same(results: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    reference = results[BASELINE]
    for name, (images, labels) in results.items():
        if not (np.array_equal(images, reference[0]) and np.array_equal(labels, reference[1])):
            raise SystemExit(f"{name} reads other images or labels than the protobuf loop")


def report(seconds: dict[str, list[float]], count: int, repeats: int, build_s: float) -> str:
    baseline = statistics.median(seconds[BASELINE])
    lines = [f"# Datum read speed: {count:,} MNIST training images (28x28) from LMDB, warm", "",
             f"Command: `{' '.join(['.venv/bin/python', *sys.argv])}`", "",
             f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
             f"{os.getloadavg()[0]:.1f} at the end (a shared machine: ratios hold better than absolute rates). "
             f"Writing the LMDB took {build_s:.2f} s. Each reader ran once untimed, then {repeats} times, interleaved.",
             "", "| reader | median ms | min – max ms | images/s (median) | × protobuf loop |", "|---|---:|---:|---:|---:|"]
    for name, values in seconds.items():
        median = statistics.median(values)
        lines.append(f"| {name} | {median * 1e3:.1f} | {min(values) * 1e3:.1f} – {max(values) * 1e3:.1f} | "
                     f"{count / median:,.0f} | {baseline / median:.2f} |")
    new, old = statistics.median(seconds["read_db"]), statistics.median(seconds["per-record reader (old read_db)"])
    lines += ["", f"read_db against the per-record reader it replaces: {old / new:.1f}x.",
              f"Target: read_db at least {TARGET_IMAGES_PER_S:,} images/s: "
              f"{'met' if count / new >= TARGET_IMAGES_PER_S else 'NOT met'} ({count / new:,.0f}).", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    caffe_pb2 = import_caffe(threads=1).proto.caffe_pb2
    images, labels = load_split(args.raw, "train", None)
    with tempfile.TemporaryDirectory(prefix="caffepipe-bench-read-") as work:
        path = Path(work) / "train_lmdb"
        start = time.perf_counter()
        write_lmdb(path, datum_records(images, labels))
        build_s = time.perf_counter() - start
        values = read_values(path, "lmdb")
        readers: dict[str, Callable[[], Any]] = {
            "per-record reader (old read_db)": lambda: per_record_reader(path, old_decode_datum),
            "  the same with today's general parse": lambda: per_record_reader(path, decode_datum),
            BASELINE: lambda: protobuf_loop(caffe_pb2, path, len(images), images.shape[1:]),
            "read_db": lambda: read_db(path, "lmdb"),
            "  its LMDB read alone (memoryviews in chunks)": lambda: lmdb_read_alone(path),
            "  its decode alone (decode_datums)": lambda: decode_datums(values),
            "LMDB values as bytes (read_values)": lambda: read_values(path, "lmdb"),
        }
        check_same({name: readers[name]() for name in ("per-record reader (old read_db)", BASELINE, "read_db")})
        seconds: dict[str, list[float]] = {name: [] for name in readers}
        for _ in range(args.repeats):
            for name, read in readers.items():     # interleaved, so the machine's drift hits all alike
                seconds[name].append(timed(read))
    text = report(seconds, len(images), args.repeats, build_s)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
