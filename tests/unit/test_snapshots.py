"""Snapshot schedule, validation of damaged files, and the manifest."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from caffepipe.training import snapshots
from caffepipe.core.caffe_env import import_caffe
from caffepipe.core.errors import CaffepipeError
from caffepipe.training.snapshots import Snapshot, check_snapshot, scheduled_iterations

import_caffe(threads=1)
from caffe.proto import caffe_pb2  # noqa: E402

SHAPES = {"conv1": [(2, 1, 3, 3), (2,)], "ip1": [(4, 8), (4,)]}


def test_the_schedule_is_interval_multiples_the_list_and_the_end() -> None:
    assert scheduled_iterations(10000, 5000, [10, 30, 60, 100, 300, 600, 1000, 3000, 6000]) == \
        [10, 30, 60, 100, 300, 600, 1000, 3000, 5000, 6000, 10000]
    assert scheduled_iterations(40, 1000, [10, 30, 50]) == [10, 30, 40]
    assert scheduled_iterations(45, 20, []) == [20, 40, 45]
    assert scheduled_iterations(40, 0, [40, 0, -5]) == [40]


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


def test_find_snapshot_files_groups_pairs_by_iteration(tmp_path: Path) -> None:
    write_snapshot(tmp_path, 10)
    write_snapshot(tmp_path, 200)
    (tmp_path / "net_iter_300.caffemodel").write_bytes(b"x")
    (tmp_path / "other_iter_10.caffemodel").write_bytes(b"x")
    (tmp_path / "net_iter_5.txt").write_bytes(b"x")
    found = snapshots.find_snapshot_files(tmp_path, "net")
    assert sorted(found) == [10, 200, 300]
    assert len(found[10]) == 2 and len(found[300]) == 1


def test_the_manifest_round_trips_with_relative_paths(tmp_path: Path) -> None:
    folder = tmp_path / "snapshots"
    folder.mkdir()
    listed = [write_snapshot(folder, iteration) for iteration in (10, 40)]
    final = tmp_path / "final.caffemodel"
    final.write_bytes(listed[-1].caffemodel.read_bytes())
    snapshots.write_manifest(tmp_path / "snapshots.json", "lenet", 40, "abc", final, listed[::-1])
    data = json.loads((tmp_path / "snapshots.json").read_text())
    assert data["snapshots"][0] == {"iteration": 10, "caffemodel": "snapshots/net_iter_10.caffemodel",
                                    "solverstate": "snapshots/net_iter_10.solverstate"}
    assert data["final"] == "final.caffemodel" and data["max_iter"] == 40 and data["model"] == "lenet"
    manifest = snapshots.read_manifest(tmp_path / "snapshots.json")
    assert [s.iteration for s in manifest.snapshots] == [10, 40]
    assert manifest.snapshots[0].caffemodel == folder / "net_iter_10.caffemodel"
    assert manifest.final == final and manifest.fingerprint == "abc"


def test_a_broken_manifest_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(CaffepipeError, match="run `caffepipe train`"):
        snapshots.read_manifest(tmp_path / "snapshots.json")
    (tmp_path / "snapshots.json").write_text('{"model": "lenet"}')
    with pytest.raises(CaffepipeError, match="not a caffepipe snapshot manifest"):
        snapshots.read_manifest(tmp_path / "snapshots.json")
    (tmp_path / "snapshots.json").write_text(json.dumps({
        "model": "lenet", "max_iter": 10, "fingerprint": "x", "final": "final.caffemodel",
        "snapshots": [{"iteration": 10, "caffemodel": "a.caffemodel", "solverstate": "a.solverstate"}]}))
    with pytest.raises(CaffepipeError, match="missing"):
        snapshots.read_manifest(tmp_path / "snapshots.json")
