"""Room on the disk for training's output: a snapshot checked before Caffe writes it, a full disk as one line.

Caffe writes a snapshot with a CHECK on the stream (io.cpp, WriteProtoToBinaryFile): when the disk fills up
halfway through the file, glog aborts the whole process, and the user sees "Aborted" and a stack trace. The
staging folder already keeps such a half-written file from ever carrying a snapshot's name (folder.py), so no
snapshot is lost, but the message is not one a user can act on. So before Caffe writes a snapshot, the free
space where it goes is compared with what the snapshot takes, and a disk too full is a CaffepipeError; any
other write of the stage that meets a full disk (ENOSPC) becomes the same kind of one-line error.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

from caffepipe.core.errors import CaffepipeError
from caffepipe.training.snapshots import ParamShapes

FLOAT_BYTES = 4
# Besides the parameters: the net's layer definitions in the .caffemodel, the solver state's own fields and the
# caffemodel's name in the .solverstate, and the rounding of each file up to whole filesystem blocks.
SNAPSHOT_OVERHEAD_BYTES = 64 << 10

RESUME_HINT = "free some space, or move the training folder to a larger disk, and run again: it resumes from the newest snapshot"


def snapshot_bytes(shapes: ParamShapes) -> int:
    """What one snapshot takes on disk: each parameter as a float in the .caffemodel, and its momentum as a float in
    the .solverstate (SGD keeps one history blob per parameter blob)."""
    values = sum(math.prod(shape) for layer in shapes.values() for shape in layer)
    return 2 * FLOAT_BYTES * values + SNAPSHOT_OVERHEAD_BYTES


def free_bytes(folder: Path) -> int:
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def ensure_room_for_snapshot(folder: Path, needed: int, iteration: int, shown: Path) -> None:
    """Raise if `folder`'s filesystem has less than `needed` bytes free for the snapshot at `iteration`;
    `shown` is the folder the message names (the snapshots folder the user knows)."""
    free = free_bytes(folder)
    if free < needed:
        raise CaffepipeError(f"no space left on the disk (ENOSPC) for the snapshot at iteration {iteration}: "
                             f"{shown} has {_megabytes(free)} free, a snapshot takes {_megabytes(needed)}; {RESUME_HINT}")


def disk_full_error(folder: Path) -> CaffepipeError:
    """The one-line error for an ENOSPC met while writing the training folder `folder`. (It names the folder, not
    the file: that is a temporary one, already removed, or an append to a log.)"""
    return CaffepipeError(f"no space left on the disk (ENOSPC) while writing {folder}; {RESUME_HINT}")
