"""Caffe `Datum` records and the LMDB / LevelDB databases that hold them.

A Datum is a small protobuf message (caffe.proto): channels = 1, height = 2, width = 3, data = 4 (the raw
pixels), label = 5. We encode and decode it by hand: the bytes are identical to caffe_pb2's (tests check it,
and against Caffe's own convert_mnist_data), and it keeps pycaffe out of the stages that only move data.
Keys are b'%08d' % index, as convert_mnist_data writes them, so our databases and Caffe's are interchangeable.
"""
from __future__ import annotations

import shutil
import tempfile
from contextlib import closing, contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from caffepipe.core.errors import CaffepipeError

SPLITS = ("train", "test")
BACKENDS = ("lmdb", "leveldb")


def db_path(db_dir: str | Path, split: str, backend: str) -> Path:
    """Where build-db puts one split in one backend: <db_dir>/<split>_<backend> (data/db/train_lmdb, ...)."""
    if split not in SPLITS or backend not in BACKENDS:
        raise CaffepipeError(f"unknown database {split}_{backend}: splits are {SPLITS}, backends {BACKENDS}")
    return Path(db_dir) / f"{split}_{backend}"


def record_key(index: int) -> bytes:
    return b"%08d" % index


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_datum(image: np.ndarray, label: int) -> bytes:
    """Serialize one image (C, H, W) uint8 and its label as caffe_pb2.Datum would."""
    if image.dtype != np.uint8 or image.ndim != 3:
        raise CaffepipeError(f"a Datum holds a (channels, height, width) uint8 image, not {image.dtype} {image.shape}")
    if label < 0:
        raise CaffepipeError(f"label {label} is negative; Datum labels here are class indices")
    channels, height, width = image.shape
    pixels = image.tobytes()
    return b"".join((
        b"\x08", _varint(channels), b"\x10", _varint(height), b"\x18", _varint(width),
        b"\x22", _varint(len(pixels)), pixels, b"\x28", _varint(int(label)),
    ))


def _read_varint(buffer: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if position >= len(buffer):
            raise CaffepipeError("a Datum record ends inside a number; the database is corrupt")
        byte = buffer[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7


def decode_datum(record: bytes) -> tuple[np.ndarray, int]:
    """(image (C, H, W) uint8, label) from a serialized Datum of raw pixels."""
    fields: dict[int, int | bytes] = {}
    position = 0
    while position < len(record):
        tag, position = _read_varint(record, position)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == 0:
            fields[number], position = _read_varint(record, position)
        elif wire_type == 2:
            length, position = _read_varint(record, position)
            fields[number], position = record[position:position + length], position + length
        else:
            raise CaffepipeError(f"Datum field {number} has wire type {wire_type}; float_data Datums are not supported")
    if fields.get(7):
        raise CaffepipeError("this Datum holds an encoded (JPEG/PNG) image; caffepipe's databases hold raw pixels")
    channels, height, width = (int(fields.get(number, 0)) for number in (1, 2, 3))
    pixels = fields.get(4, b"")
    if len(pixels) != channels * height * width:
        raise CaffepipeError(f"Datum of {channels}x{height}x{width} holds {len(pixels)} pixel bytes; the database is corrupt")
    image = np.frombuffer(pixels, dtype=np.uint8).reshape(channels, height, width)
    return image, int(fields.get(5, 0))


# LevelDB writes to its folder whenever it is opened, even only to read: a new log file and MANIFEST, CURRENT,
# LOCK and LOG. Reading build-db's tracked output in place would change what DVC recorded for it (`dvc status`
# would show data/db modified, and `dvc repro` would rebuild everything downstream). So every LevelDB reader,
# ours and Caffe's, opens a throw-away copy. LMDB opened read-only without a lock changes nothing; Caffe's
# read-only open still writes LMDB's lock.mdb, which .dvcignore leaves out of the hash.

@contextmanager
def readable_database(path: str | Path, backend: str) -> Iterator[Path]:
    """A path to open the database from without changing `path`: a temporary copy for LevelDB."""
    path = Path(path)
    if backend != "leveldb":
        yield path
        return
    if not path.is_dir():
        raise CaffepipeError(f"{path}: no such leveldb database; run `caffepipe build-db` first")
    with tempfile.TemporaryDirectory(prefix="caffepipe-leveldb-") as work:
        copy = Path(work) / path.name
        shutil.copytree(path, copy)
        yield copy


def redirect_leveldb_sources(net: Any, work: Path) -> int:
    """Point the LevelDB Data layers of a caffe_pb2.NetParameter at copies in `work` (copied once, then shared
    by every layer reading the same database); returns how many layers were redirected."""
    redirected = 0
    for layer in net.layer:
        # backend 0 is DataParameter.LEVELDB, also Caffe's default when a prototxt leaves it out
        if layer.type == "Data" and layer.data_param.backend == 0:
            source = Path(layer.data_param.source)
            copy = work / source.name
            if not copy.exists():
                shutil.copytree(source, copy)
            layer.data_param.source = str(copy.resolve())
            redirected += 1
    return redirected


# --- reading: where every caffepipe stage opens a database -------------------------------------------------------
# A damaged database must end as one line naming it and the stage that rebuilds it, not as an lmdb or plyvel
# traceback, and not as a dead process: LMDB maps data.mdb into memory, so reading a page past the end of a
# truncated file kills the process with SIGBUS before any exception could be raised. And LevelDB's iterator
# skips a table file it cannot open without a word, so a damaged LevelDB would read as a shorter one.

REBUILD = "rebuild it with `caffepipe build-db` (or run the pipeline up to build_db)"
DATA_PARAM_BACKENDS = {0: "leveldb", 1: "lmdb"}     # caffe_pb2.DataParameter.DB


def damaged_database(path: Path, backend: str, reason: str) -> CaffepipeError:
    return CaffepipeError(f"{path}: damaged {backend} database ({reason}); {REBUILD}")


def iterate_db(path: str | Path, backend: str, in_place: bool = False) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) pairs in key order, from an LMDB or a LevelDB folder. A LevelDB is read from a copy
    unless in_place (for a copy the caller made itself).

    Any damage is a CaffepipeError naming the database and build-db. Read to the end, the records must be
    record_key(0) ... record_key(N - 1), as build-db and convert_mnist_data write them: a gap means lost records.
    """
    path = Path(path)
    if backend not in BACKENDS:
        raise CaffepipeError(f"unknown database backend {backend!r}; use one of {BACKENDS}")
    if not path.is_dir():
        raise CaffepipeError(f"{path}: no such {backend} database; run `caffepipe build-db` first")
    records = _lmdb_records(path) if backend == "lmdb" else _leveldb_records(path, in_place)
    count, first, last = 0, None, None
    with closing(records):
        for count, (key, value) in enumerate(records, start=1):
            if first is None:
                first = key
            last = key
            yield key, value
    if count and (first, last) != (record_key(0), record_key(count - 1)):
        raise damaged_database(path, backend, f"{count} records from key {first!r} to {last!r}: records are missing")


def _lmdb_records(path: Path) -> Iterator[tuple[bytes, bytes]]:
    import lmdb

    try:
        with lmdb.open(str(path), readonly=True, lock=False, readahead=True) as env:
            _check_lmdb_file_size(env, path)
            with env.begin() as txn:
                yield from txn.cursor()
    except lmdb.Error as error:       # not an LMDB, no data.mdb, a corrupt page
        raise damaged_database(path, "lmdb", str(error).removeprefix(f"{path}: ")) from None


def _check_lmdb_file_size(env: Any, path: Path) -> None:
    """data.mdb must hold every page its meta page counts (the SIGBUS above); both are read without mapping."""
    needed = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
    size = (path / "data.mdb").stat().st_size
    if size < needed:
        raise damaged_database(path, "lmdb", f"data.mdb is truncated: {size} bytes where its pages need {needed}")


def _leveldb_records(path: Path, in_place: bool) -> Iterator[tuple[bytes, bytes]]:
    import plyvel

    with nullcontext(path) if in_place else readable_database(path, "leveldb") as readable:
        try:
            db = plyvel.DB(str(readable), create_if_missing=False, paranoid_checks=True)
        except plyvel.Error as error:      # no CURRENT, a missing or corrupt MANIFEST or table file
            raise damaged_database(path, "leveldb", _leveldb_reason(error, readable, path)) from None
        try:
            count = 0
            for count, record in enumerate(db.iterator(verify_checksums=True), start=1):
                yield record
            # The iterator's silent skip (above) shows when the next record's key is looked up: Get does report it.
            if db.get(record_key(count), verify_checksums=True) is not None:
                raise damaged_database(path, "leveldb", f"record {count} exists but was skipped: a table is unreadable")
        except plyvel.Error as error:
            raise damaged_database(path, "leveldb", _leveldb_reason(error, readable, path)) from None
        finally:
            db.close()


def _leveldb_reason(error: Exception, readable: Path, path: Path) -> str:
    """plyvel's message (bytes), naming the database rather than our temporary copy of it."""
    message = error.args[0] if error.args else error
    text = message.decode(errors="replace") if isinstance(message, bytes) else str(message)
    return text.replace(str(readable), str(path))


def _decoded(path: Path, backend: str, key: bytes, value: bytes) -> tuple[np.ndarray, int]:
    try:
        return decode_datum(value)
    except CaffepipeError as error:
        raise damaged_database(path, backend, f"record {key!r}: {error}") from None


def read_db(path: str | Path, backend: str) -> tuple[np.ndarray, np.ndarray]:
    """All records as images (N, C, H, W) uint8 and labels (N,) int64."""
    images, labels = [], []
    for key, value in iterate_db(path, backend):
        image, label = _decoded(Path(path), backend, key, value)
        images.append(image)
        labels.append(label)
    if not images:
        raise CaffepipeError(f"{path}: the {backend} database is empty; run `caffepipe build-db` again")
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def check_database(path: str | Path, backend: str) -> int:
    """Read a whole database and decode its first record; returns the record count. For the stages that hand a
    database to Caffe: its Data layer meets a damaged one with a glog CHECK that aborts the process (or SIGBUS),
    naming neither the database nor the fix."""
    count = 0
    for count, (key, value) in enumerate(iterate_db(path, backend), start=1):
        if count == 1:
            _decoded(Path(path), backend, key, value)
    if not count:
        raise CaffepipeError(f"{path}: the {backend} database is empty; run `caffepipe build-db` again")
    return count


def check_data_layer_databases(net: Any) -> None:
    """check_database on every database the Data layers of a caffe_pb2.NetParameter read, before Caffe does."""
    sources = {(layer.data_param.source, DATA_PARAM_BACKENDS[layer.data_param.backend])
               for layer in net.layer if layer.type == "Data"}
    for source, backend in sorted(sources):
        check_database(source, backend)
