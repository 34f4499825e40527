"""`caffepipe train`: train one model with the real Caffe, with scheduled snapshots and exact resume.

    caffepipe train --params params.yaml --model lenet --nets data/nets/lenet --db data/db \\
        --out data/train/lenet [--out-reproducibility reports/train/lenet/reproducibility.json] \\
        [--out-live reports/train/lenet/live] --threads 2 [--resume | --restart]

Output folder (--out, e.g. data/train/lenet/):
    snapshots/                 <model>_iter_<N>.caffemodel + .solverstate at every scheduled iteration
                               (each multiple of the solver's `snapshot` interval, each of params
                               train.snapshot_iters, and max_iter), plus any taken when a run was stopped;
                               logs/segment-NNN.log, Caffe's complete log of each run (segment) of this training;
                               fingerprint.json, the folder's state: what the snapshots were trained from,
                               whether the last run reached max_iter, every segment with its BLAS threads
                               and test settings, and a record of each snapshot (history.py).
                               The orchestrators never delete this folder (DVC: persist), so it survives
                               interruptions; this module decides what in it is still valid.
    snapshots.json             the manifest of the scheduled snapshots, the segments that trained the final
                               weights and whether they are bit-reproducible (see caffepipe/training/snapshots.py)
--out-reproducibility (e.g. reports/train/lenet/reproducibility.json), a DVC metric the report reads:
    {"blas_threads": [2, 1], "bit_reproducible": false, "reproducibility_note": "segments ran with 2 and 1 BLAS threads"}
    blas_threads: of each segment that trained the final weights, in order; the verdict covers every listed
    snapshot.
    final.caffemodel           the weights at max_iter, under a stable name
    caffe.log                  every segment's log, in order (what `caffepipe parse-log` reads)
    archive/                   snapshots moved aside, never deleted: archive/<fingerprint>/ when the nets, the
                               solver or the data changed; archive/corrupt-<time>/ for damaged files
--out-live (e.g. reports/train/lenet/live/): the training's DVCLive series (train loss, test outputs, learning
    rate, it/s by iteration), written as it trains and continued, without gaps or repeats, by a resumed run
    (live_metrics.py). Like snapshots/, the orchestrators never delete it (DVC: persist).

Why pycaffe's solver, in this process, rather than the `caffe train` binary:
- Snapshots at an explicit list of iterations: the binary only snapshots every `snapshot` iterations. Here a
  solver callback, run at the start of every iteration, snapshots exactly at the scheduled ones.
- Exact resume. A .solverstate holds the weights' iteration and momentum but not the position of the Data
  layers in their databases, so `caffe train --snapshot` reads batches from the start again and ends
  somewhere else than an uninterrupted run. Here, after restoring, the Data layers are stepped forward by
  the batches the earlier segments had read (each snapshot's record counts its test nets' batches), and the
  resumed run is bit-for-bit the uninterrupted one (tests/integration/test_training.py checks it).
- Stopping cleanly: SIGINT, SIGTERM and SIGHUP snapshot the current iteration before exiting (the binary
  handles only SIGINT and SIGHUP). A kill -9 or a power cut loses at most the iterations since the last
  snapshot; snapshots are written to snapshots/.staging/ and renamed into place, so a half-written file
  never carries a snapshot's name, and every snapshot is parsed and checked before it is resumed from.
- One process: killing it kills the training (no orphaned child keeps writing snapshots).
- Progress from the net's loss blob between iterations, not from scraping the log.
Caffe's own glog output still goes, complete, to the segment log: file descriptor 2 points at it while
Caffe runs, and the progress bar and caffepipe's messages go to the original stderr.
The cost is one Python call per iteration, about a microsecond against ~25 ms for a LeNet iteration
(~1 ms for the MLP) on two cores;
bench/train_accuracy_and_overhead.py measures the wall time against `caffe train` on the same solver.

What makes snapshots resumable: their fingerprint (inputs.fingerprint()), a hash of the train and test
nets, the solver and the content of the training and test databases. The solver counts without what cannot
change the weights (inputs.SOLVER_FIELDS_NOT_FINGERPRINTED): paths, the snapshot schedule, display, the
test schedule (test_interval, test_iter), and max_iter unless lr_policy is poly. Snapshots of another
fingerprint are archived and training starts fresh (with --resume that is an error instead). So raising
max_iter, or changing display or test_interval, continues from the last snapshot; changing the net, the
solver or the data never resumes from an incompatible state. A snapshot is resumed from only when its
record (history.py) describes its very .solverstate. When every scheduled snapshot is already there and
the last run reached max_iter, nothing is trained: the outputs are re-written from the snapshots, in seconds
(see plan_training for the other cases), and caffe.log keeps the display and test lines of the runs that made
them.

Determinism. Training reads the databases in order (no shuffling), Caffe's random_seed fixes the fillers
and the random crops, and Caffe's generator is re-seeded from random_seed and the iteration at the start of
every iteration, so Dropout draws the same masks in a resumed run (random_state.py says why and how). So two
fresh runs on one machine give identical weights and metrics, and so does a run that was stopped and
resumed, provided the number of BLAS threads is the same: OpenBLAS splits
its sums differently for 1 and 2 threads, so 1-thread and 2-thread weights differ in their last bits, a
difference that training then carries along. To compare runs bit for bit, give them the same --threads
(Snakemake: the same --cores and rule threads; DVC: params train.threads). A run resumed with another
count than it started with still resumes (its finished iterations are kept), with a warning, and
snapshots.json then says bit_reproducible: false, with the thread counts; the report says it too.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import errno
import faulthandler
import json
import logging
import os
import resource
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, TextIO

from caffepipe.core.atomic import atomic_output, write_bytes_atomic, write_text_atomic
from caffepipe.data.datum import redirect_leveldb_sources
from caffepipe.core.errors import CaffepipeError
from caffepipe.pipeline.params import add_params_argument, load_params
from caffepipe.training.disk_space import disk_full_error, ensure_room_for_snapshot, snapshot_bytes
from caffepipe.training.snapshots import (
    find_snapshot_files,
    net_param_shapes,
    scheduled_iterations,
    write_manifest,
)
from caffepipe.training.folder import (
    TrainingFolder,
    TrainingState,
    archive_snapshots,
    exclusive_lock,
    file_sha256,
    intact_snapshots,
    promote_snapshot,
    read_state,
    record_snapshot,
    recorded_snapshots,
    write_state,
)
from caffepipe.training.initial_weights import caffemodel_shapes, check_transferable
from caffepipe.training.live_metrics import TrainingSeries, ensure_complete
from caffepipe.training.history import Segment, SnapshotRecord, reproducibility
from caffepipe.training.random_state import iteration_seed, layers_verdict
from caffepipe.training.inputs import (
    NetFiles,
    check_solver_matches_params,
    check_sources,
    database_digest,
    fingerprint,
    load_nets,
)
from caffepipe.training.nets_folder import SOLVER_FILE, TEST_NET_FILE, TRAIN_NET_FILE
from caffepipe.training.solver_settings import solver_settings

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


# ---- what to train -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    start: int              # resume from this iteration's snapshot (0: from scratch)
    max_iter: int

    @property
    def resumes(self) -> bool:
        return self.start > 0


def plan_training(scheduled: list[int], intact: set[int], max_iter: int, completed: bool) -> Plan | None:
    """None when there is nothing to do; else the iteration to start from (training always ends at max_iter).

    Nothing to do: every scheduled snapshot is there and the last run ended at max_iter (`completed`:
    Caffe's final test is in the log). Otherwise training starts from the newest intact snapshot not after
    the first missing scheduled one. After an interruption that is simply the newest snapshot; a snapshot
    added to the schedule, or a damaged one, is re-made from the snapshot before it (resume is exact, so the
    snapshots after it come out the same). With every snapshot there but the run not completed (stopped
    between the last snapshot and the final test, or max_iter lowered after a longer run), the run resumes
    at max_iter and only tests, so that the log ends at max_iter.
    """
    missing = [iteration for iteration in scheduled if iteration not in intact]
    if not missing:
        return None if completed else Plan(start=max_iter, max_iter=max_iter)
    start = max((iteration for iteration in intact if iteration <= missing[0]), default=0)
    return Plan(start=start, max_iter=max_iter)


def replayed_batches(start: int, iter_size: int, resumed: SnapshotRecord) -> tuple[int, tuple[int, ...]]:
    """Batches each Data layer had read when the snapshot at `start` was taken: (train, (each test net)).

    The train net reads iter_size batches per iteration. The test nets' count is the snapshot's record: what
    the segments that led to it read, each with its own test_interval (history.py). The snapshot at
    iteration k is taken after the test at k, but the resumed solver repeats that test (Caffe tests at the
    start of an iteration), so the record counts only the tests before k.
    """
    return start * iter_size, resumed.test_batches


# ---- Caffe's log ---------------------------------------------------------------------------------------------

@contextlib.contextmanager
def caffe_log_to(path: Path) -> Iterator[TextIO]:
    """Point file descriptor 2 (where glog writes) at `path`; yield a stream to the original stderr.

    Python's own stderr and the logging handlers that wrote to it follow the original stderr meanwhile,
    so caffepipe's messages and the progress bar stay on the terminal.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(2)
    terminal = os.fdopen(os.dup(saved), "w", buffering=1)
    handlers = [h for h in logging.getLogger().handlers
                if isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) in (sys.stderr, sys.__stderr__)]
    original_stderr = sys.stderr
    log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    # If Caffe aborts (a glog FATAL), say so on the terminal too; the reason is at the end of the log.
    faulthandler_was_enabled = faulthandler.is_enabled()
    try:
        os.dup2(log_fd, 2)
        sys.stderr = terminal
        for handler in handlers:
            handler.setStream(terminal)
        faulthandler.enable(file=terminal)
        yield terminal
    finally:
        faulthandler.disable()
        if faulthandler_was_enabled:
            faulthandler.enable(file=original_stderr)
        for handler in handlers:
            handler.setStream(original_stderr)
        sys.stderr = original_stderr
        terminal.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(log_fd)
        terminal.close()


def log_marker(text: str) -> None:
    """A line of caffepipe's own in the Caffe log (fd 2); parse-log skips lines that are not glog's."""
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    os.write(2, f"caffepipe train {stamp}: {text}\n".encode())


def log_peak_memory() -> None:
    """The process's peak resident memory so far, as a marker line parse-log reads into its metrics
    (peak_memory_mb). Linux's ru_maxrss is in KiB; it covers the whole run: Caffe's nets, their buffers and
    the Python side."""
    log_marker(f"peak resident memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MB")


# ---- training ------------------------------------------------------------------------------------------------

class StopTraining(Exception):
    """Raised from the solver callback to leave Caffe's Solve() loop."""

    def __init__(self, iteration: int, signum: int) -> None:
        super().__init__(iteration, signum)
        self.iteration, self.signum = iteration, signum


# How often the progress bar (or line) is updated; reading the loss blob every iteration would cost more.
PROGRESS_INTERVAL_S = 0.2


class Session:
    """One segment of training: a solver, restored if resuming, run from plan.start to max_iter."""

    def __init__(self, caffe_pb2: Any, folder: TrainingFolder, plan: Plan, solver: Any, progress: Any,
                 snapshot_iterations: set[int], on_snapshot: Callable[[int, str], None],
                 reseed: Callable[[int], None], series: TrainingSeries | None = None) -> None:
        self.caffe_pb2, self.folder, self.plan, self.solver, self.progress = caffe_pb2, folder, plan, solver, progress
        self.reseed = reseed                    # (iteration): Caffe's generator for that iteration (random_state.py)
        self.snapshot_iterations = snapshot_iterations
        self.on_snapshot = on_snapshot          # (iteration, sha256 of its .solverstate), before it is in place
        self.series = series                    # the DVCLive series, when kept
        net = solver.net  # pycaffe makes a new wrapper (and blob dict) on each access: keep one
        self.loss_blob = net.blobs[net.outputs[0]]
        self.snapshot_bytes = snapshot_bytes(net_param_shapes(net))
        self.stop_signal: int | None = None
        self.next_progress = 0.0
        self.iterated = False

    def request_stop(self, signum: int, frame: Any) -> None:
        if self.stop_signal is not None:  # a second signal: stop now, without a snapshot
            raise KeyboardInterrupt
        self.stop_signal = signum

    def ensure_room(self, iteration: int) -> None:
        ensure_room_for_snapshot(self.folder.staging, self.snapshot_bytes, iteration, shown=self.folder.snapshots)

    def snapshot(self, iteration: int) -> None:
        self.ensure_room(iteration)   # Caffe aborts on a full disk
        self.solver.snapshot()
        promote_snapshot(self.caffe_pb2, self.folder, iteration, lambda digest: self.on_snapshot(iteration, digest))
        log_marker(f"snapshot at iteration {iteration}")
        os.fsync(2)  # the log, too, reaches the disk at least as far as each snapshot

    def on_start(self) -> None:
        """Caffe calls this at the start of every iteration (after that iteration's test, if any)."""
        iteration = self.solver.iter
        self.reseed(iteration)   # before the iteration's forward pass draws its Dropout masks
        if self.series is not None:
            self.series.after_test(iteration)
        if iteration > self.plan.start:
            self.iterated = True
            now = time.monotonic()
            if now >= self.next_progress:
                self.next_progress = now + PROGRESS_INTERVAL_S
                self.progress.update(to=iteration, loss=float(self.loss_blob.data))
            if iteration in self.snapshot_iterations:
                self.snapshot(iteration)
        if iteration == self.plan.max_iter - 1:
            self.ensure_room(self.plan.max_iter)   # Solve() writes the last snapshot with no callback before it
        if self.stop_signal is not None:
            if iteration > self.plan.start and iteration not in self.snapshot_iterations:
                self.snapshot(iteration)
            raise StopTraining(iteration, self.stop_signal)

    def on_gradients_ready(self) -> None:
        """Caffe calls this after an iteration's forward and backward pass (and its display lines), before the update."""
        if self.series is not None:
            self.series.after_forward(self.solver.iter)

    def run(self) -> StopTraining | None:
        """Train; returns None when max_iter was reached, else where and by which signal training stopped."""
        if self.plan.start == self.plan.max_iter:
            self.ensure_room(self.plan.max_iter)   # only the final test and snapshot: no callback runs
        previous = {signum: signal.signal(signum, self.request_stop) for signum in STOP_SIGNALS}
        self.solver.add_callback(self.on_start, self.on_gradients_ready)
        try:
            self.solver.solve()
        except StopTraining as stop:
            return stop
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        # Solve() ended at max_iter and, its snapshot interval being 0, wrote the max_iter snapshot.
        promote_snapshot(self.caffe_pb2, self.folder, self.plan.max_iter,
                         lambda digest: self.on_snapshot(self.plan.max_iter, digest))
        if self.series is not None:
            self.series.after_solve(self.plan.max_iter)   # Solve()'s final test runs after the last callback
        self.progress.update(to=self.plan.max_iter, **({"loss": float(self.loss_blob.data)} if self.iterated else {}))
        return None


def runtime_net(caffe_pb2: Any, net: Any, path: Path, staging: Path) -> str:
    """The net file Caffe reads: netgen's own, or, when it reads a LevelDB, a copy of it in staging that reads
    a copy of the database (datum.readable_database says why)."""
    from google.protobuf import text_format  # noqa: PLC0415

    runtime = caffe_pb2.NetParameter()
    runtime.CopyFrom(net)
    if not redirect_leveldb_sources(runtime, staging / "databases"):
        return str(path.resolve())
    copy = staging / path.name
    write_text_atomic(copy, text_format.MessageToString(runtime))
    return str(copy.resolve())


def runtime_solver(caffe_pb2: Any, nets: NetFiles, folder: TrainingFolder) -> Path:
    """The solver Caffe runs: netgen's, with absolute net paths, snapshots into staging and none on its own."""
    from google.protobuf import text_format  # noqa: PLC0415

    solver = caffe_pb2.SolverParameter()
    solver.CopyFrom(nets.solver)
    solver.train_net = runtime_net(caffe_pb2, nets.train, nets.folder / TRAIN_NET_FILE, folder.staging)
    del solver.test_net[:]
    solver.test_net.append(runtime_net(caffe_pb2, nets.test, nets.folder / TEST_NET_FILE, folder.staging))
    solver.snapshot = 0                    # every snapshot is taken by Session.on_start, and max_iter's by Solve()
    solver.snapshot_after_train = True
    solver.snapshot_format = caffe_pb2.SolverParameter.BINARYPROTO
    solver.snapshot_prefix = str((folder.staging / folder.prefix).resolve())

    path = folder.staging / SOLVER_FILE
    write_text_atomic(path, text_format.MessageToString(solver))
    return path


def restore(session_solver: Any, caffe_pb2: Any, folder: TrainingFolder, plan: Plan, nets: NetFiles,
            resumed: SnapshotRecord) -> None:
    """Restore the solver from the snapshot at plan.start and replay the batches its Data layers had read."""
    snapshot = folder.snapshot(plan.start)
    state = caffe_pb2.SolverState()
    state.ParseFromString(snapshot.solverstate.read_bytes())
    state.learned_net = str(snapshot.caffemodel.resolve())   # whatever the working directory was then
    restored = folder.staging / f"restore_iter_{plan.start}.solverstate"
    write_bytes_atomic(restored, state.SerializeToString())
    session_solver.restore(str(restored))
    restored.unlink()
    if session_solver.iter != plan.start:
        raise CaffepipeError(f"{snapshot.solverstate} restored to iteration {session_solver.iter}, not {plan.start}")
    train_batches, test_batches = replayed_batches(plan.start, nets.solver.iter_size, resumed)
    log_marker(f"replaying {train_batches} training and {sum(test_batches)} test batches to restore the data order")
    first = session_solver.net._layer_names[0]
    for _ in range(train_batches):
        session_solver.net.forward(end=first)
    for net, batches in zip(session_solver.test_nets, test_batches):
        first = net._layer_names[0]
        for _ in range(batches):
            net.forward(end=first)


def write_outputs(folder: TrainingFolder, model: str, max_iter: int, state: TrainingState, scheduled: list[int],
                  reproducibility_out: Path | None, nets: NetFiles) -> None:
    """caffe.log, final.caffemodel, reproducibility_out if given, and snapshots.json (last: it stands for the
    whole output)."""
    with atomic_output(folder.caffe_log) as temporary, open(temporary, "wb") as combined:
        for segment in folder.segment_logs():
            with open(segment, "rb") as part:
                shutil.copyfileobj(part, combined)
    with atomic_output(folder.final) as temporary:
        shutil.copyfile(folder.snapshot(max_iter).caffemodel, temporary)
    final = state.snapshots[max_iter]
    verdict = layers_verdict([nets.train, nets.test]) or reproducibility([state.snapshots[iteration] for iteration in scheduled])
    if reproducibility_out is not None:
        write_text_atomic(reproducibility_out, json.dumps({"blas_threads": list(final.threads), **verdict}, indent=2) + "\n")
    write_manifest(folder.manifest, model, max_iter, state.fingerprint, folder.final,
                   [folder.snapshot(iteration) for iteration in scheduled],
                   {"segments": [trainer.to_json() for trainer in final.trained_by], **verdict})


@dataclass(frozen=True)
class TrainingRequest:
    model: str
    nets: Path
    db: Path
    out: Path
    train_params: dict[str, Any]
    threads: int
    resume: bool = False        # fail if there is nothing to resume
    restart: bool = False       # archive the snapshots and start from scratch
    reproducibility_out: Path | None = None     # where to write the bit-reproducibility verdict too
    live_dir: Path | None = None                # where to keep the DVCLive series (live_metrics.py)
    # Fine-tuning (finetune.py): weights copied by layer name into the net on a fresh start, never on a resume
    # (the snapshot has them); part of the fingerprint. And further folders the nets may read databases from.
    initial_weights: Path | None = None
    more_dbs: tuple[Path, ...] = ()


def train(request: TrainingRequest) -> int:
    """Train (or resume, or just re-write the outputs); returns the exit status (non-zero when stopped)."""
    from caffepipe.core.caffe_env import import_caffe  # noqa: PLC0415

    if request.resume and request.restart:
        raise CaffepipeError("--resume and --restart contradict each other; give one")
    # glog reads its flags when Caffe's library loads: INFO lines on, to stderr (which becomes the log).
    os.environ["GLOG_minloglevel"] = "0"
    os.environ["GLOG_logtostderr"] = "1"
    caffe = import_caffe(threads=request.threads, quiet=False)
    from caffe.proto import caffe_pb2  # noqa: PLC0415
    from caffepipe.core.progress import Progress  # noqa: PLC0415

    folder = TrainingFolder(request.out, request.model)
    nets = load_nets(caffe_pb2, request.nets)
    check_solver_matches_params(caffe_pb2, nets.solver, request.train_params, request.nets / SOLVER_FILE)
    sources = check_sources(nets, [request.db, *request.more_dbs])
    max_iter = nets.solver.max_iter
    scheduled = scheduled_iterations(max_iter, nets.solver.snapshot, request.train_params["snapshot_iters"])

    with exclusive_lock(folder.lock):
        log.info("fingerprinting the nets, the solver and the databases")
        digests = {source.name: database_digest(source, backend) for source, backend in sources}
        weights_sha256 = file_sha256(request.initial_weights) if request.initial_weights else None
        state = adopt_snapshots(folder, *fingerprint(caffe_pb2, nets, digests, weights_sha256), request)
        if folder.staging.exists():
            shutil.rmtree(folder.staging)  # what a killed run was writing: never a complete snapshot
        folder.staging.mkdir()

        segment_log = folder.next_segment_log()
        plan, stopped = None, None
        with caffe_log_to(segment_log) as terminal:
            try:
                solver_path = runtime_solver(caffe_pb2, nets, folder)
                log.info("Caffe logs to %s (if it stops with 'Aborted', the reason is at its end)", segment_log)
                solver = caffe.get_solver(str(solver_path))
                if request.initial_weights is not None:
                    check_transferable(caffemodel_shapes(caffe_pb2, request.initial_weights),
                                       net_param_shapes(solver.net), request.initial_weights)
                intact = intact_snapshots(caffe_pb2, folder, net_param_shapes(solver.net), max_iter)
                plan = plan_training(scheduled, recorded_snapshots(folder, state, intact), max_iter,
                                     completed=state.completed_at == max_iter)
                if plan is not None and request.resume and not plan.resumes:
                    raise CaffepipeError(f"no snapshot in {folder.snapshots} to resume from; run without --resume to start")
            except BaseException:
                segment_log.unlink(missing_ok=True)
                raise
            if plan is None:
                segment_log.unlink()  # nothing to train: no segment
            else:
                segment = Segment.of(segment_log.name, plan.start, request.threads, nets.solver)
                seed = nets.solver.random_seed

                def reseed(iteration: int) -> None:
                    caffe.set_random_seed(iteration_seed(seed, iteration))

                stopped = _train_segment(caffe_pb2, folder, state, segment, plan, nets, solver, scheduled, terminal, Progress,
                                         reseed, request.initial_weights, request.live_dir)
        if stopped is not None:
            log.warning("stopped by signal %d; the snapshots are kept: run the same command again to resume", stopped)
            return 128 + stopped
        if plan is None:
            log.info("all %d scheduled snapshots of %s are there (fingerprint %s): nothing to train",
                     len(scheduled), request.model, state.fingerprint[:12])
            warn_of_settings_not_applied(state.segments, nets.solver)
            if request.live_dir is not None:
                ensure_complete(request.live_dir, folder.segment_logs())
        # Every scheduled snapshot now exists: those up to plan.start were there, the segment made the rest.
        shutil.rmtree(folder.staging)
        write_outputs(folder, request.model, max_iter, state, scheduled, request.reproducibility_out, nets)
        log.info("wrote %s, %s, %s", folder.manifest, folder.final, folder.caffe_log)
    return 0


def adopt_snapshots(folder: TrainingFolder, fingerprint_hash: str, parts: dict[str, str], request: TrainingRequest) -> TrainingState:
    """Keep the snapshots folder if it holds this fingerprint's training, else archive it (--resume: fail).

    Returns the folder's state: the kept one, or a fresh one for this fingerprint.
    """
    state = read_state(folder)
    recorded = state.fingerprint if state else None
    has_snapshots = bool(find_snapshot_files(folder.snapshots, folder.prefix)) or bool(folder.segment_logs())
    if request.restart or (has_snapshots and recorded != fingerprint_hash):
        if request.resume:
            raise CaffepipeError(f"the snapshots in {folder.snapshots} were trained from other nets, solver or data "
                                 f"(fingerprint {str(recorded)[:12]}, now {fingerprint_hash[:12]}); nothing to resume")
        label = str(recorded)[:16] if recorded else f"unknown-{datetime.datetime.now():%Y%m%d-%H%M%S}"
        moved = archive_snapshots(folder, label)
        if moved:
            log.warning("archived the earlier snapshots to %s (%s)", moved,
                        "--restart" if request.restart else "the nets, solver or data changed")
        state = None
    folder.snapshots.mkdir(parents=True, exist_ok=True)
    if state is None or state.fingerprint != fingerprint_hash:
        state = TrainingState(fingerprint_hash, parts)
        write_state(folder, state)
    return state


def warn_of_mixed_threads(model: str, start: int, resumed: SnapshotRecord, threads: int) -> None:
    """Resuming with another BLAS thread count is allowed, but its result is no longer bit-reproducible: say so."""
    earlier = [count for count in dict.fromkeys(resumed.threads) if count != threads]
    if earlier:
        message = (f"resuming {model} at iteration {start} with {threads} BLAS threads, but it was trained with "
                   f"{' and '.join(map(str, earlier))} so far: the weights will differ in their last bits from those of a "
                   f"run with one thread count (snapshots.json will say bit_reproducible: false); --threads "
                   f"{resumed.threads[-1]} continues as before, --restart trains again from scratch")
        log.warning(message)
        log_marker(message)


def warn_of_settings_not_applied(segments: list[Segment], solver: Any) -> None:
    """With nothing to train, a changed display or test schedule re-runs nothing (they cannot change the
    weights): say that caffe.log still shows the settings the training ran with."""
    if not segments:
        return
    last = segments[-1]
    changed = [name for name in ("display", "test_interval", "test_initialization")
               if getattr(last, name) != getattr(solver, name)]
    if last.test_iter != tuple(solver.test_iter):
        changed.append("test_iter")
    if changed:
        log.warning("%s changed since the training ran; they cannot change the weights, so nothing is trained again "
                    "and caffe.log keeps the lines and test passes of the runs that made them (--restart trains again "
                    "with the new settings)", ", ".join(changed))


def _train_segment(caffe_pb2: Any, folder: TrainingFolder, state: TrainingState, segment: Segment, plan: Plan,
                   nets: NetFiles, solver: Any, scheduled: list[int], terminal: TextIO, progress_type: Any,
                   reseed: Callable[[int], None], initial_weights: Path | None = None,
                   live_dir: Path | None = None) -> int | None:
    """Run one segment: record it in the folder's state, restore and replay if it resumes (else copy in the
    initial weights, if any), and train to max_iter, recording every snapshot it takes. Returns the signal
    that stopped it, if one did."""
    model = folder.prefix
    state.segments.append(segment)
    state.completed_at = None
    write_state(folder, state)
    resumed = state.snapshots[plan.start] if plan.resumes else None
    if resumed is not None:
        log_marker(f"segment resumes {model} from iteration {plan.start} "
                   f"({folder.snapshot(plan.start).solverstate.name}), {segment.threads} BLAS threads")
        log.info("resuming %s from iteration %d of %d", model, plan.start, plan.max_iter)
        warn_of_mixed_threads(model, plan.start, resumed, segment.threads)
        restore(solver, caffe_pb2, folder, plan, nets, resumed)
    elif initial_weights is not None:
        # Copied by layer name (Net::CopyTrainedLayersFrom); layers the weights do not name keep their fillers.
        solver.net.copy_from(str(initial_weights))
        log_marker(f"segment starts {model} from the weights {initial_weights}, {segment.threads} BLAS threads")
        log.info("training %s from %s to iteration %d", model, initial_weights, plan.max_iter)
    else:
        log_marker(f"segment starts {model} from scratch, {segment.threads} BLAS threads")
        log.info("training %s from scratch to iteration %d", model, plan.max_iter)
    series = None
    if live_dir is not None:
        segment_log = folder.logs / segment.log
        series = TrainingSeries(live_dir, solver, nets.solver, plan.start, segment_log,
                                earlier_logs=[path for path in folder.segment_logs() if path != segment_log])
    with progress_type(total=plan.max_iter, initial=plan.start, desc=f"train {model}", unit="it",
                       stream=terminal) as progress:
        session = Session(caffe_pb2, folder, plan, solver, progress, set(scheduled) - {plan.max_iter},
                          on_snapshot=lambda iteration, digest: record_snapshot(folder, state, iteration, segment, resumed, digest),
                          reseed=reseed, series=series)
        stop = session.run()
    log_peak_memory()
    if stop is not None:
        log_marker(f"stopped by signal {stop.signum} at iteration {stop.iteration}")
        return stop.signum
    state.completed_at = plan.max_iter
    write_state(folder, state)
    log_marker(f"segment done at iteration {plan.max_iter}")
    return None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="caffepipe train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_params_argument(parser)
    parser.add_argument("--model", required=True, help="the model (its nets are in --nets)")
    parser.add_argument("--nets", required=True, type=Path, help="netgen's folder for the model (data/nets/<model>)")
    parser.add_argument("--db", required=True, type=Path, help="the databases folder the nets read (data/db)")
    parser.add_argument("--out", required=True, type=Path, help="the training folder (data/train/<model>)")
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads (default: params train.threads)")
    parser.add_argument("--out-live", type=Path, default=None,
                        help="keep the training's DVCLive series here, written as it trains (reports/train/<model>/live: "
                             "metrics.json, a DVC metric, and plots/metrics/, DVC plots)")
    parser.add_argument("--out-reproducibility", type=Path, default=None,
                        help="also write here whether the weights are bit-reproducible, and the BLAS threads of each "
                             "segment that trained them (reports/train/<model>/reproducibility.json, a DVC metric the "
                             "report reads)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true",
                      help="continue from the newest valid snapshot, and fail if there is none (without it, "
                           "train resumes when it can and starts fresh otherwise)")
    mode.add_argument("--restart", action="store_true",
                      help="archive the existing snapshots and train from scratch")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    threads = args.threads if args.threads is not None else params["train"]["threads"]
    if threads < 1:
        raise CaffepipeError(f"--threads must be at least 1, not {threads}")
    request = TrainingRequest(model=args.model, nets=args.nets, db=args.db, out=args.out,
                              train_params=solver_settings(params["train"], args.model), threads=threads,
                              resume=args.resume, restart=args.restart, reproducibility_out=args.out_reproducibility,
                              live_dir=args.out_live)
    try:
        return train(request)
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
        raise disk_full_error(args.out) from None
