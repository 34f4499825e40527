"""Writing IDX files, the format MNIST and Fashion-MNIST ship in, for tests. caffepipe itself only reads them
(caffepipe.data.idx); the data-type codes are spelled out here from the format's description, so that a round
trip through the reader checks its table too."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

# data-type code of each numpy dtype IDX can hold; IDX stores the items big-endian
CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B, np.dtype(np.int32): 0x0C,
         np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}


def encode_idx(array: np.ndarray) -> bytes:
    array = np.asarray(array)
    dtype = array.dtype.newbyteorder("=")
    header = struct.pack(">HBB", 0, CODES[dtype], array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(dtype.newbyteorder(">"), copy=False).tobytes()


def write_idx(path: str | Path, array: np.ndarray) -> None:
    Path(path).write_bytes(encode_idx(array))
