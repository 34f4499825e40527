"""Stages that read build-db's databases, run as the orchestrators run them, on a damaged database: one line
naming the database and build-db, exit status 2, no traceback, no output. (tests/unit/test_datum.py covers each
kind of damage; here the real console command, and the real Caffe where a stage hands it the database.)"""
from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_caffepipe, tiny_params, write_params
from tests.stage_outputs import stage_workdir, tiny_db

pytestmark = pytest.mark.integration

MODEL = "lenet"
REBUILD = "rebuild it with `caffepipe build-db` (or run the pipeline up to build_db)"


def assert_one_line_naming(result: subprocess.CompletedProcess, stage: str, database: str, hint: str = REBUILD) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "Check failed" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith(f"caffepipe {stage}: error:")]
    assert len(errors) == 1 and result.stderr.rstrip().endswith(errors[0]), result.stderr
    assert database in errors[0] and hint in errors[0], errors[0]


def truncate(file: Path) -> None:
    os.truncate(file, file.stat().st_size // 2)


def garbage(file: Path) -> None:
    file.write_bytes(random.Random(0).randbytes(file.stat().st_size))


def one_snapshot(caffe, work: Path) -> tuple[Path, Path]:
    """nets/<MODEL>/deploy.prototxt (Input, InnerProduct, Softmax) and train/<MODEL>/snapshots.json listing one
    snapshot of it, as evaluate reads them."""
    from caffe import layers as L

    spec = caffe.NetSpec()
    spec.data = L.Input(shape=dict(dim=[1, 1, 28, 28]))
    spec.ip = L.InnerProduct(spec.data, num_output=10)
    spec.prob = L.Softmax(spec.ip)
    nets, train = work / "nets" / MODEL, work / "train" / MODEL
    nets.mkdir(parents=True)
    (train / "snapshots").mkdir(parents=True)
    (nets / "deploy.prototxt").write_text(str(spec.to_proto()))
    caffemodel = f"snapshots/{MODEL}_iter_10.caffemodel"
    caffe.Net(str(nets / "deploy.prototxt"), caffe.TEST).save(str(train / caffemodel))
    shutil.copy(train / caffemodel, train / "final.caffemodel")
    (train / "snapshots.json").write_text(json.dumps({
        "version": 1, "model": MODEL, "max_iter": 10, "fingerprint": "hand-made", "final": "final.caffemodel",
        "snapshots": [{"iteration": 10, "caffemodel": caffemodel, "solverstate": f"snapshots/{MODEL}_iter_10.solverstate"}]}))
    return nets, train / "snapshots.json"


def test_evaluate_on_a_truncated_lmdb_names_it_and_build_db_and_writes_nothing(tmp_path: Path) -> None:
    """A truncated data.mdb used to kill the process with SIGBUS (LMDB maps the file), with no message at all."""
    from caffepipe.core.caffe_env import import_caffe

    nets, snapshots = one_snapshot(import_caffe(threads=1), tmp_path)
    tiny_db(tmp_path / "db", train=16, test=100)
    truncate(tmp_path / "db/test_lmdb/data.mdb")
    write_params(tmp_path / "params.yaml", tiny_params(netgen={"models": [MODEL], "backend": "lmdb"}))
    result = run_caffepipe("evaluate", "--params", "params.yaml", "--model", MODEL, "--nets", str(nets),
                           "--snapshots", str(snapshots), "--db", "db", "--out", "eval", "--out-metrics", "metrics.json",
                           "--threads", "1", cwd=tmp_path, check=False)
    assert_one_line_naming(result, "evaluate", "db/test_lmdb: damaged lmdb database (data.mdb is truncated")
    assert not (tmp_path / "eval").exists() and not (tmp_path / "metrics.json").exists()
    assert not list(tmp_path.glob(".eval.*")) and not list(tmp_path.glob(".metrics.json.*")), "no temporary left"


def test_time_checks_the_database_before_caffe_time_reads_it(tmp_path: Path) -> None:
    """`caffe time` runs the training net, whose Data layer reads db/train_lmdb: on a damaged one Caffe's glog
    CHECK aborts it, and its log named neither the database nor the fix."""
    from caffepipe.core.caffe_env import import_caffe

    work = stage_workdir(import_caffe(threads=1), tmp_path)
    garbage(work / "db/train_lmdb/data.mdb")
    result = run_caffepipe("time", "--params", "params.yaml", "--model", MODEL, "--nets", f"nets/{MODEL}",
                           "--weights", f"nets/{MODEL}/final.caffemodel", "--out", "out", "--threads", "1",
                           cwd=work, check=False)
    assert_one_line_naming(result, "time", "db/train_lmdb: damaged lmdb database (MDB_INVALID")
    assert not (work / "out").exists()


def test_bench_io_with_a_database_folder_missing_names_it_and_build_db(tmp_path: Path, synthetic_raw: Path) -> None:
    """The LevelDB used to be copied before anything checked it was there: a FileNotFoundError traceback."""
    params = write_params(tmp_path / "params.yaml", tiny_params(export_images={"count": 32}))
    run_caffepipe("build-db", "--params", str(params), "--raw", str(synthetic_raw), "--out", str(tmp_path / "db"))
    run_caffepipe("export-images", "--params", str(params), "--raw", str(synthetic_raw), "--out", str(tmp_path / "images"))
    shutil.rmtree(tmp_path / "db/train_leveldb")
    result = run_caffepipe("bench-io", "--params", str(params), "--raw", str(synthetic_raw), "--db", str(tmp_path / "db"),
                           "--images", str(tmp_path / "images"), "--out", str(tmp_path / "bench"), check=False)
    assert_one_line_naming(result, "bench-io", f"{tmp_path}/db/train_leveldb: no such leveldb database",
                           hint="run `caffepipe build-db` first")
    assert not (tmp_path / "bench").exists()
