import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

from caffepipe.data.datum import db_path, decode_datum, encode_datum, iterate_db, read_db
from caffepipe.core.errors import CaffepipeError


@given(hnp.arrays(np.uint8, st.tuples(st.integers(1, 3), st.integers(1, 30), st.integers(1, 30))), st.integers(0, 100_000))
def test_decode_inverts_encode(image, label) -> None:
    decoded, decoded_label = decode_datum(encode_datum(image, label))
    np.testing.assert_array_equal(decoded, image)
    assert decoded_label == label


def test_known_bytes_of_a_tiny_datum() -> None:
    # caffe.proto Datum: channels=1 height=2 width=3 data=4 label=5, proto2 wire format.
    record = encode_datum(np.array([[[1, 2]]], np.uint8), 7)
    assert record == b"\x08\x01\x10\x01\x18\x02\x22\x02\x01\x02\x28\x07"


def test_corrupt_records_are_errors() -> None:
    good = encode_datum(np.zeros((1, 2, 2), np.uint8), 1)
    with pytest.raises(CaffepipeError, match="corrupt"):
        decode_datum(good[:-3])
    with pytest.raises(CaffepipeError, match="encoded"):
        decode_datum(good + b"\x38\x01")     # encoded = true


def test_database_names_and_missing_database(tmp_path) -> None:
    assert db_path("data/db", "train", "lmdb").as_posix() == "data/db/train_lmdb"
    with pytest.raises(CaffepipeError, match="unknown database"):
        db_path("data/db", "validation", "lmdb")
    with pytest.raises(CaffepipeError, match="run `caffepipe build-db` first"):
        read_db(tmp_path / "nope", "lmdb")


def test_reading_a_leveldb_leaves_its_folder_as_it_was(tmp_path) -> None:
    """Opening a LevelDB rewrites its files; our readers open a copy so the tracked output never changes."""
    import plyvel

    from caffepipe.data.build_db import write_leveldb

    write_leveldb(tmp_path / "db", [(b"%08d" % i, encode_datum(np.full((1, 2, 2), i, np.uint8), i)) for i in range(5)])
    state = lambda: {p.name: p.read_bytes() for p in (tmp_path / "db").iterdir()}  # noqa: E731
    before = state()
    assert [decode_datum(value)[1] for _, value in iterate_db(tmp_path / "db", "leveldb")] == [0, 1, 2, 3, 4]
    assert state() == before
    plyvel.DB(str(tmp_path / "db")).close()          # what any in-place reader does
    assert state() != before
