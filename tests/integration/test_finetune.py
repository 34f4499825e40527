"""`caffepipe finetune` with the real Caffe on a tiny sweep: what each mode does to the source's weights, the
outputs it writes, and its errors on sources that cannot be fine-tuned."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import run_caffepipe, synthetic_digits, write_params
from tests.finetune_workspace import finetune_command, finetune_params, make_workspace

pytestmark = pytest.mark.integration

FROZEN = ("conv1", "conv2", "ip1")


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory, mnist_raw: Path) -> Path:
    """The workspace after one tiny sweep (3 modes x sizes 20 and 50, 20 iterations each)."""
    work = make_workspace(tmp_path_factory.mktemp("finetune") / "work", mnist_raw)
    run_caffepipe(*finetune_command(), cwd=work)
    return work


def caffemodel_blobs(path: Path) -> dict[str, list[bytes]]:
    """{layer: [each blob's float32 bytes]} of a .caffemodel, read with pycaffe's protobuf."""
    from caffepipe.core.caffe_env import import_caffe

    import_caffe()
    from caffe.proto import caffe_pb2

    net = caffe_pb2.NetParameter()
    net.ParseFromString(path.read_bytes())
    return {layer.name: [np.asarray(blob.data, dtype=np.float32).tobytes() for blob in layer.blobs]
            for layer in net.layer if len(layer.blobs)}


def run_files(work: Path, run: str) -> list[Path]:
    """Every snapshot caffemodel of a run, and its final weights."""
    folder = work / "data/finetune/runs" / run
    return sorted((folder / "snapshots").glob("*.caffemodel")) + [folder / "final.caffemodel"]


SOURCE = "data/train/lenet/final.caffemodel"


def test_last_layer_leaves_every_frozen_blob_byte_identical_and_trains_a_new_classifier(swept: Path) -> None:
    source = caffemodel_blobs(swept / SOURCE)
    for size in (20, 50):
        for path in run_files(swept, f"last_layer-{size}"):
            tuned = caffemodel_blobs(path)
            for layer in FROZEN:
                assert tuned[layer] == source[layer], f"{path.name}: {layer} changed"
            assert "ip2" not in tuned and len(np.frombuffer(tuned["ip2_target"][1], np.float32)) == 10
    log = (swept / "data/finetune/runs/last_layer-20/caffe.log").read_text()
    for layer in FROZEN:
        assert f"{layer} does not need backward computation" in log
    assert "ip2_target needs backward computation" in log


def test_full_changes_every_transferred_layer(swept: Path) -> None:
    source = caffemodel_blobs(swept / SOURCE)
    tuned = caffemodel_blobs(swept / "data/finetune/runs/full-50/final.caffemodel")
    for layer in FROZEN:
        assert tuned[layer][0] != source[layer][0], layer


def test_scratch_starts_from_the_fillers_not_the_source(swept: Path) -> None:
    source = caffemodel_blobs(swept / SOURCE)
    first = caffemodel_blobs(swept / "data/finetune/runs/scratch-20/snapshots/scratch-20_iter_10.caffemodel")
    full_first = caffemodel_blobs(swept / "data/finetune/runs/full-20/snapshots/full-20_iter_10.caffemodel")
    for layer in FROZEN:
        assert first[layer][0] != source[layer][0], layer
        # after 10 iterations at 0.1x the learning rate, full is still close to the source; scratch is not
        source_weights = np.frombuffer(source[layer][0], np.float32)
        assert (np.linalg.norm(np.frombuffer(first[layer][0], np.float32) - source_weights)
                > 5 * np.linalg.norm(np.frombuffer(full_first[layer][0], np.float32) - source_weights)), layer


def test_reports_cover_every_run_and_last_layer_changed_no_frozen_layer(swept: Path) -> None:
    reports = swept / "data/finetune/reports"
    metrics = json.loads((reports / "metrics.json").read_text())
    assert {mode: sorted(sizes) for mode, sizes in metrics.items()} == {
        "last_layer": ["20", "50"], "full": ["20", "50"], "scratch": ["20", "50"]}
    for sizes in metrics.values():
        for values in sizes.values():
            assert values["iterations"] == 20 and 0 <= values["accuracy"] <= 1
    changes = list(csv.DictReader((reports / "weight_change.csv").open()))
    frozen = [row for row in changes if row["mode"] == "last_layer"]
    assert {row["layer"] for row in frozen} == set(FROZEN) and all(float(row["relative_change"]) == 0 for row in frozen)
    assert all(float(row["relative_change"]) > 0 for row in changes if row["mode"] != "last_layer")
    curves = list(csv.DictReader((reports / "curves.csv").open()))
    assert [(row["mode"], row["iteration"]) for row in curves] == [
        (mode, str(iteration)) for mode in ("last_layer", "full", "scratch") for iteration in (0, 10, 20)]


def test_the_target_is_fetched_from_finetune_dataset_while_fetch_dataset_stays_the_source(swept: Path) -> None:
    params = yaml.safe_load((swept / "params.yaml").read_text())
    assert (params["fetch"]["dataset"], params["finetune"]["dataset"]) == ("mnist", "fashion-mnist")
    assert json.loads((swept / "data/target/raw/source.json").read_text())["dataset"] == "fashion-mnist"
    assert json.loads((swept / "data/target/db/info.json").read_text())["dataset"] == "fashion-mnist"


def test_subsets_are_recorded_balanced_and_shared_by_every_mode(swept: Path) -> None:
    subsets = json.loads((swept / "data/finetune/subsets.json").read_text())["subsets"]
    assert sorted(map(int, subsets)) == [20, 50]
    assert set(subsets["20"]) <= set(subsets["50"])
    nets = {mode: (swept / f"data/finetune/runs/{mode}-20/nets/train.prototxt").read_text()
            for mode in ("last_layer", "full", "scratch")}
    assert all("subsets/size-20/train_lmdb" in text for text in nets.values())


def test_a_second_sweep_trains_nothing_and_writes_the_same_reports(swept: Path) -> None:
    reports = swept / "data/finetune/reports"
    before = {path.name: path.read_bytes() for path in reports.iterdir()}
    result = run_caffepipe(*finetune_command(), cwd=swept)
    assert result.stderr.count("nothing to train") == 6
    assert {path.name: path.read_bytes() for path in reports.iterdir()} == before


# ---- bad input -------------------------------------------------------------------------------------------------

def deploy_variant(swept: Path, name: str, edit) -> Path:
    """A copy of LeNet's deploy prototxt with `edit` applied to its text."""
    path = swept / name
    path.write_text(edit((swept / "data/nets/lenet/deploy.prototxt").read_text()))
    return path


def finetune_with(swept: Path, tmp_name: str, **finetune) -> str:
    params = write_params(swept / f"{tmp_name}.yaml", finetune_params(Path("unused"), **finetune))
    result = run_caffepipe(*finetune_command(f"bad/{tmp_name}", params=str(params)), cwd=swept, check=False)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert not (swept / f"bad/{tmp_name}/runs.json").exists()
    return lines[-1]


def test_every_run_logs_its_dvclive_series_as_its_log_says(swept: Path) -> None:
    from caffepipe.training.live_metrics import comparable_series
    from caffepipe.training.parse_log import parse_caffe_log

    logs = sorted((swept / "data/finetune/runs").glob("*-*/caffe.log"))
    assert len(logs) == 6
    for log in logs:
        parsed = parse_caffe_log(log.read_text().splitlines())
        series = comparable_series(log.parent / "live")
        assert series["test/accuracy"] == [(row["iteration"], row["accuracy"]) for row in parsed.test], log.parent.name
        assert [step for step, _ in series["train/loss"]] == [row["iteration"] for row in parsed.train]
        assert [value for _, value in series["train/loss"]] == pytest.approx([row["loss"] for row in parsed.train], rel=1e-5)


def test_weights_that_do_not_fit_the_net_name_the_layer_and_both_shapes(swept: Path) -> None:
    deploy = deploy_variant(swept, "wide.prototxt", lambda text: text.replace("num_output: 20", "num_output: 30", 1))
    line = finetune_with(swept, "wide", weights=SOURCE, deploy=str(deploy))
    assert line.startswith("caffepipe finetune: error: ")
    assert "layer 'conv1' has blob shapes 20x1x5x5, 20, the net expects 30x1x5x5, 30" in line


def test_a_source_with_no_layer_to_transfer_is_an_error(swept: Path) -> None:
    deploy = deploy_variant(swept, "renamed.prototxt", lambda text: text.replace('name: "', 'name: "other_'))
    line = finetune_with(swept, "renamed", weights=SOURCE, deploy=str(deploy))
    assert "caffepipe finetune: error: the source model has no layer left to transfer" in line


def test_a_target_with_another_number_of_classes_just_works(swept: Path, tmp_path: Path) -> None:
    from tests.idx_files import write_idx

    raw = swept / "five/raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, count, seed in (("train", 200, 1), ("t10k", 50, 2)):
        images, labels = synthetic_digits(count, seed)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels % 5)
    run_caffepipe("build-db", "--raw", str(raw), "--out", "five/db", cwd=swept)
    command = finetune_command("five/finetune")
    command[command.index("data/target/db")] = "five/db"
    run_caffepipe(*command, cwd=swept)
    classifier = caffemodel_blobs(swept / "five/finetune/runs/full-50/final.caffemodel")["ip2_target"]
    assert len(np.frombuffer(classifier[1], np.float32)) == 5
    assert json.loads((swept / "five/finetune/runs.json").read_text())["classes"] == 5


def test_other_source_weights_retrain_the_transfer_runs_and_leave_scratch(swept: Path, tmp_path: Path) -> None:
    """The source weights are part of each transfer run's fingerprint: new ones archive its snapshots and train
    again; scratch copies no weights, so it stays complete."""
    work = tmp_path / "work"
    shutil.copytree(swept, work, symlinks=True)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["finetune"].update(weights="data/train/lenet/snapshots/lenet_iter_10.caffemodel",
                              deploy="data/nets/lenet/deploy.prototxt")
    write_params(work / "params.yaml", params)
    result = run_caffepipe(*finetune_command(), cwd=work)
    assert result.stderr.count("nothing to train") == 2      # scratch-20, scratch-50
    assert result.stderr.count("archived the earlier snapshots") == 4
    source = caffemodel_blobs(work / "data/train/lenet/snapshots/lenet_iter_10.caffemodel")
    assert caffemodel_blobs(work / "data/finetune/runs/last_layer-20/final.caffemodel")["conv1"] == source["conv1"]
