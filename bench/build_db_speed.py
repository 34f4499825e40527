"""How fast does build-db write the 60,000 MNIST training images into LMDB and LevelDB?

Target (issue #3): the 60,000 training images into LMDB in under 2 s on these machines. Timed next to a
baseline measured in the same invocation, so the ratio survives a noisy machine: writing the same Datum bytes
to one flat file with a single write (what any database must at least do).

    .venv/bin/python bench/build_db_speed.py --raw data/raw --repeats 5 --out bench/results/build_db_speed.md

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

from caffepipe.data.build_db import datum_records, load_split, write_leveldb, write_lmdb

TARGET_LMDB_S = 2.0


def flat_file(path: Path, records: list[tuple[bytes, bytes]]) -> None:
    with open(path, "wb") as out:
        out.write(b"".join(key + value for key, value in records))
        out.flush()
        os.fsync(out.fileno())


def timed(write, records: list[tuple[bytes, bytes]], work: Path, name: str) -> float:
    target = work / name
    start = time.perf_counter()
    write(target, records)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    start = time.perf_counter()
    images, labels = load_split(args.raw, "train", None)
    records = datum_records(images, labels)
    encode_s = time.perf_counter() - start
    writers = {"flat file (baseline)": flat_file, "LMDB": write_lmdb, "LevelDB": write_leveldb}
    seconds: dict[str, list[float]] = {name: [] for name in writers}
    for repeat in range(args.repeats):
        for name, write in writers.items():          # interleaved, so drift hits all alike
            with tempfile.TemporaryDirectory(prefix="caffepipe-bench-db-", dir=args.out.parent) as work:
                seconds[name].append(timed(write, records, Path(work), f"db-{repeat}"))
    baseline = statistics.median(seconds["flat file (baseline)"])
    lines = [f"# build-db write speed: {len(records):,} MNIST training images", "",
             f"Command: `{' '.join(['.venv/bin/python', *sys.argv])}`", "",
             f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores. Reading the IDX file "
             f"and encoding the Datum records took {encode_s:.2f} s (once). Each writer got the same records, "
             f"{args.repeats} times, interleaved; a fresh folder each time.", "",
             "| writer | median s | min – max s | × baseline | images/s |", "|---|---:|---:|---:|---:|"]
    for name, values in seconds.items():
        median = statistics.median(values)
        lines.append(f"| {name} | {median:.3f} | {min(values):.3f} – {max(values):.3f} | {median / baseline:.1f} | "
                     f"{len(records) / median:,.0f} |")
    lmdb = statistics.median(seconds["LMDB"])
    lines += ["", f"Target: LMDB under {TARGET_LMDB_S} s: {'met' if lmdb < TARGET_LMDB_S else 'NOT met'} "
              f"({lmdb:.3f} s; with the encoding, {lmdb + encode_s:.2f} s).", ""]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
