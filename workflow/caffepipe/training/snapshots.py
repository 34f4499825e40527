"""Training snapshots: their names, their schedule, their validation, and the manifest that lists them.

Caffe writes a snapshot as two files, `<prefix>_iter_<N>.caffemodel` (the weights, a NetParameter) and
`<prefix>_iter_<N>.solverstate` (a SolverState: the iteration, the momentum history and the name of the
caffemodel). Resuming needs the .solverstate; analysing needs the .caffemodel; a snapshot counts only when
both files parse completely and agree with the net and with each other (check_snapshot).

`caffepipe train` writes snapshots.json beside its snapshots/ folder; `caffepipe evaluate` reads it:

    {"model": "lenet", "max_iter": 10000, "fingerprint": "<hash of nets, solver and data>",
     "final": "final.caffemodel",
     "snapshots": [{"iteration": 10, "caffemodel": "snapshots/lenet_iter_10.caffemodel",
                    "solverstate": "snapshots/lenet_iter_10.solverstate"}, ...],
     "segments": [{"log": "segment-001.log", "from": 0, "threads": 2},
                  {"log": "segment-002.log", "from": 3000, "threads": 1}],
     "bit_reproducible": false, "reproducibility_note": "segments ran with 2 and 1 BLAS threads"}

Paths are relative to the folder of snapshots.json; the list is sorted by iteration and its last entry is
max_iter. It lists the scheduled snapshots only (see scheduled_iterations); the folder may also hold the
snapshots taken when a run was interrupted, which only serve to resume.
`segments` are the runs that trained the final weights (their logs are in snapshots/logs/), each with its
BLAS threads. `bit_reproducible` is false when the listed snapshots were trained with more than one thread
count: OpenBLAS may split its sums differently for each, so no uninterrupted run gives these weights bit for
bit; `reproducibility_note` then says why (null otherwise). See history.py.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from caffepipe.core.atomic import write_text_atomic
from caffepipe.core.errors import CaffepipeError

MANIFEST_VERSION = 1
SNAPSHOT_NAME = re.compile(r"^(?P<prefix>.+)_iter_(?P<iteration>\d+)\.(?P<kind>caffemodel|solverstate)$")

# {layer name: [shape of each parameter blob]}, in the net's order: what a snapshot of a net must hold.
ParamShapes = dict[str, list[tuple[int, ...]]]


def scheduled_iterations(max_iter: int, interval: int, extra: Iterable[int]) -> list[int]:
    """Every iteration that gets a snapshot: each multiple of `interval`, each of `extra`, and max_iter."""
    iterations = {max_iter}
    if interval > 0:
        iterations.update(range(interval, max_iter + 1, interval))
    iterations.update(iteration for iteration in extra if 0 < iteration <= max_iter)
    return sorted(iterations)


def snapshot_file(folder: Path, prefix: str, iteration: int, kind: str) -> Path:
    return folder / f"{prefix}_iter_{iteration}.{kind}"


@dataclass(frozen=True)
class Snapshot:
    iteration: int
    caffemodel: Path
    solverstate: Path

    @classmethod
    def at(cls, folder: Path, prefix: str, iteration: int) -> "Snapshot":
        return cls(iteration, snapshot_file(folder, prefix, iteration, "caffemodel"),
                   snapshot_file(folder, prefix, iteration, "solverstate"))

    @property
    def files(self) -> tuple[Path, Path]:
        return self.caffemodel, self.solverstate


def find_snapshot_files(folder: Path, prefix: str) -> dict[int, list[Path]]:
    """The snapshot files of `prefix` in `folder`, grouped by iteration (one or both of the pair)."""
    found: dict[int, list[Path]] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.iterdir()):
        match = SNAPSHOT_NAME.match(path.name)
        if match and match["prefix"] == prefix and path.is_file():
            found.setdefault(int(match["iteration"]), []).append(path)
    return found


def _blob_problem(blob: Any, what: str, expected_shape: tuple[int, ...] | None) -> str | None:
    shape = tuple(blob.shape.dim) if blob.HasField("shape") else (blob.num, blob.channels, blob.height, blob.width)
    values = len(blob.data) or len(blob.double_data)
    if expected_shape is not None and shape != expected_shape:
        return f"{what} has shape {shape}, the net expects {expected_shape}"
    if values != math.prod(shape) or values == 0:
        return f"{what} holds {values} values for shape {shape} (truncated?)"
    return None


def check_caffemodel(caffe_pb2: Any, path: Path, expected: ParamShapes) -> str | None:
    """None if `path` is a complete caffemodel of a net whose parameter blobs have the `expected` shapes."""
    net = caffe_pb2.NetParameter()
    try:
        net.ParseFromString(path.read_bytes())
    except Exception as error:  # protobuf raises DecodeError (or a RuntimeError from upb) on a damaged file
        return f"{path.name} does not parse ({error.__class__.__name__}: {error})"
    layers = {layer.name: layer for layer in net.layer if len(layer.blobs)}
    for name, shapes in expected.items():
        layer = layers.get(name)
        if layer is None:
            return f"{path.name} has no weights for layer {name!r} (truncated?)"
        if len(layer.blobs) != len(shapes):
            return f"{path.name}: layer {name!r} has {len(layer.blobs)} parameter blobs, the net has {len(shapes)}"
        for index, (blob, shape) in enumerate(zip(layer.blobs, shapes)):
            problem = _blob_problem(blob, f"{path.name}: {name}[{index}]", shape)
            if problem:
                return problem
    return None


def check_solverstate(caffe_pb2: Any, path: Path, iteration: int, expected: ParamShapes) -> str | None:
    """None if `path` is a complete SGD solver state at `iteration` for a net with the `expected` parameters."""
    state = caffe_pb2.SolverState()
    try:
        state.ParseFromString(path.read_bytes())
    except Exception as error:  # see check_caffemodel
        return f"{path.name} does not parse ({error.__class__.__name__}: {error})"
    if state.iter != iteration:
        return f"{path.name} holds iteration {state.iter}, not {iteration}"
    shapes = [shape for layer_shapes in expected.values() for shape in layer_shapes]
    if len(state.history) != len(shapes):
        return f"{path.name} holds {len(state.history)} history blobs, the net has {len(shapes)} parameters (truncated?)"
    for index, (blob, shape) in enumerate(zip(state.history, shapes)):
        problem = _blob_problem(blob, f"{path.name}: history[{index}]", shape)
        if problem:
            return problem
    return None


def check_snapshot(caffe_pb2: Any, snapshot: Snapshot, expected: ParamShapes) -> str | None:
    """None if both files of the snapshot are complete and fit the net; else what is wrong, in a few words."""
    for path in snapshot.files:
        if not path.is_file():
            return f"{path.name} is missing"
        if path.stat().st_size == 0:
            return f"{path.name} is empty"
    return (check_solverstate(caffe_pb2, snapshot.solverstate, snapshot.iteration, expected)
            or check_caffemodel(caffe_pb2, snapshot.caffemodel, expected))


def net_param_shapes(net: Any) -> ParamShapes:
    """The parameter shapes of a live caffe.Net (what check_snapshot compares a snapshot against)."""
    return {name: [tuple(blob.data.shape) for blob in blobs] for name, blobs in net.params.items()}


# ---- the manifest -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Manifest:
    model: str
    max_iter: int
    fingerprint: str
    final: Path                 # absolute (resolved against the manifest's folder)
    snapshots: list[Snapshot]   # absolute paths, by iteration


def manifest_dict(model: str, max_iter: int, fingerprint: str, final: Path, snapshots: list[Snapshot],
                  base: Path, history: dict[str, Any]) -> dict[str, Any]:
    """The manifest; `history` adds segments, bit_reproducible and reproducibility_note (history.py)."""
    def relative(path: Path) -> str:
        return Path(path).resolve().relative_to(base.resolve()).as_posix()

    return {
        "version": MANIFEST_VERSION,
        "model": model,
        "max_iter": max_iter,
        "fingerprint": fingerprint,
        "final": relative(final),
        "snapshots": [{"iteration": s.iteration, "caffemodel": relative(s.caffemodel), "solverstate": relative(s.solverstate)}
                      for s in sorted(snapshots, key=lambda s: s.iteration)],
        **history,
    }


def write_manifest(path: Path, model: str, max_iter: int, fingerprint: str, final: Path, snapshots: list[Snapshot],
                   history: dict[str, Any]) -> None:
    data = manifest_dict(model, max_iter, fingerprint, final, snapshots, path.parent, history)
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def read_manifest(path: str | Path) -> Manifest:
    """Read snapshots.json; raises CaffepipeError if it is missing or malformed, or lists a missing file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CaffepipeError(f"{path}: no snapshot manifest; run `caffepipe train` first") from None
    except json.JSONDecodeError as error:
        raise CaffepipeError(f"{path}: not valid JSON ({error}); re-run `caffepipe train`") from None
    base = path.parent
    try:
        snapshots = [Snapshot(int(entry["iteration"]), base / entry["caffemodel"], base / entry["solverstate"])
                     for entry in data["snapshots"]]
        manifest = Manifest(data["model"], int(data["max_iter"]), data["fingerprint"], base / data["final"],
                            sorted(snapshots, key=lambda s: s.iteration))
    except (KeyError, TypeError, ValueError) as error:
        raise CaffepipeError(f"{path}: not a caffepipe snapshot manifest ({error!r}); re-run `caffepipe train`") from None
    for file in [manifest.final, *(s.caffemodel for s in manifest.snapshots)]:
        if not file.is_file():
            raise CaffepipeError(f"{path} lists {file}, which is missing; re-run `caffepipe train`")
    return manifest
