"""train's pure parts: what to train, what to replay, what a database digest covers, where Caffe's log goes.
(The fingerprint and the stale-nets check parse prototxt with caffe_pb2: tests/integration/test_train.py.)"""
from __future__ import annotations

import hashlib
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
from caffepipe.training.history import Segment, Trainer, count_test_passes, reproducibility, snapshot_record
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


def test_test_passes_are_counted_as_caffe_runs_them() -> None:
    assert count_test_passes(0, 0, 500, True) == 0
    # tests at 0 and 500 come before iteration 600; the test at 1000 is repeated by a solver resumed there
    assert count_test_passes(0, 600, 500, True) == 2
    assert count_test_passes(0, 1000, 500, True) == 2
    assert count_test_passes(0, 1000, 500, False) == 1
    assert count_test_passes(0, 1001, 500, True) == 3
    assert count_test_passes(0, 50, 0, True) == 0
    # a resumed segment tests at its start iteration when that is a multiple of the interval, even without
    # test_initialization (which only concerns iteration 0)
    assert count_test_passes(500, 1001, 500, False) == 2
    assert count_test_passes(501, 1001, 500, True) == 1


def segment(log: str, start: int, threads: int = 1, test_interval: int = 10, test_iter: tuple = (7,)) -> Segment:
    return Segment(log=log, start=start, threads=threads, test_interval=test_interval, test_initialization=True,
                   test_iter=test_iter, display=5)


def test_a_snapshot_counts_the_test_batches_of_each_segment_with_its_own_test_interval() -> None:
    first = segment("segment-001.log", 0, test_interval=10)
    at_30 = snapshot_record(30, first, None, "a")
    assert at_30.test_batches == (21,)                      # tests at 0, 10 and 20, 7 batches each
    second = segment("segment-002.log", 30, test_interval=15)
    at_60 = snapshot_record(60, second, at_30, "b")
    # tests at 30 and 45 in the second segment; the current solver alone would count 0, 15, 30 and 45: 28
    assert at_60.test_batches == (35,)
    assert at_60.trained_by == (Trainer("segment-001.log", 0, 1), Trainer("segment-002.log", 30, 1))
    assert replayed_batches(60, 1, at_60) == (60, (35,))
    assert replayed_batches(60, 2, at_60) == (120, (35,))    # iter_size batches per iteration
    # a segment resumed at max_iter only to run the final test trains none of the snapshot's iterations
    assert snapshot_record(60, segment("segment-003.log", 60, threads=4), at_60, "b").trained_by == at_60.trained_by


def test_weights_trained_with_two_thread_counts_are_not_bit_reproducible() -> None:
    one = snapshot_record(30, segment("segment-001.log", 0, threads=2), None, "a")
    assert reproducibility([one]) == {"bit_reproducible": True, "reproducibility_note": None}
    same = snapshot_record(60, segment("segment-002.log", 30, threads=2), one, "b")
    assert reproducibility([one, same]) == {"bit_reproducible": True, "reproducibility_note": None}
    mixed = snapshot_record(60, segment("segment-002.log", 30, threads=1), one, "b")
    assert mixed.threads == (2, 1)
    assert reproducibility([one, mixed]) == {"bit_reproducible": False,
                                             "reproducibility_note": "segments ran with 2 and 1 BLAS threads"}
    third = snapshot_record(90, segment("segment-003.log", 60, threads=4), mixed, "c")
    assert reproducibility([third])["reproducibility_note"] == "segments ran with 2, 1 and 4 BLAS threads"


def test_the_state_round_trips_and_only_records_that_match_their_solverstate_count(tmp_path: Path) -> None:
    folder = training_folder.TrainingFolder(tmp_path / "out", "lenet")
    folder.snapshots.mkdir(parents=True)
    state = training_folder.TrainingState("f" * 64, {"solver": "s"})
    run = segment("segment-001.log", 0, threads=2)
    state.segments.append(run)
    for iteration in (10, 20):
        folder.snapshot(iteration).caffemodel.write_bytes(b"weights %d" % iteration)
        folder.snapshot(iteration).solverstate.write_bytes(b"state %d" % iteration)
        training_folder.record_snapshot(folder, state, iteration, run, None, hashlib.sha256(b"state %d" % iteration).hexdigest())
    assert training_folder.read_state(folder) == state
    assert training_folder.recorded_snapshots(folder, state, {10, 20}) == {10, 20}
    # a later run recorded a new snapshot at 20 and was killed before it replaced the old one's files: the
    # record describes no file there, so the snapshot at 20 is made again
    training_folder.record_snapshot(folder, state, 20, segment("segment-002.log", 10), state.snapshots[10],
                                    hashlib.sha256(b"state 20, another run").hexdigest())
    assert training_folder.recorded_snapshots(folder, state, {10, 20}) == {10}


def test_the_nets_folder_file_names_are_spelt_in_one_module() -> None:
    """netgen writes them and train reads them: both must take them from training/nets_folder.py."""
    import ast

    from caffepipe.training import nets_folder

    names = {nets_folder.SOLVER_FILE, *nets_folder.NET_FILES.values()}
    package = Path(nets_folder.__file__).parent
    for module in sorted(package.glob("*.py")):
        if module.name == "nets_folder.py":
            continue
        spelt = {node.value for node in ast.walk(ast.parse(module.read_text()))
                 if isinstance(node, ast.Constant) and node.value in names}
        assert not spelt, f"{module.name} spells {sorted(spelt)}; import them from nets_folder.py"


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
