import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from caffepipe.core.errors import CaffepipeError
from caffepipe.data.idx import parse_idx, read_idx
from tests.idx_files import encode_idx


@given(hnp.arrays(dtype=st.sampled_from([np.uint8, np.int16, np.int32, np.float32]),
                  shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=6)))
def test_round_trip(array) -> None:
    np.testing.assert_array_equal(parse_idx(encode_idx(array)), array)


@settings(max_examples=300)
@given(st.binary(max_size=64))
def test_random_bytes_parse_or_fail_cleanly(data: bytes) -> None:
    try:
        array = parse_idx(data)
    except CaffepipeError:
        return
    assert array.nbytes == len(data) - 4 - 4 * array.ndim        # accepted only if the sizes add up exactly


@given(st.integers(min_value=0, max_value=4 + 8 + 2 * 3 * 3 - 1))
def test_every_truncation_is_an_error(cut: int) -> None:
    data = encode_idx(np.arange(18, dtype=np.uint8).reshape(2, 3, 3))
    with pytest.raises(CaffepipeError):
        parse_idx(data[:cut])


def test_truncated_file_names_the_shape_and_sizes(tmp_path) -> None:
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(encode_idx(np.zeros((10, 28, 28), np.uint8))[:-100])
    with pytest.raises(CaffepipeError, match=r"train-images-idx3-ubyte: truncated: shape \(10, 28, 28\) needs 7856 bytes"):
        read_idx(path)


def test_gzipped_or_foreign_files_are_rejected_by_their_magic_number() -> None:
    with pytest.raises(CaffepipeError, match="bad IDX magic number 0x1f8b"):
        parse_idx(b"\x1f\x8b\x08\x00" + bytes(20))
    with pytest.raises(CaffepipeError, match="claims 0 dimensions"):
        parse_idx(b"\x00\x00\x08\x00")


def test_trailing_bytes_are_corruption() -> None:
    with pytest.raises(CaffepipeError, match="trailing bytes"):
        parse_idx(encode_idx(np.zeros(3, np.uint8)) + b"x")
