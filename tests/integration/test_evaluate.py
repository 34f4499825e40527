"""`caffepipe evaluate` and `caffepipe analyze` with the real Caffe, on a net whose answers are known.

The deploy net is one InnerProduct layer and a Softmax. Its "snapshots" are weights set by hand and saved with
pycaffe's net.save(), and the test database holds conftest's synthetic digits (a bright bar whose row is the
label), written by caffepipe's build-db (tests/stage_outputs.py: tiny_db):
- iteration 10: all weights zero, so every class has p = 0.1: loss ln 10, every image read as 0;
- iteration 20: each class's weights sum the pixels of its bar: every image right;
- iteration 30: the weights of classes 3 and 5 swapped: every 3 and every 5 forgotten, the pair 3/5 confused.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import run_caffepipe, synthetic_digits, tiny_params, write_params
from tests.stage_outputs import tiny_db

pytestmark = pytest.mark.integration

TEST_IMAGES = 100
MODEL = "lenet"          # any name in netgen.models; nothing here depends on netgen's nets


def deploy_net(caffe, num_output: int = 10):
    from caffe import layers as L

    spec = caffe.NetSpec()
    spec.data = L.Input(shape=dict(dim=[1, 1, 28, 28]))
    spec.ip = L.InnerProduct(spec.data, num_output=num_output)
    spec.prob = L.Softmax(spec.ip)
    return spec.to_proto()


def scaling_test_net(caffe, source: Path):
    """The test net beside the deploy net, as netgen writes one: evaluate takes the pixels' transform from it."""
    from caffe import layers as L, params as P

    spec = caffe.NetSpec()
    spec.data, spec.label = L.Data(source=str(source), backend=P.Data.LMDB, batch_size=10,
                                   transform_param=dict(scale=0.00390625), ntop=2)
    spec.ip = L.InnerProduct(spec.data, num_output=10)
    spec.loss = L.SoftmaxWithLoss(spec.ip, spec.label)
    return spec.to_proto()


def bar_weights() -> np.ndarray:
    """Class k's weights: 0.25 on the pixels of the bar synthetic_digits draws for label k."""
    weights = np.zeros((10, 28, 28), dtype=np.float32)
    for label in range(10):
        row = 2 + 2 * label
        weights[label, row:row + 2, 4:24] = 0.25
    return weights.reshape(10, -1)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from caffepipe.core.caffe_env import import_caffe

    caffe = import_caffe(threads=1)
    work = tmp_path_factory.mktemp("evaluate")
    db = tiny_db(work / "db", train=16, test=TEST_IMAGES)
    _, labels = synthetic_digits(TEST_IMAGES, seed=2)          # tiny_db's test split

    nets = work / "nets" / MODEL
    nets.mkdir(parents=True)
    (nets / "deploy.prototxt").write_text(str(deploy_net(caffe)))
    (nets / "test.prototxt").write_text(str(scaling_test_net(caffe, db / "test_lmdb")))
    net = caffe.Net(str(nets / "deploy.prototxt"), caffe.TEST)
    train = work / "train" / MODEL
    (train / "snapshots").mkdir(parents=True)
    swapped = bar_weights()[[0, 1, 2, 5, 4, 3, 6, 7, 8, 9]]
    entries = []
    for iteration, weights in ((10, np.zeros((10, 784), np.float32)), (20, bar_weights()), (30, swapped)):
        net.params["ip"][0].data[...] = weights
        net.params["ip"][1].data[...] = 0
        caffemodel = f"snapshots/{MODEL}_iter_{iteration}.caffemodel"
        net.save(str(train / caffemodel))
        entries.append({"iteration": iteration, "caffemodel": caffemodel,
                        "solverstate": f"snapshots/{MODEL}_iter_{iteration}.solverstate"})
    shutil.copy(train / entries[-1]["caffemodel"], train / "final.caffemodel")
    (train / "snapshots.json").write_text(json.dumps({
        "version": 1, "model": MODEL, "max_iter": 30, "fingerprint": "hand-made", "final": "final.caffemodel",
        "snapshots": entries}))

    params = tiny_params(netgen={"models": [MODEL], "backend": "lmdb"}, evaluate={"batch_size": 30, "threads": 1},
                         analyze={"gallery_max": 4, "forgotten_max": 6})
    write_params(work / "params.yaml", params)
    return {"work": work, "db": db, "nets": nets, "train": train, "labels": labels.astype(np.int64)}


def evaluate_args(ws: dict, **overrides: Path) -> list[str]:
    paths = {"nets": ws["nets"], "snapshots": ws["train"] / "snapshots.json", "db": ws["db"],
             "out": ws["work"] / "eval" / MODEL, "out-metrics": ws["work"] / "reports" / "eval" / MODEL / "metrics.json"}
    paths.update({key.replace("_", "-"): value for key, value in overrides.items()})
    args = ["evaluate", "--params", str(ws["work"] / "params.yaml"), "--model", MODEL, "--threads", "1"]
    for key, value in paths.items():
        args += [f"--{key}", str(value)]
    return args


def test_evaluate_then_analyze_give_the_known_answers(workspace: dict) -> None:
    ws, labels = workspace, workspace["labels"]
    run_caffepipe(*evaluate_args(ws), cwd=ws["work"])
    out = ws["work"] / "eval" / MODEL
    swapped = np.isin(labels, [3, 5])

    summary = pd.read_csv(out / "summary.csv")
    assert summary["iteration"].tolist() == [10, 20, 30]
    np.testing.assert_allclose(summary["accuracy"], [np.mean(labels == 0), 1.0, 1 - swapped.mean()])
    assert summary["loss"].iloc[0] == pytest.approx(math.log(10), rel=1e-5)
    assert summary["loss"].iloc[1] < 0.01
    assert summary["errors"].tolist() == [int(np.sum(labels != 0)), 0, int(swapped.sum())]

    with np.load(out / "predictions.npz") as arrays:
        np.testing.assert_array_equal(arrays["labels"], labels)
        assert arrays["probs"].shape == (3, TEST_IMAGES, 10)
        np.testing.assert_allclose(arrays["probs"][0], 0.1, rtol=1e-5)
        expected_final = labels.copy()
        expected_final[labels == 3], expected_final[labels == 5] = 5, 3
        np.testing.assert_array_equal(arrays["predictions"][2], expected_final)
        assert arrays["confusion"][2, 3, 5] == np.sum(labels == 3)

    metrics = json.loads((ws["work"] / "reports" / "eval" / MODEL / "metrics.json").read_text())
    assert metrics["iteration"] == 30 and metrics["errors"] == int(swapped.sum())
    assert metrics["accuracy"] == pytest.approx(1 - swapped.mean())

    analysis_out = ws["work"] / "reports" / "analysis"
    run_caffepipe("analyze", "--params", str(ws["work"] / "params.yaml"), "--eval", str(ws["work"] / "eval"),
                  "--db", str(ws["db"]), "--out", str(analysis_out),
                  "--out-metrics", str(ws["work"] / "reports" / "analysis-metrics.json"), cwd=ws["work"])
    headline = json.loads((ws["work"] / "reports" / "analysis-metrics.json").read_text())[MODEL]
    assert headline["forgetting_events"] == int(swapped.sum())
    assert headline["images_forgotten"] == int(swapped.sum())
    assert headline["final_errors"] == int(swapped.sum())
    assert headline["top_pair_share"] == 1.0
    pairs = pd.read_csv(analysis_out / "confused_pairs_lenet.csv")
    assert pairs["pair"].tolist() == ["3/5"]
    summary_index = json.loads((analysis_out / "summary.json").read_text())
    for item in summary_index["items"]:
        assert (analysis_out / item["path"]).is_file()
    gallery = next(item for item in summary_index["items"] if item["path"] == "errors_gallery_lenet.png")
    assert f"4 of {int(swapped.sum())} shown" in gallery["caption"]


def test_evaluate_refuses_a_snapshot_of_another_net(workspace: dict, tmp_path: Path) -> None:
    from caffepipe.core.caffe_env import import_caffe

    caffe = import_caffe(threads=1)
    ws = workspace
    (tmp_path / "other.prototxt").write_text(str(deploy_net(caffe, num_output=5)))
    other = caffe.Net(str(tmp_path / "other.prototxt"), caffe.TEST)
    train = tmp_path / "train"
    (train / "snapshots").mkdir(parents=True)
    other.save(str(train / "snapshots" / "lenet_iter_10.caffemodel"))
    shutil.copy(train / "snapshots" / "lenet_iter_10.caffemodel", train / "final.caffemodel")
    (train / "snapshots.json").write_text(json.dumps({
        "version": 1, "model": MODEL, "max_iter": 10, "fingerprint": "x", "final": "final.caffemodel",
        "snapshots": [{"iteration": 10, "caffemodel": "snapshots/lenet_iter_10.caffemodel",
                       "solverstate": "snapshots/lenet_iter_10.solverstate"}]}))
    result = run_caffepipe(*evaluate_args(ws, snapshots=train / "snapshots.json", out=tmp_path / "eval",
                                          out_metrics=tmp_path / "metrics.json"), check=False)
    assert result.returncode == 2, result.stderr
    assert "is no snapshot of" in result.stderr and "shape" in result.stderr
    assert not (tmp_path / "eval").exists() and not (tmp_path / "metrics.json").exists()
