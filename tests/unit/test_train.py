"""train's pure parts: what to train, what to replay, what a database digest covers, where Caffe's log goes.
(The fingerprint and the stale-nets check parse prototxt with caffe_pb2: tests/integration/test_train.py.)"""
from __future__ import annotations

import logging
import os
import random
import sys
from pathlib import Path

import pytest

from caffepipe.core.errors import CaffepipeError
from caffepipe.training import folder as training_folder
from caffepipe.training import inputs as training_inputs
from caffepipe.training import train
from caffepipe.training.train import Plan, plan_training, replayed_batches

SCHEDULE = [10, 30, 100, 5000, 10000]


@pytest.mark.parametrize("intact, completed, expected", [
    (set(), False, Plan(0, 10000)),                                # fresh
    ({10, 30}, False, Plan(30, 10000)),                            # interrupted after 30
    ({10, 30, 77}, False, Plan(77, 10000)),                        # stopped by a signal at 77
    ({10, 100, 5000}, False, Plan(10, 10000)),                     # 30 damaged: re-made from 10
    ({30, 100, 5000, 10000}, True, Plan(0, 10000)),                # 10 added to the schedule
    ({10, 30, 100, 5000, 10000}, True, None),                      # complete
    ({10, 30, 100, 5000, 10000, 20000}, True, None),
    ({10, 30, 100, 5000, 10000}, False, Plan(10000, 10000)),       # final test missing: only test
])
def test_plan_resumes_from_the_newest_snapshot_before_the_first_missing_one(intact, completed, expected) -> None:
    assert plan_training(SCHEDULE, intact, 10000, completed) == expected


def test_replayed_batches_count_the_tests_before_the_snapshot() -> None:
    assert replayed_batches(0, 500, True, [100]) == (0, [0])
    # tests at 0 and 500 come before iteration 600; the test at 1000 is repeated by the resumed solver
    assert replayed_batches(600, 500, True, [100]) == (600, [200])
    assert replayed_batches(1000, 500, True, [100, 7]) == (1000, [200, 14])
    assert replayed_batches(1000, 500, False, [100]) == (1000, [100])
    assert replayed_batches(1001, 500, True, [100]) == (1001, [300])
    assert replayed_batches(50, 0, True, [100]) == (50, [0])


def test_database_digest_is_the_records_not_the_files(tmp_path: Path) -> None:
    import lmdb
    import plyvel

    records = [(b"%08d" % index, bytes([index]) * 10) for index in range(20)]
    with lmdb.open(str(tmp_path / "a_lmdb"), map_size=1 << 20) as env, env.begin(write=True) as txn:
        for key, value in records:
            txn.put(key, value)
    db = plyvel.DB(str(tmp_path / "a_leveldb"), create_if_missing=True)
    for key, value in reversed(records):
        db.put(key, value)
    db.close()
    lmdb_digest = training_inputs.database_digest(tmp_path / "a_lmdb", "lmdb")
    assert lmdb_digest == training_inputs.database_digest(tmp_path / "a_leveldb", "leveldb")
    with lmdb.open(str(tmp_path / "a_lmdb"), map_size=1 << 20) as env, env.begin(write=True) as txn:
        txn.put(b"00000003", b"changed")
    assert training_inputs.database_digest(tmp_path / "a_lmdb", "lmdb") != lmdb_digest



def test_database_digest_of_a_damaged_database_is_one_error_naming_it(tmp_path: Path) -> None:
    """The digest is taken before the solver is built: it is what keeps a damaged database from reaching Caffe."""
    import plyvel

    path = tmp_path / "train_leveldb"
    db = plyvel.DB(str(path), create_if_missing=True)
    for index in range(20):
        db.put(b"%08d" % index, bytes([index]) * 10)
    db.close()
    plyvel.DB(str(path)).close()                      # the records move from the log into a table file
    table = next(path.glob("*.ldb"))
    table.write_bytes(random.Random(0).randbytes(table.stat().st_size))   # no longer a table
    with pytest.raises(CaffepipeError, match=rf"^{path}: damaged leveldb database \(.*`caffepipe build-db`"):
        training_inputs.database_digest(path, "leveldb")

def test_caffe_log_to_sends_fd2_to_the_file_and_messages_to_the_terminal(tmp_path: Path, capfd) -> None:
    logger = logging.getLogger("caffepipe.test")
    handler = logging.StreamHandler(sys.stderr)
    logging.getLogger().addHandler(handler)
    try:
        with train.caffe_log_to(tmp_path / "logs" / "segment-001.log") as terminal:
            os.write(2, b"I20261122 11:37:50.217981  9252 solver.cpp:414] from Caffe\n")
            logger.warning("from caffepipe")
            terminal.write("progress\n")
        os.write(2, b"after\n")
    finally:
        logging.getLogger().removeHandler(handler)
    assert (tmp_path / "logs" / "segment-001.log").read_text() == "I20261122 11:37:50.217981  9252 solver.cpp:414] from Caffe\n"
    stderr = capfd.readouterr().err
    assert "from caffepipe" in stderr and "progress" in stderr and "after" in stderr and "from Caffe" not in stderr


def test_segments_are_numbered_and_archiving_moves_everything(tmp_path: Path) -> None:
    folder = training_folder.TrainingFolder(tmp_path / "out", "lenet")
    assert folder.next_segment_log().name == "segment-001.log"
    folder.logs.mkdir(parents=True)
    (folder.logs / "segment-001.log").write_text("x")
    (folder.logs / "segment-002.log").write_text("y")
    assert folder.next_segment_log().name == "segment-003.log"
    (folder.snapshots / "lenet_iter_10.caffemodel").write_text("w")
    first = training_folder.archive_snapshots(folder, "abc")
    second_files = (folder.snapshots / "lenet_iter_10.caffemodel")
    second_files.write_text("w2")
    second = training_folder.archive_snapshots(folder, "abc")
    assert first == folder.archive / "abc" and second == folder.archive / "abc-2"
    assert (first / "logs" / "segment-002.log").read_text() == "y"
    assert (second / "lenet_iter_10.caffemodel").read_text() == "w2"
    assert folder.snapshots.is_dir() and not any(folder.snapshots.iterdir())
    assert training_folder.archive_snapshots(folder, "abc") is None
