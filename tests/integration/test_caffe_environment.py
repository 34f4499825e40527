"""The Caffe that envs/setup.sh built really trains, through both of its front doors, on the CPU."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from caffepipe.core import caffe_env

pytestmark = pytest.mark.integration


def constant_task_net(caffe, batch: int = 8) -> str:
    """Every input is the same image and every label is 3: a net that learns must drive the loss down."""
    from caffe import layers as L, params as P  # noqa: F401

    net = caffe.NetSpec()
    net.data, net.label = L.DummyData(
        shape=[dict(dim=[batch, 1, 4, 4]), dict(dim=[batch])],
        data_filler=[dict(type="constant", value=1.0), dict(type="constant", value=3.0)],
        ntop=2,
    )
    net.score = L.InnerProduct(net.data, num_output=10, weight_filler=dict(type="xavier"))
    net.loss = L.SoftmaxWithLoss(net.score, net.label)
    return str(net.to_proto())


def write_solver(caffe, tmp_path: Path, max_iter: int) -> Path:
    from caffe.proto import caffe_pb2

    (tmp_path / "net.prototxt").write_text(constant_task_net(caffe))
    solver = caffe_pb2.SolverParameter(
        net=str(tmp_path / "net.prototxt"), base_lr=0.1, lr_policy="fixed", max_iter=max_iter, display=1,
        snapshot_after_train=False, solver_mode=caffe_pb2.SolverParameter.CPU, random_seed=1,
    )
    path = tmp_path / "solver.prototxt"
    path.write_text(str(solver))
    return path


def test_caffe_train_binary_trains_a_tiny_net(tmp_path: Path) -> None:
    caffe = caffe_env.import_caffe(threads=1)
    solver = write_solver(caffe, tmp_path, max_iter=20)
    result = subprocess.run([str(caffe_env.caffe_tool("caffe")), "train", f"--solver={solver}"],
                            capture_output=True, text=True, env=caffe_env.caffe_subprocess_env(threads=1))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Optimization Done." in result.stderr
    losses = [float(v) for v in re.findall(r"Iteration \d+ .*loss = ([\d.e+-]+)", result.stderr)]
    assert len(losses) >= 10 and losses[-1] < losses[0] / 2


def test_pycaffe_solver_takes_sgd_steps(tmp_path: Path) -> None:
    caffe = caffe_env.import_caffe(threads=1)
    solver = caffe.get_solver(str(write_solver(caffe, tmp_path, max_iter=100)))
    solver.net.forward()
    first = float(solver.net.blobs["loss"].data)
    solver.step(20)
    assert solver.iter == 20
    assert float(solver.net.blobs["loss"].data) < first / 2
