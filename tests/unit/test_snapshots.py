"""Snapshot schedule, file names and the manifest. (tests/integration/test_snapshots.py checks the validation
of damaged snapshots, which parses them with Caffe's own protobuf messages.)"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from caffepipe.core.errors import CaffepipeError
from caffepipe.training import snapshots
from caffepipe.training.snapshots import Snapshot, scheduled_iterations


def test_the_schedule_is_interval_multiples_the_list_and_the_end() -> None:
    assert scheduled_iterations(10000, 5000, [10, 30, 60, 100, 300, 600, 1000, 3000, 6000]) == \
        [10, 30, 60, 100, 300, 600, 1000, 3000, 5000, 6000, 10000]
    assert scheduled_iterations(40, 1000, [10, 30, 50]) == [10, 30, 40]
    assert scheduled_iterations(45, 20, []) == [20, 40, 45]
    assert scheduled_iterations(40, 0, [40, 0, -5]) == [40]


def write_snapshot_files(folder: Path, iteration: int) -> Snapshot:
    """A snapshot's two files by name only: finding snapshots and the manifest never read what is inside."""
    snapshot = Snapshot.at(folder, "net", iteration)
    for path in snapshot.files:
        path.write_bytes(b"not parsed here")
    return snapshot


def test_find_snapshot_files_groups_pairs_by_iteration(tmp_path: Path) -> None:
    write_snapshot_files(tmp_path, 10)
    write_snapshot_files(tmp_path, 200)
    (tmp_path / "net_iter_300.caffemodel").write_bytes(b"x")
    (tmp_path / "other_iter_10.caffemodel").write_bytes(b"x")
    (tmp_path / "net_iter_5.txt").write_bytes(b"x")
    found = snapshots.find_snapshot_files(tmp_path, "net")
    assert sorted(found) == [10, 200, 300]
    assert len(found[10]) == 2 and len(found[300]) == 1


def test_the_manifest_round_trips_with_relative_paths(tmp_path: Path) -> None:
    folder = tmp_path / "snapshots"
    folder.mkdir()
    listed = [write_snapshot_files(folder, iteration) for iteration in (10, 40)]
    final = tmp_path / "final.caffemodel"
    final.write_bytes(listed[-1].caffemodel.read_bytes())
    history = {"segments": [{"log": "segment-001.log", "from": 0, "threads": 1}], "bit_reproducible": True,
               "reproducibility_note": None}
    snapshots.write_manifest(tmp_path / "snapshots.json", "lenet", 40, "abc", final, listed[::-1], history)
    data = json.loads((tmp_path / "snapshots.json").read_text())
    assert {key: data[key] for key in history} == history
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
