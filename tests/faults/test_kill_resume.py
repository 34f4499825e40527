"""kill -9 at random moments of training, under `dvc repro` and under `snakemake`, then resume: the weights
must come out bit for bit those of a run that was never interrupted, and the DVCLive series those of the
uninterrupted run (the same steps, no repeats, no gaps) and parse-log's tables of the resumed run's own log.

The whole process group (the orchestrator, `caffepipe train`, Caffe inside it) gets SIGKILL: nothing of
caffepipe's runs on the way out, so what is on disk is whatever the kill left. The same orchestrator command
is then run again, after `snakemake --unlock` for Snakemake (README, "Resuming training"), and again killed,
a few times, before a last run finishes. The train batch (48) does not divide the training set (640 images),
so every snapshot, and so every resume point, falls mid-epoch: a resume that re-read the database from its
start, as `caffe train --snapshot` does, would give other weights. Training runs on one BLAS thread in every
run (the weights depend on the thread count, README "Determinism").
"""
from __future__ import annotations

import contextlib
import datetime
import os
import random
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from caffepipe.training.live_metrics import comparable_series
from caffepipe.training.parse_log import parse_caffe_log
from tests.conftest import ORCHESTRATOR_ENV as ENV
from tests.conftest import git_repository
from tests.conftest import run_command as run
from tests.faults.sandbox import copy_repository, processes_inside

pytestmark = [pytest.mark.integration, pytest.mark.faults]

MODEL = "lenet"
TRAIN_IMAGES, BATCH = 640, 48
MAX_ITER, SNAPSHOT_EVERY = 120, 7
KILLS = 3                       # per orchestrator, then one run to the end
SEED = 20261123                 # kill moments: the same draws every run of the suite
COMMANDS = {
    "dvc": ["dvc", "repro", "train"],
    "snakemake": ["snakemake", "--cores", "2", f"data/train/{MODEL}/final.caffemodel"],
}

TRAINING = Path("data/train") / MODEL
LIVE = Path("reports/train") / MODEL / "live"
# Caffe starts its smoothed loss again in every run (Solver::Step), so after a resume it differs from the
# uninterrupted run's in its last float32 bits, in Caffe's log as in the series; every other series is exact.
RESTARTED_BY_CAFFE = {"train/smoothed_loss"}
SNAPSHOTS = TRAINING / "snapshots"
GLOG_TIME = re.compile(r"^I\d{4}(\d{4})? (\d\d:\d\d:\d\d\.\d{6}) ")


def test_every_resume_point_is_mid_epoch() -> None:
    """The point of the non-aligned batch: no scheduled snapshot ends an epoch."""
    scheduled = list(range(SNAPSHOT_EVERY, MAX_ITER, SNAPSHOT_EVERY))
    assert all(iteration * BATCH % TRAIN_IMAGES for iteration in scheduled)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory, mnist_raw: Path) -> Path:
    """A tiny repository, one model, with its data and nets made (`dvc repro netgen`) but nothing trained."""
    repo = copy_repository(
        tmp_path_factory.mktemp("kill") / "prepared",
        fetch={"sources": ["local"], "local_dir": str(mnist_raw)},
        build_db={"train_limit": TRAIN_IMAGES, "test_limit": 200},
        netgen={"models": [MODEL], "train_batch_size": BATCH, "test_batch_size": 50},
        train={"max_iter": MAX_ITER, "test_interval": 40, "display": 10, "snapshot_interval": SNAPSHOT_EVERY,
               "snapshot_iters": [], "threads": 1},
    )
    git_repository(repo)
    run(["dvc", "repro", "netgen"], repo)
    return repo


def snapshot_files(repo: Path) -> dict[str, bytes]:
    """Every snapshot file in the training folder, by name, and final.caffemodel."""
    files = {path.name: path.read_bytes() for path in (repo / SNAPSHOTS).glob(f"{MODEL}_iter_*")}
    final = repo / TRAINING / "final.caffemodel"
    if final.exists():
        files[final.name] = final.read_bytes()
    return files


def newest_snapshot(repo: Path) -> int:
    iterations = [int(p.name.split("_iter_")[1].split(".")[0]) for p in (repo / SNAPSHOTS).glob("*.solverstate")]
    return max(iterations, default=0)


def glog_seconds(line: str) -> float:
    clock = datetime.datetime.strptime(GLOG_TIME.match(line).group(2), "%H:%M:%S.%f")
    return clock.hour * 3600 + clock.minute * 60 + clock.second + clock.microsecond / 1e6


@dataclass(frozen=True)
class Reference:
    files: dict[str, bytes]
    seconds_per_iteration: float
    series: dict[str, list[tuple[int, float]]]     # the DVCLive series, without the wall clock's (it/s)


@pytest.fixture(scope="module")
def reference(prepared: Path, tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """The same training, never interrupted (DVC), and how fast it went (from its log's first to its last snapshot)."""
    repo = tmp_path_factory.mktemp("kill") / "reference"
    shutil.copytree(prepared, repo, symlinks=True)
    run(COMMANDS["dvc"], repo)
    snapshot_lines = [line for line in (repo / TRAINING / "caffe.log").read_text().splitlines()
                      if "Snapshotting to binary proto file" in line and line.endswith(".caffemodel")]
    elapsed = glog_seconds(snapshot_lines[-1]) - glog_seconds(snapshot_lines[0])
    return Reference(snapshot_files(repo), elapsed / (MAX_ITER - SNAPSHOT_EVERY), comparable_series(repo / LIVE))


def segment_logs(repo: Path) -> list[Path]:
    return sorted((repo / SNAPSHOTS / "logs").glob("segment-*.log"))


def wait_until(condition: Callable[[], bool], process: subprocess.Popen, what: str, timeout: float = 120) -> bool:
    """Poll until `condition`; False if the process ended first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            return False
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.02)
    return True


def solving(repo: Path, segments_before: int) -> Callable[[], bool]:
    """True once this run's own segment log shows Caffe's solver at work."""
    def started() -> bool:
        logs = segment_logs(repo)
        return len(logs) > segments_before and "Solving " in logs[-1].read_text(errors="replace")
    return started


def kill_group(process: subprocess.Popen, repo: Path) -> None:
    with contextlib.suppress(ProcessLookupError):    # the run may have ended on its own just before
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 10      # the group dies at once; its members leave /proc a moment later
    while processes_inside(repo):
        assert time.monotonic() < deadline, f"still running after kill -9 of the group: {processes_inside(repo)}"
        time.sleep(0.05)


@dataclass(frozen=True)
class Kill:
    resumed_from: int       # newest snapshot before the run
    after_s: float          # seconds into training
    newest_after: int       # newest snapshot after the kill
    interrupted: bool       # training was still running when the kill came


def start_and_kill(command: list[str], repo: Path, rng: random.Random, reference: Reference) -> Kill:
    """Start the orchestrator; once Caffe is solving, SIGKILL the group at a random moment of what is left to train."""
    resumed_from = newest_snapshot(repo)
    segments_before = len(segment_logs(repo))
    process = subprocess.Popen(command, cwd=repo, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    started = wait_until(solving(repo, segments_before), process, "training")
    after = rng.uniform(0.05, 0.95) * (MAX_ITER - resumed_from) * reference.seconds_per_iteration
    deadline = time.monotonic() + after
    while started and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    interrupted = process.poll() is None and not (repo / TRAINING / "final.caffemodel").exists()
    kill_group(process, repo)
    return Kill(resumed_from, round(after, 2), newest_snapshot(repo), interrupted)


def assert_same_series(series: dict[str, list[tuple[int, float]]], reference: Reference) -> None:
    assert sorted(series) == sorted(reference.series)
    for name, rows in reference.series.items():
        steps = [step for step, _ in rows]
        assert [step for step, _ in series[name]] == steps, f"{name}: other steps than the uninterrupted run's"
        assert len(set(steps)) == len(steps)
        values = [value for _, value in series[name]]
        expected = [value for _, value in rows]
        assert values == (pytest.approx(expected, rel=1e-5) if name in RESTARTED_BY_CAFFE else expected), name


def assert_series_are_the_logs(repo: Path, series: dict[str, list[tuple[int, float]]]) -> None:
    """The series are what parse-log reads in the resumed training's combined log (the oracle)."""
    parsed = parse_caffe_log((repo / TRAINING / "caffe.log").read_text().splitlines())
    assert series["test/accuracy"] == [(row["iteration"], row["accuracy"]) for row in parsed.test]
    assert series["test/loss"] == [(row["iteration"], row["loss"]) for row in parsed.test]
    for name, column in (("train/loss", "loss"), ("train/smoothed_loss", "smoothed_loss"),
                         ("train/learning_rate", "learning_rate")):
        assert [step for step, _ in series[name]] == [row["iteration"] for row in parsed.train], name
        assert [value for _, value in series[name]] == pytest.approx([row[column] for row in parsed.train], rel=1e-5), name


def assert_identical(files: dict[str, bytes], reference: Reference, when: str) -> None:
    differing = sorted(name for name, data in files.items() if reference.files.get(name) != data)
    assert not differing, f"{when}: {differing} differ from the uninterrupted run"


@pytest.mark.parametrize("orchestrator", sorted(COMMANDS))
def test_sigkill_at_random_moments_then_resume_gives_identical_weights(orchestrator: str, prepared: Path, reference: Reference,
                                                                      tmp_path: Path, record_property: Callable) -> None:
    repo = tmp_path / orchestrator
    shutil.copytree(prepared, repo, symlinks=True)
    command = COMMANDS[orchestrator]
    rng = random.Random(f"{SEED}-{orchestrator}")
    kills = []
    for _ in range(KILLS):
        kills.append(start_and_kill(command, repo, rng, reference))
        # What a kill leaves must already be the uninterrupted run's: every snapshot that has its name is whole.
        assert_identical(snapshot_files(repo), reference, f"after kill {len(kills)}")
        if orchestrator == "snakemake":
            run(["snakemake", "--unlock"], repo)    # its lock outlives a kill -9 of Snakemake
    record_property("kills", "; ".join(f"from {k.resumed_from}, +{k.after_s} s -> snapshot {k.newest_after}"
                                       f"{'' if k.interrupted else ' (training had ended)'}" for k in kills))

    run(command, repo)

    final = snapshot_files(repo)
    assert {"final.caffemodel", f"{MODEL}_iter_{MAX_ITER}.caffemodel", f"{MODEL}_iter_{MAX_ITER}.solverstate"} <= set(final)
    assert_identical(final, reference, "after the last run")
    series = comparable_series(repo / LIVE)
    assert_same_series(series, reference)
    assert_series_are_the_logs(repo, series)
    assert any(kill.interrupted for kill in kills), f"no kill landed in training: {kills}"
    log = (repo / TRAINING / "caffe.log").read_text()
    resumes = re.findall(r"segment resumes \w+ from iteration (\d+)", log)
    assert resumes, "no run resumed"
    assert all(int(start) * BATCH % TRAIN_IMAGES for start in resumes), f"a resume point is on an epoch boundary: {resumes}"
