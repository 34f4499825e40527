"""The DVCLive series of a tiny real training against parse-log's tables of its Caffe log (the oracle): the same
iterations and the same values; a re-run with nothing to train leaves them, a lost folder is rebuilt from the log, a longer training continues them;
and the real DVC draws them while training runs (`dvc plots show`) and has their last values as columns (`dvc exp show`).
(A training killed with kill -9 and resumed: tests/faults/test_kill_resume.py; fine-tuning runs:
tests/integration/test_finetune.py.)"""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from caffepipe.training import live_metrics
from tests.conftest import ORCHESTRATOR_ENV, copy_tiny_repository, git_repository, run_command, tiny_params, write_params
from tests.integration.test_training import Workspace, tiny_db  # noqa: F401  (tiny_db: the fixture Workspace needs)

pytestmark = pytest.mark.integration

LIVE = "reports/train/lenet/live"
# The log prints 6 significant digits; the train series keep the blobs' float32 values.
LOG_DIGITS = 1e-5


def assert_series_match_tables(series: dict[str, list[tuple[int, float]]], train: list[dict], test: list[dict],
                               rel: float = LOG_DIGITS) -> None:
    """Every parse-log column is a series with the table's iterations and values; nothing more."""
    expected: dict[str, list[tuple[int, float]]] = {}
    for prefix, rows in (("train", train), ("test", test)):
        for row in rows:
            for column, text in row.items():
                if column in ("iteration", "seconds") or text == "":
                    continue
                expected.setdefault(f"{prefix}/{column}", []).append((int(row["iteration"]), float(text)))
    assert sorted(series) == sorted(expected)
    for name, rows in expected.items():
        assert [step for step, _ in series[name]] == [step for step, _ in rows], name
        assert [value for _, value in series[name]] == pytest.approx([value for _, value in rows], rel=rel), name


def read_csv(path: Path) -> list[dict]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def trained(tmp_path: Path, tiny_db: Path) -> Workspace:  # noqa: F811
    workspace = Workspace(tmp_path / "ws", tiny_db, train={"max_iter": 40, "display": 5, "test_interval": 10,
                                                          "snapshot_iters": [10, 30]})
    workspace.netgen()
    workspace.train("--out-live", LIVE)
    return workspace


def test_the_live_series_equal_parse_logs_tables(trained: Workspace) -> None:
    train, test, metrics = trained.parse_log()
    live = trained.root / LIVE
    series = live_metrics.comparable_series(live)
    assert_series_match_tables(series, train, test)
    # the test outputs are Caffe's printed means, read from its log as it is written: the very numbers
    assert series["test/accuracy"] == [(int(row["iteration"]), float(row["accuracy"])) for row in test]
    assert [step for step, _ in series["test/accuracy"]] == [0, 10, 20, 30, 40]
    assert [step for step, _ in series["train/loss"]] == list(range(0, 40, 5))
    # it/s at every display step but the run's first; metrics.json is DVCLive's summary of the last values
    speed = live_metrics.read_tsv_rows((live / "plots/metrics/perf/it_per_s.tsv").read_text())[1]
    assert [step for step, _ in speed] == list(range(5, 40, 5)) and all(float(value) > 0 for _, value in speed)
    summary = json.loads((live / "metrics.json").read_text())
    assert summary["step"] == 40 and summary["test"] == pytest.approx(metrics["test"])
    assert summary["train"]["loss"] == pytest.approx(metrics["train"]["loss"], rel=LOG_DIGITS)
    assert sorted(path.name for path in live.iterdir()) == ["metrics.json", "plots"]     # no dvc.yaml, no report


def test_nothing_to_train_leaves_the_series_and_a_lost_folder_is_rebuilt_from_the_log(trained: Workspace) -> None:
    live = trained.root / LIVE
    before = {path: path.read_bytes() for path in live.rglob("*") if path.is_file()}
    result = trained.train("--out-live", LIVE)
    assert "nothing to train" in result.stderr
    assert {path: path.read_bytes() for path in live.rglob("*") if path.is_file()} == before

    shutil.rmtree(live)
    trained.train("--out-live", LIVE)
    train, test, _ = trained.parse_log()
    assert_series_match_tables(live_metrics.comparable_series(live), train, test, rel=0)   # the log's very digits
    assert json.loads((live / "metrics.json").read_text())["step"] == 40


def test_a_resume_continues_the_series_and_a_longer_training_extends_them(trained: Workspace) -> None:
    """max_iter raised: training resumes from the last snapshot (40) and the series go on from there."""
    trained.set_params(train={"max_iter": 60, "display": 5, "test_interval": 10, "snapshot_iters": [10, 30]})
    trained.netgen()
    trained.train("--out-live", LIVE)
    train, test, _ = trained.parse_log()
    series = live_metrics.comparable_series(trained.root / LIVE)
    assert_series_match_tables(series, train, test)
    assert [step for step, _ in series["test/accuracy"]] == [0, 10, 20, 30, 40, 50, 60]



def plotted_steps(plots: dict, path: str) -> list[int]:
    """The steps `dvc plots show --json` has for one series file."""
    return [int(point["step"]) for point in plots[path][0]["content"]["data"]["values"]]


def test_dvc_draws_the_series_while_training_runs_and_shows_the_final_values(tmp_path: Path, mnist_raw: Path) -> None:
    repo = copy_tiny_repository(tmp_path / "repo", mnist_raw)
    max_iter = 300
    write_params(repo / "params.yaml", tiny_params(
        fetch={"sources": ["local"], "local_dir": str(mnist_raw)}, netgen={"models": ["lenet"]},
        train={"max_iter": max_iter, "display": 10, "test_interval": 100, "snapshot_iters": []}))
    git_repository(repo)
    run_command(["dvc", "repro", "netgen"], repo)
    series = f"{LIVE}/plots/metrics"
    loss = repo / series / "train/loss.tsv"

    training = subprocess.Popen(["dvc", "repro", "train"], cwd=repo, env=ORCHESTRATOR_ENV, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    # The repository's committed series (the full default run's, display 100) are in the copy until this training
    # starts afresh and empties them: wait for this run's own first three display steps.
    while not (loss.exists() and [step for step, _ in live_metrics.read_tsv_rows(loss.read_text())[1]][:3] == [0, 10, 20]):
        assert training.poll() is None and time.monotonic() < deadline, "training ended or stalled before 3 display steps"
        time.sleep(0.05)
    os.killpg(training.pid, signal.SIGSTOP)     # hold training still while DVC reads, so it is surely mid-run
    try:
        during = json.loads(run_command(["dvc", "plots", "show", "--json"], repo).stdout)["data"]
    finally:
        os.killpg(training.pid, signal.SIGCONT)
    steps = plotted_steps(during, f"{series}/train/loss.tsv")
    assert steps[:3] == [0, 10, 20] and steps[-1] < max_iter - 10
    assert training.wait(timeout=300) == 0

    after = json.loads(run_command(["dvc", "plots", "show", "--json"], repo).stdout)["data"]
    assert plotted_steps(after, f"{series}/train/loss.tsv") == list(range(0, max_iter, 10))
    assert plotted_steps(after, f"{series}/test/accuracy.tsv") == [0, 100, 200, 300]
    assert {f"{series}/{name}.tsv" for name in ("train/learning_rate", "train/smoothed_loss", "test/loss",
                                                 "perf/it_per_s")} <= set(after)
    experiments = json.loads(run_command(["dvc", "exp", "show", "--json"], repo).stdout)
    shown = experiments[0]["data"]["metrics"][f"{LIVE}/metrics.json"]["data"]
    assert shown == json.loads((repo / LIVE / "metrics.json").read_text())
    assert shown["step"] == max_iter and shown["test"]["accuracy"] == float(
        live_metrics.read_tsv_rows((repo / series / "test/accuracy.tsv").read_text())[1][-1][1])
