"""One model's training folder (`caffepipe train --out`): where everything lives, and what keeps it consistent
across interruptions: one trainer at a time, the fingerprint state, archiving instead of deleting, and snapshots
that reach their final names only whole and on disk. train.py decides what to train; this module keeps its
folder sound."""
from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from caffepipe.core.atomic import write_text_atomic
from caffepipe.core.errors import CaffepipeError
from caffepipe.training.snapshots import Snapshot, check_snapshot, find_snapshot_files

log = logging.getLogger(__name__)


# ---- the training folder ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainingFolder:
    """The paths of one model's training output (--out)."""
    root: Path
    prefix: str                     # snapshot file prefix: the model name

    @property
    def snapshots(self) -> Path:
        return self.root / "snapshots"

    @property
    def logs(self) -> Path:
        return self.snapshots / "logs"

    @property
    def staging(self) -> Path:
        return self.snapshots / ".staging"

    @property
    def fingerprint_file(self) -> Path:
        return self.snapshots / "fingerprint.json"

    @property
    def archive(self) -> Path:
        return self.root / "archive"

    @property
    def manifest(self) -> Path:
        return self.root / "snapshots.json"

    @property
    def final(self) -> Path:
        return self.root / "final.caffemodel"

    @property
    def caffe_log(self) -> Path:
        return self.root / "caffe.log"

    @property
    def lock(self) -> Path:
        return self.root / ".train.lock"

    def snapshot(self, iteration: int) -> Snapshot:
        return Snapshot.at(self.snapshots, self.prefix, iteration)

    def segment_logs(self) -> list[Path]:
        return sorted(self.logs.glob("segment-*.log")) if self.logs.is_dir() else []

    def next_segment_log(self) -> Path:
        logs = self.segment_logs()
        number = int(logs[-1].stem.split("-")[1]) + 1 if logs else 1
        return self.logs / f"segment-{number:03d}.log"


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """One trainer per folder. flock is released by the kernel when the process dies, even by kill -9."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno in (errno.EAGAIN, errno.EACCES):
                raise CaffepipeError(f"another `caffepipe train` is writing {path.parent}; wait for it, or stop it") from None
            raise
        yield


# ---- keeping the folder consistent ---------------------------------------------------------------------------

def read_state(folder: TrainingFolder) -> dict[str, Any]:
    """snapshots/fingerprint.json: {"fingerprint", "parts", "completed_at"}; {} if missing or unreadable.

    completed_at is the max_iter the last run reached (its final test logged), null while a run is under way.
    """
    try:
        state = json.loads(folder.fingerprint_file.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return state if isinstance(state, dict) else {}


def write_state(folder: TrainingFolder, fingerprint_hash: str, parts: dict[str, str], completed_at: int | None) -> None:
    write_text_atomic(folder.fingerprint_file, json.dumps(
        {"fingerprint": fingerprint_hash, "parts": parts, "completed_at": completed_at}, indent=2) + "\n")


def _unique_folder(base: Path) -> Path:
    candidate, number = base, 1
    while candidate.exists():
        number += 1
        candidate = base.with_name(f"{base.name}-{number}")
    return candidate


def archive_snapshots(folder: TrainingFolder, label: str) -> Path | None:
    """Move everything in snapshots/ to archive/<label>/ (never delete finished work); None if it was empty."""
    if not folder.snapshots.is_dir() or not any(folder.snapshots.iterdir()):
        return None
    target = _unique_folder(folder.archive / label)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(folder.snapshots, target)
    folder.snapshots.mkdir(parents=True)
    return target


def move_aside(paths: list[Path], folder: TrainingFolder, reason: str) -> Path:
    target = folder.archive / f"corrupt-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    target.mkdir(parents=True, exist_ok=True)
    for path in paths:
        os.replace(path, target / path.name)
    log.warning("moved %s aside to %s: %s", ", ".join(p.name for p in paths), target, reason)
    return target


def intact_snapshots(caffe_pb2: Any, folder: TrainingFolder, expected_shapes: dict, max_iter: int) -> set[int]:
    """Iterations with a complete, valid snapshot; damaged ones and lone halves are moved aside."""
    intact = set()
    for iteration, paths in sorted(find_snapshot_files(folder.snapshots, folder.prefix).items()):
        if iteration > max_iter:
            continue  # from a longer training of the same fingerprint: kept, not used
        problem = check_snapshot(caffe_pb2, folder.snapshot(iteration), expected_shapes)
        if problem:
            move_aside(paths, folder, f"snapshot at iteration {iteration} is unusable ({problem})")
        else:
            intact.add(iteration)
    return intact


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def promote_snapshot(caffe_pb2: Any, folder: TrainingFolder, iteration: int) -> Snapshot:
    """Move a snapshot Caffe wrote into staging/ to its place in snapshots/, on disk before it is renamed.

    The solverstate names its caffemodel (learned_net); it is rewritten to the final path, relative to the
    working directory as Caffe writes it, so `caffe train --snapshot` run from here finds the weights.
    """
    staged = Snapshot.at(folder.staging, folder.prefix, iteration)
    final = folder.snapshot(iteration)
    state = caffe_pb2.SolverState()
    state.ParseFromString(staged.solverstate.read_bytes())
    state.learned_net = os.path.relpath(final.caffemodel)
    staged.solverstate.write_bytes(state.SerializeToString())
    for source, target in zip(staged.files, final.files):  # the caffemodel first: a lone one is not a snapshot
        _fsync(source)
        os.replace(source, target)
    _fsync(folder.snapshots)
    return final
