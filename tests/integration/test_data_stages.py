"""The data stages with real MNIST, the real Caffe tools, real LMDB and LevelDB."""
from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from caffepipe.core import caffe_env
from caffepipe.data.build_db import build_databases
from caffepipe.data.datum import db_path, iterate_db
from caffepipe.data.idx import read_idx
from tests.conftest import run_caffepipe, tiny_params, write_params
from tests.idx_files import write_idx

pytestmark = pytest.mark.integration

# Label counts of MNIST (FACTS.md, from the original distribution).
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_default_fetch_gets_verified_mnist(mnist_raw: Path) -> None:
    assert hashlib.md5((mnist_raw / "train-images-idx3-ubyte").read_bytes()).hexdigest() == "6bbc9ace898e44ae57da46a324031adb"
    assert np.bincount(read_idx(mnist_raw / "train-labels-idx1-ubyte")).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(read_idx(mnist_raw / "t10k-labels-idx1-ubyte")).tolist() == MNIST_TEST_COUNTS
    assert read_idx(mnist_raw / "t10k-images-idx3-ubyte").shape == (10000, 28, 28)


def test_fetch_cli_fails_with_one_line_and_exit_2_when_no_source_reaches(tmp_path: Path) -> None:
    params = tiny_params(fetch={"sources": ["local"], "local_dir": str(tmp_path / "nothing-here")})
    result = run_caffepipe("fetch", "--params", str(write_params(tmp_path / "p.yaml", params)), "--out",
                           str(tmp_path / "raw"), check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("caffepipe fetch: error: could not fetch")
    assert not (tmp_path / "raw").exists()


@pytest.mark.parametrize("backend", ["lmdb", "leveldb"])
def test_our_databases_are_record_for_record_those_of_convert_mnist_data(mnist_raw: Path, tmp_path: Path, backend: str) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        write_idx(raw / name, read_idx(mnist_raw / name)[:300])
    build_databases(raw, tmp_path / "ours", [backend], {"train": None, "test": None})
    theirs = tmp_path / "theirs"
    subprocess.run([str(caffe_env.caffe_tool("convert_mnist_data")), str(raw / "t10k-images-idx3-ubyte"),
                    str(raw / "t10k-labels-idx1-ubyte"), str(theirs), f"--backend={backend}"],
                   check=True, capture_output=True, env=caffe_env.caffe_subprocess_env())
    ours = list(iterate_db(db_path(tmp_path / "ours", "test", backend), backend))
    assert len(ours) == 300
    assert ours == list(iterate_db(theirs, backend))


def tiny_data_net(caffe, source: Path, backend: str) -> str:
    from caffe import layers as L, params as P

    net = caffe.NetSpec()
    net.data, net.label = L.Data(source=str(source), backend=getattr(P.Data, backend.upper()), batch_size=16,
                                 transform_param=dict(scale=1 / 256), ntop=2)
    net.score = L.InnerProduct(net.data, num_output=10, weight_filler=dict(type="xavier"))
    net.loss = L.SoftmaxWithLoss(net.score, net.label)
    return str(net.to_proto())


@pytest.mark.parametrize("backend", ["lmdb", "leveldb"])
def test_caffe_trains_from_each_backend(mnist_raw: Path, tmp_path: Path, backend: str) -> None:
    params = tiny_params()
    write_params(tmp_path / "params.yaml", params)
    run_caffepipe("build-db", "--params", str(tmp_path / "params.yaml"), "--raw", str(mnist_raw), "--out", str(tmp_path / "db"))
    caffe = caffe_env.import_caffe(threads=1)
    from caffe.proto import caffe_pb2

    (tmp_path / "net.prototxt").write_text(tiny_data_net(caffe, db_path(tmp_path / "db", "train", backend), backend))
    solver = caffe_pb2.SolverParameter(net=str(tmp_path / "net.prototxt"), base_lr=0.01, lr_policy="fixed", max_iter=30,
                                       display=10, snapshot_after_train=False, random_seed=1,
                                       solver_mode=caffe_pb2.SolverParameter.CPU)
    (tmp_path / "solver.prototxt").write_text(str(solver))
    result = subprocess.run([str(caffe_env.caffe_tool("caffe")), "train", f"--solver={tmp_path / 'solver.prototxt'}"],
                            capture_output=True, text=True, env=caffe_env.caffe_subprocess_env(threads=1))
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"Opened {'lmdb' if backend == 'lmdb' else 'leveldb'}" in result.stderr
    losses = [float(v) for v in re.findall(r"Iteration \d+ .*loss = ([\d.]+)", result.stderr)]
    assert len(losses) >= 3 and losses[-1] < losses[0]


def test_bench_io_reads_every_format_in_python_and_in_caffe(tmp_path: Path, synthetic_raw: Path) -> None:
    """export-images then bench-io on real databases, real files and the real Caffe Data / ImageData layers."""
    params = write_params(tmp_path / "params.yaml", tiny_params(
        export_images={"count": 64}, bench_io={"repeats": 2, "cold": True, "caffe_batch_size": 16, "caffe_batches": 3}))
    run_caffepipe("build-db", "--params", str(params), "--raw", str(synthetic_raw), "--out", str(tmp_path / "db"))
    run_caffepipe("export-images", "--params", str(params), "--raw", str(synthetic_raw), "--out", str(tmp_path / "images"))
    run_caffepipe("bench-io", "--params", str(params), "--raw", str(synthetic_raw), "--db", str(tmp_path / "db"),
                  "--images", str(tmp_path / "images"), "--out", str(tmp_path / "bench"))
    table = pd.read_csv(tmp_path / "bench/io.csv")
    expected = {(reader, source) for source in ("numpy", "lmdb", "leveldb", "jpeg", "png") for reader in ["python"]}
    expected |= {("caffe", "lmdb"), ("caffe", "leveldb"), ("caffe", "jpeg")}
    assert set(zip(table["reader"], table["source"])) == expected
    assert set(table["cache"]) == {"cold", "warm"} and table["format"].is_unique
    assert (table["images_per_s"] > 0).all() and (table["repeats"] == 2).all()
    assert set(table[table["reader"] == "caffe"]["images"]) == {48}          # 3 batches of 16
    metrics = json.loads((tmp_path / "bench/metrics.json").read_text())
    assert metrics["lmdb_mean_abs_pixel_error"] == 0 and metrics["png_mean_abs_pixel_error"] == 0
    assert metrics["python_lmdb_over_jpeg_warm"] > 0 and metrics["caffe_lmdb_over_jpeg_cold"] > 0
    assert (tmp_path / "bench/io.png").stat().st_size > 1000


def test_bench_io_without_exported_images_names_the_stage_to_run(tmp_path: Path, synthetic_raw: Path) -> None:
    params = write_params(tmp_path / "params.yaml", tiny_params())
    result = run_caffepipe("bench-io", "--params", str(params), "--raw", str(synthetic_raw), "--db", str(tmp_path / "db"),
                           "--images", str(tmp_path / "images"), "--out", str(tmp_path / "bench"), check=False)
    assert result.returncode == 2 and "made by `caffepipe export-images`" in result.stderr
    assert not (tmp_path / "bench").exists()
