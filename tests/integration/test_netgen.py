"""netgen: the three nets of each model share their architecture; LeNet and its solver are Caffe's example."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import text_format

from caffepipe.core.caffe_env import import_caffe
from caffepipe.data.datum import db_path
from caffepipe.training import models, netgen
from tests.conftest import default_params, tiny_params

pytestmark = pytest.mark.integration

caffe = import_caffe(threads=1)
from caffe.proto import caffe_pb2  # noqa: E402

# Caffe's examples/mnist/lenet_solver.prototxt, less its paths.
CAFFE_LENET_SOLVER = """
test_iter: 100
test_interval: 500
base_lr: 0.01
momentum: 0.9
weight_decay: 0.0005
lr_policy: "inv"
gamma: 0.0001
power: 0.75
display: 100
max_iter: 10000
snapshot: 5000
solver_mode: CPU
"""
HEADS = {"train": 1, "test": 2, "deploy": 1}  # layers after the architecture


def nets_of(model: str, backend: str = "lmdb") -> dict:
    return netgen.build_nets(caffe, model, train_source="db/train_lmdb", test_source="db/test_lmdb", backend=backend,
                             train_batch_size=64, test_batch_size=100)


def inner_layers(net) -> list:
    return list(net.layer)[1:len(net.layer) - HEADS[_kind(net)]]


def _kind(net) -> str:
    types = [layer.type for layer in net.layer]
    return "deploy" if "Softmax" in types else "test" if "Accuracy" in types else "train"


@pytest.mark.parametrize("model", sorted(models.MODELS))
def test_the_three_nets_differ_only_in_input_and_head(model: str) -> None:
    nets = nets_of(model)
    train, test, deploy = (inner_layers(nets[kind]) for kind in ("train", "test", "deploy"))
    assert train, "the architecture has layers"
    # BatchNorm's use_global_stats is the one setting that differs by phase (test_zoo_models.py checks it)
    for layer in (*train, *test, *deploy):
        layer.batch_norm_param.ClearField("use_global_stats")
        if layer.type != "BatchNorm":
            layer.ClearField("batch_norm_param")
    assert [layer.SerializeToString(deterministic=True) for layer in train] == \
           [layer.SerializeToString(deterministic=True) for layer in test] == \
           [layer.SerializeToString(deterministic=True) for layer in deploy]
    assert [layer.type for layer in nets["train"].layer][-1:] == ["SoftmaxWithLoss"]
    assert [layer.type for layer in nets["test"].layer][-2:] == ["Accuracy", "SoftmaxWithLoss"]
    assert [(layer.type, list(layer.top)) for layer in nets["deploy"].layer][-1] == ("Softmax", ["prob"])
    assert [(layer.type, list(layer.top)) for layer in nets["deploy"].layer][0] == ("Input", ["data"])
    assert list(nets["deploy"].layer[0].input_param.shape[0].dim) == [netgen.DEPLOY_BATCH, 1, 28, 28]
    for kind in ("train", "test"):
        data = nets[kind].layer[0]
        assert data.type == "Data" and list(data.top) == ["data", "label"]
        assert data.transform_param.scale == pytest.approx(models.INPUT_SCALE)


def test_lenet_is_caffes_mnist_lenet() -> None:
    train = nets_of("lenet")["train"]
    layers = {layer.name: layer for layer in train.layer}
    assert [layer.name for layer in inner_layers(train)] == ["conv1", "pool1", "conv2", "pool2", "ip1", "relu1", "ip2"]
    assert (layers["conv1"].convolution_param.num_output, layers["conv2"].convolution_param.num_output) == (20, 50)
    for name in ("conv1", "conv2"):
        assert list(layers[name].convolution_param.kernel_size) == [5]
        assert layers[name].convolution_param.weight_filler.type == "xavier"
        assert [param.lr_mult for param in layers[name].param] == [1, 2]
    for name in ("pool1", "pool2"):
        pooling = layers[name].pooling_param
        assert (pooling.pool, pooling.kernel_size, pooling.stride) == (caffe_pb2.PoolingParameter.MAX, 2, 2)
    assert (layers["ip1"].inner_product_param.num_output, layers["ip2"].inner_product_param.num_output) == (500, 10)
    assert layers["ip1"].inner_product_param.weight_filler.type == "xavier"
    assert list(layers["relu1"].bottom) == list(layers["relu1"].top) == ["ip1"]  # in place, as in Caffe's example
    assert models.INPUT_SCALE == 1 / 256


def test_mlp_is_lenet_300_100() -> None:
    train = nets_of("mlp")["train"]
    inner = inner_layers(train)
    assert [(layer.name, layer.type) for layer in inner] == [
        ("ip1", "InnerProduct"), ("relu1", "ReLU"), ("ip2", "InnerProduct"), ("relu2", "ReLU"), ("ip3", "InnerProduct")]
    assert [layer.inner_product_param.num_output for layer in inner if layer.type == "InnerProduct"] == [300, 100, 10]


@pytest.mark.parametrize("backend, enum", [("lmdb", 1), ("leveldb", 0)])
def test_the_backend_is_a_parameter(backend: str, enum: int) -> None:
    nets = nets_of("lenet", backend)
    assert nets["train"].layer[0].data_param.backend == enum == caffe_pb2.DataParameter.DB.Value(backend.upper())


def test_default_solver_reproduces_caffes_lenet_solver() -> None:
    solver = netgen.build_solver(caffe_pb2, default_params()["train"], train_net="n/train.prototxt",
                                 test_net="n/test.prototxt", test_iter=100, snapshot_prefix="lenet")
    expected = text_format.Parse(CAFFE_LENET_SOLVER, caffe_pb2.SolverParameter())
    for field, value in expected.ListFields():
        assert getattr(solver, field.name) == value or list(getattr(solver, field.name)) == list(value), field.name
    assert solver.random_seed == default_params()["train"]["random_seed"] >= 0
    assert (solver.train_net, list(solver.test_net)) == ("n/train.prototxt", ["n/test.prototxt"])


def test_generate_writes_parseable_prototxt_with_the_db_paths(tmp_path: Path) -> None:
    db = tmp_path / "db"
    db.mkdir()
    (db / "info.json").write_text(json.dumps({"train": 640, "test": 200, "channels": 1, "height": 28, "width": 28}))
    texts = netgen.generate(tiny_params(), "mlp", db, tmp_path / "nets")
    assert set(texts) == {"train.prototxt", "test.prototxt", "deploy.prototxt", "solver.prototxt"}
    train = text_format.Parse(texts["train.prototxt"], caffe_pb2.NetParameter())
    assert train.layer[0].data_param.source == str(db_path(db, "train", "lmdb"))
    assert train.layer[0].data_param.batch_size == 16
    solver = text_format.Parse(texts["solver.prototxt"], caffe_pb2.SolverParameter())
    assert list(solver.test_iter) == [4] and solver.max_iter == 40
    assert solver.train_net == str(tmp_path / "nets" / "train.prototxt")


def test_random_shift_trains_on_crops_of_the_padded_images_and_tests_on_the_plain_ones(tmp_path: Path) -> None:
    db = tmp_path / "db"
    db.mkdir()
    (db / "info.json").write_text(json.dumps({"train": 640, "test": 200, "channels": 1, "height": 28, "width": 28,
                                              "train_pad": 2}))
    params = tiny_params(netgen={"models": ["lenet", "gapnet"], "random_shift": ["gapnet"]})
    parse = lambda text: text_format.Parse(text, caffe_pb2.NetParameter())  # noqa: E731
    shifted = netgen.generate(params, "gapnet", db, tmp_path / "nets")
    train, test = parse(shifted["train.prototxt"]).layer[0], parse(shifted["test.prototxt"]).layer[0]
    assert train.data_param.source == str(db_path(db, "train_padded", "lmdb"))
    assert train.transform_param.crop_size == 28
    assert test.data_param.source == str(db_path(db, "test", "lmdb")) and not test.transform_param.crop_size
    assert list(parse(shifted["deploy.prototxt"]).layer[0].input_param.shape[0].dim)[1:] == [1, 28, 28]
    plain = parse(netgen.generate(params, "lenet", db, tmp_path / "nets")["train.prototxt"]).layer[0]
    assert plain.data_param.source == str(db_path(db, "train", "lmdb")) and not plain.transform_param.crop_size
