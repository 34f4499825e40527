"""A full disk under training: a small tmpfs mounted as the training folder, sized so that the first snapshot
fits and a later one does not, then grown (`mount -o remount,size=...` keeps its files) for the run that
resumes. Needs root (or CAP_SYS_ADMIN) to mount; skipped, saying so, where that is not allowed.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.conftest import run_caffepipe, tiny_params, write_params
from tests.faults.sandbox import temporary_siblings

pytestmark = [pytest.mark.integration, pytest.mark.faults]

MODEL = "lenet"
# A LeNet snapshot on disk, .caffemodel + .solverstate: its 431,080 parameters twice as float32, plus ~1 KB.
# The tmpfs sizes below are multiples of it; the test checks it against the files it gets.
SNAPSHOT_BYTES = 3_449_468
TRAIN_ARGS = ("train", "--params", "params.yaml", "--model", MODEL, "--nets", f"data/nets/{MODEL}", "--db", "data/db",
              "--out", f"data/train/{MODEL}", "--threads", "1")


@pytest.fixture
def workspace(tmp_path: Path, mnist_raw: Path) -> Path:
    """Tiny params (snapshots at iterations 10, 30 and 40), LeNet's nets and the databases made."""
    root = tmp_path / "ws"
    root.mkdir()
    write_params(root / "params.yaml", tiny_params(netgen={"models": [MODEL]}))
    run_caffepipe("build-db", "--params", "params.yaml", "--raw", str(mnist_raw), "--out", "data/db", cwd=root)
    run_caffepipe("netgen", "--params", "params.yaml", "--model", MODEL, "--db", "data/db", "--out", f"data/nets/{MODEL}", cwd=root)
    return root


@contextlib.contextmanager
def tmpfs(folder: Path, size: int) -> Iterator[Callable[[int], None]]:
    """A tmpfs of `size` bytes mounted at `folder`; yields a function that changes its size, files kept."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True, text=True)
    if mounted.returncode != 0 and os.geteuid() != 0:
        pytest.skip(f"cannot mount a tmpfs to fill up without root: {mounted.stderr.strip()}")
    # As root (CI, envs/setup.sh's user) the mount must work: a failure there is a failure, not a skip.
    assert mounted.returncode == 0, f"mount -t tmpfs failed as root: {mounted.stderr.strip()}"

    def resize(new_size: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={new_size}", str(folder)], check=True)
    try:
        yield resize
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def used_bytes(folder: Path) -> int:
    stats = os.statvfs(folder)
    return (stats.f_blocks - stats.f_bfree) * stats.f_frsize


def snapshot_iterations(snapshots: Path) -> dict[int, set[str]]:
    """The snapshot files in the folder, by iteration: {10: {"caffemodel", "solverstate"}, ...}."""
    found: dict[int, set[str]] = {}
    for path in snapshots.glob(f"{MODEL}_iter_*"):
        iteration, kind = path.name.removeprefix(f"{MODEL}_iter_").split(".")
        found.setdefault(int(iteration), set()).add(kind)
    return found


def assert_disk_full_error(result: subprocess.CompletedProcess, folder: str) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, f"exit {result.returncode}:\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr and "Fatal Python error" not in result.stderr, result.stderr[-3000:]
    assert lines[-1].startswith("caffepipe train: error: no space left on the disk (ENOSPC)"), lines[-1]
    assert folder in lines[-1], f"{lines[-1]!r} does not name {folder}"
    return lines[-1]


def assert_loadable(root: Path, out: Path, iterations: set[int]) -> None:
    """Each snapshot parses whole and fits the net (both files), and Caffe loads its weights."""
    from caffepipe.core.caffe_env import import_caffe
    from caffepipe.training.snapshots import Snapshot, check_snapshot, net_param_shapes

    caffe = import_caffe(threads=1)
    from caffe.proto import caffe_pb2

    deploy = str(root / "data" / "nets" / MODEL / "deploy.prototxt")
    shapes = net_param_shapes(caffe.Net(deploy, caffe.TEST))
    for iteration in iterations:
        snapshot = Snapshot.at(out / "snapshots", MODEL, iteration)
        assert check_snapshot(caffe_pb2, snapshot, shapes) is None, check_snapshot(caffe_pb2, snapshot, shapes)
        caffe.Net(deploy, str(snapshot.caffemodel), caffe.TEST)


def test_a_full_disk_is_one_line_keeps_every_snapshot_and_training_resumes_once_there_is_room(workspace: Path) -> None:
    out = workspace / "data" / "train" / MODEL
    outputs = [out / name for name in ("snapshots.json", "final.caffemodel", "caffe.log")]
    with tmpfs(out, int(1.5 * SNAPSHOT_BYTES)) as resize:
        # Room for the snapshot at 10, not for the one at 30.
        full = run_caffepipe(*TRAIN_ARGS, cwd=workspace, check=False)
        assert_disk_full_error(full, f"data/train/{MODEL}/snapshots")
        assert "iteration 30" in full.stderr.strip().splitlines()[-1]
        assert snapshot_iterations(out / "snapshots") == {10: {"caffemodel", "solverstate"}}, "no half-written snapshot"
        assert sum(path.stat().st_size for path in (out / "snapshots").glob(f"{MODEL}_iter_10.*")) == pytest.approx(SNAPSHOT_BYTES, abs=2048)
        assert_loadable(workspace, out, {10})
        assert not any(output.exists() for output in outputs)

        # Room for the snapshots at 30 and 40, not for final.caffemodel: a full disk elsewhere, also one line.
        resize(used_bytes(out) + int(2.4 * SNAPSHOT_BYTES))
        outputs_full = run_caffepipe(*TRAIN_ARGS, cwd=workspace, check=False)
        assert_disk_full_error(outputs_full, f"data/train/{MODEL}")
        assert snapshot_iterations(out / "snapshots") == {i: {"caffemodel", "solverstate"} for i in (10, 30, 40)}
        assert_loadable(workspace, out, {10, 30, 40})
        assert not (out / "final.caffemodel").exists() and not (out / "snapshots.json").exists()
        assert not [sibling for output in outputs for sibling in temporary_siblings(output)], "a half-written output is left"

        resize(64 << 20)
        run_caffepipe(*TRAIN_ARGS, cwd=workspace)
        log = (out / "caffe.log").read_text()
        assert "segment resumes lenet from iteration 10 " in log, "the second run resumed from the newest snapshot"
        assert "from scratch" not in log.split("segment resumes")[1]
        assert (out / "final.caffemodel").read_bytes() == (out / "snapshots" / f"{MODEL}_iter_40.caffemodel").read_bytes()
