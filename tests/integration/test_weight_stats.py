"""`caffepipe weight-stats` on real tiny trainings (netgen, train with the real Caffe, then weight-stats), checked
against numpy on the blobs pycaffe loads from each snapshot, and against a forward pass computed by hand."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import run_caffepipe, synthetic_digits, tiny_params, write_params

pytestmark = pytest.mark.integration

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
OUTPUTS = ("weights.csv", "norms.csv", "histograms.csv", "activations.csv", "weights.png", "histograms.png",
           "activations.png", "summary.json")
ACTIVATION_IMAGES = 16


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder laid out like the repository: data/db (synthetic digits), data/nets/<model> and data/train/<model>
    for lenet and mlp, trained 40 iterations with snapshots at 10, 30 and 40."""
    from tests.idx_files import write_idx

    work = tmp_path_factory.mktemp("weight-stats")
    (work / "raw").mkdir()
    for prefix, count, seed in (("train", 320, 1), ("t10k", 100, 2)):
        images, labels = synthetic_digits(count, seed)
        write_idx(work / "raw" / f"{prefix}-images-idx3-ubyte", images)
        write_idx(work / "raw" / f"{prefix}-labels-idx1-ubyte", labels)
    write_params(work / "params.yaml", tiny_params(build_db={"backends": ["lmdb"]},
                                                   weight_stats={"activation_images": ACTIVATION_IMAGES}))
    run_caffepipe("build-db", "--params", "params.yaml", "--raw", "raw", "--out", "data/db", cwd=work)
    for model in ("lenet", "mlp"):
        run_caffepipe("netgen", "--params", "params.yaml", "--model", model, "--db", "data/db", "--out", f"data/nets/{model}",
                      cwd=work)
        run_caffepipe("train", "--params", "params.yaml", "--model", model, "--nets", f"data/nets/{model}", "--db", "data/db",
                      "--out", f"data/train/{model}", "--out-reproducibility", f"reports/train/{model}/reproducibility.json",
                      "--threads", "1", cwd=work)
    return work


def weight_stats(work: Path, model: str, out: str, snapshots: str | None = None, check: bool = True):
    return run_caffepipe("weight-stats", "--params", "params.yaml", "--model", model, "--nets", f"data/nets/{model}",
                         "--snapshots", snapshots or f"data/train/{model}/snapshots.json", "--db", "data/db", "--out", out,
                         cwd=work, check=check)


def snapshot_nets(caffe, work: Path, model: str) -> dict[int, object]:
    manifest = json.loads((work / "data/train" / model / "snapshots.json").read_text())
    deploy = str(work / "data/nets" / model / "deploy.prototxt")
    return {entry["iteration"]: caffe.Net(deploy, caffe.TEST, weights=str(work / "data/train" / model / entry["caffemodel"]))
            for entry in manifest["snapshots"]}


@pytest.mark.parametrize("model", ["lenet", "mlp"])
def test_weight_statistics_equal_numpys_on_every_snapshot_blob(trained: Path, model: str) -> None:
    from caffepipe.core.caffe_env import import_caffe

    out = trained / "reports/weights" / model
    weight_stats(trained, model, f"reports/weights/{model}")
    caffe = import_caffe(threads=1)
    nets = snapshot_nets(caffe, trained, model)
    assert list(nets) == [10, 30, 40]
    table = pd.read_csv(out / "weights.csv")
    learnable = list(nets[10].params)
    assert len(table) == len(nets) * 2 * len(learnable)
    previous = None
    for iteration, net in nets.items():
        for layer in learnable:
            for index, blob in enumerate(("weights", "biases")):
                values = net.params[layer][index].data.astype(np.float64)
                row = table[(table["iteration"] == iteration) & (table["layer"] == layer) & (table["blob"] == blob)].iloc[0]
                assert row["count"] == values.size
                assert row["mean"] == pytest.approx(np.mean(values), rel=1e-9, abs=1e-12)
                assert row["std"] == pytest.approx(np.std(values), rel=1e-9)
                assert row["norm"] == pytest.approx(np.linalg.norm(values.ravel()), rel=1e-9)
                if previous is None:
                    assert np.isnan(row["relative_change"])
                else:
                    before_iteration, before = previous
                    old = before.params[layer][index].data.astype(np.float64)
                    change = np.linalg.norm((values - old).ravel()) / np.linalg.norm(old.ravel())
                    assert row["relative_change"] == pytest.approx(change, rel=1e-9)
                    assert row["change_per_1k"] == pytest.approx(change * 1000 / (iteration - before_iteration), rel=1e-9)
        previous = (iteration, net)
    norms = pd.read_csv(out / "norms.csv")
    weights_only = table[table["blob"] == "weights"]
    assert norms["weight_norm"].tolist() == weights_only["norm"].tolist()
    assert norms["layer"].tolist() == weights_only["layer"].tolist()

    histograms = pd.read_csv(out / "histograms.csv")
    assert sorted(set(histograms["iteration"])) == [10, 40]           # histogram_snapshots 2: first and last
    for (iteration, layer), frame in histograms.groupby(["iteration", "layer"]):
        assert frame["count"].sum() == nets[iteration].params[layer][0].data.size
        assert len(frame) == 9


def first_test_images(work: Path, count: int) -> np.ndarray:
    from caffepipe.data.datum import read_db

    images, _ = read_db(work / "data/db/test_lmdb", "lmdb", limit=count)
    return images.astype(np.float32) / 256


@pytest.mark.parametrize("model,relus", [("lenet", {"relu1": "ip1"}), ("mlp", {"relu1": "ip1", "relu2": "ip2"})])
def test_activations_equal_a_forward_pass_computed_by_hand(trained: Path, model: str, relus: dict[str, str]) -> None:
    """ip1's output before its in-place ReLU comes from numpy (the input to ip1 times its weights, plus its bias):
    the stage must measure it before the ReLU overwrites it. Dead units come from pycaffe's own forward."""
    from caffepipe.core.caffe_env import import_caffe

    out = trained / "reports/weights" / model
    if not (out / "activations.csv").exists():
        weight_stats(trained, model, f"reports/weights/{model}")
    caffe = import_caffe(threads=1)
    net = snapshot_nets(caffe, trained, model)[40]
    images = first_test_images(trained, ACTIVATION_IMAGES)
    net.blobs["data"].reshape(*images.shape)
    net.blobs["data"].data[...] = images
    net.forward()
    table = pd.read_csv(out / "activations.csv")
    last = table[table["iteration"] == 40].set_index("layer")
    assert "prob" not in last.index and "data" not in last.index
    below_ip1 = "pool2" if model == "lenet" else "data"
    inputs = net.blobs[below_ip1].data.reshape(ACTIVATION_IMAGES, -1).astype(np.float64)
    ip1 = inputs @ net.params["ip1"][0].data.T.astype(np.float64) + net.params["ip1"][1].data
    assert last.loc["ip1", "mean"] == pytest.approx(ip1.mean(), rel=1e-4, abs=1e-6)
    assert last.loc["ip1", "std"] == pytest.approx(ip1.std(), rel=1e-4)
    for relu, top in relus.items():
        after = net.blobs[top].data.reshape(ACTIVATION_IMAGES, -1)
        assert last.loc[relu, "dead_fraction"] == pytest.approx(np.mean(np.all(after == 0, axis=0)))
        assert last.loc[relu, "mean"] == pytest.approx(after.astype(np.float64).mean(), rel=1e-6)
        assert last.loc[relu, "type"] == "ReLU" and last.loc[relu, "top"] == top
    assert last.loc[list(relus), "dead_fraction"].notna().all()
    assert last.drop(index=list(relus))["dead_fraction"].isna().all()


def test_sentences_figures_and_the_same_bytes_again(trained: Path) -> None:
    out = trained / "reports/weights/lenet"
    weight_stats(trained, "lenet", "reports/weights/lenet")
    first = {name: (out / name).read_bytes() for name in OUTPUTS}
    summary = json.loads(first["summary.json"])
    assert summary["iterations"] == [10, 30, 40] and summary["activation_images"] == ACTIVATION_IMAGES
    layers = ["conv1", "conv2", "ip1", "ip2"]
    texts = [observation["text"] for observation in summary["observations"]]
    assert [observation["layer"] for observation in summary["observations"]] == [*layers, "relu1"]
    assert all(text.startswith(f"{layer}'s weights ") for text, layer in zip(texts, layers))
    assert texts[-1].startswith("relu1 (on ip1) has ") and "dead units at the end" in texts[-1]
    assert [figure["file"] for figure in summary["figures"]] == ["weights.png", "histograms.png", "activations.png"]
    for name in ("weights.png", "histograms.png", "activations.png"):
        assert first[name].startswith(PNG_MAGIC)
    weight_stats(trained, "lenet", "reports/weights/again")
    again = trained / "reports/weights/again"
    for name in OUTPUTS:
        assert (again / name).read_bytes() == first[name], name


def test_a_damaged_snapshot_is_one_line_naming_it(trained: Path, tmp_path: Path) -> None:
    copy = tmp_path / "train"
    shutil.copytree(trained / "data/train/lenet", copy)
    snapshot = copy / "snapshots/lenet_iter_30.caffemodel"
    snapshot.write_bytes(snapshot.read_bytes()[:1000])
    result = weight_stats(trained, "lenet", str(tmp_path / "out"), snapshots=str(copy / "snapshots.json"), check=False)
    assert result.returncode == 2
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("caffepipe weight-stats: error: ")]
    assert "lenet_iter_30.caffemodel is no snapshot of" in error and "caffepipe train" in error
    assert not (tmp_path / "out" / "summary.json").exists()


def test_more_activation_images_than_the_test_set_holds_is_an_error(trained: Path, tmp_path: Path) -> None:
    params = tiny_params(weight_stats={"activation_images": 5000})
    write_params(tmp_path / "params.yaml", params)
    result = run_caffepipe("weight-stats", "--params", str(tmp_path / "params.yaml"), "--model", "mlp",
                           "--nets", "data/nets/mlp", "--snapshots", "data/train/mlp/snapshots.json", "--db", "data/db",
                           "--out", str(tmp_path / "out"), cwd=trained, check=False)
    assert result.returncode == 2
    assert "holds 100 test images, fewer than weight_stats.activation_images (5000)" in result.stderr


def test_batchnorm_running_statistics_are_not_counted_as_weights(tmp_path: Path) -> None:
    """A BatchNorm layer holds mean, variance and their scale factor, which SGD does not learn."""
    from caffepipe.core.caffe_env import import_caffe
    from caffepipe.inspection.weight_stats import layer_params

    caffe = import_caffe(threads=1)
    L = caffe.layers
    spec = caffe.NetSpec()
    spec.data = L.Input(shape=dict(dim=[2, 1, 8, 8]))
    spec.conv = L.Convolution(spec.data, num_output=3, kernel_size=3, weight_filler=dict(type="xavier"))
    spec.bn = L.BatchNorm(spec.conv)
    spec.ip = L.InnerProduct(spec.bn, num_output=4)
    (tmp_path / "net.prototxt").write_text(str(spec.to_proto()))
    params = layer_params(caffe.Net(str(tmp_path / "net.prototxt"), caffe.TEST))
    assert {layer: [blob.shape for blob in blobs] for layer, blobs in params.items()} == {
        "conv": [(3, 1, 3, 3), (3,)], "ip": [(4, 108), (4,)]}
