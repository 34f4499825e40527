"""Training metrics through DVCLive, written while Caffe trains, so that `dvc plots show`, `dvc exp show` and DVC's
editor integrations see a training as it runs.

Folder (`caffepipe train --out-live`, e.g. reports/train/lenet/live/; a fine-tuning run's <run>/live/):
    metrics.json                        the latest value of every series, and its step (a DVC metric)
    plots/metrics/train/<output>.tsv    each train net output (LeNet: loss), at every display step
    plots/metrics/train/smoothed_loss.tsv   the loss Caffe displays (averaged over the solver's average_loss)
    plots/metrics/train/learning_rate.tsv   the learning rate of that iteration
    plots/metrics/test/<output>.tsv     each test net output (accuracy, loss) at every test pass; test net #k>0's
                                        as test/net<k>/<output>, as parse-log names them
    plots/metrics/perf/it_per_s.tsv     training speed since the previous display step: wall clock, so the
                                        only series that differs between two runs of the same training
Each TSV is DVCLive's: a header `step<TAB><name>`, then one row per logged step. The step is Caffe's iteration.
Rows are appended (and reach the file) as they are logged; metrics.json is replaced whole after each step.

Where the numbers come from, and why they equal parse-log's tables (the oracle, tests/integration/test_live_metrics.py):
- train outputs: the train net's output blobs after the iteration's forward and backward pass, which are what
  Caffe prints in that iteration's display lines (we keep every bit; the log has 6 significant digits);
- smoothed loss: Caffe's Solver::UpdateSmoothedLoss redone in float32 (SmoothedLoss), restarting, as Caffe
  does, at the start of every run;
- learning rate: the solver's own GetLearningRate() (pycaffe's `solver.lr`) for the iteration;
- test outputs: Caffe averages each test output over test_iter batches in a local variable of Solver::Test
  and writes the means nowhere but its log. Running the test again here would cost a second test pass and move
  the test Data layers' read position (which exact resume depends on), so the means are read from the lines
  Caffe has just written to this run's segment log (CaffeLogTail), with parse-log's own parser: they are
  Caffe's numbers to the printed digit.

Resume: a run that resumes from the snapshot at iteration k repeats the test pass and the display step at k, so
every row from step k on is dropped from the series before it continues (truncate_series), as parse-log drops
the rows a later run repeats; what a kill -9 left half-written at the end of a file goes with them. The series
of a killed and resumed training is then the uninterrupted run's, row for row, except perf/it_per_s.
When the folder holds no series at all (deleted, or the training predates it), the rows before k are rebuilt
from the earlier runs' Caffe logs (their values at the log's 6 digits), so the series never has a gap.
A training that is complete and re-run with nothing to do leaves the folder as it is.

DVCLive runs with save_dvc_exp=False, dvcyaml=False and report=None: it neither makes experiments nor edits
dvc.yaml; the stage list (pipeline/stages.py) declares metrics.json as a metric and plots/metrics as plots.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
# At import, DVCLive gives its logger a handler on the sys.stderr of that moment: import it before train.py points
# stderr elsewhere for Caffe's log (train.caffe_log_to), not inside.
from dvclive import Live

from caffepipe.core.atomic import write_text_atomic
from caffepipe.training.parse_log import TEST_COLUMNS, CaffeLog, parse_caffe_log

log = logging.getLogger(__name__)

TRAIN, TEST, PERF = "train", "test", "perf"
SMOOTHED_LOSS, LEARNING_RATE, IT_PER_S = f"{TRAIN}/smoothed_loss", f"{TRAIN}/learning_rate", f"{PERF}/it_per_s"
# Series that measure the wall clock: the only ones two runs of the same training do not share.
WALL_CLOCK_SERIES = (IT_PER_S,)
METRICS_FILE = "metrics.json"
SERIES_FOLDER = Path("plots") / "metrics"


# ---- what is logged at a step ---------------------------------------------------------------------------------

def train_values(outputs: dict[str, float], smoothed_loss: float, learning_rate: float) -> dict[str, float]:
    """A display step's series: each train net output, the smoothed loss and the learning rate."""
    return {**{f"{TRAIN}/{name}": value for name, value in outputs.items()},
            SMOOTHED_LOSS: smoothed_loss, LEARNING_RATE: learning_rate}


def test_values(row: dict[str, Any]) -> dict[str, float]:
    """A test pass's series from a parse-log test row (outputs named as in test.csv)."""
    return {f"{TEST}/{name}": value for name, value in row.items() if name not in TEST_COLUMNS}


def steps_from_log(parsed: CaffeLog, before: int | None = None) -> list[tuple[int, dict[str, float]]]:
    """Every (step, values) parse-log's tables hold, in step order (test pass first at a shared step, as Caffe
    runs it first), up to `before`: what a folder without series is rebuilt from."""
    rows: list[tuple[int, int, dict[str, float]]] = []
    for row in parsed.test:
        rows.append((row["iteration"], 0, test_values(row)))
    for row in parsed.train:
        outputs = {name: row[name] for name in parsed.train_columns[4:] if name in row}
        rows.append((row["iteration"], 1, train_values(outputs, row["smoothed_loss"], row["learning_rate"])))
    return [(step, values) for step, _, values in sorted(rows, key=lambda item: item[:2])
            if before is None or step < before]


def is_test_iteration(iteration: int, interval: int, initialization: bool) -> bool:
    """Caffe's solver tests at the start of this iteration (Solver::Step)."""
    return interval > 0 and iteration % interval == 0 and (iteration > 0 or initialization)


@dataclass
class SmoothedLoss:
    """Caffe's Solver::UpdateSmoothedLoss, in float32 as Caffe computes it: the mean of the last `window`
    losses, kept as a running sum (so even with a window of 1 it is not exactly the last loss: the float32
    rounding of every update carries over). Caffe starts it again in every Solve(), so a resumed run does too."""
    window: int
    losses: list[np.float32] = field(default_factory=list)
    value: np.float32 = np.float32(0)

    def update(self, iteration: int, start: int, loss: float) -> float:
        loss = np.float32(loss)
        if len(self.losses) < self.window:
            self.losses.append(loss)
            size = np.float32(len(self.losses))
            self.value = np.float32((self.value * (size - np.float32(1)) + loss) / size)
        else:
            index = (iteration - start) % self.window
            self.value = np.float32(self.value + (loss - self.losses[index]) / np.float32(self.window))
            self.losses[index] = loss
        return float(self.value)


# ---- the series on disk -----------------------------------------------------------------------------------------

def series_files(directory: Path) -> list[Path]:
    folder = directory / SERIES_FOLDER
    return sorted(folder.rglob("*.tsv")) if folder.is_dir() else []


def series_name(directory: Path, path: Path) -> str:
    return path.relative_to(directory / SERIES_FOLDER).with_suffix("").as_posix()


def read_tsv_rows(text: str) -> tuple[str, list[tuple[int, str]]]:
    """A DVCLive series file: its header line and its complete rows as (step, value text). A last line without
    its newline (cut by a kill) or a row that does not parse is not a row."""
    lines = text.split("\n")
    header, complete = lines[0], lines[1:-1]   # the element after the last newline is never complete
    columns = header.split("\t")
    rows = []
    for line in complete:
        cells = line.split("\t")
        if len(cells) != len(columns) or not cells[columns.index("step")].isdigit():
            continue
        rows.append((int(cells[columns.index("step")]), cells[-1]))
    return header, rows


def truncate_series(directory: Path, before: int) -> None:
    """Drop every row from step `before` on (and any half-written one) from each series file."""
    for path in series_files(directory):
        text = path.read_text(encoding="utf-8")
        if "\n" not in text:
            path.unlink()        # not even its header was written
            continue
        header, rows = read_tsv_rows(text)
        kept = [f"{step}\t{value}" for step, value in rows if step < before]
        truncated = "".join(f"{line}\n" for line in [header, *kept])
        if truncated != text:
            write_text_atomic(path, truncated)


def parse_value(text: str) -> float | str:
    """A value as DVCLive wrote it: a number, or the text DVCLive writes for nan and inf."""
    try:
        return float(text)
    except ValueError:
        return text


def summary_of(directory: Path) -> dict[str, Any]:
    """What DVCLive's metrics.json holds: each series' last value, nested by its name's parts, and the last step."""
    summary: dict[str, Any] = {}
    last_step = None
    for path in series_files(directory):
        _, rows = read_tsv_rows(path.read_text(encoding="utf-8"))
        if not rows:
            continue
        step, value = rows[-1]
        node = summary
        *parents, leaf = series_name(directory, path).split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = parse_value(value)
        last_step = step if last_step is None else max(last_step, step)
    if last_step is not None:
        summary["step"] = last_step
    return summary


def write_summary(directory: Path, summary: dict[str, Any]) -> None:
    """metrics.json, replaced whole (a reader or a kill never sees half of it); DVCLive's layout."""
    write_text_atomic(directory / METRICS_FILE, json.dumps(summary, indent=4) + "\n")


def has_series(directory: Path) -> bool:
    return bool(series_files(directory))


# ---- Caffe's log, as it is written ------------------------------------------------------------------------------

class CaffeLogTail:
    """The lines a segment log gained since the last read (Caffe writes each glog line whole, before the solver
    calls back, so what is there is complete)."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, 0

    def new_lines(self) -> list[str]:
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        return data[:end].decode("utf-8", errors="replace").splitlines()


def test_rows_at(lines: Iterable[str], iteration: int) -> list[dict[str, Any]]:
    """parse-log's test row of `iteration` among these lines (none if it is not complete there)."""
    return [row for row in parse_caffe_log(lines).test if row["iteration"] == iteration]


# ---- the logger ---------------------------------------------------------------------------------------------------

def open_live(directory: Path, resume: bool) -> Any:
    """A DVCLive logger on `directory` that makes no experiment, no dvc.yaml and no report (the pipeline declares
    the outputs). Without resume it empties the series."""
    return Live(dir=str(directory), resume=resume, save_dvc_exp=False, dvcyaml=False, report=None)


def prepare_folder(directory: Path, start: int, earlier_logs: list[Path]) -> bool:
    """Make the folder hold exactly the steps before `start`; returns whether DVCLive resumes it.

    A fresh start (0) empties it. Otherwise the rows from `start` on are dropped; a folder with no series is
    rebuilt from the earlier runs' logs instead."""
    if start == 0:
        return False
    if has_series(directory):
        truncate_series(directory, start)
        write_summary(directory, summary_of(directory))
        return True
    rebuild_from_logs(directory, earlier_logs, before=start)
    return True


def rebuild_from_logs(directory: Path, logs: list[Path], before: int | None = None) -> None:
    """Write the series parse-log finds in these Caffe logs (all their steps, or those before `before`)."""
    lines = [line for path in logs for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    steps = steps_from_log(parse_caffe_log(lines), before)
    live = open_live(directory, resume=False)
    for step, values in steps:
        live.step = step
        for name, value in values.items():
            live.log_metric(name, value)
    write_summary(directory, summary_of(directory))
    log.info("rebuilt %d steps of the DVCLive series in %s from %d Caffe log(s)", len(steps), directory, len(logs))


def ensure_complete(directory: Path, logs: list[Path]) -> None:
    """For a training with nothing left to train: keep the series, or rebuild them from its logs if there are none."""
    if not has_series(directory):
        rebuild_from_logs(directory, logs)


class TrainingSeries:
    """The series of one run (segment) of a training, fed by train.Session's solver callbacks:
    after_test at the start of every iteration, after_forward once its forward and backward pass are done,
    after_solve when Solve() has ended (its final test comes after the last callback)."""

    def __init__(self, directory: Path, solver: Any, solver_param: Any, start: int, segment_log: Path,
                 earlier_logs: list[Path]) -> None:
        self.directory, self.solver, self.start = directory, solver, start
        self.display = solver_param.display
        self.test_interval, self.test_initialization = solver_param.test_interval, solver_param.test_initialization
        self.smoothed = SmoothedLoss(max(1, solver_param.average_loss))
        self.live = open_live(directory, resume=prepare_folder(directory, start, earlier_logs))
        self.caffe_log = CaffeLogTail(segment_log)
        net = solver.net  # pycaffe makes a new wrapper (and blob dict) on each access: keep one
        # Views of the output blobs' memory, made once: a train net's outputs are never reshaped, so they follow
        # every iteration's values, and reading them costs no new wrapper per iteration.
        self.outputs = [(name, net.blobs[name].data) for name in net.outputs]
        self.loss_terms = [(net.blobs[name].data, np.float32(weight))
                           for name, weight in net.blob_loss_weights.items() if weight and name in net.outputs]
        self.last_display: tuple[int, float] | None = None

    def log_step(self, step: int, values: dict[str, float]) -> None:
        self.live.step = step
        for name, value in values.items():
            self.live.log_metric(name, value)
        write_summary(self.directory, {**self.live.summary, "step": step})

    def log_test(self, iteration: int) -> None:
        for row in test_rows_at(self.caffe_log.new_lines(), iteration):
            self.log_step(iteration, test_values(row))

    def after_test(self, iteration: int) -> None:
        if is_test_iteration(iteration, self.test_interval, self.test_initialization):
            self.log_test(iteration)

    def after_forward(self, iteration: int) -> None:
        # Every iteration's loss enters the smoothed loss, even with average_loss 1: Caffe then adds the difference
        # to the previous loss, and the rounding of those float32 sums carries over (a few microseconds here).
        displayed = self.display > 0 and iteration % self.display == 0
        smoothed = self.smoothed.update(iteration, self.start, self.loss())
        if not displayed:
            return
        outputs = {}
        for name, data in self.outputs:
            flat = data.ravel()
            outputs.update({name: float(flat[0])} if flat.size == 1
                           else {f"{name}/{index}": float(value) for index, value in enumerate(flat)})
        self.log_step(iteration, {**train_values(outputs, smoothed, float(self.solver.lr)), **self.speed(iteration)})

    def loss(self) -> np.float32:
        """The iteration's loss as Net::ForwardBackward sums it in float32: each loss output times its weight."""
        total = np.float32(0)
        for data, weight in self.loss_terms:
            total = np.float32(total + weight * (data.item() if data.size == 1 else data.sum(dtype=np.float32)))
        return total

    def speed(self, iteration: int) -> dict[str, float]:
        """Iterations per second since the previous display step of this run (none at its first)."""
        now = time.monotonic()
        previous, self.last_display = self.last_display, (iteration, now)
        if previous is None or now <= previous[1]:
            return {}
        return {IT_PER_S: round((iteration - previous[0]) / (now - previous[1]), 3)}

    def after_solve(self, max_iter: int) -> None:
        if self.test_interval > 0 and max_iter % self.test_interval == 0:
            self.log_test(max_iter)


def comparable_series(directory: Path) -> dict[str, list[tuple[int, float | str]]]:
    """Every series but the wall clock's, as (step, value) rows: what two runs of one training must share."""
    series = {}
    for path in series_files(directory):
        name = series_name(directory, path)
        if name not in WALL_CLOCK_SERIES:
            series[name] = [(step, parse_value(value)) for step, value in read_tsv_rows(path.read_text())[1]]
    return series
