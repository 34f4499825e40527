"""Caffe `Datum` records and the LMDB / LevelDB databases that hold them.

A Datum is a small protobuf message (caffe.proto): channels = 1, height = 2, width = 3, data = 4 (the raw
pixels), label = 5. We encode and decode it by hand: the bytes are identical to caffe_pb2's (tests check it,
and against Caffe's own convert_mnist_data), and it keeps pycaffe out of the stages that only move data.
Keys are b'%08d' % index, as convert_mnist_data writes them, so our databases and Caffe's are interchangeable.

The stages read a database whole (read_db): LMDB's values from one C iterator, without the keys, as memoryviews
into LMDB's map (no bytes object per record), decoded a chunk at a time as one batch (DatumRows): about 2 million
28x28 images/s warm on a 2-core AMD EPYC VM, 3.7x a plain caffe_pb2 loop (bench/results/read_datum_speed.md).
About half of that time is py-lmdb's iterator itself.
"""
from __future__ import annotations

import shutil
import tempfile
from contextlib import closing, contextmanager, nullcontext
from pathlib import Path
from itertools import islice
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np

from caffepipe.core.errors import CaffepipeError

SPLITS = ("train", "test")
# The training images with a zero border (build_db.train_pad), for the nets that train on random shifts of them
# (netgen.random_shift): the same records, keys and order as "train", only larger.
PADDED_TRAIN = "train_padded"
T = TypeVar("T")
BACKENDS = ("lmdb", "leveldb")


def db_path(db_dir: str | Path, split: str, backend: str) -> Path:
    """Where build-db puts one split in one backend: <db_dir>/<split>_<backend> (data/db/train_lmdb, ...)."""
    if split not in (*SPLITS, PADDED_TRAIN) or backend not in BACKENDS:
        raise CaffepipeError(f"unknown database {split}_{backend}: splits are {SPLITS} and {PADDED_TRAIN}, backends {BACKENDS}")
    return Path(db_dir) / f"{split}_{backend}"


KEY_DIGITS = 8           # convert_mnist_data's keys; convert_cifar_data writes 5 digits (data/cifar.py)


def record_key(index: int, digits: int = KEY_DIGITS) -> bytes:
    return b"%0*d" % (digits, index)


def key_digits(first_key: bytes | None) -> int:
    """How many digits a database's keys have, from its first key (record_key(0) of some width)."""
    return len(first_key) if first_key else KEY_DIGITS


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


LABEL_TAG = 0x28        # field 5 (label), wire type 0 (varint)


def datum_header(shape: tuple[int, ...]) -> bytes:
    """The bytes before the pixels of a (channels, height, width) Datum, as encode_datum, caffe_pb2 and Caffe's
    convert_mnist_data write them: channels, height, width, then the data field's tag and length."""
    channels, height, width = shape
    return b"".join((b"\x08", _varint(channels), b"\x10", _varint(height), b"\x18", _varint(width),
                     b"\x22", _varint(channels * height * width)))


def encode_datum(image: np.ndarray, label: int) -> bytes:
    """Serialize one image (C, H, W) uint8 and its label as caffe_pb2.Datum would."""
    if image.dtype != np.uint8 or image.ndim != 3:
        raise CaffepipeError(f"a Datum holds a (channels, height, width) uint8 image, not {image.dtype} {image.shape}")
    if label < 0:
        raise CaffepipeError(f"label {label} is negative; Datum labels here are class indices")
    return b"".join((datum_header(image.shape), image.tobytes(), bytes((LABEL_TAG,)), _varint(int(label))))


# --- decoding one record: the general parse ----------------------------------------------------------------------
# It reads what protobuf reads: fields in any order, a field given twice (the last one counts), a field missing
# (0), varints of any form up to protobuf's 10 bytes, int32 fields keeping their low 32 bits (a negative label is
# a 10-byte varint), and unknown fields or known ones with another wire type skipped. It refuses what is no
# image of uint8 pixels (float_data, an encoded JPEG/PNG) and what protobuf could not parse either. Groups (wire
# types 3 and 4, deprecated since proto2 and never in a Datum) count as damage.

DATUM_WIRE_TYPES = {1: 0, 2: 0, 3: 0, 4: 2, 5: 0, 7: 0}    # caffe.proto's Datum: field number -> wire type
FLOAT_DATA = 6                                              # repeated float: wire type 5, or 2 when packed
MAX_VARINT_BYTES = 10


def _read_varint(buffer: bytes, position: int) -> tuple[int, int]:
    value = 0
    for shift in range(0, 7 * MAX_VARINT_BYTES, 7):
        if position >= len(buffer):
            raise CaffepipeError("a Datum record ends inside a number; the database is corrupt")
        byte = buffer[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
    raise CaffepipeError(f"a Datum record holds a number longer than {MAX_VARINT_BYTES} bytes; the database is corrupt")


def _int32(value: int) -> int:
    """An int32 field as protobuf reads it from a varint: the low 32 bits, signed."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >> 31 else value


def _field_value(record: bytes, position: int, wire_type: int) -> tuple[int | bytes, int]:
    """The value of the field whose tag ends at `position`, and where the next tag starts."""
    if wire_type == 0:
        return _read_varint(record, position)
    if wire_type == 2:
        length, position = _read_varint(record, position)
        end = position + length
    elif wire_type in (1, 5):        # fixed64, fixed32
        end = position + (8 if wire_type == 1 else 4)
    else:
        raise CaffepipeError(f"a Datum field has wire type {wire_type}; the database is corrupt")
    if end > len(record):
        raise CaffepipeError("a Datum record ends inside a field; the database is corrupt")
    return record[position:end], end


def _datum_fields(record: bytes) -> dict[int, int | bytes]:
    fields: dict[int, int | bytes] = {}
    position = 0
    while position < len(record):
        tag, position = _read_varint(record, position)
        number, wire_type = tag >> 3, tag & 7
        if not number:
            raise CaffepipeError("a Datum record holds a field numbered 0; the database is corrupt")
        value, position = _field_value(record, position, wire_type)
        if number == FLOAT_DATA and (wire_type == 5 or (wire_type == 2 and value)):
            raise CaffepipeError("this Datum holds float_data; caffepipe's databases hold uint8 pixels")
        if DATUM_WIRE_TYPES.get(number) == wire_type:
            fields[number] = value
    return fields


def decode_datum(record: bytes) -> tuple[np.ndarray, int]:
    """(image (C, H, W) uint8, label) from a serialized Datum of raw pixels."""
    fields = _datum_fields(record)
    if fields.get(7):
        raise CaffepipeError("this Datum holds an encoded (JPEG/PNG) image; caffepipe's databases hold raw pixels")
    channels, height, width = (_int32(int(fields.get(number, 0))) for number in (1, 2, 3))
    pixels = fields.get(4, b"")
    if min(channels, height, width) < 0 or len(pixels) != channels * height * width:
        raise CaffepipeError(f"Datum of {channels}x{height}x{width} holds {len(pixels)} pixel bytes; the database is corrupt")
    image = np.frombuffer(pixels, dtype=np.uint8).reshape(channels, height, width)
    return image, _int32(int(fields.get(5, 0)))


# --- decoding many records at once: the fast path ----------------------------------------------------------------
# Parsing record by record costs about 2 µs each in Python, more than reading it from LMDB. But the records of a
# database are alike: Caffe, caffe_pb2 and build-db write every Datum of one shape as the same header (datum_header),
# the pixels, the label's tag and the label's varint. So the records of a chunk are copied into the rows of one
# array, each row checked against that layout with a few NumPy comparisons, and the pixels and labels of the rows
# that match taken as columns. A row that does not match (another field order, a missing label, a record with other
# fields) goes through decode_datum, which gives what protobuf gives: the fast path is only a shortcut to the same
# result, never a different answer (tests/unit/test_datum_batch.py checks it against protobuf on random records).
#
# The rows: where a chunk's records all have one length (every label of the same varint size: MNIST's 0-9 are one
# byte each), one bytes.join lays them end to end, already rows of that length, and that join also takes LMDB's
# memoryviews without a bytes object per record (read_db). Otherwise each record is copied into a row zero-padded
# (or cut) to the longest record the layout allows, and the lengths tell which rows ended where the layout says.


class DatumError(CaffepipeError):
    """Record `index` of a batch is no Datum of uint8 pixels, or differs in shape from record 0."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"record {index}: {reason}")
        self.index, self.reason = index, reason


Record = bytes | memoryview      # read_db hands over memoryviews into LMDB's map; read_values, bytes
# Records read, then copied into the rows, at a time: 200 kB of 28x28 Datums, in the CPU cache. And few enough
# that a chunk of LMDB's memoryviews (two objects each, tracked by Python's garbage collector) stays under the
# collector's threshold (700): in chunks of 4096, its collections made reading them 1.6x slower.
READ_CHUNK = 256


def _decode_record(record: Record, index: int) -> tuple[np.ndarray, int]:
    try:
        return decode_datum(bytes(record))
    except CaffepipeError as error:
        raise DatumError(index, str(error)) from None


def _varint_columns(columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(size in bytes, int32 value) of the varint at the start of each row of zero-padded records. The value is
    right only for a row that ends with its varint, which is all _rows_in_layout keeps: the zero padding after it
    adds nothing, and a row whose bytes all carry the continuation bit (size 1 here) is longer than 1 + 1 byte."""
    sizes = (columns >= 0x80).argmin(axis=1) + 1    # the first byte without the continuation bit ends it
    low = (columns[:, :5] & 0x7F).astype(np.int64) << (7 * np.arange(5))     # five bytes hold the low 32 bits
    return sizes, (low.sum(axis=1) & 0xFFFFFFFF).astype(np.uint32).view(np.int32).astype(np.int64)


def _header_matches(rows: np.ndarray, header: bytes, pixels_end: int) -> np.ndarray:
    """Which rows start with the header and have the label's tag right after the pixels."""
    matches = (rows[:, :len(header)] == np.frombuffer(header, dtype=np.uint8)).all(axis=1)
    return matches & (rows[:, pixels_end] == LABEL_TAG)


def _rows_in_layout(rows: np.ndarray, lengths: np.ndarray, header: bytes, pixels_end: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(which rows are exactly header, pixels, label tag and label varint, their labels) for rows of the records
    zero-padded to pixels_end + 1 + MAX_VARINT_BYTES."""
    matches = _header_matches(rows, header, pixels_end)
    varints = rows[:, pixels_end + 1:]
    if (varints[:, 0] < 0x80).all():              # every label one byte (below 128): MNIST, CIFAR
        sizes, labels = np.ones(len(rows), dtype=np.intp), varints[:, 0].astype(np.int64)
    else:
        sizes, labels = _varint_columns(varints)
    matches &= lengths == pixels_end + 1 + sizes  # and nothing after the label
    return matches, labels


def _rows_with_one_byte_label(rows: np.ndarray, header: bytes, pixels_end: int) -> tuple[np.ndarray, np.ndarray]:
    """_rows_in_layout for rows that are whole records of pixels_end + 2 bytes: in the layout exactly where the
    last byte, the label's varint, ends it (below 0x80)."""
    matches = _header_matches(rows, header, pixels_end) & (rows[:, pixels_end + 1] < 0x80)
    return matches, rows[:, pixels_end + 1].astype(np.int64)


def decode_datums(values: Sequence[Record]) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, C, H, W) uint8 and labels (N,) int64 of serialized Datums of one shape, exactly as decode_datum
    (and protobuf) reads each.

    A record that is no Datum of uint8 pixels, or of another shape than record 0, is a DatumError naming the first.
    """
    chunks = (values[start:start + READ_CHUNK] for start in range(0, len(values), READ_CHUNK))
    return decode_datum_chunks(chunks, len(values))


def decode_datum_chunks(chunks: Iterable[Sequence[Record]], count: int) -> tuple[np.ndarray, np.ndarray]:
    """decode_datums of the records of `chunks`, in order, `count` at most: each chunk is copied into its rows
    while its records are still in the CPU cache (READ_CHUNK), rather than all of them after all were read."""
    batch = None
    for chunk in chunks:
        if len(chunk) and batch is None:
            batch = DatumRows(chunk[0], count)
        if len(chunk):
            batch.add(chunk)
    if batch is None:
        return np.empty((0, 0, 0, 0), dtype=np.uint8), np.empty(0, dtype=np.int64)
    return batch.images_and_labels()


class DatumRows:
    """The records of a batch as rows of record 0's layout with a one-byte label (pixels_end + 2 bytes, MNIST's),
    filled a chunk at a time, in order. A chunk whose records all have that length is copied in with one join and
    checked later, with the others before it, in one pass (each NumPy call has a fixed cost, and 60,000 records
    are 235 chunks); any other chunk is checked at once (after the rows before it, so an error names the first bad
    record), its pixels and labels written into the rows."""

    def __init__(self, first_record: Record, count: int) -> None:
        self.shape = _decode_record(first_record, 0)[0].shape
        self.header = datum_header(self.shape)
        self.pixels_start = len(self.header)
        self.pixels_end = self.pixels_start + int(np.prod(self.shape))
        self.width = self.pixels_end + 2
        self.rows = np.empty((count, self.width), dtype=np.uint8)
        self.labels = np.empty(count, dtype=np.int64)
        self.filled = self.checked = 0

    def add(self, chunk: Sequence[Record]) -> None:
        start, end = self.filled, self.filled + len(chunk)
        lengths = np.fromiter(map(len, chunk), dtype=np.intp, count=len(chunk))
        if (lengths == self.width).all():
            self.rows[start:end] = np.frombuffer(b"".join(chunk), dtype=np.uint8).reshape(len(chunk), self.width)
        else:
            self._check_rows(end=start)
            self._add_padded(chunk, lengths, start)
            self.checked = end
        self.filled = end

    def _check_rows(self, end: int) -> None:
        """Check the rows copied in since the last check, up to `end`: each is a whole record of self.width bytes."""
        start, rows = self.checked, self.rows[self.checked:end]
        matches, self.labels[start:end] = _rows_with_one_byte_label(rows, self.header, self.pixels_end)
        for offset in np.flatnonzero(~matches):
            self._put_parsed(bytes(rows[offset]), start + offset)
        self.checked = end

    def _add_padded(self, chunk: Sequence[Record], lengths: np.ndarray, start: int) -> None:
        """Records of other lengths: each copied into a row zero-padded (or cut) to the longest record the layout
        allows, then checked against it (the lengths say which rows ended where the layout says)."""
        padded = np.empty(len(chunk), dtype=f"S{self.pixels_end + 1 + MAX_VARINT_BYTES}")
        padded[:] = [bytes(record) for record in chunk]
        rows = padded.view(np.uint8).reshape(len(chunk), -1)
        matches, self.labels[start:start + len(chunk)] = _rows_in_layout(rows, lengths, self.header, self.pixels_end)
        pixels = slice(self.pixels_start, self.pixels_end)
        self.rows[start:start + len(chunk), pixels] = rows[:, pixels]
        for offset in np.flatnonzero(~matches):
            self._put_parsed(chunk[offset], start + offset)

    def _put_parsed(self, record: Record, index: int) -> None:
        """A record not in the layout, through the general parse: its pixels into its row, its label."""
        image, label = _decode_record(record, index)
        if image.shape != self.shape:
            raise DatumError(index, f"a {'x'.join(map(str, image.shape))} image where record 0 holds "
                             f"{'x'.join(map(str, self.shape))}; a database's images must share one shape")
        self.rows[index, self.pixels_start:self.pixels_end] = image.reshape(-1)
        self.labels[index] = label

    def images_and_labels(self) -> tuple[np.ndarray, np.ndarray]:
        """Images (a view into the rows) and labels, once every row is checked."""
        self._check_rows(end=self.filled)
        images = self.rows[:self.filled, self.pixels_start:self.pixels_end].reshape(self.filled, *self.shape)
        return images, self.labels[:self.filled]


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
    path = _existing_database(path, backend)
    records = _lmdb_records(path) if backend == "lmdb" else _leveldb_records(path, in_place)
    count, first, last = 0, None, None
    with closing(records):
        for count, (key, value) in enumerate(records, start=1):
            if first is None:
                first = key
            last = key
            yield key, value
    _check_keys(path, backend, count, first, last)


def _existing_database(path: str | Path, backend: str) -> Path:
    path = Path(path)
    if backend not in BACKENDS:
        raise CaffepipeError(f"unknown database backend {backend!r}; use one of {BACKENDS}")
    if not path.is_dir():
        raise CaffepipeError(f"{path}: no such {backend} database; run `caffepipe build-db` first")
    return path


def _check_keys(path: Path, backend: str, count: int, first: bytes | None, last: bytes | None) -> None:
    """The first `count` records in key order run from record_key(0) to record_key(count - 1), all keys of the
    first key's width (8 digits as convert_mnist_data writes them, 5 as convert_cifar_data does): none is missing."""
    digits = key_digits(first)
    if count and (first, last) != (record_key(0, digits), record_key(count - 1, digits)):
        raise damaged_database(path, backend, f"{count} records from key {first!r} to {last!r}: records are missing")


def read_values(path: str | Path, backend: str, limit: int | None = None, in_place: bool = False) -> list[bytes]:
    """The values of the first `limit` records (all without it) in key order, checked as iterate_db checks them."""
    path = _existing_database(path, backend)
    if backend == "leveldb":
        with closing(iterate_db(path, backend, in_place)) as records:
            pairs = list(islice(records, limit))
        if pairs:       # iterate_db checks the keys only when read to the end
            _check_keys(path, backend, len(pairs), pairs[0][0], pairs[-1][0])
        return [value for _, value in pairs]
    return _lmdb_values(path, limit)


def _lmdb_values(path: Path, limit: int | None) -> list[bytes]:
    return _read_lmdb(path, limit, lambda values, count: list(values))


def _read_lmdb(path: Path, limit: int | None, consume: Callable[[Iterator[Record], int], T],
               buffers: bool = False) -> T:
    """consume(values, count) of the first `limit` values (all without it), in key order. The values come from
    one C iterator, without the keys: several times faster than iterate_db. The keys are checked before, at the
    two ends against LMDB's count of entries (_check_keys).

    With buffers, the values are memoryviews into LMDB's map rather than bytes copied out of it (py-lmdb's
    `buffers=True`): no bytes object per record, but each is valid only until consume returns."""
    import lmdb

    try:
        with lmdb.open(str(path), readonly=True, lock=False, readahead=True) as env:
            _check_lmdb_file_size(env, path)
            with env.begin(buffers=buffers) as txn:
                entries, cursor = env.stat()["entries"], txn.cursor()
                first = bytes(cursor.key()) if cursor.first() else None
                last = bytes(cursor.key()) if cursor.last() else None
                _check_keys(path, "lmdb", entries, first, last)
                count = entries if limit is None else min(limit, entries)
                cursor.first()
                return consume(islice(cursor.iternext(keys=False), count), count)
    except lmdb.Error as error:       # not an LMDB, no data.mdb, a corrupt page
        raise damaged_database(path, "lmdb", str(error).removeprefix(f"{path}: ")) from None


def _in_chunks(values: Iterator[Record]) -> Iterator[list[Record]]:
    return iter(lambda: list(islice(values, READ_CHUNK)), [])


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
            count, first = 0, None
            for count, record in enumerate(db.iterator(verify_checksums=True), start=1):
                first = first or record[0]
                yield record
            # The iterator's silent skip (above) shows when the next record's key is looked up: Get does report it.
            if db.get(record_key(count, key_digits(first)), verify_checksums=True) is not None:
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


def read_db(path: str | Path, backend: str, limit: int | None = None, in_place: bool = False
            ) -> tuple[np.ndarray, np.ndarray]:
    """The first `limit` records (all without it) as images (N, C, H, W) uint8 and labels (N,) int64. A LevelDB
    is read from a copy unless in_place."""
    path = _existing_database(path, backend)
    try:
        if backend == "lmdb":
            def decode(values: Iterator[Record], count: int) -> tuple[np.ndarray, np.ndarray]:
                return decode_datum_chunks(_in_chunks(values), count)
            images, labels = _read_lmdb(path, limit, decode, buffers=True)
        else:
            images, labels = decode_datums(read_values(path, backend, limit, in_place))
    except DatumError as error:        # the keys were checked: record i has key record_key(i)
        raise damaged_database(path, backend, f"record {record_key(error.index)!r}: {error.reason}") from None
    if not len(labels):
        raise CaffepipeError(f"{path}: the {backend} database is empty; run `caffepipe build-db` again")
    return images, labels


def check_database(path: str | Path, backend: str) -> int:
    """Read a whole database and decode its first record; returns the record count. For the stages that hand a
    database to Caffe: its Data layer meets a damaged one with a glog CHECK that aborts the process (or SIGBUS),
    naming neither the database nor the fix."""
    values = read_values(path, backend)
    if not values:
        raise CaffepipeError(f"{path}: the {backend} database is empty; run `caffepipe build-db` again")
    _decoded(Path(path), backend, record_key(0), values[0])
    return len(values)


def check_data_layer_databases(net: Any) -> None:
    """check_database on every database the Data layers of a caffe_pb2.NetParameter read, before Caffe does."""
    sources = {(layer.data_param.source, DATA_PARAM_BACKENDS[layer.data_param.backend])
               for layer in net.layer if layer.type == "Data"}
    for source, backend in sorted(sources):
        check_database(source, backend)
