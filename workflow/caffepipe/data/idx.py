"""Read IDX files, the format MNIST and Fashion-MNIST ship in (the pipeline never writes one).

An IDX file is a 4-byte magic number (two zero bytes, a data-type code, the number of dimensions), one
big-endian uint32 per dimension, then the items. read_idx checks every part of that against the file's size
before touching the data, so a truncated or corrupt file is a clear error, never a short or garbled array.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from caffepipe.core.errors import CaffepipeError

# data-type code -> big-endian numpy dtype
DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
MAX_DIMENSIONS = 8        # MNIST has 1 (labels) or 3 (images); more means a corrupt header


def parse_idx(data: bytes, name: str = "IDX data") -> np.ndarray:
    """The array an IDX file holds, checked against its header; raises CaffepipeError when it does not fit."""
    if len(data) < 4:
        raise CaffepipeError(f"{name}: {len(data)} bytes is too short for an IDX header; the file is truncated")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code not in DTYPES:
        raise CaffepipeError(f"{name}: bad IDX magic number 0x{data[:4].hex()}; not an IDX file (or still gzipped)")
    if not 1 <= ndim <= MAX_DIMENSIONS:
        raise CaffepipeError(f"{name}: IDX header claims {ndim} dimensions; the file is corrupt")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise CaffepipeError(f"{name}: truncated inside the IDX header ({len(data)} of {header_size} bytes)")
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    dtype = DTYPES[dtype_code]
    expected = header_size + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "has trailing bytes"
        raise CaffepipeError(f"{name}: {problem}: shape {shape} needs {expected} bytes, the file has {len(data)}")
    array = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file of data/raw; its errors name the stage that writes the folder, for the pipeline's user."""
    path = Path(path)
    try:
        return parse_idx(path.read_bytes(), str(path))
    except FileNotFoundError:
        raise CaffepipeError(f"{path}: no such IDX file; run `caffepipe fetch`") from None
    except CaffepipeError as error:
        raise CaffepipeError(f"{error}; re-run `caffepipe fetch`") from None

