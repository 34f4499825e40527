"""parse_caffe_log on logs built line by line: both glog date forms, New Year, other threads' lines,
several test nets and outputs, resumed runs."""
from __future__ import annotations

import datetime
import json
import math
from pathlib import Path

import pytest

from caffepipe.training import parse_log
from caffepipe.core.errors import CaffepipeError
from caffepipe.training.parse_log import parse_caffe_log

SOLVER, PREFETCH = 100, 200


class LogWriter:
    """Glog lines as Caffe writes them, at a controllable clock."""

    def __init__(self, start: datetime.datetime, with_year: bool = True) -> None:
        self.now, self.with_year, self.lines = start, with_year, []

    def line(self, message: str, thread: int = SOLVER, source: str = "solver.cpp:239", seconds: float = 0.0) -> None:
        self.now += datetime.timedelta(seconds=seconds)
        date = self.now.strftime("%Y%m%d" if self.with_year else "%m%d")
        self.lines.append(f"I{date} {self.now:%H:%M:%S.%f} {thread:>6} {source}] {message}\n")

    def solving(self) -> None:
        self.line("Solving LeNet", source="solver.cpp:289")
        self.line("Learning Rate Policy: inv", source="solver.cpp:290")

    def test(self, iteration: int, outputs: dict[str, float], net: int = 0, seconds: float = 0.5) -> None:
        self.line(f"Iteration {iteration}, Testing net (#{net})", source="solver.cpp:347", seconds=seconds)
        for index, (name, value) in enumerate(outputs.items()):
            suffix = f" (* 1 = {value} loss)" if name == "loss" else ""
            self.line(f"    Test net output #{index}: {name} = {value}{suffix}", source="solver.cpp:414")

    def train(self, iteration: int, loss: float, lr: float, seconds: float = 1.0, outputs: dict | None = None) -> None:
        self.line(f"Iteration {iteration} (99.5 iter/s, 1.0s/100 iters), loss = {loss}", seconds=seconds)
        for index, (name, value) in enumerate((outputs or {"loss": loss}).items()):
            self.line(f"    Train net output #{index}: {name} = {value} (* 1 = {value} loss)", source="solver.cpp:258")
        self.line(f"Iteration {iteration}, lr = {lr}", source="sgd_solver.cpp:112")


def lenet_run(writer: LogWriter, start: int, stop: int, display: int = 100, test_interval: int = 500, final: bool = True) -> None:
    writer.solving()
    for iteration in range(start, stop, display):
        if iteration % test_interval == 0:
            writer.test(iteration, {"accuracy": 0.9 + iteration / 1e5, "loss": 1 / (iteration + 1)})
        writer.train(iteration, loss=1 / (iteration + 2), lr=0.01 / (1 + iteration / 1e4))
    if final:
        writer.line(f"Iteration {stop}, loss = 0", source="solver.cpp:319", seconds=1.0)
        writer.test(stop, {"accuracy": 0.99, "loss": 0.03})
        writer.line("Optimization Done.", source="solver.cpp:327")


def test_a_plain_log_gives_every_row_and_column() -> None:
    writer = LogWriter(datetime.datetime(2026, 11, 22, 11, 0, 0))
    writer.line("Network initialization done.", source="net.cpp:257")
    lenet_run(writer, 0, 1000)
    parsed = parse_caffe_log(writer.lines)
    assert parsed.train_columns == ["iteration", "seconds", "learning_rate", "smoothed_loss", "loss"]
    assert parsed.test_columns == ["iteration", "seconds", "accuracy", "loss"]
    assert [row["iteration"] for row in parsed.train] == list(range(0, 1000, 100))  # not Solve()'s closing line
    assert [row["iteration"] for row in parsed.test] == [0, 500, 1000]
    assert parsed.train[3]["learning_rate"] == pytest.approx(0.01 / 1.03)
    assert parsed.train[3]["smoothed_loss"] == parsed.train[3]["loss"] == pytest.approx(1 / 302)
    assert parsed.test[0]["seconds"] == pytest.approx(0.5)
    assert parsed.train[0]["seconds"] == pytest.approx(1.5)
    assert parsed.test[-1] == {"iteration": 1000, "seconds": pytest.approx(12.5), "accuracy": 0.99, "loss": 0.03}
    assert all("learning_rate" not in row for row in parsed.test)


@pytest.mark.parametrize("with_year", [True, False])
def test_dates_with_and_without_the_year_across_new_year(with_year: bool) -> None:
    writer = LogWriter(datetime.datetime(2025, 12, 31, 23, 59, 58), with_year=with_year)
    lenet_run(writer, 0, 300)
    parsed = parse_caffe_log(writer.lines)
    assert writer.lines[-1].startswith("I20260101" if with_year else "I0101")
    seconds = [row["seconds"] for row in parsed.train]
    assert seconds == pytest.approx([1.5, 2.5, 3.5])


def test_lines_of_other_threads_in_between_change_nothing() -> None:
    clean = LogWriter(datetime.datetime(2026, 3, 1, 9, 0, 0), with_year=False)
    lenet_run(clean, 0, 600)
    noisy_lines = []
    for index, line in enumerate(clean.lines):
        noisy_lines.append(line)
        stamp = line[1:5]
        # the data prefetcher, another solver-like thread with outputs, and non-glog noise
        noisy_lines.append(f"I{stamp} 09:00:00.000001 {PREFETCH:>6} data_layer.cpp:73] Restarting data prefetching from start.\n")
        if index % 3 == 0:
            noisy_lines.append(f"W{stamp} 08:59:59.000000 {PREFETCH:>6} blocking_queue.cpp:49] Waiting for data\n")
            noisy_lines.append("caffepipe train 2026-03-01T09:00:00: snapshot at iteration 10\n")
            noisy_lines.append("\n")
    assert parse_caffe_log(noisy_lines) == parse_caffe_log(clean.lines)


def test_a_train_output_of_another_thread_goes_to_that_threads_row() -> None:
    writer = LogWriter(datetime.datetime(2026, 3, 1, 9, 0, 0))
    writer.solving()
    writer.line("Iteration 0 (0 iter/s, 0s/100 iters), loss = 2.3")
    writer.line("    Train net output #0: loss = 9.9 (* 1 = 9.9 loss)", thread=PREFETCH, source="solver.cpp:258")
    writer.line("    Train net output #0: loss = 2.3 (* 1 = 2.3 loss)", source="solver.cpp:258")
    parsed = parse_caffe_log(writer.lines)
    assert parsed.train[0]["loss"] == 2.3


def test_several_test_nets_and_outputs() -> None:
    writer = LogWriter(datetime.datetime(2026, 3, 1, 9, 0, 0))
    writer.solving()
    for iteration in (0, 100):
        writer.test(iteration, {"accuracy": 0.5, "top5": 0.9, "loss": 1.5})
        writer.test(iteration, {"accuracy": 0.4, "loss": 1.7}, net=1, seconds=0.1)
        writer.train(iteration, loss=2.0, lr=0.01, outputs={"loss": 2.0, "aux_loss": 0.25})
    parsed = parse_caffe_log(writer.lines)
    assert parsed.test_columns == ["iteration", "seconds", "accuracy", "top5", "loss", "net1/accuracy", "net1/loss"]
    assert parsed.test[1]["net1/accuracy"] == 0.4 and parsed.test[1]["top5"] == 0.9
    assert parsed.train_columns[-2:] == ["loss", "aux_loss"] and parsed.train[1]["aux_loss"] == 0.25


def test_a_resumed_log_is_read_run_by_run() -> None:
    writer = LogWriter(datetime.datetime(2026, 3, 1, 9, 0, 0))
    lenet_run(writer, 0, 1000, final=False)          # killed at about 950; the last snapshot was at 600
    writer.now += datetime.timedelta(days=2)          # resumed two days later
    writer.line("caffepipe train: segment resumes lenet from iteration 600", source="x")
    lenet_run(writer, 600, 1200)
    parsed = parse_caffe_log(writer.lines)
    assert [row["iteration"] for row in parsed.train] == list(range(0, 1200, 100))
    assert [row["iteration"] for row in parsed.test] == [0, 500, 1000, 1200]
    seconds = {row["iteration"]: row["seconds"] for row in parsed.train}
    assert seconds[500] == pytest.approx(7.0)
    # the second run starts where the first was at 600 (8 s), not two days later
    assert seconds[600] == pytest.approx(8.0 + 1.0)
    assert seconds[700] - seconds[600] == pytest.approx(1.0)
    assert [row["seconds"] for row in parsed.train] == sorted(row["seconds"] for row in parsed.train)


def test_the_same_iteration_tested_again_after_a_resume_counts_once() -> None:
    writer = LogWriter(datetime.datetime(2026, 3, 1, 9, 0, 0))
    lenet_run(writer, 0, 600, final=False)
    writer.solving()
    writer.test(500, {"accuracy": 0.77, "loss": 0.5})
    writer.train(500, loss=0.1, lr=0.005)
    parsed = parse_caffe_log(writer.lines)
    assert [row["iteration"] for row in parsed.test] == [0, 500]
    assert parsed.test[-1]["accuracy"] == 0.77
    assert parsed.train[-1]["learning_rate"] == 0.005


def test_a_log_without_solving_lines_still_parses() -> None:
    writer = LogWriter(datetime.datetime(2026, 3, 1, 9, 0, 0))
    writer.train(0, 2.0, 0.01)
    writer.train(100, 1.0, 0.009)
    parsed = parse_caffe_log(writer.lines)
    assert [row["seconds"] for row in parsed.train] == [0.0, 1.0]


def test_numbers_in_caffes_formats() -> None:
    writer = LogWriter(datetime.datetime(2026, 3, 1, 9, 0, 0))
    writer.solving()
    writer.train(0, loss=2.3, lr=1e-05)
    writer.test(0, {"accuracy": 1, "loss": float("inf")})
    parsed = parse_caffe_log(writer.lines)
    assert parsed.train[0]["learning_rate"] == 1e-05
    assert parsed.test[0]["accuracy"] == 1.0 and math.isinf(parsed.test[0]["loss"])


def test_writer_writes_csv_and_metrics(tmp_path: Path) -> None:
    writer = LogWriter(datetime.datetime(2026, 3, 1, 9, 0, 0))
    lenet_run(writer, 0, 1000)
    parsed = parse_caffe_log(writer.lines)
    parse_log.write_tables(parsed, tmp_path / "t" / "train.csv", tmp_path / "t" / "test.csv", tmp_path / "t" / "metrics.json")
    train_lines = (tmp_path / "t" / "train.csv").read_text().splitlines()
    assert train_lines[0] == "iteration,seconds,learning_rate,smoothed_loss,loss"
    assert train_lines[1].startswith("0,1.5,0.01,0.5,0.5")
    metrics = json.loads((tmp_path / "t" / "metrics.json").read_text())
    assert metrics == {"iteration": 1000, "seconds": 12.5, "test": {"accuracy": 0.99, "loss": 0.03},
                       "train": {"smoothed_loss": pytest.approx(1 / 902), "loss": pytest.approx(1 / 902)},
                       "peak_memory_mb": None}     # no `caffepipe train` marker in this log


def test_main_refuses_a_log_without_iterations(tmp_path: Path) -> None:
    (tmp_path / "empty.log").write_text("nothing here\n")
    args = ["--log", str(tmp_path / "empty.log"), "--out-train", str(tmp_path / "a.csv"), "--out-test",
            str(tmp_path / "b.csv"), "--out-metrics", str(tmp_path / "m.json")]
    with pytest.raises(CaffepipeError, match="no training iterations"):
        parse_log.main(args)
    with pytest.raises(CaffepipeError, match="no such log"):
        parse_log.main(["--log", str(tmp_path / "missing.log"), *args[2:]])


def test_peak_memory_is_the_largest_of_the_runs_markers() -> None:
    """`caffepipe train` logs its peak resident memory at the end of each run (train.log_peak_memory)."""
    writer = LogWriter(datetime.datetime(2026, 3, 1, 9, 0, 0))
    lenet_run(writer, 0, 1000)
    lines = [*writer.lines, "caffepipe train 2026-03-01T09:01:00: peak resident memory 412.5 MB\n",
             "caffepipe train 2026-03-01T09:02:00: peak resident memory 398.0 MB\n"]
    assert parse_log.final_metrics(parse_caffe_log(lines))["peak_memory_mb"] == 412.5
