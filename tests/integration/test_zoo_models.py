"""The zoo's models with the real Caffe: netgen generates every model, Caffe loads and trains each, BatchNorm
is set per phase, and the CAM identity holds on a real global-average-pooling net's blobs."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

from caffepipe.core.caffe_env import import_caffe
from caffepipe.evaluation.cam import compute_cams, find_gap_head, logits_from_maps, net_wiring
from caffepipe.inspection.complexity import complexity, layer_shapes_of
from caffepipe.training import models, netgen
from tests.conftest import synthetic_digits, tiny_params
from tests.stage_outputs import tiny_db

pytestmark = pytest.mark.integration

caffe = import_caffe(threads=1)
from caffe.proto import caffe_pb2  # noqa: E402

GAP_MODELS = ("gapnet", "resnet", "inception")


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    return tiny_db(tmp_path_factory.mktemp("zoo") / "db")


def generated(db: Path, model: str, folder: Path) -> Path:
    params = tiny_params(netgen={"models": list(models.MODELS)})
    for name, text in netgen.generate(params, model, db, folder).items():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


@pytest.mark.parametrize("model", sorted(models.MODELS))
def test_every_model_is_generated_loaded_and_trained_by_caffe(db: Path, tmp_path: Path, model: str) -> None:
    nets = generated(db, model, tmp_path / model)
    solver = caffe.get_solver(str(nets / "solver.prototxt"))          # loads the train and the test net
    solver.step(3)
    assert np.isfinite(float(solver.net.blobs["loss"].data))
    deploy = caffe.Net(str(nets / "deploy.prototxt"), caffe.TEST)
    images, _ = synthetic_digits(5)
    deploy.blobs["data"].reshape(5, 1, 28, 28)
    deploy.reshape()
    deploy.blobs["data"].data[...] = images[:, None] * models.INPUT_SCALE
    probs = deploy.forward()["prob"]
    assert probs.shape == (5, models.NUM_CLASSES)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)


@pytest.mark.parametrize("model", ["lenet_bn", "gapnet", "resnet", "inception"])
def test_batch_norm_uses_batch_statistics_only_in_training_and_is_never_learned(db: Path, tmp_path: Path, model: str) -> None:
    nets = generated(db, model, tmp_path / model)
    for kind, training in (("train", True), ("test", False), ("deploy", False)):
        net = text_format.Parse((nets / f"{kind}.prototxt").read_text(), caffe_pb2.NetParameter())
        norms = [layer for layer in net.layer if layer.type == "BatchNorm"]
        assert norms, "the model has BatchNorm layers"
        assert {layer.batch_norm_param.use_global_stats for layer in norms} == {not training}, kind
        assert {(spec.lr_mult, spec.decay_mult) for layer in norms for spec in layer.param} == {(0, 0)}
    # Training moves the running statistics (Caffe does, in the forward pass), the solver never does.
    solver = caffe.get_solver(str(nets / "solver.prototxt"))
    first_norm = next(name for name, layer in zip(solver.net._layer_names, solver.net.layers) if layer.type == "BatchNorm")
    solver.step(2)
    assert float(solver.net.params[first_norm][2].data[0]) > 0      # the averages' scale factor


@pytest.mark.parametrize("model", sorted(models.MODELS))
def test_the_gap_models_and_only_they_have_cams(db: Path, tmp_path: Path, model: str) -> None:
    nets = generated(db, model, tmp_path / model)
    head, reason = find_gap_head(net_wiring(text_format.Parse((nets / "deploy.prototxt").read_text(), caffe_pb2.NetParameter())))
    assert (head is not None) == (model in GAP_MODELS), reason


@pytest.mark.parametrize("model", GAP_MODELS)
def test_cam_identity_on_a_real_gap_nets_blobs(db: Path, tmp_path: Path, model: str) -> None:
    """mean over space of class c's map + bias_c == the net's own logit for c, for every image and class."""
    nets = generated(db, model, tmp_path / model)
    solver = caffe.get_solver(str(nets / "solver.prototxt"))
    solver.step(5)                                    # weights and BatchNorm statistics away from their fillers
    weights = tmp_path / "trained.caffemodel"
    solver.net.save(str(weights))
    deploy = caffe.Net(str(nets / "deploy.prototxt"), caffe.TEST, weights=str(weights))
    head, _ = find_gap_head(net_wiring(text_format.Parse((nets / "deploy.prototxt").read_text(), caffe_pb2.NetParameter())))
    images, _ = synthetic_digits(6, seed=4)
    result = compute_cams(deploy, head, images[:, None], models.INPUT_SCALE)
    assert result.maps.shape[:2] == (6, models.NUM_CLASSES) and result.maps.shape[2:] == result.feature_shape[1:]
    assert np.abs(result.logits).max() > 1e-3, "the logits are not trivially zero"
    np.testing.assert_allclose(logits_from_maps(result.maps, result.bias), result.logits, atol=1e-4, rtol=1e-4)


def test_multiply_adds_of_the_generated_lenet_match_the_hand_count(db: Path, tmp_path: Path) -> None:
    """The same numbers tests/unit/test_complexity.py works out by hand, from Caffe's own blob shapes."""
    nets = generated(db, "lenet", tmp_path / "lenet")
    cost = complexity(layer_shapes_of(caffe.Net(str(nets / "deploy.prototxt"), caffe.TEST)))
    assert (cost["multiply_adds"], cost["parameters"]) == (2_293_000, 431_080)
    # backward, from the real net's blob names: conv1 reads the data (1x), every later learned layer 2x
    assert cost["backward_multiply_adds"] == 4_298_000
    json.dumps(cost)     # what `caffepipe time` writes as complexity.json
