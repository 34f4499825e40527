"""One model's training folder (`caffepipe train --out`): where everything lives, and what keeps it consistent
across interruptions: one trainer at a time, the state (the fingerprint, every segment, a record of every
snapshot), archiving instead of deleting, and snapshots that reach their final names only whole and on disk.
train.py decides what to train; this module keeps its folder sound."""
from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from caffepipe.core.atomic import write_text_atomic
from caffepipe.core.errors import CaffepipeError
from caffepipe.training.history import Segment, SnapshotRecord, snapshot_record
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

@dataclass
class TrainingState:
    """snapshots/fingerprint.json: what the snapshots beside it were trained from, and how (history.py)."""
    fingerprint: str
    parts: dict[str, str]
    completed_at: int | None = None     # the max_iter the last run reached (its final test logged); None while one runs
    segments: list[Segment] = field(default_factory=list)                 # every run on this folder, oldest first
    snapshots: dict[int, SnapshotRecord] = field(default_factory=dict)    # by iteration

    def to_json(self) -> str:
        return json.dumps({"fingerprint": self.fingerprint, "parts": self.parts, "completed_at": self.completed_at,
                           "segments": [segment.to_json() for segment in self.segments],
                           "snapshots": {str(iteration): record.to_json() for iteration, record in sorted(self.snapshots.items())}},
                          indent=2) + "\n"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TrainingState":
        completed_at = data.get("completed_at")
        return cls(fingerprint=str(data["fingerprint"]), parts=dict(data["parts"]),
                   completed_at=None if completed_at is None else int(completed_at),
                   segments=[Segment.from_json(entry) for entry in data.get("segments", [])],
                   snapshots={int(iteration): SnapshotRecord.from_json(entry) for iteration, entry in data.get("snapshots", {}).items()})


def read_state(folder: TrainingFolder) -> TrainingState | None:
    """The folder's state; None if it is missing or unreadable (then its snapshots count as another training's)."""
    try:
        return TrainingState.from_json(json.loads(folder.fingerprint_file.read_text()))
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as error:
        log.warning("%s is unreadable (%s: %s)", folder.fingerprint_file, error.__class__.__name__, error)
        return None


def write_state(folder: TrainingFolder, state: TrainingState) -> None:
    write_text_atomic(folder.fingerprint_file, state.to_json())


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def record_snapshot(folder: TrainingFolder, state: TrainingState, iteration: int, segment: Segment,
                    resumed: SnapshotRecord | None, solverstate_sha256: str) -> None:
    """Write the record of the snapshot `segment` is about to put in place at `iteration`.

    Before the snapshot's files, not after: a kill between the two then leaves a record whose hash matches no
    file at that iteration (the snapshot is made again), rather than a snapshot without its record.
    """
    state.snapshots[iteration] = snapshot_record(iteration, segment, resumed, solverstate_sha256)
    write_state(folder, state)


def recorded_snapshots(folder: TrainingFolder, state: TrainingState, intact: set[int]) -> set[int]:
    """The intact snapshots whose record describes their very .solverstate: the ones training may resume from.

    One without (a run killed between writing a record and its snapshot, over an older snapshot at that
    iteration) is made again from an earlier one.
    """
    recorded = set()
    for iteration in sorted(intact):
        record = state.snapshots.get(iteration)
        if record is not None and record.solverstate_sha256 == file_sha256(folder.snapshot(iteration).solverstate):
            recorded.add(iteration)
        else:
            log.warning("the snapshot at iteration %d has no record of how it was trained (a run stopped while "
                        "writing it?); it is made again", iteration)
    return recorded


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


def promote_snapshot(caffe_pb2: Any, folder: TrainingFolder, iteration: int, record: Callable[[str], None]) -> Snapshot:
    """Move a snapshot Caffe wrote into staging/ to its place in snapshots/, on disk before it is renamed.

    The solverstate names its caffemodel (learned_net); it is rewritten to the final path, relative to the
    working directory as Caffe writes it, so `caffe train --snapshot` run from here finds the weights.
    `record` is called with the sha256 of that final .solverstate before either file is renamed, so that a
    snapshot under its final name always has its record (history.py) written already.
    """
    staged = Snapshot.at(folder.staging, folder.prefix, iteration)
    final = folder.snapshot(iteration)
    state = caffe_pb2.SolverState()
    state.ParseFromString(staged.solverstate.read_bytes())
    state.learned_net = os.path.relpath(final.caffemodel)
    solverstate = state.SerializeToString()
    staged.solverstate.write_bytes(solverstate)
    record(hashlib.sha256(solverstate).hexdigest())
    for source, target in zip(staged.files, final.files):  # the caffemodel first: a lone one is not a snapshot
        _fsync(source)
        os.replace(source, target)
    _fsync(folder.snapshots)
    return final
