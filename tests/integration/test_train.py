"""train's parts that read netgen's nets with Caffe's protobuf messages (caffe_pb2): the fingerprint and the
check that the nets are not stale."""
from __future__ import annotations

from pathlib import Path

import pytest

from caffepipe.core.caffe_env import import_caffe
from caffepipe.core.errors import CaffepipeError
from caffepipe.training import inputs as training_inputs
from caffepipe.training import netgen
from tests.conftest import tiny_params

pytestmark = pytest.mark.integration

caffe = import_caffe(threads=1)
from caffe.proto import caffe_pb2  # noqa: E402


def make_nets(tmp_path: Path, params: dict, model: str = "lenet") -> training_inputs.NetFiles:
    db = tmp_path / "db"
    db.mkdir(exist_ok=True)
    (db / "info.json").write_text('{"train": 640, "test": 200, "channels": 1, "height": 28, "width": 28, "train_pad": 2}')
    folder = tmp_path / "nets"
    folder.mkdir(exist_ok=True)
    for name, text in netgen.generate(params, model, db, folder).items():
        (folder / name).write_text(text)
    return training_inputs.load_nets(caffe_pb2, folder)


def fingerprint_of(tmp_path: Path, params: dict, digests: dict | None = None, model: str = "lenet") -> str:
    return training_inputs.fingerprint(caffe_pb2, make_nets(tmp_path, params, model), digests or {"train_lmdb": "a", "test_lmdb": "b"})[0]


def test_the_fingerprint_follows_what_changes_the_weights(tmp_path: Path) -> None:
    base = fingerprint_of(tmp_path, tiny_params())
    assert fingerprint_of(tmp_path, tiny_params()) == base
    # nets, solver and data change it
    assert fingerprint_of(tmp_path, tiny_params(), model="mlp") != base
    assert fingerprint_of(tmp_path, tiny_params(netgen={"train_batch_size": 32})) != base
    assert fingerprint_of(tmp_path, tiny_params(train={"base_lr": 0.02})) != base
    assert fingerprint_of(tmp_path, tiny_params(train={"random_seed": 7})) != base
    assert fingerprint_of(tmp_path, tiny_params(), {"train_lmdb": "other", "test_lmdb": "b"}) != base
    # the snapshot schedule does not; max_iter does not unless the learning rate depends on it
    assert fingerprint_of(tmp_path, tiny_params(train={"snapshot_interval": 7, "snapshot_iters": [5]})) == base
    assert fingerprint_of(tmp_path, tiny_params(train={"max_iter": 80})) == base
    poly = fingerprint_of(tmp_path, tiny_params(train={"lr_policy": "poly"}))
    assert fingerprint_of(tmp_path, tiny_params(train={"lr_policy": "poly", "max_iter": 80})) != poly


def test_the_fingerprint_leaves_out_what_cannot_change_the_weights(tmp_path: Path) -> None:
    """Changing how often Caffe logs, tests or snapshots, or how far it trains, resumes the snapshots."""
    base = fingerprint_of(tmp_path, tiny_params())
    for train in ({"display": 1}, {"test_interval": 7}, {"snapshot_interval": 7}, {"snapshot_iters": [5, 15]},
                  {"max_iter": 80}):
        assert fingerprint_of(tmp_path, tiny_params(train=train)) == base, train
    nets = make_nets(tmp_path, tiny_params())
    nets.solver.test_iter[0] += 1
    nets.solver.test_initialization = False
    nets.solver.average_loss = 10
    assert training_inputs.fingerprint(caffe_pb2, nets, {"train_lmdb": "a", "test_lmdb": "b"})[0] == base
    # what the update reads does change it
    assert fingerprint_of(tmp_path, tiny_params(train={"base_lr": 0.02})) != base
    assert fingerprint_of(tmp_path, tiny_params(train={"momentum": 0.8})) != base
    assert fingerprint_of(tmp_path, tiny_params(netgen={"train_batch_size": 32})) != base
    nets.solver.iter_size = 2
    assert training_inputs.fingerprint(caffe_pb2, nets, {"train_lmdb": "a", "test_lmdb": "b"})[0] != base
    # The test set and its batch stay in although they cannot change the weights: caffe.log's test passes are
    # measured on them, and a resume across a change would join two test sets into one curve.
    assert fingerprint_of(tmp_path, tiny_params(netgen={"test_batch_size": 40})) != base
    assert fingerprint_of(tmp_path, tiny_params(), {"train_lmdb": "a", "test_lmdb": "other"}) != base


def test_the_fingerprint_ignores_where_the_databases_are(tmp_path: Path) -> None:
    nets = make_nets(tmp_path, tiny_params())
    before = training_inputs.fingerprint(caffe_pb2, nets, {"x": "1"})[0]
    nets.train.layer[0].data_param.source = "/elsewhere/train_lmdb"
    nets.solver.train_net = "/elsewhere/train.prototxt"
    assert training_inputs.fingerprint(caffe_pb2, nets, {"x": "1"})[0] == before


def test_stale_nets_are_refused(tmp_path: Path) -> None:
    nets = make_nets(tmp_path, tiny_params())
    training_inputs.check_solver_matches_params(caffe_pb2, nets.solver, tiny_params()["train"], Path("solver.prototxt"))
    with pytest.raises(CaffepipeError, match="max_iter"):
        training_inputs.check_solver_matches_params(caffe_pb2, nets.solver, tiny_params(train={"max_iter": 41})["train"],
                                          Path("solver.prototxt"))


def test_every_solver_key_of_params_is_checked_against_the_solver() -> None:
    """A train key that netgen puts in the solver must be compared by train, or stale nets would slip through."""
    not_in_solver = {"snapshot_iters", "threads", "overrides"}   # overrides: merged into the keys (solver_settings.py)
    assert set(training_inputs.SOLVER_FIELDS_FROM_PARAMS) == set(tiny_params()["train"]) - not_in_solver
    solver = netgen.build_solver(caffe_pb2, tiny_params()["train"], train_net="", test_net="", test_iter=1, snapshot_prefix="x")
    for key, field in training_inputs.SOLVER_FIELDS_FROM_PARAMS.items():
        assert solver.HasField(field), key
