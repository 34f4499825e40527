"""Identical inputs give byte-identical outputs, so a rebuild that changed nothing changes no DVC hash and re-runs
nothing below it. build-db with the real CLI, real LMDB and LevelDB, real DVC, and Caffe's Data layer reading
the result."""
from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from caffepipe.core import caffe_env
from caffepipe.data.datum import db_path
from caffepipe.data.idx import read_idx
from tests.conftest import BIN, REPO, run_caffepipe, tiny_params, write_params

pytestmark = pytest.mark.integration


def file_listing(folder: Path) -> list[tuple[str, str]]:
    """Sorted (relative path, SHA-256) of every file under `folder`."""
    return sorted((str(path.relative_to(folder)), hashlib.sha256(path.read_bytes()).hexdigest())
                  for path in folder.rglob("*") if path.is_file())


def build_db(params: Path, raw: Path, out: Path) -> None:
    run_caffepipe("build-db", "--params", str(params), "--raw", str(raw), "--out", str(out))


def test_two_builds_of_the_databases_from_the_same_files_are_byte_identical(mnist_raw: Path, tmp_path: Path) -> None:
    params = write_params(tmp_path / "params.yaml", tiny_params())
    build_db(params, mnist_raw, tmp_path / "first")
    build_db(params, mnist_raw, tmp_path / "second")
    first, second = file_listing(tmp_path / "first"), file_listing(tmp_path / "second")
    assert [name for name, _ in first] == [name for name, _ in second]
    differing = [name for (name, one), (_, other) in zip(first, second) if one != other]
    assert differing == [], f"files that differ between two builds: {differing}"
    for name, _ in first:
        assert (tmp_path / "first" / name).read_bytes() == (tmp_path / "second" / name).read_bytes()
    names = {Path(name).name for name, _ in first}
    assert not names & {"LOG", "LOG.old", "lock.mdb"}, "timestamped LevelDB logs or an LMDB lock file were kept"


def dvc(repo: Path, *args: str) -> str:
    result = subprocess.run([str(BIN / "dvc"), *args], cwd=repo, capture_output=True, text=True)
    assert result.returncode == 0, f"dvc {' '.join(args)}: {result.stdout}\n{result.stderr}"
    return result.stdout


def test_dvc_sees_a_rebuilt_database_folder_as_unchanged(mnist_raw: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    dvc(repo, "init", "-q")
    (repo / ".dvcignore").write_text((REPO / ".dvcignore").read_text())     # the project's own ignore rules
    params = write_params(tmp_path / "params.yaml", tiny_params())
    build_db(params, mnist_raw, repo / "db")
    dvc(repo, "add", "-q", "db")
    recorded = (repo / "db.dvc").read_text()
    build_db(params, mnist_raw, repo / "db")            # the same path, as a re-run of the stage does
    assert json.loads(dvc(repo, "status", "--json", "db.dvc")) == {}, "DVC sees the rebuilt db as modified"
    assert (repo / "db.dvc").read_text() == recorded


def data_layer_net(source: Path, backend: str) -> str:
    caffe = caffe_env.import_caffe(threads=1)
    from caffe import layers as L, params as P

    net = caffe.NetSpec()
    net.data, net.label = L.Data(source=str(source), backend=getattr(P.Data, backend.upper()), batch_size=200, ntop=2)
    return str(net.to_proto())


@pytest.mark.parametrize("backend", ["lmdb", "leveldb"])
def test_caffe_s_data_layer_reads_the_databases_without_the_files_build_db_leaves_out(
        mnist_raw: Path, tmp_path: Path, backend: str) -> None:
    params = write_params(tmp_path / "params.yaml", tiny_params())
    build_db(params, mnist_raw, tmp_path / "db")
    caffe = caffe_env.import_caffe(threads=1)
    (tmp_path / "net.prototxt").write_text(data_layer_net(db_path(tmp_path / "db", "test", backend), backend))
    net = caffe.Net(str(tmp_path / "net.prototxt"), caffe.TEST)
    net.forward()
    np.testing.assert_array_equal(net.blobs["label"].data, read_idx(mnist_raw / "t10k-labels-idx1-ubyte")[:200])
    np.testing.assert_array_equal(net.blobs["data"].data[:, 0], read_idx(mnist_raw / "t10k-images-idx3-ubyte")[:200])
