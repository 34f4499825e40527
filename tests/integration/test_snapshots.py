"""Validation of damaged snapshots: check_snapshot parses them with Caffe's own protobuf messages (caffe_pb2)."""
from __future__ import annotations

from pathlib import Path

import pytest

from caffepipe.core.caffe_env import import_caffe
from caffepipe.training.snapshots import Snapshot, check_snapshot

pytestmark = pytest.mark.integration

import_caffe(threads=1)
from caffe.proto import caffe_pb2  # noqa: E402

SHAPES = {"conv1": [(2, 1, 3, 3), (2,)], "ip1": [(4, 8), (4,)]}


def _blob(shape: tuple[int, ...], value: float = 0.5):
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend(shape)
    count = 1
    for dim in shape:
        count *= dim
    blob.data.extend([value] * count)
    return blob


def write_snapshot(folder: Path, iteration: int, shapes=SHAPES) -> Snapshot:
    snapshot = Snapshot.at(folder, "net", iteration)
    net = caffe_pb2.NetParameter()
    state = caffe_pb2.SolverState()
    state.iter = iteration
    state.learned_net = str(snapshot.caffemodel)
    for name, blob_shapes in shapes.items():
        layer = net.layer.add()
        layer.name = name
        for shape in blob_shapes:
            layer.blobs.add().CopyFrom(_blob(shape))
            state.history.add().CopyFrom(_blob(shape, 0.0))
    snapshot.caffemodel.write_bytes(net.SerializeToString())
    snapshot.solverstate.write_bytes(state.SerializeToString())
    return snapshot


def test_a_complete_snapshot_passes(tmp_path: Path) -> None:
    assert check_snapshot(caffe_pb2, write_snapshot(tmp_path, 30), SHAPES) is None


@pytest.mark.parametrize("which", ["caffemodel", "solverstate"])
@pytest.mark.parametrize("keep", [0.0, 0.3, 0.5, 0.9, 0.99])
def test_a_truncated_file_fails(tmp_path: Path, which: str, keep: float) -> None:
    snapshot = write_snapshot(tmp_path, 30)
    path = getattr(snapshot, which)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    assert check_snapshot(caffe_pb2, snapshot, SHAPES) is not None


def test_garbage_the_wrong_iteration_and_a_missing_half_fail(tmp_path: Path) -> None:
    snapshot = write_snapshot(tmp_path, 30)
    wrong = Snapshot(40, snapshot.caffemodel, snapshot.solverstate)
    assert "iteration 30, not 40" in check_snapshot(caffe_pb2, wrong, SHAPES)
    snapshot.caffemodel.write_bytes(b"\xff" * 100)
    assert check_snapshot(caffe_pb2, snapshot, SHAPES) is not None
    snapshot.caffemodel.unlink()
    assert "missing" in check_snapshot(caffe_pb2, snapshot, SHAPES)


def test_a_snapshot_of_another_net_fails(tmp_path: Path) -> None:
    snapshot = write_snapshot(tmp_path, 30, {"conv1": [(3, 1, 3, 3), (3,)], "ip1": [(4, 12), (4,)]})
    assert "shape" in check_snapshot(caffe_pb2, snapshot, SHAPES)
    snapshot = write_snapshot(tmp_path, 30, {"conv1": SHAPES["conv1"]})
    assert check_snapshot(caffe_pb2, snapshot, SHAPES) is not None
