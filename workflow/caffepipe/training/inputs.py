"""What a training run is made of, read and checked before Caffe starts: netgen's solver and nets, the
databases they read, and the fingerprint that says which snapshots can be resumed (see train.py)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caffepipe.data.datum import iterate_db
from caffepipe.core.errors import CaffepipeError
from caffepipe.training.nets_folder import SOLVER_FILE, TEST_NET_FILE, TRAIN_NET_FILE
# Fields of the solver that cannot change the weights it trains, left out of the fingerprint so that changing
# one resumes the snapshots instead of training again. What does change them, and stays in: Caffe's SGD update
# (sgd_solver.cpp) reads base_lr, lr_policy with gamma, power, stepsize and stepvalue, momentum, weight_decay,
# regularization_type, clip_gradients, iter_size and the solver type; random_seed sets the fillers; the train
# net and its database give the gradients. Of the rest:
SOLVER_FIELDS_NOT_FINGERPRINTED = (
    # paths: the nets count by content, the databases by their records
    "net", "train_net", "test_net",
    # when and where the weights are saved
    "snapshot", "snapshot_prefix", "snapshot_after_train", "snapshot_format", "snapshot_diff",
    # what the log shows (Solver::Step only prints with them)
    "display", "average_loss", "debug_info",
    # test passes: the test net reads the shared weights in the TEST phase and never writes them, and draws no
    # random numbers. Each segment records its own (history.py), and a resume replays what they read.
    "test_interval", "test_iter", "test_initialization", "test_compute_loss",
    "device_id",
)


@dataclass
class NetFiles:
    """The solver and nets netgen wrote, parsed."""
    folder: Path
    solver: Any            # caffe_pb2.SolverParameter
    train: Any             # caffe_pb2.NetParameter
    test: Any              # caffe_pb2.NetParameter


def _read_prototxt(path: Path, message: Any) -> Any:
    from google.protobuf import text_format  # noqa: PLC0415

    try:
        text_format.Merge(path.read_text(), message)
    except FileNotFoundError:
        raise CaffepipeError(f"{path} is missing; run `caffepipe netgen` first") from None
    except text_format.ParseError as error:
        raise CaffepipeError(f"{path} is not a valid prototxt ({error}); re-run `caffepipe netgen`") from None
    return message


def load_nets(caffe_pb2: Any, folder: Path) -> NetFiles:
    return NetFiles(folder,
                    _read_prototxt(folder / SOLVER_FILE, caffe_pb2.SolverParameter()),
                    _read_prototxt(folder / TRAIN_NET_FILE, caffe_pb2.NetParameter()),
                    _read_prototxt(folder / TEST_NET_FILE, caffe_pb2.NetParameter()))


# params.yaml `train` keys that netgen copies into the solver, and the solver field each becomes.
SOLVER_FIELDS_FROM_PARAMS = {
    "base_lr": "base_lr", "momentum": "momentum", "weight_decay": "weight_decay", "lr_policy": "lr_policy",
    "gamma": "gamma", "power": "power", "max_iter": "max_iter", "test_interval": "test_interval",
    "display": "display", "snapshot_interval": "snapshot", "random_seed": "random_seed",
}


def check_solver_matches_params(caffe_pb2: Any, solver: Any, train_params: dict[str, Any], solver_path: Path) -> None:
    """The solver netgen wrote must be the one params.yaml describes now (else the nets are stale)."""
    # Set through a SolverParameter, so that floats compare at the solver's (single) precision.
    expected = caffe_pb2.SolverParameter(**{field: train_params[key] for key, field in SOLVER_FIELDS_FROM_PARAMS.items()})
    differing = [key for key, field in SOLVER_FIELDS_FROM_PARAMS.items() if getattr(expected, field) != getattr(solver, field)]
    if differing:
        raise CaffepipeError(f"{solver_path} disagrees with params.yaml train ({', '.join(differing)}); "
                             f"re-run `caffepipe netgen` (or the pipeline, which does)")


def data_sources(net: Any) -> list[tuple[Path, str]]:
    """(database path, backend) of each Data layer of a net."""
    backends = {0: "leveldb", 1: "lmdb"}  # caffe_pb2.DataParameter.DB
    return [(Path(layer.data_param.source), backends[layer.data_param.backend]) for layer in net.layer if layer.type == "Data"]


def check_sources(nets: NetFiles, db_dirs: list[Path]) -> list[tuple[Path, str]]:
    """The databases the train and test nets read: they must exist and lie in --db (or, for fine-tuning, in
    one of the other database folders the request names)."""
    db_dir = db_dirs[0]
    allowed = {folder.resolve() for folder in db_dirs}
    sources = data_sources(nets.train) + data_sources(nets.test)
    if not sources:
        raise CaffepipeError(f"the nets in {nets.folder} have no Data layer; re-run `caffepipe netgen`")
    for source, _ in sources:
        if not source.is_dir():
            raise CaffepipeError(f"the nets in {nets.folder} read {source}, which is missing; run `caffepipe build-db`, "
                                 f"or re-run `caffepipe netgen` if the databases moved")
        if source.resolve().parent not in allowed:
            raise CaffepipeError(f"the nets in {nets.folder} read {source}, outside --db {db_dir}; re-run `caffepipe netgen --db {db_dir}`")
    return sources


def database_digest(path: Path, backend: str) -> str:
    """sha256 of a database's records (key and value, in key order): its content, whatever its files' layout.
    Reading every record first is also what keeps a damaged database from reaching Caffe (datum.check_database)."""
    digest = hashlib.sha256()
    for key, value in iterate_db(path, backend):
        digest.update(len(key).to_bytes(8, "little") + key + len(value).to_bytes(8, "little") + value)
    return digest.hexdigest()


def _canonical(message: Any) -> bytes:
    return message.SerializeToString(deterministic=True)


def fingerprint(caffe_pb2: Any, nets: NetFiles, db_digests: dict[str, str],
                initial_weights_sha256: str | None = None) -> tuple[str, dict[str, str]]:
    """(hash, its parts): what makes snapshots of this training interchangeable.

    The nets count without their database paths (the databases count by content instead); the solver
    without the fields in SOLVER_FIELDS_NOT_FINGERPRINTED, and without max_iter unless lr_policy is poly (the
    only policy whose learning rate reads it), so raising max_iter continues a training.
    The test net and the test database stay in although they cannot change the weights: caffe.log's test
    passes are measured on them, and resuming across a change would join two test sets into one curve, or,
    with the training complete, keep the old test set's results.
    Weights a fresh start copies in (fine-tuning) count by their sha256; a training without them has no such
    part, so its fingerprint is the same as before fine-tuning existed.
    """
    parts: dict[str, str] = {}
    for kind, net in (("train_net", nets.train), ("test_net", nets.test)):
        copy = caffe_pb2.NetParameter()
        copy.CopyFrom(net)
        for layer in copy.layer:
            if layer.type == "Data":
                layer.data_param.ClearField("source")
        parts[kind] = hashlib.sha256(_canonical(copy)).hexdigest()
    solver = caffe_pb2.SolverParameter()
    solver.CopyFrom(nets.solver)
    for name in SOLVER_FIELDS_NOT_FINGERPRINTED:
        solver.ClearField(name)
    if solver.lr_policy != "poly":
        solver.ClearField("max_iter")
    parts["solver"] = hashlib.sha256(_canonical(solver)).hexdigest()
    parts.update({f"db:{name}": digest for name, digest in sorted(db_digests.items())})
    if initial_weights_sha256 is not None:
        parts["initial_weights"] = initial_weights_sha256
    combined = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
    return combined, parts
