"""`caffepipe bench-io`: why a database instead of image files? Read the same training images every way, timed.

    caffepipe bench-io --params params.yaml --raw data/raw --db data/db --images data/images --out reports/bench

Two readers, the same images (the first export_images.count training images, as export-images wrote them):
- python: sequential read + decode into one uint8 array, from LMDB and LevelDB (Datum records), from one JPEG and
  one PNG file per image (Pillow; grey, or RGB for CIFAR-10), and from the raw file fetch wrote (the IDX array,
  or CIFAR-10's first batch file: NumPy, nothing to decode: the upper bound);
- caffe: forward passes of a net holding only its input layer: the Data layer on LMDB and on LevelDB against
  the ImageData layer on the JPEG list, through pycaffe. Each pass includes opening the source, because the
  layer's prefetch thread starts reading the moment the net exists.
Each is timed `repeats` times, warm (right after a pass, so the files sit in the page cache) and, with
bench_io.cold, cold (the files evicted with posix_fadvise(DONTNEED) first). The order rotates per repeat so
slow drift of a noisy machine spreads over every format. Writes io.csv (one row per measurement: median, min
and max), metrics.json (flat, for `dvc metrics diff`) and io.png.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from PIL import Image

from caffepipe.core import figures
from caffepipe.core.atomic import atomic_output, write_text_atomic
from caffepipe.core.caffe_env import import_caffe
from caffepipe.data.datum import check_database, db_path, read_db
from caffepipe.core.errors import CaffepipeError
from caffepipe.data import cifar
from caffepipe.data.raw_images import CIFAR_DATASETS, dataset_name, load_split, split_files
from caffepipe.pipeline.params import add_params_argument, load_params
from caffepipe.core.upstream import read_json, require

log = logging.getLogger(__name__)

IDX_HEADER_BYTES = 16     # magic + three dimensions: the pixels of train-images-idx3-ubyte start here
TRAIN_IMAGES = "train-images-idx3-ubyte"
Shape = tuple[int, int, int]    # channels, height, width
Reader = Callable[[], np.ndarray]


# --- the stores: where each format's bytes live, and how much disk they take ------------------------------------

def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def disk_usage(path: Path) -> tuple[int, int]:
    """(apparent bytes, allocated bytes): many small files waste most of each file-system block."""
    stats = [p.stat() for p in files_under(path)]
    return sum(s.st_size for s in stats), sum(s.st_blocks * 512 for s in stats)


def evict_from_page_cache(path: Path) -> bool:
    """Drop the files' pages from the page cache (a cold read). False where the OS cannot."""
    if not hasattr(os, "posix_fadvise"):
        return False
    for file in files_under(path):
        fd = os.open(file, os.O_RDONLY)
        try:
            os.fdatasync(fd)      # DONTNEED drops only clean pages
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return True


# --- python readers: each returns the images as one (count, channels, height, width) uint8 array -------------------

def read_database(path: Path, backend: str, count: int, shape: Shape) -> np.ndarray:
    """What the pipeline's own stages do (datum.read_db: all values at once, then decoded as one batch). A LevelDB
    `path` must be a copy: opening it changes its files (datum.readable_database)."""
    images, _ = read_db(path, backend, limit=count, in_place=True)
    if images.shape != (count, *shape):
        raise CaffepipeError(f"{path} gives {len(images)} images of {images.shape[1:]} where {count} of {shape} "
                             "were exported; re-run `caffepipe build-db` and `caffepipe export-images`")
    return images


def read_image_files(folder: Path, names: list[str], shape: Shape) -> np.ndarray:
    images = np.empty((len(names), *shape), dtype=np.uint8)
    for index, name in enumerate(names):
        with Image.open(folder / name) as image:
            pixels = np.asarray(image)
        images[index] = pixels.transpose(2, 0, 1) if pixels.ndim == 3 else pixels   # RGB (H, W, 3) to Caffe's CHW
    return images


@dataclass(frozen=True)
class RawLayout:
    """Where the pixels sit in the raw file: after a header, in fixed-size records (CIFAR-10: a label byte first)."""
    header_bytes: int
    record_bytes: int
    pixels_offset: int


IDX_LAYOUT = lambda shape: RawLayout(IDX_HEADER_BYTES, int(np.prod(shape)), 0)   # noqa: E731
CIFAR_LAYOUT = RawLayout(0, cifar.RECORD_BYTES, 1)


def read_raw_array(path: Path, count: int, shape: Shape, layout: RawLayout) -> np.ndarray:
    records = np.fromfile(path, dtype=np.uint8, count=count * layout.record_bytes, offset=layout.header_bytes)
    pixels = records.reshape(count, layout.record_bytes)[:, layout.pixels_offset:layout.pixels_offset + int(np.prod(shape))]
    return pixels.reshape(count, *shape)


# --- caffe readers: forward passes of a net that holds only its input layer ---------------------------------------

def input_net_prototxt(caffe: Any, kind: str, source: Path, batch_size: int, root_folder: Path | None = None,
                       color: bool = False) -> str:
    layers, params = caffe.layers, caffe.params
    net = caffe.NetSpec()
    if kind == "imagedata":
        net.data, net.label = layers.ImageData(source=str(source), root_folder=f"{root_folder}/", batch_size=batch_size,
                                               is_color=color, shuffle=False, ntop=2)
    else:
        backend = {"lmdb": params.Data.LMDB, "leveldb": params.Data.LEVELDB}[kind]
        net.data, net.label = layers.Data(source=str(source), backend=backend, batch_size=batch_size, ntop=2)
    return str(net.to_proto())


def caffe_reader(caffe: Any, prototxt: str, batches: int, work: Path) -> Reader:
    path = work / f"net-{abs(hash(prototxt))}.prototxt"
    path.write_text(prototxt)

    def read() -> np.ndarray:
        net = caffe.Net(str(path), caffe.TEST)
        for _ in range(batches):
            net.forward()
        return net.blobs["data"].data
    return read


# --- timing --------------------------------------------------------------------------------------------------------

def time_once(read: Reader) -> float:
    started = time.perf_counter()
    read()
    return time.perf_counter() - started


def summarize(reader: str, source: str, cache: str, images: int, seconds: list[float], usage: tuple[int, int],
              records: int) -> dict[str, Any]:
    """One row of io.csv: throughput from the median time, its spread from the fastest and slowest repeat."""
    median = statistics.median(seconds)
    return {
        "format": f"{source} ({reader}, {cache})", "reader": reader, "source": source, "cache": cache,
        "images": images, "repeats": len(seconds), "seconds_median": median, "seconds_min": min(seconds),
        "seconds_max": max(seconds), "images_per_s": images / median, "images_per_s_min": images / max(seconds),
        "images_per_s_max": images / min(seconds), "bytes_per_image": usage[0] / records,
        "disk_bytes_per_image": usage[1] / records,
    }


def run_benchmark(readers: dict[tuple[str, str], tuple[Reader, Path, int]], stores: dict[str, tuple[Path, int]],
                  repeats: int, cold: bool) -> pd.DataFrame:
    """readers: (reader, source) -> (read function, path it reads, images per pass); stores: source -> (path, records).

    Every reader gets a warm-up pass first (imports, Caffe start-up), then per repeat a cold pass (when asked)
    followed at once by a warm pass.
    """
    caches = ("cold", "warm") if cold else ("warm",)
    times: dict[tuple[str, str, str], list[float]] = {(r, s, c): [] for (r, s) in readers for c in caches}
    keys = list(readers)
    for read, _, _ in readers.values():
        read()
    for repeat in range(repeats):
        shift = repeat % len(keys)
        for reader, source in keys[shift:] + keys[:shift]:
            read, path, _ = readers[reader, source]
            if cold:
                evict_from_page_cache(path)
                times[reader, source, "cold"].append(time_once(read))
            times[reader, source, "warm"].append(time_once(read))
        log.info("repeat %d/%d done", repeat + 1, repeats)
    rows = []
    for (reader, source, cache), seconds in times.items():
        path, records = stores[source]
        rows.append(summarize(reader, source, cache, readers[reader, source][2], seconds, disk_usage(path), records))
    return pd.DataFrame(rows)


def headline_metrics(table: pd.DataFrame, decode_check: dict[str, float]) -> dict[str, float]:
    """Flat numbers for `dvc metrics diff`: every throughput, bytes per image, and LMDB's lead over JPEG files."""
    metrics: dict[str, float] = {"images": int(table["images"].max())}
    for row in table.itertuples():
        metrics[f"{row.reader}_{row.source}_{row.cache}_images_per_s"] = round(row.images_per_s, 1)
    for row in table.drop_duplicates("source").itertuples():
        metrics[f"{row.source}_bytes_per_image"] = round(row.bytes_per_image, 1)
        metrics[f"{row.source}_disk_bytes_per_image"] = round(row.disk_bytes_per_image, 1)
    for reader in ("python", "caffe"):
        for cache in table["cache"].unique():
            rate = {r.source: r.images_per_s for r in table.itertuples() if r.reader == reader and r.cache == cache}
            if "lmdb" in rate and "jpeg" in rate:
                metrics[f"{reader}_lmdb_over_jpeg_{cache}"] = round(rate["lmdb"] / rate["jpeg"], 2)
    metrics.update({key: round(value, 4) for key, value in decode_check.items()})
    return metrics


def draw_figure(table: pd.DataFrame, path: Path) -> None:
    """One panel per reader on one log axis: images/s per format, cold and warm bars, whiskers from min to max."""
    from matplotlib.ticker import NullFormatter  # noqa: PLC0415

    figures.apply_style()
    readers = [r for r in ("python", "caffe") if r in set(table["reader"])]
    fig, axes = figures.plt.subplots(1, len(readers), figsize=(6.5 * len(readers), 3.8), squeeze=False, sharex=True)
    titles = {"python": "Python: read + decode to uint8", "caffe": "Caffe: input-layer forward"}
    caches = sorted(table["cache"].unique())
    colors = dict(zip(caches, figures.sns.color_palette(figures.PALETTE)))
    for ax, reader in zip(axes[0], readers):
        rows = table[table["reader"] == reader].sort_values("images_per_s")
        sources = list(dict.fromkeys(rows["source"]))
        height = 0.8 / len(caches)
        for offset, cache in enumerate(caches):
            part = rows[rows["cache"] == cache].set_index("source").reindex(sources)
            y = np.arange(len(sources)) + (offset - (len(caches) - 1) / 2) * height
            error = [part["images_per_s"] - part["images_per_s_min"], part["images_per_s_max"] - part["images_per_s"]]
            ax.barh(y, part["images_per_s"], height=height, xerr=error, color=colors[cache], label=cache, capsize=2)
            for position, rate, top in zip(y, part["images_per_s"], part["images_per_s_max"]):
                ax.text(top * 1.2, position, f"{rate:,.0f}", va="center", fontsize=7)
        ax.set_yticks(np.arange(len(sources)), sources)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("images per second (median; whiskers: min to max)")
        ax.set_title(titles[reader])
    axes[0][0].set_xlim(right=table["images_per_s_max"].max() * 8)     # room for the value labels
    axes[0][-1].legend(title="page cache", loc="lower right", fontsize=8)
    fig.tight_layout()
    figures.save_figure(fig, path)


# --- the stage -----------------------------------------------------------------------------------------------------

def build_readers(raw: Path, db: Path, images: Path, params: dict[str, Any], work: Path
                  ) -> tuple[dict[tuple[str, str], tuple[Reader, Path, int]], dict[str, tuple[Path, int]], dict]:
    manifest = read_json(images / "manifest.json", "export-images")
    info = read_json(db / "info.json", "build-db")
    count, shape = manifest["count"], (manifest.get("channels", 1), manifest["height"], manifest["width"])
    if count > info["train"]:
        raise CaffepipeError(f"{images} holds {count} images but {db} only {info['train']} training records; "
                             "lower export_images.count or raise build_db.train_limit")
    lists = {name: (images / spec["folder"], (images / spec["list"]).read_text().split("\n")[:count])
             for name, spec in manifest["formats"].items()}
    names = {name: [line.split()[0] for line in lines] for name, (_, lines) in lists.items()}
    # the raw file fetch wrote: the whole IDX array, or CIFAR-10's first training batch
    raw_file = split_files(raw, "train")[0]
    layout = CIFAR_LAYOUT if dataset_name(raw) in CIFAR_DATASETS else IDX_LAYOUT(shape)
    raw_records = (raw_file.stat().st_size - layout.header_bytes) // layout.record_bytes
    if count > raw_records:
        raise CaffepipeError(f"{raw_file} holds {raw_records} images, fewer than the {count} exported; lower export_images.count")
    stores = {"numpy": (raw_file, raw_records)}
    stores.update({backend: (db_path(db, "train", backend), info["train"]) for backend in info["backends"]})
    stores.update({name: (folder, count) for name, (folder, _) in lists.items()})

    # Each database read whole before anything is timed, and before Caffe's Data layer, which aborts on a damaged one.
    for backend in info["backends"]:
        check_database(stores[backend][0], backend)
    # The readers read LevelDB from a copy (datum.readable_database says why); the stores are what is measured on disk.
    read_paths = {backend: stores[backend][0] for backend in info["backends"]}
    if "leveldb" in read_paths:
        read_paths["leveldb"] = work / "train_leveldb"
        shutil.copytree(stores["leveldb"][0], read_paths["leveldb"])
    readers: dict[tuple[str, str], tuple[Reader, Path, int]] = {
        ("python", "numpy"): (lambda: read_raw_array(raw_file, count, shape, layout), raw_file, count)}
    for backend in info["backends"]:
        path = read_paths[backend]
        readers["python", backend] = (lambda p=path, b=backend: read_database(p, b, count, shape), path, count)
    for name in names:
        folder = stores[name][0]
        readers["python", name] = (lambda f=folder, n=names[name]: read_image_files(f, n, shape), folder, count)

    batch_size = params["caffe_batch_size"]
    batches = max(1, min(params["caffe_batches"], count // batch_size))   # never wrap around to re-read images
    caffe = import_caffe(threads=1)
    for backend in info["backends"]:
        prototxt = input_net_prototxt(caffe, backend, read_paths[backend], batch_size)
        readers["caffe", backend] = (caffe_reader(caffe, prototxt, batches, work), read_paths[backend], batches * batch_size)
    if "jpeg" in manifest["formats"]:
        folder = stores["jpeg"][0]
        prototxt = input_net_prototxt(caffe, "imagedata", images / manifest["formats"]["jpeg"]["list"], batch_size, folder,
                                      color=shape[0] == 3)
        readers["caffe", "jpeg"] = (caffe_reader(caffe, prototxt, batches, work), folder, batches * batch_size)
    return readers, stores, manifest


def decode_agreement(readers: dict[tuple[str, str], tuple[Reader, Path, int]]) -> dict[str, float]:
    """Every Python reader must return the same pixels as the raw array (JPEG: close, it is lossy)."""
    reference = readers["python", "numpy"][0]().astype(np.int16)
    check = {}
    for (reader, source), (read, _, _) in readers.items():
        if reader != "python" or source == "numpy":
            continue
        error = float(np.abs(read().astype(np.int16) - reference).mean())
        if source != "jpeg" and error:
            raise CaffepipeError(f"{source} decodes to different pixels than the raw file (mean error {error}); "
                                 "rebuild it with `caffepipe build-db` / `caffepipe export-images`")
        check[f"{source}_mean_abs_pixel_error"] = error
    return check


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="caffepipe bench-io", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_params_argument(parser)
    parser.add_argument("--raw", type=Path, required=True, help="folder of what fetch wrote (data/raw)")
    parser.add_argument("--db", type=Path, required=True, help="folder of the databases (data/db)")
    parser.add_argument("--images", type=Path, required=True, help="folder of the image files (data/images)")
    parser.add_argument("--out", type=Path, required=True, help="folder for io.csv, metrics.json, io.png")
    args = parser.parse_args(argv)
    params = load_params(args.params)["bench_io"]
    require(split_files(args.raw, "train")[0], "fetch")
    load_split(args.raw, "train")       # a clear error if a file is missing, truncated or corrupt
    with tempfile.TemporaryDirectory(prefix="caffepipe-bench-io-") as work:
        readers, stores, manifest = build_readers(args.raw, args.db, args.images, params, Path(work))
        check = decode_agreement(readers)
        table = run_benchmark(readers, stores, params["repeats"], params["cold"])
    metrics = headline_metrics(table, check)
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_output(args.out / "io.csv") as temporary:
        table.to_csv(temporary, index=False, float_format="%.6g")
    write_text_atomic(args.out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    draw_figure(table, args.out / "io.png")
    print(f"read {manifest['count']} images {len(table)} ways into {args.out}: "
          f"LMDB {metrics.get('python_lmdb_over_jpeg_warm', float('nan'))}x JPEG files in Python (warm)")
    return 0
