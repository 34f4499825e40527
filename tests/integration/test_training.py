"""netgen, train and parse-log on tiny params with the real Caffe: snapshots, kill -9 and resume, corrupt
snapshots, fingerprints, determinism, and the tables parsed from the real logs."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import CAFFEPIPE, REPO, run_caffepipe, synthetic_digits, tiny_params, write_params

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tiny_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """640 training and 200 test digits (synthetic, easy to learn) in LMDB and LevelDB, made by build-db."""
    from tests.idx_files import write_idx

    work = tmp_path_factory.mktemp("db")
    (work / "raw").mkdir()
    for prefix, count, seed in (("train", 640, 1), ("t10k", 200, 2)):
        images, labels = synthetic_digits(count, seed)
        write_idx(work / "raw" / f"{prefix}-images-idx3-ubyte", images)
        write_idx(work / "raw" / f"{prefix}-labels-idx1-ubyte", labels)
    write_params(work / "params.yaml", tiny_params())
    run_caffepipe("build-db", "--params", "params.yaml", "--raw", "raw", "--out", "db", cwd=work)
    return work / "db"


class Workspace:
    """A folder laid out like the repository: params.yaml, data/db (a link to the tiny databases), data/nets,
    data/train, reports/train; commands run in it with the paths the pipeline uses."""

    def __init__(self, root: Path, db: Path, model: str = "lenet", **sections: dict) -> None:
        self.root, self.model = root, model
        (root / "data").mkdir(parents=True, exist_ok=True)
        if not (root / "data" / "db").exists():
            (root / "data" / "db").symlink_to(db)
        self.set_params(**sections)

    def set_params(self, **sections: dict) -> dict:
        self.params = tiny_params(**sections)
        write_params(self.root / "params.yaml", self.params)
        return self.params

    @property
    def nets(self) -> Path:
        return self.root / "data" / "nets" / self.model

    @property
    def out(self) -> Path:
        return self.root / "data" / "train" / self.model

    def netgen(self) -> None:
        run_caffepipe("netgen", "--params", "params.yaml", "--model", self.model, "--db", "data/db",
                      "--out", f"data/nets/{self.model}", cwd=self.root)

    def train_args(self, *extra: str, threads: int = 1) -> list[str]:
        return ["train", "--params", "params.yaml", "--model", self.model, "--nets", f"data/nets/{self.model}",
                "--db", "data/db", "--out", f"data/train/{self.model}",
                "--out-reproducibility", f"reports/train/{self.model}/reproducibility.json", "--threads", str(threads), *extra]

    def train(self, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
        return run_caffepipe(*self.train_args(*extra), cwd=self.root, check=check)

    def parse_log(self) -> tuple[list[dict], list[dict], dict]:
        reports = self.root / "reports" / "train" / self.model
        run_caffepipe("parse-log", "--log", f"data/train/{self.model}/caffe.log", "--out-train", f"{reports}/train.csv",
                      "--out-test", f"{reports}/test.csv", "--out-metrics", f"{reports}/metrics.json", cwd=self.root)
        import csv
        with open(reports / "train.csv") as train, open(reports / "test.csv") as test:
            return list(csv.DictReader(train)), list(csv.DictReader(test)), json.loads((reports / "metrics.json").read_text())

    def manifest(self) -> dict:
        return json.loads((self.out / "snapshots.json").read_text())

    def segment_logs(self) -> list[Path]:
        return sorted((self.out / "snapshots" / "logs").glob("segment-*.log"))

    def state(self) -> dict:
        return json.loads((self.out / "snapshots" / "fingerprint.json").read_text())

    def reproducibility(self) -> dict:
        return json.loads((self.root / "reports" / "train" / self.model / "reproducibility.json").read_text())


@pytest.fixture
def workspace(tmp_path: Path, tiny_db: Path) -> Workspace:
    return Workspace(tmp_path / "ws", tiny_db)


def test_netgen_output_loads_in_caffe_and_deploy_classifies(workspace: Workspace) -> None:
    from caffepipe.core.caffe_env import import_caffe
    from caffepipe.training.models import INPUT_SCALE

    for model in ("lenet", "mlp"):
        workspace.model = model
        workspace.netgen()
        caffe = import_caffe(threads=1)
        cwd = os.getcwd()
        os.chdir(workspace.root)  # the nets name their databases relative to the repository root
        try:
            train = caffe.Net(str(workspace.nets / "train.prototxt"), caffe.TRAIN)
            test = caffe.Net(str(workspace.nets / "test.prototxt"), caffe.TEST)
            deploy = caffe.Net(str(workspace.nets / "deploy.prototxt"), caffe.TEST)
        finally:
            os.chdir(cwd)
        assert list(train.params) == list(test.params) == list(deploy.params)
        assert train.blobs["data"].data.shape == (16, 1, 28, 28)
        assert test.blobs["data"].data.shape == (50, 1, 28, 28)
        assert deploy.inputs == ["data"] and deploy.outputs == ["prob"]
        test.forward()
        assert test.blobs["data"].data.max() <= 255 * INPUT_SCALE + 1e-6  # the Data layer scales pixels
        probabilities = deploy.forward(data=test.blobs["data"].data[:1].repeat(deploy.blobs["data"].num, 0))["prob"]
        assert probabilities.shape == (deploy.blobs["data"].num, 10)
        assert abs(float(probabilities[0].sum()) - 1) < 1e-5


def test_caffe_binary_trains_from_the_generated_solver(workspace: Workspace) -> None:
    """The solver netgen writes runs as is with `caffe train` from the repository root."""
    from caffepipe.core.caffe_env import caffe_subprocess_env, caffe_tool

    workspace.set_params(train={"max_iter": 6, "display": 2, "test_interval": 3})
    workspace.netgen()
    result = subprocess.run([str(caffe_tool("caffe")), "train", "--solver", "data/nets/lenet/solver.prototxt"],
                            cwd=workspace.root, capture_output=True, text=True, env=caffe_subprocess_env(1))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Optimization Done." in result.stderr
    assert (workspace.root / "lenet_iter_6.caffemodel").is_file()


def test_training_writes_the_scheduled_snapshots_and_is_idempotent(workspace: Workspace) -> None:
    workspace.set_params(train={"max_iter": 40, "snapshot_interval": 25, "snapshot_iters": [10, 30, 60]})
    workspace.netgen()
    workspace.train()
    manifest = workspace.manifest()
    assert [entry["iteration"] for entry in manifest["snapshots"]] == [10, 25, 30, 40]  # 60 > max_iter
    assert manifest["model"] == "lenet" and manifest["max_iter"] == 40 and manifest["final"] == "final.caffemodel"
    for entry in manifest["snapshots"]:
        assert (workspace.out / entry["caffemodel"]).is_file() and (workspace.out / entry["solverstate"]).is_file()
    assert (workspace.out / "final.caffemodel").read_bytes() == (workspace.out / manifest["snapshots"][-1]["caffemodel"]).read_bytes()
    assert not (workspace.out / "snapshots" / ".staging").exists()
    log = (workspace.out / "caffe.log").read_text()
    assert "Optimization Done." in log and "Iteration 40, Testing net (#0)" in log

    # The solverstate names its caffemodel relative to where training ran, as Caffe does.
    from caffepipe.core.caffe_env import import_caffe
    import_caffe(threads=1)
    from caffe.proto import caffe_pb2
    state = caffe_pb2.SolverState()
    state.ParseFromString((workspace.out / "snapshots" / "lenet_iter_30.solverstate").read_bytes())
    assert state.iter == 30 and state.learned_net == "data/train/lenet/snapshots/lenet_iter_30.caffemodel"

    # Again, with nothing changed: no training, no new segment, the same outputs.
    before = {name: (workspace.out / name).read_bytes() for name in ("final.caffemodel", "caffe.log", "snapshots.json")}
    started = time.monotonic()
    result = workspace.train()
    assert "nothing to train" in result.stderr
    assert time.monotonic() - started < 15
    assert len(workspace.segment_logs()) == 1
    assert before == {name: (workspace.out / name).read_bytes() for name in before}


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"training ended before {path.name} appeared:\n{process.stderr.read()}"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.005)


LONG_TRAINING = {"max_iter": 400, "display": 20, "test_interval": 100, "snapshot_interval": 1000,
                 "snapshot_iters": [10, 30, 100, 200, 300]}


def _start_training(workspace: Workspace, threads: int = 1) -> subprocess.Popen:
    return subprocess.Popen([CAFFEPIPE, *workspace.train_args(threads=threads)], cwd=workspace.root, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _stop_after(workspace: Workspace, snapshot_iteration: int, threads: int = 1) -> int:
    """Start training, send SIGTERM once the snapshot at `snapshot_iteration` is written, and return the
    iteration training stopped at (where its stop snapshot is)."""
    process = _start_training(workspace, threads)
    _wait_for(workspace.out / "snapshots" / f"{workspace.model}_iter_{snapshot_iteration}.solverstate", process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    return int(workspace.segment_logs()[0].read_text().split("stopped by signal 15 at iteration ")[1].split()[0])


def _uninterrupted(tmp_path: Path, tiny_db: Path, netgen: dict | None = None, **train: object) -> Workspace:
    reference = Workspace(tmp_path / "reference", tiny_db, train=train, netgen=netgen or {})
    reference.netgen()
    reference.train()
    return reference


def _without_clock(rows: list[dict]) -> list[dict]:
    """Rows less their seconds and Caffe's smoothed loss: a running mean that Caffe updates by adding and
    subtracting in float, so its rounding depends on the iteration a run started from (the losses, the
    outputs and the weights do not)."""
    return [{key: value for key, value in row.items() if key not in ("seconds", "smoothed_loss")} for row in rows]


def test_sigkill_mid_training_resumes_exactly_and_the_log_covers_every_iteration(workspace: Workspace, tmp_path: Path, tiny_db: Path) -> None:
    workspace.set_params(train=LONG_TRAINING)
    workspace.netgen()
    process = _start_training(workspace)
    _wait_for(workspace.out / "snapshots" / "lenet_iter_100.solverstate", process)
    process.kill()  # SIGKILL: no handler runs
    process.wait()
    assert not (workspace.out / "snapshots.json").exists()

    workspace.train()
    logs = workspace.segment_logs()
    assert len(logs) == 2
    resumed_from = int(logs[1].read_text().split("resumes lenet from iteration ")[1].split()[0])
    assert 100 <= resumed_from < 400  # continued, never started over
    assert [entry["iteration"] for entry in workspace.manifest()["snapshots"]] == [10, 30, 100, 200, 300, 400]

    train_rows, test_rows, metrics = workspace.parse_log()
    assert [int(row["iteration"]) for row in train_rows] == list(range(0, 400, 20))
    assert [int(row["iteration"]) for row in test_rows] == [0, 100, 200, 300, 400]
    seconds = [float(row["seconds"]) for row in train_rows]
    assert seconds == sorted(seconds)
    assert metrics["iteration"] == 400

    # Resume restores the data order too: the result is the uninterrupted run's, bit for bit, and so are the
    # tables parse-log reads from the two-segment log and from the one-segment log.
    reference = _uninterrupted(tmp_path, tiny_db, **LONG_TRAINING)
    assert (workspace.out / "final.caffemodel").read_bytes() == (reference.out / "final.caffemodel").read_bytes()
    reference_train, reference_test, reference_metrics = reference.parse_log()
    assert _without_clock(train_rows) == _without_clock(reference_train)
    assert _without_clock(test_rows) == _without_clock(reference_test)
    assert metrics["test"] == reference_metrics["test"]


def test_sigterm_snapshots_the_current_iteration_and_exits_non_zero(workspace: Workspace) -> None:
    workspace.set_params(train=LONG_TRAINING)
    workspace.netgen()
    process = _start_training(workspace)
    _wait_for(workspace.out / "snapshots" / "lenet_iter_30.solverstate", process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "run the same command again to resume" in stderr
    stopped_at = int(workspace.segment_logs()[0].read_text().split("stopped by signal 15 at iteration ")[1].split()[0])
    assert (workspace.out / "snapshots" / f"lenet_iter_{stopped_at}.solverstate").is_file()

    workspace.train("--resume")
    assert f"resumes lenet from iteration {stopped_at} " in workspace.segment_logs()[1].read_text()
    manifest = workspace.manifest()
    assert manifest["snapshots"][-1]["iteration"] == 400
    # resumed with the same thread count: one count, so bit-reproducible
    assert manifest["segments"] == [{"log": "segment-001.log", "from": 0, "threads": 1},
                                    {"log": "segment-002.log", "from": stopped_at, "threads": 1}]
    assert manifest["bit_reproducible"] is True and manifest["reproducibility_note"] is None
    assert workspace.reproducibility() == {"blas_threads": [1, 1], "bit_reproducible": True, "reproducibility_note": None}


def test_resuming_with_another_thread_count_continues_and_says_the_weights_are_not_bit_reproducible(workspace: Workspace) -> None:
    workspace.set_params(train=LONG_TRAINING)
    workspace.netgen()
    stopped_at = _stop_after(workspace, 30, threads=2)

    result = workspace.train()                                   # --threads 1
    assert f"resuming lenet at iteration {stopped_at} with 1 BLAS threads, but it was trained with 2" in result.stderr
    logs = workspace.segment_logs()
    assert f"resumes lenet from iteration {stopped_at} " in logs[1].read_text()   # finished iterations kept
    assert "it was trained with 2" in logs[1].read_text()
    assert [(segment["start"], segment["threads"]) for segment in workspace.state()["segments"]] == [(0, 2), (stopped_at, 1)]
    manifest = workspace.manifest()
    assert manifest["segments"] == [{"log": "segment-001.log", "from": 0, "threads": 2},
                                    {"log": "segment-002.log", "from": stopped_at, "threads": 1}]
    assert manifest["bit_reproducible"] is False
    assert manifest["reproducibility_note"] == "segments ran with 2 and 1 BLAS threads"
    assert workspace.reproducibility() == {"blas_threads": [2, 1], "bit_reproducible": False,
                                           "reproducibility_note": "segments ran with 2 and 1 BLAS threads"}
    assert not (workspace.out / "archive").exists()

    # Nothing left to train: the verdict stays, as it describes the weights.
    assert "nothing to train" in workspace.train().stderr
    assert workspace.manifest() == manifest


SWITCHED_TEST_INTERVAL = {"max_iter": 60, "test_interval": 15, "snapshot_iters": [10, 30]}
# 200 test images in batches of 30: test_iter 7 reads 210 records, so each test pass ends 10 records further into
# the test set than the one before, and where a test pass starts depends on every pass before it.
UNEVEN_TEST_BATCH = {"test_batch_size": 30}


def _test_outputs(workspace: Workspace) -> dict[int, dict[str, float]]:
    _, test_rows, _ = workspace.parse_log()
    return {int(row["iteration"]): {name: float(row[name]) for name in ("accuracy", "loss")} for row in test_rows}


def test_a_changed_test_interval_resumes_and_replays_the_test_passes_that_really_ran(workspace: Workspace, tmp_path: Path,
                                                                                      tiny_db: Path) -> None:
    """Trained to iteration 30 testing every 10, then to 60 testing every 15: the same weights and test outputs
    as one uninterrupted run that tested every 10 before iteration 30 and every 15 from there."""
    workspace.set_params(netgen=UNEVEN_TEST_BATCH, train={**SWITCHED_TEST_INTERVAL, "max_iter": 30, "test_interval": 10})
    workspace.netgen()
    workspace.train()
    workspace.set_params(netgen=UNEVEN_TEST_BATCH, train=SWITCHED_TEST_INTERVAL)
    workspace.netgen()
    workspace.train()
    assert "resumes lenet from iteration 30 " in workspace.segment_logs()[1].read_text()   # not archived and retrained
    assert not (workspace.out / "archive").exists()

    # The reference, built without caffepipe's resume: pycaffe runs the solver uninterrupted and the test
    # passes at 0, 10, 20, then 30, 45 and 60 (tests/uninterrupted_training.py).
    reference = Workspace(tmp_path / "reference", tiny_db, netgen=UNEVEN_TEST_BATCH, train=SWITCHED_TEST_INTERVAL)
    reference.netgen()
    subprocess.run([sys.executable, "-m", "tests.uninterrupted_training", "--solver", "data/nets/lenet/solver.prototxt",
                    "--switch-at", "30", "--intervals", "10", "15", "--weights", "reference.caffemodel",
                    "--out", "reference.json"], cwd=reference.root, check=True, capture_output=True,
                   env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "workflow")])})
    expected = {int(iteration): outputs for iteration, outputs in json.loads((reference.root / "reference.json").read_text()).items()}
    assert sorted(expected) == [0, 10, 20, 30, 45, 60]
    # Caffe logs each output with six significant digits
    assert _test_outputs(workspace) == {iteration: {name: float(f"{value:.6g}") for name, value in outputs.items()}
                                        for iteration, outputs in expected.items()}
    final = (workspace.out / "final.caffemodel").read_bytes()
    assert final == (reference.root / "reference.caffemodel").read_bytes()
    # And the claim the fingerprint rests on: test passes never change the weights, so a run that tested
    # every 15 iterations from the start trains the same ones.
    assert final == (_uninterrupted(tmp_path / "every-15", tiny_db, UNEVEN_TEST_BATCH, **SWITCHED_TEST_INTERVAL)
                     .out / "final.caffemodel").read_bytes()


def test_a_stop_with_the_test_set_cursor_mid_epoch_resumes_exactly(workspace: Workspace, tmp_path: Path, tiny_db: Path) -> None:
    """Test batches that do not divide the test set: after every test pass the test net's cursor is somewhere
    inside the test set, and the resumed run must put it back there."""
    training = {**LONG_TRAINING, "test_interval": 25}
    workspace.set_params(netgen=UNEVEN_TEST_BATCH, train=training)
    workspace.netgen()
    assert "test_iter: 7" in (workspace.nets / "solver.prototxt").read_text()
    stopped_at = _stop_after(workspace, 30)
    assert 30 <= stopped_at < 400
    workspace.train()
    assert f"resumes lenet from iteration {stopped_at} " in workspace.segment_logs()[1].read_text()

    reference = _uninterrupted(tmp_path, tiny_db, UNEVEN_TEST_BATCH, **training)
    assert (workspace.out / "final.caffemodel").read_bytes() == (reference.out / "final.caffemodel").read_bytes()
    _, test_rows, metrics = workspace.parse_log()
    _, reference_test, reference_metrics = reference.parse_log()
    assert [int(row["iteration"]) for row in test_rows] == list(range(0, 401, 25))
    assert _without_clock(test_rows) == _without_clock(reference_test)
    assert metrics["test"] == reference_metrics["test"]


def test_a_corrupt_newest_solverstate_is_skipped_and_moved_aside(workspace: Workspace) -> None:
    workspace.netgen()
    workspace.train()
    final = (workspace.out / "final.caffemodel").read_bytes()
    newest = workspace.out / "snapshots" / "lenet_iter_40.solverstate"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # truncated, as by a crash mid-write

    result = workspace.train()
    assert "unusable" in result.stderr
    moved = list((workspace.out / "archive").glob("corrupt-*/lenet_iter_40.solverstate"))
    assert len(moved) == 1
    assert "resumes lenet from iteration 30 " in workspace.segment_logs()[-1].read_text()
    assert (workspace.out / "final.caffemodel").read_bytes() == final


def test_a_changed_solver_never_resumes_and_archives_the_old_snapshots(workspace: Workspace) -> None:
    workspace.netgen()
    workspace.train()
    old_fingerprint = workspace.manifest()["fingerprint"]

    workspace.set_params(train={"base_lr": 0.02})
    result = workspace.train(check=False)
    assert result.returncode != 0 and "re-run `caffepipe netgen`" in result.stderr  # stale nets are refused
    workspace.netgen()
    result = workspace.train("--resume", check=False)
    assert result.returncode != 0 and "nothing to resume" in result.stderr

    workspace.train()
    assert workspace.manifest()["fingerprint"] != old_fingerprint
    assert "from scratch" in workspace.segment_logs()[0].read_text()
    archived = workspace.out / "archive" / old_fingerprint[:16]
    assert (archived / "lenet_iter_40.caffemodel").is_file() and (archived / "logs" / "segment-001.log").is_file()


def test_a_longer_max_iter_continues_from_the_last_snapshot(workspace: Workspace, tmp_path: Path, tiny_db: Path) -> None:
    workspace.netgen()
    workspace.train()
    workspace.set_params(train={"max_iter": 60})
    workspace.netgen()
    workspace.train()
    assert "resumes lenet from iteration 40 " in workspace.segment_logs()[1].read_text()
    reference = _uninterrupted(tmp_path, tiny_db, max_iter=60)
    assert (workspace.out / "final.caffemodel").read_bytes() == (reference.out / "final.caffemodel").read_bytes()

    train_rows, test_rows, metrics = workspace.parse_log()
    assert [int(row["iteration"]) for row in train_rows] == list(range(0, 60, 5))
    assert [int(row["iteration"]) for row in test_rows] == [0, 20, 40, 60]
    assert metrics["iteration"] == 60 and set(metrics["test"]) == {"accuracy", "loss"}


def test_a_changed_display_keeps_the_finished_training(workspace: Workspace) -> None:
    """display only decides which iterations Caffe logs: the snapshots stay, nothing is trained again."""
    workspace.netgen()
    workspace.train()
    before = {name: (workspace.out / name).read_bytes() for name in ("final.caffemodel", "caffe.log")}
    workspace.set_params(train={"display": 10})
    workspace.netgen()
    result = workspace.train()
    assert "nothing to train" in result.stderr
    assert "display changed since the training ran" in result.stderr      # caffe.log keeps display 5's lines
    assert not (workspace.out / "archive").exists() and len(workspace.segment_logs()) == 1
    assert before == {name: (workspace.out / name).read_bytes() for name in before}


def test_a_lower_max_iter_reuses_the_snapshots_and_the_log_ends_there(workspace: Workspace) -> None:
    workspace.netgen()
    workspace.train()
    workspace.set_params(train={"max_iter": 30})
    workspace.netgen()
    workspace.train()
    assert "resumes lenet from iteration 30 " in workspace.segment_logs()[1].read_text()  # only Caffe's final test
    assert workspace.manifest()["snapshots"][-1]["iteration"] == 30
    assert (workspace.out / "final.caffemodel").read_bytes() == \
        (workspace.out / "snapshots" / "lenet_iter_30.caffemodel").read_bytes()
    train_rows, test_rows, metrics = workspace.parse_log()
    assert [int(row["iteration"]) for row in train_rows] == list(range(0, 30, 5))
    assert [int(row["iteration"]) for row in test_rows] == [0, 20]


def test_a_snapshot_added_to_the_schedule_is_made_without_changing_the_others(workspace: Workspace) -> None:
    workspace.netgen()
    workspace.train()
    before = {path.name: path.read_bytes() for path in (workspace.out / "snapshots").glob("lenet_iter_*")}
    workspace.set_params(train={"snapshot_iters": [5, 10, 30]})
    workspace.train()
    assert [entry["iteration"] for entry in workspace.manifest()["snapshots"]] == [5, 10, 30, 40]
    after = {path.name: path.read_bytes() for path in (workspace.out / "snapshots").glob("lenet_iter_*")}
    assert {name: after[name] for name in before} == before  # retrained from scratch, exactly as before
    train_rows, test_rows, _ = workspace.parse_log()
    assert [int(row["iteration"]) for row in train_rows] == list(range(0, 40, 5))
    assert [int(row["iteration"]) for row in test_rows] == [0, 20, 40]


def test_restart_archives_and_trains_again_to_the_same_weights(workspace: Workspace) -> None:
    workspace.netgen()
    workspace.train()
    final = (workspace.out / "final.caffemodel").read_bytes()
    workspace.train("--restart")
    fingerprint = workspace.manifest()["fingerprint"]
    assert (workspace.out / "archive" / fingerprint[:16] / "lenet_iter_40.caffemodel").read_bytes() == final
    assert len(workspace.segment_logs()) == 1 and "from scratch" in workspace.segment_logs()[0].read_text()
    assert (workspace.out / "final.caffemodel").read_bytes() == final


def test_resume_without_snapshots_is_an_error(workspace: Workspace) -> None:
    workspace.netgen()
    result = workspace.train("--resume", check=False)
    assert result.returncode == 2 and "no snapshot" in result.stderr


@pytest.mark.parametrize("threads", [1, 2])
def test_two_fresh_runs_give_identical_weights(tmp_path: Path, tiny_db: Path, threads: int) -> None:
    finals = []
    for run in ("a", "b"):
        workspace = Workspace(tmp_path / run, tiny_db)
        workspace.netgen()
        run_caffepipe(*workspace.train_args()[:-2], "--threads", str(threads), cwd=workspace.root)
        finals.append((workspace.out / "final.caffemodel").read_bytes())
    assert finals[0] == finals[1]


def folder_state(path: Path) -> dict[str, bytes]:
    return {str(file.relative_to(path)): file.read_bytes() for file in sorted(path.rglob("*")) if file.is_file()}


def test_mlp_trains_from_leveldb_and_leaves_the_tracked_databases_untouched(tmp_path: Path, tiny_db: Path) -> None:
    """LevelDB rewrites its folder whenever it is opened; training and `caffe time` must read copies, or DVC
    would find build-db's output modified after every run."""
    before = {name: folder_state(tiny_db / name) for name in ("train_leveldb", "test_leveldb")}
    workspace = Workspace(tmp_path / "ws", tiny_db, model="mlp", netgen={"backend": "leveldb"})
    workspace.netgen()
    assert "train_leveldb" in (workspace.nets / "train.prototxt").read_text()
    workspace.train()
    _, test_rows, metrics = workspace.parse_log()
    assert metrics["iteration"] == 40 and metrics["test"]["accuracy"] > 0.5  # the synthetic digits are easy
    run_caffepipe("time", "--params", "params.yaml", "--model", "mlp", "--nets", "data/nets/mlp", "--weights",
                  "data/train/mlp/final.caffemodel", "--out", "reports/time/mlp", "--threads", "1", cwd=workspace.root)
    assert (workspace.root / "reports/time/mlp/layers.csv").exists()
    assert {name: folder_state(tiny_db / name) for name in before} == before
