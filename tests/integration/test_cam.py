"""`caffepipe cam` as the orchestrators run it: the real console command on a tiny trained gapnet and LeNet."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from caffepipe.core.caffe_env import import_caffe
from caffepipe.data.datum import read_db
from caffepipe.evaluation.cam import upsample
from caffepipe.evaluation.eval_files import write_evaluation
from caffepipe.training import models, netgen
from tests.conftest import run_caffepipe, tiny_params, write_params
from tests.stage_outputs import tiny_db

pytestmark = pytest.mark.integration

caffe = import_caffe(threads=1)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def trained(work: Path, model: str) -> None:
    """nets/<model>/ from netgen, a few SGD steps saved as train/<model>/final.caffemodel, and eval/<model>/
    holding that model's test-set probabilities as `caffepipe evaluate` writes them."""
    params = tiny_params(netgen={"models": [model]})
    nets = work / "nets" / model
    nets.mkdir(parents=True)
    for name, text in netgen.generate(params, model, work / "db", nets).items():
        (nets / name).write_text(text)
    solver = caffe.get_solver(str(nets / "solver.prototxt"))
    solver.step(8)
    weights = work / "train" / model / "final.caffemodel"
    weights.parent.mkdir(parents=True)
    solver.net.save(str(weights))
    deploy = caffe.Net(str(nets / "deploy.prototxt"), caffe.TEST, weights=str(weights))
    images, labels = read_db(work / "db" / "test_lmdb", "lmdb")
    deploy.blobs["data"].reshape(*images.shape)
    deploy.reshape()
    deploy.blobs["data"].data[...] = images * models.INPUT_SCALE
    probs = np.array(deploy.forward()["prob"])
    write_evaluation(work / "eval" / model, np.array([8]), labels, probs[None], {"model": model})


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("cam")
    tiny_db(work / "db", test=60)
    write_params(work / "params.yaml", tiny_params(cam={"right_per_class": 1, "wrong_per_class": 2}))
    for model in ("gapnet", "lenet"):
        trained(work, model)
    return work


def run_cam(work: Path, model: str) -> Path:
    out = work / "reports" / "cam" / model
    run_caffepipe("cam", "--params", "params.yaml", "--model", model, "--nets", f"nets/{model}",
                  "--weights", f"train/{model}/final.caffemodel", "--eval", f"eval/{model}", "--db", "db",
                  "--out", str(out), cwd=work)
    return out


def test_cam_of_a_gap_net_draws_right_and_wrong_images_and_checks_the_identity(work: Path) -> None:
    out = run_cam(work, "gapnet")
    index = json.loads((out / "index.json").read_text())
    assert index["has_cam"] and (index["features"], index["classifier"]) == ("conv4", "ip")
    assert index["feature_shape"] == [96, 7, 7] and index["identity_max_error"] < 1e-3
    labels = [entry["label"] for entry in index["images"]]
    assert labels == sorted(labels), "class by class"
    right = [entry for entry in index["images"] if entry["correct"]]
    assert len({entry["label"] for entry in right}) == len(right)          # one right image per class at most
    for entry in index["figures"]:
        assert (out / entry["file"]).read_bytes().startswith(PNG_MAGIC)
    saved = np.load(out / "cams.npz")
    assert saved["maps"].shape == (len(index["images"]), 10, 7, 7)
    assert saved["index"].tolist() == [entry["index"] for entry in index["images"]]
    # the maps' means plus the biases give back each image's predicted class
    logits = saved["maps"].mean(axis=(2, 3)) + saved["bias"]
    assert logits.argmax(axis=1).tolist() == [entry["prediction"] for entry in index["images"]]
    assert upsample(saved["maps"], 28, 28).shape[-2:] == (28, 28)


def test_a_net_without_global_average_pooling_gets_only_the_reason(work: Path) -> None:
    out = run_cam(work, "lenet")
    index = json.loads((out / "index.json").read_text())
    assert not index["has_cam"] and "2 InnerProduct layers" in index["reason"]
    assert sorted(path.name for path in out.iterdir()) == ["index.json"]


def test_the_same_inputs_give_byte_identical_outputs(work: Path) -> None:
    first = {path.name: path.read_bytes() for path in run_cam(work, "gapnet").iterdir()}
    second = {path.name: path.read_bytes() for path in run_cam(work, "gapnet").iterdir()}
    assert first == second
