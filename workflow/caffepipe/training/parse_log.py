"""`caffepipe parse-log`: Caffe's training log as a train table, a test table and the final metrics.

    caffepipe parse-log --log data/train/lenet/caffe.log --out-train reports/train/lenet/train.csv \\
        --out-test reports/train/lenet/test.csv --out-metrics reports/train/lenet/metrics.json

train.csv, one row per displayed iteration:
    iteration, seconds, learning_rate, smoothed_loss (the loss Caffe displays, averaged over the solver's
    average_loss iterations), then every train net output by name (for LeNet: loss)
test.csv, one row per tested iteration:
    iteration, seconds, then every output of test net #0 by name (accuracy, loss), and of test net #k>0
    as net<k>/<name>
metrics.json (a DVC metric):
    {"iteration": <last tested iteration>, "seconds": <training seconds>,
     "test": {<outputs of the last test, named as in test.csv>}, "train": {<last train row's losses and outputs>},
     "peak_memory_mb": <the largest peak resident memory `caffepipe train` logged for a run, or null>}

`seconds` is training time: from the start of each run ("Solving <net>") plus the seconds the earlier runs
took to reach the iteration it resumed from; the hours between an interruption and the resume do not count.

The parser (parse_caffe_log) is pure: lines in, rows out. It reads glog lines with the year
(`I20261122 11:37:50.217981 ...`, Debian 12's glog) and without (`I1122 ...`, older glogs), infers the year
of the latter across New Year, follows each thread separately (so lines other threads write in between,
such as the data prefetcher's, change nothing), and reads several test nets and outputs. A log of several
runs (a training that was interrupted and resumed) is read run by run: rows a later run repeats replace
the earlier ones, and an earlier run's rows past the point the next one resumed from (work lost with the
interruption) are dropped. Lines that are not glog's (caffepipe's own markers) are skipped.

Unlike Caffe's tools/extra/parse_log.py it does not guess the year from the file's date, and a row's
learning rate is the one logged for that row's iteration, never a later one's.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import io
import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from caffepipe.core.atomic import write_text_atomic
from caffepipe.core.errors import CaffepipeError

log = logging.getLogger(__name__)

GLOG_LINE = re.compile(
    r"^(?P<severity>[IWEF])(?P<date>\d{8}|\d{4}) (?P<time>\d{2}:\d{2}:\d{2}\.\d{6})\s+(?P<thread>\d+)"
    r" (?P<source>[^\]\s]+)\] (?P<message>.*)$"
)
NUMBER = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|inf|nan)"
SOLVING = re.compile(r"^Solving (?P<net>.*)$")
TRAIN_ITERATION = re.compile(rf"^Iteration (?P<iteration>\d+)(?: \([^)]*\))?, loss = (?P<loss>{NUMBER})$")
LEARNING_RATE = re.compile(rf"^Iteration (?P<iteration>\d+), lr = (?P<lr>{NUMBER})$")
TEST_ITERATION = re.compile(r"^Iteration (?P<iteration>\d+), Testing net \(#(?P<net>\d+)\)$")
# caffepipe train's own line at the end of each run (train.py, log_peak_memory)
PEAK_MEMORY = re.compile(rf"^caffepipe train \S+: peak resident memory (?P<mb>{NUMBER}) MB")
OUTPUT = re.compile(rf"^\s*(?P<kind>Train|Test) net output #(?P<index>\d+): (?P<name>\S+) = (?P<value>{NUMBER})")

TRAIN_COLUMNS = ("iteration", "seconds", "learning_rate", "smoothed_loss")
TEST_COLUMNS = ("iteration", "seconds")
# A year for logs that carry none: a leap year, so that a 29 February parses. Only differences are used.
YEARLESS_BASE = 2000
# How far back a yearless line may go before it is taken to be in the next year (lines of several threads
# are not written in time order).
CLOCK_TOLERANCE = datetime.timedelta(hours=1)


@dataclass
class CaffeLog:
    """The parsed tables: rows (dicts) by iteration, and the columns each table has, in order."""
    train: list[dict[str, Any]]
    test: list[dict[str, Any]]
    train_columns: list[str]
    test_columns: list[str]
    peak_memory_mb: float | None = None     # the largest of the runs' (caffepipe train's marker lines)


def test_column(net: int, name: str) -> str:
    return name if net == 0 else f"net{net}/{name}"


@dataclass
class _Clock:
    """glog timestamps -> datetimes, with the year inferred for lines that have none."""
    last: datetime.datetime | None = None

    def read(self, date: str, time: str) -> datetime.datetime:
        clock = datetime.datetime.strptime(time, "%H:%M:%S.%f").time()
        if len(date) == 8:
            stamp = datetime.datetime.combine(datetime.date(int(date[:4]), int(date[4:6]), int(date[6:])), clock)
        else:
            stamp = self._infer_year(int(date[:2]), int(date[2:]), clock)
        self.last = stamp
        return stamp

    def _infer_year(self, month: int, day: int, clock: datetime.time) -> datetime.datetime:
        year = self.last.year if self.last else YEARLESS_BASE
        candidates = []
        for candidate_year in (year - 1, year, year + 1, year + 4):  # +4: a 29 February after the base year
            try:
                candidates.append(datetime.datetime.combine(datetime.date(candidate_year, month, day), clock))
            except ValueError:
                continue
        if self.last is None:
            return min(candidates, key=lambda stamp: abs(stamp.year - year))
        # The earliest reading that is not before the previous line (give or take other threads' lines).
        return min((stamp for stamp in candidates if stamp >= self.last - CLOCK_TOLERANCE), default=candidates[-1])


@dataclass
class _Parser:
    train: dict[int, dict[str, Any]] = field(default_factory=dict)
    test: dict[int, dict[str, Any]] = field(default_factory=dict)
    train_outputs: list[str] = field(default_factory=list)
    test_outputs: list[str] = field(default_factory=list)
    clock: _Clock = field(default_factory=_Clock)
    segment_start: datetime.datetime | None = None
    segment_offset: float = 0.0
    segment_pending: bool = False          # a run started; its first iteration not seen yet
    current_train: dict[str, dict[str, Any]] = field(default_factory=dict)   # per thread
    current_test: dict[str, tuple[dict[str, Any], int]] = field(default_factory=dict)  # per thread: row, net
    peak_memory_mb: float | None = None

    def seconds(self, stamp: datetime.datetime) -> float:
        return round(self.segment_offset + (stamp - self.segment_start).total_seconds(), 6)

    def start_segment(self, stamp: datetime.datetime) -> None:
        self.segment_start, self.segment_pending = stamp, True
        self.current_train.clear()
        self.current_test.clear()

    def reach_iteration(self, iteration: int, stamp: datetime.datetime) -> None:
        """The first iteration of a run: drop what earlier runs logged from there on, carry their time over."""
        if self.segment_start is None:
            self.start_segment(stamp)
        if not self.segment_pending:
            return
        self.segment_pending = False
        earlier = [row["seconds"] for table in (self.train, self.test) for row in table.values() if row["iteration"] <= iteration]
        self.segment_offset = max(earlier, default=0.0)
        for table in (self.train, self.test):
            for stale in [key for key in table if key >= iteration]:
                del table[stale]

    def feed(self, line: str) -> None:
        match = GLOG_LINE.match(line.rstrip("\r\n"))
        if not match:
            if memory := PEAK_MEMORY.match(line):
                self.peak_memory_mb = max(self.peak_memory_mb or 0.0, float(memory["mb"]))
            return
        stamp = self.clock.read(match["date"], match["time"])
        thread, message = match["thread"], match["message"]

        if SOLVING.match(message):
            self.start_segment(stamp)
        elif found := TRAIN_ITERATION.match(message):
            iteration = int(found["iteration"])
            self.reach_iteration(iteration, stamp)
            row = {"iteration": iteration, "seconds": self.seconds(stamp), "learning_rate": math.nan,
                   "smoothed_loss": float(found["loss"]), "_complete": False}
            self.train[iteration] = row
            self.current_train[thread] = row
        elif found := LEARNING_RATE.match(message):
            row = self.train.get(int(found["iteration"]))
            if row is not None:
                row["learning_rate"] = float(found["lr"])
                row["_complete"] = True
        elif found := TEST_ITERATION.match(message):
            iteration, net = int(found["iteration"]), int(found["net"])
            self.reach_iteration(iteration, stamp)
            row = self.test.get(iteration)
            if row is None or net == 0:
                row = {"iteration": iteration, "seconds": self.seconds(stamp)}
                self.test[iteration] = row
            self.current_test[thread] = (row, net)
        elif found := OUTPUT.match(message):
            value = float(found["value"])
            if found["kind"] == "Train":
                row = self.current_train.get(thread)
                if row is not None:
                    _add_output(row, found["name"], value, self.train_outputs, TRAIN_COLUMNS)
                    row["_complete"] = True
            else:
                current = self.current_test.get(thread)
                if current is not None:
                    row, net = current
                    _add_output(row, test_column(net, found["name"]), value, self.test_outputs, TEST_COLUMNS)

    def result(self) -> CaffeLog:
        # A display line with neither outputs nor a learning rate is Solve()'s closing summary, not a row.
        train = [{k: v for k, v in row.items() if k != "_complete"} for _, row in sorted(self.train.items()) if row["_complete"]]
        test = [row for _, row in sorted(self.test.items()) if len(row) > len(TEST_COLUMNS)]
        return CaffeLog(train, test, [*TRAIN_COLUMNS, *self.train_outputs], [*TEST_COLUMNS, *self.test_outputs],
                        self.peak_memory_mb)


def _add_output(row: dict[str, Any], name: str, value: float, columns: list[str], fixed: tuple[str, ...]) -> None:
    if name in fixed:  # an output that would shadow a fixed column keeps its own name apart
        name = f"output/{name}"
    row[name] = value
    if name not in columns:
        columns.append(name)


def parse_caffe_log(lines: Iterable[str]) -> CaffeLog:
    """Parse a Caffe training log (all its runs, in order) into train and test rows."""
    parser = _Parser()
    for line in lines:
        parser.feed(line)
    return parser.result()


def final_metrics(parsed: CaffeLog) -> dict[str, Any]:
    """The last test's outputs, the last train row's, and the training seconds."""
    if not parsed.test:
        raise CaffepipeError("the log has no test results (no `Test net output` lines); did training run with test_interval set?")
    last_test = parsed.test[-1]
    last_train = parsed.train[-1] if parsed.train else {}
    seconds = max(row["seconds"] for row in [*parsed.train, *parsed.test])
    return {
        "iteration": last_test["iteration"],
        "seconds": seconds,
        "test": {key: value for key, value in last_test.items() if key not in TEST_COLUMNS},
        "train": {key: value for key, value in last_train.items() if key not in ("iteration", "seconds", "learning_rate")},
        "peak_memory_mb": parsed.peak_memory_mb,
    }


# ---- writing ------------------------------------------------------------------------------------------------

def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return str(value)


def table_csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(column, math.nan)) for column in columns])
    return buffer.getvalue()


def write_tables(parsed: CaffeLog, train_csv: Path, test_csv: Path, metrics_json: Path) -> None:
    write_text_atomic(train_csv, table_csv(parsed.train, parsed.train_columns))
    write_text_atomic(test_csv, table_csv(parsed.test, parsed.test_columns))
    write_text_atomic(metrics_json, json.dumps(final_metrics(parsed), indent=2) + "\n")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="caffepipe parse-log", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log", required=True, type=Path, help="Caffe's log (data/train/<model>/caffe.log)")
    parser.add_argument("--out-train", required=True, type=Path, help="the train table to write (CSV)")
    parser.add_argument("--out-test", required=True, type=Path, help="the test table to write (CSV)")
    parser.add_argument("--out-metrics", required=True, type=Path, help="the final metrics to write (JSON)")
    args = parser.parse_args(argv)
    try:
        with open(args.log, encoding="utf-8", errors="replace") as handle:
            parsed = parse_caffe_log(handle)
    except FileNotFoundError:
        raise CaffepipeError(f"{args.log}: no such log; run `caffepipe train` first") from None
    if not parsed.train and not parsed.test:
        raise CaffepipeError(f"{args.log}: no training iterations found; is it a Caffe training log? (`caffepipe train` writes it)")
    write_tables(parsed, args.out_train, args.out_test, args.out_metrics)
    log.info("%s: %d train rows, %d test rows -> %s, %s, %s", args.log, len(parsed.train), len(parsed.test),
             args.out_train, args.out_test, args.out_metrics)
    return 0
