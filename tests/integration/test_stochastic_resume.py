"""Exact resume for a net that draws random numbers while it trains: Dropout and random crops, with the real
Caffe (training/random_state.py says how). A stopped (SIGTERM, at whatever iteration it was) and a killed
(SIGKILL, back to the last snapshot) training, each resumed, end with the weights of an uninterrupted run, bit
for bit; and a net with a layer type caffepipe cannot vouch for is reported as not bit-reproducible.

The first net is LeNet from netgen with, added by hand here, a Dropout layer after ip1 and random 24x24 crops of
the 28x28 training images (the test net takes the centre crop). Then the zoo's lenet_bn and resnet as netgen
writes them: BatchNorm, Dropout, and random shifts (28x28 crops of the padded training images).
"""
from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.conftest import run_caffepipe
from tests.integration.test_training import (  # noqa: F401  (tiny_db: a fixture)
    Workspace,
    _start_training,
    _uninterrupted,
    _wait_for,
    tiny_db,
)

pytestmark = pytest.mark.integration

TRAINING = {"max_iter": 240, "display": 20, "test_interval": 60, "snapshot_interval": 1000,
            "snapshot_iters": [20, 60, 120, 180]}
CROP = 24


def make_stochastic(nets: Path, noise_layer: str | None = None) -> None:
    """Add random crops (centre crops in the test net) and Dropout after ip1 to netgen's LeNet nets; with
    `noise_layer` (a Python module), also a Python layer from it after the Dropout."""
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    for name in ("train.prototxt", "test.prototxt"):
        path = nets / name
        net = text_format.Parse(path.read_text(), caffe_pb2.NetParameter())
        layers = list(net.layer)
        data = next(layer for layer in layers if layer.type == "Data")
        data.transform_param.crop_size = CROP
        relu = next(index for index, layer in enumerate(layers) if layer.type == "ReLU")
        activations = layers[relu].top[0]
        dropout = caffe_pb2.LayerParameter(name="drop1", type="Dropout", bottom=[activations], top=[activations])
        dropout.dropout_param.dropout_ratio = 0.5
        added = [dropout]
        if noise_layer:
            noisy = caffe_pb2.LayerParameter(name="noise", type="Python", bottom=[activations], top=["noisy"])
            noisy.python_param.module, noisy.python_param.layer = noise_layer, "GaussianNoise"
            added.append(noisy)
            for layer in layers[relu + 1:]:
                layer.bottom[:] = ["noisy" if bottom == activations else bottom for bottom in layer.bottom]
        del net.layer[:]
        net.layer.extend(layers[:relu + 1] + added + layers[relu + 1:])
        path.write_text(text_format.MessageToString(net))


NOISE_LAYER = """
import caffe
import numpy as np


class GaussianNoise(caffe.Layer):
    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data + np.random.normal(0, 0.1, bottom[0].data.shape)

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = top[0].diff
"""


def stochastic_reference(tmp_path: Path, db: Path) -> Workspace:
    reference = Workspace(tmp_path / "reference", db, train=TRAINING)
    reference.netgen()
    make_stochastic(reference.nets)
    reference.train()
    return reference


def test_the_training_really_is_stochastic(tmp_path: Path, tiny_db: Path) -> None:
    """Without this the tests below would prove nothing: the crops and the Dropout masks change the weights."""
    reference = stochastic_reference(tmp_path, tiny_db)
    log = (reference.out / "caffe.log").read_text()
    assert "Creating layer drop1" in log and f"crop_size: {CROP}" in (reference.nets / "train.prototxt").read_text()
    plain = _uninterrupted(tmp_path / "plain", tiny_db, **TRAINING)
    assert (plain.out / "final.caffemodel").read_bytes() != (reference.out / "final.caffemodel").read_bytes()


def test_sigterm_at_any_iteration_and_sigkill_then_resume_give_the_uninterrupted_weights(
        tmp_path: Path, tiny_db: Path) -> None:
    workspace = Workspace(tmp_path / "ws", tiny_db, train=TRAINING)
    workspace.netgen()
    make_stochastic(workspace.nets)

    # 1. SIGTERM soon after the snapshot at 20: it snapshots whatever iteration it had reached.
    process = _start_training(workspace)
    _wait_for(workspace.out / "snapshots" / "lenet_iter_20.solverstate", process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    # 2. Resume from there, then SIGKILL after the snapshot at 120: back to 120 at most.
    process = _start_training(workspace)
    _wait_for(workspace.out / "snapshots" / "lenet_iter_120.solverstate", process)
    process.kill()
    process.wait()
    # 3. Resume to the end.
    workspace.train()

    segments = workspace.segment_logs()
    assert len(segments) == 3
    stopped_at = int(segments[0].read_text().split("stopped by signal 15 at iteration ")[1].split()[0])
    resumed = [int(log.read_text().split("resumes lenet from iteration ")[1].split()[0]) for log in segments[1:]]
    assert resumed[0] == stopped_at and resumed[1] >= 120

    reference = stochastic_reference(tmp_path, tiny_db)
    for iteration in (120, 180, 240):
        name = f"lenet_iter_{iteration}.caffemodel"
        assert (workspace.out / "snapshots" / name).read_bytes() == (reference.out / "snapshots" / name).read_bytes(), name
    assert (workspace.out / "final.caffemodel").read_bytes() == (reference.out / "final.caffemodel").read_bytes()
    assert workspace.reproducibility()["bit_reproducible"] is True


def test_a_layer_that_draws_unrestorable_random_numbers_is_not_claimed_reproducible(tmp_path: Path, tiny_db: Path) -> None:
    """A Python layer adding numpy's Gaussian noise on every forward pass: no one re-seeds numpy's generator,
    so a resume cannot restore it, and the verdict must say so, naming the layer type."""
    workspace = Workspace(tmp_path / "ws", tiny_db, train={**TRAINING, "max_iter": 20, "snapshot_iters": []})
    workspace.netgen()
    (workspace.root / "noise_layer.py").write_text(NOISE_LAYER)
    make_stochastic(workspace.nets, noise_layer="noise_layer")
    run_caffepipe(*workspace.train_args(), cwd=workspace.root,
                  env={"PYTHONPATH": str(workspace.root)})
    assert "Creating layer noise" in (workspace.out / "caffe.log").read_text()
    verdict = workspace.reproducibility()
    assert verdict["bit_reproducible"] is False
    assert "Python" in verdict["reproducibility_note"]
    assert workspace.manifest()["bit_reproducible"] is False


@pytest.mark.parametrize("model", ["lenet_bn", "resnet"])
def test_zoo_models_with_dropout_batchnorm_and_random_shifts_resume_exactly_after_sigkill(
        tmp_path: Path, tiny_db: Path, model: str) -> None:
    """The zoo's own nets as netgen writes them (no hand edits): BatchNorm, Dropout and random shifts (crops of
    the padded training database, netgen.random_shift), killed after a snapshot and resumed: the uninterrupted
    run's snapshots and weights, bit for bit."""
    sections = {"train": TRAINING, "netgen": {"models": [model], "random_shift": [model]}}
    workspace = Workspace(tmp_path / "ws", tiny_db, model=model, **sections)
    workspace.netgen()
    train_net = (workspace.nets / "train.prototxt").read_text()
    assert "crop_size: 28" in train_net and "train_padded_lmdb" in train_net and "Dropout" in train_net

    process = _start_training(workspace)
    _wait_for(workspace.out / "snapshots" / f"{model}_iter_60.solverstate", process)
    process.kill()
    process.wait()
    workspace.train()
    resumed = workspace.segment_logs()[-1].read_text()
    assert int(resumed.split(f"resumes {model} from iteration ")[1].split()[0]) >= 60

    reference = Workspace(tmp_path / "reference", tiny_db, model=model, **sections)
    reference.netgen()
    reference.train()
    for iteration in (120, 180, 240):
        name = f"{model}_iter_{iteration}.caffemodel"
        assert (workspace.out / "snapshots" / name).read_bytes() == (reference.out / "snapshots" / name).read_bytes(), name
    assert (workspace.out / "final.caffemodel").read_bytes() == (reference.out / "final.caffemodel").read_bytes()
    assert workspace.reproducibility()["bit_reproducible"] is True
