"""What a snapshot's two files do not say about it: the runs (segments) of `caffepipe train` that trained it,
with how many BLAS threads, and how far its test nets had read their database. train.py records it for every
snapshot in the folder's state (folder.py) and reads it back to resume.

Why the test nets' position must be recorded rather than computed from the solver:
the train net reads iter_size batches per iteration, so its Data layer's position follows from the iteration.
A test net reads test_iter batches per test pass, and how many passes came before a snapshot depends on the
test_interval of each segment that led to it. test_interval is left out of the fingerprint (a test pass reads
the weights and never changes them), so a later segment may run with another one; the resumed run replays
the batches that the earlier segments actually read, not what the current solver would have read.

Why BLAS threads are recorded: OpenBLAS may split its sums differently for another thread count, so weights
trained partly with 2 threads and partly with 1 differ in their last bits from those of any run with one
count. Resuming with another count is allowed (finished iterations are never thrown away for it), and the
threads of every segment a snapshot went through say whether it is bit-reproducible.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from caffepipe.core.errors import CaffepipeError


def count_test_passes(start: int, end: int, interval: int, initialization: bool) -> int:
    """Test passes Caffe's solver runs at the start of iterations start..end-1: at each multiple of
    `interval`, at 0 only with test_initialization (Solver::Step). Its final test at max_iter, run after the
    last snapshot, is not among them."""
    if interval <= 0 or end <= start:
        return 0
    first = max(start, 0 if initialization else interval)
    first = -(-first // interval) * interval        # the first multiple of interval from there
    return len(range(first, end, interval))


@dataclass(frozen=True)
class Segment:
    """One run of `caffepipe train` on a training folder, with the settings that it ran with and that the
    fingerprint leaves out."""
    log: str                        # its Caffe log: snapshots/logs/segment-NNN.log
    start: int                      # the iteration it resumed from (0: from scratch)
    threads: int                    # BLAS threads
    test_interval: int
    test_initialization: bool
    test_iter: tuple[int, ...]      # batches per test pass, of each test net
    display: int

    @classmethod
    def of(cls, log: str, start: int, threads: int, solver: Any) -> "Segment":
        """The segment that runs `solver` (a caffe_pb2.SolverParameter) from `start`."""
        return cls(log=log, start=start, threads=threads, test_interval=solver.test_interval,
                   test_initialization=solver.test_initialization, test_iter=tuple(solver.test_iter),
                   display=solver.display)

    def test_batches(self, end: int) -> tuple[int, ...]:
        """Batches each test net reads in this segment's test passes before iteration `end`."""
        passes = count_test_passes(self.start, end, self.test_interval, self.test_initialization)
        return tuple(passes * batches for batches in self.test_iter)

    def to_json(self) -> dict[str, Any]:
        return {"log": self.log, "start": self.start, "threads": self.threads, "test_interval": self.test_interval,
                "test_initialization": self.test_initialization, "test_iter": list(self.test_iter),
                "display": self.display}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Segment":
        return cls(log=str(data["log"]), start=int(data["start"]), threads=int(data["threads"]),
                   test_interval=int(data["test_interval"]), test_initialization=bool(data["test_initialization"]),
                   test_iter=tuple(int(batches) for batches in data["test_iter"]), display=int(data["display"]))


@dataclass(frozen=True)
class Trainer:
    """A segment that trained some of a snapshot's iterations."""
    log: str
    start: int
    threads: int

    def to_json(self) -> dict[str, Any]:
        return {"log": self.log, "from": self.start, "threads": self.threads}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Trainer":
        return cls(log=str(data["log"]), start=int(data["from"]), threads=int(data["threads"]))


@dataclass(frozen=True)
class SnapshotRecord:
    """What resuming from a snapshot needs besides its files, and what its weights went through."""
    trained_by: tuple[Trainer, ...]     # the segments that trained its iterations, oldest first
    test_batches: tuple[int, ...]       # batches each test net had read before its iteration (the resume replays them)
    # The .solverstate this record describes. A kill between writing a snapshot and its record leaves a
    # record of an earlier snapshot at that iteration; the hash tells them apart.
    solverstate_sha256: str

    @property
    def threads(self) -> tuple[int, ...]:
        return tuple(trainer.threads for trainer in self.trained_by)

    def to_json(self) -> dict[str, Any]:
        return {"trained_by": [trainer.to_json() for trainer in self.trained_by],
                "test_batches": list(self.test_batches), "solverstate_sha256": self.solverstate_sha256}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "SnapshotRecord":
        return cls(trained_by=tuple(Trainer.from_json(entry) for entry in data["trained_by"]),
                   test_batches=tuple(int(batches) for batches in data["test_batches"]),
                   solverstate_sha256=str(data["solverstate_sha256"]))


def snapshot_record(iteration: int, segment: Segment, resumed: SnapshotRecord | None, solverstate_sha256: str) -> SnapshotRecord:
    """The record of the snapshot `segment` took at `iteration`, having resumed from the snapshot `resumed`
    describes (None: it started from scratch)."""
    earlier = resumed.test_batches if resumed else tuple(0 for _ in segment.test_iter)
    if len(earlier) != len(segment.test_iter):
        raise CaffepipeError(f"the record of the snapshot at iteration {segment.start} counts {len(earlier)} test nets, "
                             f"the solver has {len(segment.test_iter)}; start again with `caffepipe train --restart`")
    trained_by = resumed.trained_by if resumed else ()
    if iteration > segment.start:       # a segment that only re-tests at its start iteration trains nothing
        trained_by += (Trainer(segment.log, segment.start, segment.threads),)
    batches = tuple(before + now for before, now in zip(earlier, segment.test_batches(iteration)))
    return SnapshotRecord(trained_by, batches, solverstate_sha256)


# ---- bit-reproducibility --------------------------------------------------------------------------------------

def thread_counts(records: Iterable[SnapshotRecord]) -> list[int]:
    """Every BLAS thread count that trained these snapshots, in the order first used."""
    return list(dict.fromkeys(threads for record in records for threads in record.threads))


def _spoken_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def reproducibility(records: list[SnapshotRecord]) -> dict[str, Any]:
    """snapshots.json's verdict on the weights of these snapshots: can an uninterrupted run reproduce them bit
    for bit? Not when their segments ran with different BLAS thread counts."""
    counts = thread_counts(records)
    mixed = len(counts) > 1
    return {"bit_reproducible": not mixed,
            "reproducibility_note": f"segments ran with {_spoken_list([str(count) for count in counts])} BLAS threads" if mixed else None}
