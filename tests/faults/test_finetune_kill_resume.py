"""kill -9 in the middle of a fine-tuning run, a few times, then the same command again: every snapshot and the
final weights come out bit for bit those of a sweep that was never interrupted, and so do the metrics.

The whole process group gets SIGKILL, as in test_kill_resume.py. The train batch (16) does not divide the
subset (50 images) and snapshots fall every 7 iterations, so every resume point is mid-epoch: a resume that
re-read the subset from its start would give other weights. The source weights are copied in only on a fresh
start; a resume that copied them again would overwrite the trained layers and fail the comparison too.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import CAFFEPIPE, ORCHESTRATOR_ENV, run_caffepipe, write_params
from tests.finetune_workspace import finetune_command, finetune_params, make_workspace

pytestmark = [pytest.mark.integration, pytest.mark.faults]

RUN = "data/finetune/runs/full-50"
SWEEP = {"modes": ["full"], "sizes": [50], "max_iter": 70, "test_interval": 35, "snapshot_interval": 7,
         "batch_size": 16}
KILLS = 2


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, mnist_raw: Path) -> Path:
    work = make_workspace(tmp_path_factory.mktemp("finetune-kill") / "work", mnist_raw)
    write_params(work / "params.yaml", finetune_params(mnist_raw, **SWEEP))
    return work


def run_files(root: Path) -> dict[str, bytes]:
    folder = root / RUN
    files = {path.name: path.read_bytes() for path in (folder / "snapshots").glob("full-50_iter_*")}
    files["final.caffemodel"] = (folder / "final.caffemodel").read_bytes()
    return files


def newest_snapshot(root: Path) -> int:
    return max((int(path.name.split("_iter_")[1].split(".")[0])
                for path in (root / RUN / "snapshots").glob("*.solverstate")), default=0)


def kill_after_a_new_snapshot(root: Path) -> int:
    """Start the sweep, SIGKILL its process group once a snapshot newer than the last one is in place."""
    before = newest_snapshot(root)
    process = subprocess.Popen([CAFFEPIPE, *finetune_command()], cwd=root, env=ORCHESTRATOR_ENV,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while newest_snapshot(root) <= before and process.poll() is None:
        assert time.monotonic() < deadline, "no new snapshot within 120 s"
        time.sleep(0.01)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return newest_snapshot(root)


def test_a_killed_fine_tuning_run_resumes_bit_identical(workspace: Path, tmp_path: Path) -> None:
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    shutil.copytree(workspace, reference)
    shutil.copytree(workspace, killed)
    run_caffepipe(*finetune_command(), cwd=reference)

    reached = [kill_after_a_new_snapshot(killed) for _ in range(KILLS)]
    assert 0 < reached[0] < reached[-1] < SWEEP["max_iter"], reached
    result = run_caffepipe(*finetune_command(), cwd=killed)
    assert "resuming full-50 from iteration" in result.stderr

    assert run_files(killed) == run_files(reference)
    for name in ("metrics.json", "accuracy_vs_size.csv", "curves.csv", "weight_change.csv"):
        assert (killed / "data/finetune/reports" / name).read_text() == (reference / "data/finetune/reports" / name).read_text(), name
