"""live_metrics' pure parts: the series of a step, resume truncation (with what a kill -9 leaves), the summary,
Caffe's smoothed loss, the series rebuilt from a log, and reading a log as Caffe writes it."""
from __future__ import annotations

import datetime
import json
import math
from pathlib import Path

import numpy as np
import pytest

from caffepipe.training import live_metrics
from caffepipe.training.parse_log import parse_caffe_log
from tests.unit.test_parse_log import LogWriter


def write_series(directory: Path, name: str, rows: list[tuple[int, float]], tail: str = "") -> Path:
    """A series file as DVCLive writes it (header `step<TAB>leaf`), plus `tail` (e.g. a half-written row)."""
    path = directory / "plots" / "metrics" / f"{name}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    leaf = name.split("/")[-1]
    path.write_text(f"step\t{leaf}\n" + "".join(f"{step}\t{value}\n" for step, value in rows) + tail)
    return path


def rows_of(path: Path) -> list[tuple[int, str]]:
    return live_metrics.read_tsv_rows(path.read_text())[1]


def test_a_display_step_has_every_train_output_the_smoothed_loss_and_the_learning_rate() -> None:
    assert live_metrics.train_values({"loss": 0.5, "accuracy": 0.9}, 0.6, 0.01) == {
        "train/loss": 0.5, "train/accuracy": 0.9, "train/smoothed_loss": 0.6, "train/learning_rate": 0.01}


def test_a_test_pass_keeps_parse_logs_names_under_test() -> None:
    row = {"iteration": 40, "seconds": 3.2, "accuracy": 0.98, "loss": 0.07, "net1/accuracy": 0.5}
    assert live_metrics.test_values(row) == {"test/accuracy": 0.98, "test/loss": 0.07, "test/net1/accuracy": 0.5}


@pytest.mark.parametrize(("iteration", "interval", "initialization", "tested"), [
    (0, 20, True, True), (0, 20, False, False), (20, 20, False, True), (25, 20, True, False), (20, 0, True, False)])
def test_test_iterations_follow_solver_step(iteration: int, interval: int, initialization: bool, tested: bool) -> None:
    assert live_metrics.is_test_iteration(iteration, interval, initialization) is tested


def test_truncation_drops_the_resumed_step_and_after_and_a_half_written_row(tmp_path: Path) -> None:
    loss = write_series(tmp_path, "train/loss", [(0, 2.3), (5, 1.9), (10, 1.2), (15, 0.9)], tail="20\t0.")
    accuracy = write_series(tmp_path, "test/accuracy", [(0, 0.1), (20, 0.8)])
    live_metrics.truncate_series(tmp_path, before=10)
    assert rows_of(loss) == [(0, "2.3"), (5, "1.9")]
    assert loss.read_text().endswith("5\t1.9\n")
    assert rows_of(accuracy) == [(0, "0.1")]


def test_truncation_keeps_a_series_that_ends_before_the_resume_untouched(tmp_path: Path) -> None:
    path = write_series(tmp_path, "train/loss", [(0, 2.3), (5, 1.9)])
    before = path.stat().st_mtime_ns, path.read_text()
    live_metrics.truncate_series(tmp_path, before=10)
    assert (path.stat().st_mtime_ns, path.read_text()) == before


def test_truncation_removes_a_file_cut_inside_its_header(tmp_path: Path) -> None:
    path = tmp_path / "plots" / "metrics" / "perf" / "it_per_s.tsv"
    path.parent.mkdir(parents=True)
    path.write_text("step\tit_p")
    live_metrics.truncate_series(tmp_path, before=10)
    assert not path.exists()


def test_the_summary_is_every_series_last_value_nested_with_the_last_step(tmp_path: Path) -> None:
    write_series(tmp_path, "train/loss", [(0, 2.3), (5, 1.9)])
    write_series(tmp_path, "test/accuracy", [(0, 0.1), (20, 0.8)])
    write_series(tmp_path, "test/net1/loss", [(20, "nan")])
    summary = live_metrics.summary_of(tmp_path)
    assert summary["train"] == {"loss": 1.9} and summary["test"]["accuracy"] == 0.8 and summary["step"] == 20
    assert math.isnan(summary["test"]["net1"]["loss"])


def test_prepare_folder_empties_nothing_on_a_resume_and_rewrites_the_summary(tmp_path: Path) -> None:
    write_series(tmp_path, "train/loss", [(0, 2.3), (5, 1.9), (10, 1.2)])
    (tmp_path / "metrics.json").write_text('{"train": {"loss": 1.')      # cut by a kill -9
    assert live_metrics.prepare_folder(tmp_path, start=10, earlier_logs=[]) is True
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"train": {"loss": 1.9}, "step": 5}
    assert live_metrics.prepare_folder(tmp_path, start=0, earlier_logs=[]) is False


def caffe_smoothed_losses(losses: list[float], window: int) -> list[float]:
    """Solver::UpdateSmoothedLoss, transcribed from solver.cpp with float32 arithmetic, for a Step from 0."""
    kept: list[np.float32] = []
    smoothed = np.float32(0)
    out = []
    for iteration, loss in enumerate(np.float32(value) for value in losses):
        if len(kept) < window:
            kept.append(loss)
            smoothed = np.float32((smoothed * np.float32(len(kept) - 1) + loss) / np.float32(len(kept)))
        else:
            smoothed = np.float32(smoothed + (loss - kept[iteration % window]) / np.float32(window))
            kept[iteration % window] = loss
        out.append(float(smoothed))
    return out


@pytest.mark.parametrize("window", [1, 3, 10])
def test_the_smoothed_loss_is_caffes(window: int) -> None:
    rng = np.random.default_rng(window)
    losses = list(rng.uniform(0.01, 2.5, size=40))
    smoothed = live_metrics.SmoothedLoss(window)
    assert [smoothed.update(iteration, 0, loss) for iteration, loss in enumerate(losses)] == caffe_smoothed_losses(losses, window)
    if window == 1:     # Caffe adds each difference to a running value: the last loss up to float32 rounding only
        assert caffe_smoothed_losses(losses, 1) != [float(np.float32(loss)) for loss in losses]
        assert caffe_smoothed_losses(losses, 1) == pytest.approx(losses, abs=1e-5)
    # a mean of the last `window` losses, to float32 rounding
    assert smoothed.value == pytest.approx(np.mean(losses[-window:]), rel=1e-5)


def test_a_resumed_run_restarts_the_average_as_caffe_does() -> None:
    smoothed = live_metrics.SmoothedLoss(2)
    assert smoothed.update(30, 30, 1.0) == 1.0          # the first loss of a run that resumed at 30
    assert smoothed.update(31, 30, 3.0) == 2.0
    assert smoothed.update(32, 30, 5.0) == 4.0


def training_log() -> list[str]:
    writer = LogWriter(datetime.datetime(2026, 11, 22, 11, 0, 0))
    writer.solving()
    writer.test(0, {"accuracy": 0.1, "loss": 2.3})
    writer.train(0, 2.31, 0.01, outputs={"loss": 2.31})
    writer.train(5, 1.5, 0.0099, outputs={"loss": 1.4})
    writer.test(10, {"accuracy": 0.6, "loss": 1.1})
    writer.train(10, 1.0, 0.0098, outputs={"loss": 0.9})
    return writer.lines


def test_steps_from_a_log_are_parse_logs_rows_test_first() -> None:
    steps = live_metrics.steps_from_log(parse_caffe_log(training_log()))
    assert [step for step, _ in steps] == [0, 0, 5, 10, 10]
    assert steps[0][1] == {"test/accuracy": 0.1, "test/loss": 2.3}
    assert steps[2][1] == {"train/loss": 1.4, "train/smoothed_loss": 1.5, "train/learning_rate": 0.0099}
    assert [step for step, _ in live_metrics.steps_from_log(parse_caffe_log(training_log()), before=10)] == [0, 0, 5]


def test_a_folder_without_series_is_rebuilt_from_the_logs_with_dvclive(tmp_path: Path) -> None:
    logs = tmp_path / "segment-001.log"
    logs.write_text("".join(training_log()))
    live = tmp_path / "live"
    assert live_metrics.prepare_folder(live, start=10, earlier_logs=[logs]) is True
    assert rows_of(live / "plots/metrics/train/loss.tsv") == [(0, "2.31"), (5, "1.4")]
    assert rows_of(live / "plots/metrics/test/accuracy.tsv") == [(0, "0.1")]
    assert json.loads((live / "metrics.json").read_text())["step"] == 5
    assert not (live / "dvc.yaml").exists() and not (live / "report.html").exists()


def test_a_complete_training_keeps_its_series(tmp_path: Path) -> None:
    path = write_series(tmp_path, "train/loss", [(0, 2.3)])
    live_metrics.ensure_complete(tmp_path, logs=[])
    assert rows_of(path) == [(0, "2.3")]


def test_the_log_tail_returns_only_complete_new_lines(tmp_path: Path) -> None:
    path = tmp_path / "segment-001.log"
    path.write_text("one\ntw")
    tail = live_metrics.CaffeLogTail(path)
    assert tail.new_lines() == ["one"]
    with open(path, "a") as handle:
        handle.write("o\nthree\n")
    assert tail.new_lines() == ["two", "three"]
    assert tail.new_lines() == []


def test_the_test_row_of_an_iteration_is_read_from_the_new_lines_only() -> None:
    lines = [line.rstrip("\n") for line in training_log()]
    assert live_metrics.test_rows_at(lines, 10)[0]["accuracy"] == 0.6
    assert live_metrics.test_rows_at(lines[-3:], 10) == []     # lines after the test pass: no test row
    assert live_metrics.test_rows_at(lines, 5) == []


def test_comparable_series_leave_out_the_wall_clock(tmp_path: Path) -> None:
    write_series(tmp_path, "train/loss", [(0, 2.3)])
    write_series(tmp_path, "perf/it_per_s", [(5, 41.2)])
    assert live_metrics.comparable_series(tmp_path) == {"train/loss": [(0, 2.3)]}
