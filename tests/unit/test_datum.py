import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

from caffepipe.data.datum import check_database, db_path, decode_datum, encode_datum, iterate_db, read_db, record_key
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


# --- damaged databases: one CaffepipeError naming the database and build-db, never an lmdb/plyvel traceback ------

RECORDS = [(record_key(index), encode_datum(np.full((1, 28, 28), index, np.uint8), index % 10)) for index in range(200)]


def lmdb_database(path: Path, records=RECORDS) -> Path:
    from caffepipe.data.build_db import write_lmdb

    write_lmdb(path, records)
    return path


def leveldb_with_a_table(path: Path, records=RECORDS) -> Path:
    """A LevelDB whose records sit in a table file (.ldb), as in build-db's output once opened."""
    import plyvel

    db = plyvel.DB(str(path), create_if_missing=True)
    with db.write_batch() as batch:
        for key, value in records:
            batch.put(key, value)
    db.close()
    plyvel.DB(str(path)).close()        # reopening moves the write-ahead log into a table
    return path


def overwrite(file: Path, start: int = 0) -> None:
    """Seeded random bytes over `file` from `start` on, its size kept."""
    data = file.read_bytes()
    file.write_bytes(data[:start] + random.Random(len(data)).randbytes(len(data) - start))


def table_file(path: Path) -> Path:
    return next(path.glob("*.ldb"))


LMDB_DAMAGE = {
    "garbage data.mdb": lambda path: overwrite(path / "data.mdb"),
    "corrupt pages after the meta pages": lambda path: overwrite(path / "data.mdb", start=2 * 4096),
    "no data.mdb": lambda path: (path / "data.mdb").unlink(),
    "an empty folder": lambda path: [file.unlink() for file in path.iterdir()],
}
LEVELDB_DAMAGE = {
    "garbage table file": lambda path: overwrite(table_file(path)),
    "truncated table file": lambda path: os.truncate(table_file(path), table_file(path).stat().st_size // 2),
    "missing table file": lambda path: table_file(path).unlink(),
    "no CURRENT": lambda path: (path / "CURRENT").unlink(),
    "garbage MANIFEST": lambda path: overwrite(next(path.glob("MANIFEST-*"))),
    "an empty folder": lambda path: [file.unlink() for file in path.iterdir()],
}
DAMAGE = [("lmdb", name) for name in LMDB_DAMAGE] + [("leveldb", name) for name in LEVELDB_DAMAGE]


def damaged(tmp_path: Path, backend: str, damage: str) -> Path:
    if backend == "lmdb":
        path = lmdb_database(tmp_path / "test_lmdb")
        LMDB_DAMAGE[damage](path)
    else:
        path = leveldb_with_a_table(tmp_path / "test_leveldb")
        LEVELDB_DAMAGE[damage](path)
    return path


def assert_names_the_database_and_build_db(message: str, path: Path, backend: str) -> None:
    assert message.startswith(f"{path}: damaged {backend} database (")
    assert message.endswith("rebuild it with `caffepipe build-db` (or run the pipeline up to build_db)")
    assert "\n" not in message
    assert "caffepipe-leveldb-" not in message, "names the database, not our temporary copy of it"


@pytest.mark.parametrize("backend, damage", DAMAGE)
def test_a_damaged_database_is_one_error_naming_it_and_build_db(tmp_path, backend, damage) -> None:
    path = damaged(tmp_path, backend, damage)
    with pytest.raises(CaffepipeError) as error:
        read_db(path, backend)
    assert_names_the_database_and_build_db(str(error.value), path, backend)


@pytest.mark.parametrize("backend, damage", [("lmdb", "garbage data.mdb"), ("leveldb", "garbage table file")])
def test_check_database_reads_it_whole_before_caffe_would(tmp_path, backend, damage) -> None:
    intact = lmdb_database(tmp_path / "intact") if backend == "lmdb" else leveldb_with_a_table(tmp_path / "intact")
    assert check_database(intact, backend) == len(RECORDS)
    path = damaged(tmp_path, backend, damage)
    with pytest.raises(CaffepipeError) as error:
        check_database(path, backend)
    assert_names_the_database_and_build_db(str(error.value), path, backend)


def test_a_truncated_data_mdb_is_an_error_not_a_bus_error(tmp_path) -> None:
    """LMDB maps data.mdb: touching a page past the end of a truncated file kills the process with SIGBUS.
    Read in a child process, so that a regression fails this test instead of ending the test run."""
    path = lmdb_database(tmp_path / "test_lmdb")
    os.truncate(path / "data.mdb", (path / "data.mdb").stat().st_size // 2)
    script = ("import sys\nfrom caffepipe.core.errors import CaffepipeError\nfrom caffepipe.data.datum import read_db\n"
              "try:\n    read_db(sys.argv[1], 'lmdb')\nexcept CaffepipeError as error:\n    print(error)\n")
    result = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"the reader died (signal {-result.returncode}): {result.stderr[-500:]}"
    assert_names_the_database_and_build_db(result.stdout.strip(), path, "lmdb")
    assert "data.mdb is truncated" in result.stdout


def test_a_database_with_a_record_missing_is_damaged_not_shorter(tmp_path) -> None:
    path = lmdb_database(tmp_path / "test_lmdb", RECORDS[:3] + RECORDS[4:])
    with pytest.raises(CaffepipeError, match="199 records from key b'00000000' to b'00000199': records are missing"):
        read_db(path, "lmdb")


def test_a_record_that_is_no_datum_names_the_database(tmp_path) -> None:
    path = lmdb_database(tmp_path / "test_lmdb", [(record_key(0), b"\x08\x01\x10\x01\x18\x02\x22\x09\x01")])
    with pytest.raises(CaffepipeError) as error:
        check_database(path, "lmdb")
    assert_names_the_database_and_build_db(str(error.value), path, "lmdb")
    assert "record b'00000000': " in str(error.value)
