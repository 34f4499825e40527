"""CIFAR-10 through the real Caffe, Snakemake and DVC, on data generated in CIFAR-10's binary layout.

- build-db's records and mean image against Caffe's own tools: examples/cifar10/convert_cifar_data (LMDB and
  LevelDB) and tools/compute_image_mean. convert_cifar_data reads exactly 10,000 records per batch file, so
  that test generates full-size batches (60,000 images, 184 MB).
- The whole pipeline, under each orchestrator, on a tiny archive with the official member names: fetch checks it
  against params fetch.cifar10_sha256 (the official pin would refuse it), and every stage runs in colour.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from caffepipe.core import caffe_env
from caffepipe.data.build_db import build_databases
from caffepipe.data.datum import db_path, iterate_db
from tests.cifar_files import cifar_files, write_archive, write_batches
from tests.conftest import copy_tiny_repository, run_command, tiny_params, write_params
from tests.report_browser import check_page

pytestmark = pytest.mark.integration

FULL_BATCH = 10_000          # what convert_cifar_data reads from each batch file


@pytest.fixture(scope="module")
def full_size_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = write_batches(tmp_path_factory.mktemp("cifar-full") / "raw", cifar_files(FULL_BATCH, FULL_BATCH, seed=3))
    (raw / "source.json").write_text(json.dumps({"dataset": "cifar10"}))
    return raw


@pytest.fixture(scope="module")
def ours(full_size_raw: Path) -> Path:
    out = full_size_raw.parent / "ours"
    build_databases(full_size_raw, out, ["lmdb", "leveldb"], {"train": None, "test": None})
    return out


def caffe_tool(name: str, *args: str) -> None:
    subprocess.run([str(caffe_env.caffe_tool(name)), *args], check=True, capture_output=True,
                   env=caffe_env.caffe_subprocess_env())


@pytest.mark.parametrize("backend", ["lmdb", "leveldb"])
def test_our_databases_are_record_for_record_those_of_convert_cifar_data(full_size_raw: Path, ours: Path,
                                                                         backend: str) -> None:
    theirs = full_size_raw.parent / f"theirs-{backend}"
    theirs.mkdir()
    caffe_tool("convert_cifar_data", str(full_size_raw), str(theirs), backend)
    for split, count in (("train", 5 * FULL_BATCH), ("test", FULL_BATCH)):
        records = 0
        for (our_key, our_value), (key, value) in zip(iterate_db(db_path(ours, split, backend), backend),
                                                        iterate_db(theirs / f"cifar10_{split}_{backend}", backend),
                                                        strict=True):
            assert (our_key, our_value) == (key, value), f"{split} record {records} differs"
            records += 1
        assert records == count


def test_our_mean_image_is_byte_identical_to_compute_image_means(ours: Path) -> None:
    theirs = ours.parent / "mean-theirs.binaryproto"
    caffe_tool("compute_image_mean", "-backend=lmdb", str(db_path(ours, "train", "lmdb")), str(theirs))
    assert (ours / "mean.binaryproto").read_bytes() == theirs.read_bytes()


@pytest.mark.parametrize("shape,pooled", [((3, 32, 32), (64, 4, 4)), ((1, 28, 28), (64, 3, 3))])
def test_cifar10_quick_has_caffes_shapes_and_runs_on_either_dataset(tmp_path: Path, shape, pooled) -> None:
    from caffepipe.training import netgen

    caffe = caffe_env.import_caffe(threads=1)
    nets = netgen.build_nets(caffe, "cifar10_quick", train_source="db/train_lmdb", test_source="db/test_lmdb",
                             backend="lmdb", train_batch_size=100, test_batch_size=100, shape=shape,
                             mean_file="nets/mean.binaryproto")
    transform = nets["train"].layer[0].transform_param
    assert (transform.mean_file, transform.scale) == ("nets/mean.binaryproto", pytest.approx(1 / 256))
    (tmp_path / "deploy.prototxt").write_text(str(nets["deploy"]))
    net = caffe.Net(str(tmp_path / "deploy.prototxt"), caffe.TEST)
    blobs = {name: tuple(blob.data.shape[1:]) for name, blob in net.blobs.items()}
    assert blobs["data"] == shape and blobs["pool3"] == pooled and blobs["ip2"] == (10,)
    if shape[0] == 3:       # Caffe's examples/cifar10/cifar10_quick_train_test.prototxt on 32x32 RGB images
        assert [blobs[name] for name in ("conv1", "pool1", "conv2", "pool2", "conv3")] == \
               [(32, 32, 32), (32, 16, 16), (32, 16, 16), (32, 8, 8), (64, 8, 8)]
        assert sum(blob.data.size for blobs_of in net.params.values() for blob in blobs_of) == 145_578


# --- the whole pipeline ------------------------------------------------------------------------------------------

PER_BATCH, TEST_IMAGES = 128, 200        # 640 training images, as the tiny MNIST runs use


def cifar_repo(repo: Path, mnist_raw: Path, archive_folder: Path, digest: str) -> Path:
    copy_tiny_repository(repo, mnist_raw)
    params = tiny_params(
        fetch={"dataset": "cifar10", "sources": ["local"], "local_dir": str(archive_folder), "cifar10_sha256": digest},
        netgen={"models": ["lenet", "cifar10_quick"]},
        finetune={"dataset": "cifar10", "source_model": "cifar10_quick", "sizes": [20]},
        predict={"fit": "square"},
    )
    write_params(repo / "params.yaml", params)
    return repo


@pytest.fixture(scope="module")
def tiny_archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("cifar-tiny")
    return folder, write_archive(folder, cifar_files(PER_BATCH, TEST_IMAGES, seed=5))


@pytest.mark.parametrize("orchestrator", ["snakemake", "dvc"])
def test_the_whole_pipeline_runs_on_cifar10_in_colour(tmp_path: Path, mnist_raw: Path, tiny_archive, orchestrator) -> None:
    from tests.conftest import git_repository

    repo = git_repository(cifar_repo(tmp_path / "repo", mnist_raw, *tiny_archive))
    command = ["snakemake", "--cores", "2"] if orchestrator == "snakemake" else ["dvc", "repro"]
    run_command(command, repo, timeout=1200)

    source = json.loads((repo / "data/raw/source.json").read_text())
    assert (source["dataset"], source["sha256_pinned"], source["archive_sha256"]) == ("cifar10", True, tiny_archive[1])
    info = json.loads((repo / "data/db/info.json").read_text())
    assert (info["train"], info["test"], info["channels"], info["height"], info["width"]) == (640, 200, 3, 32, 32)
    for model in ("lenet", "cifar10_quick"):
        deploy = (repo / f"data/nets/{model}/deploy.prototxt").read_text()
        assert "dim: 3\n" in deploy and "dim: 32\n" in deploy
        assert f'mean_file: "data/nets/{model}/mean.binaryproto"' in (repo / f"data/nets/{model}/train.prototxt").read_text()
        assert (repo / f"data/nets/{model}/mean.binaryproto").read_bytes() == (repo / "data/db/mean.binaryproto").read_bytes()
        metrics = json.loads((repo / f"reports/eval/{model}/metrics.json").read_text())
        assert metrics["images"] == 200 and 0 <= metrics["accuracy"] <= 1
        predictions = json.loads((repo / f"reports/predict/{model}/predictions.json").read_text())
        assert predictions["model"]["channels"] == 3
    from PIL import Image
    with Image.open(repo / "data/images/jpeg/00000.jpg") as image:
        assert image.mode == "RGB" and image.size == (32, 32)
    assert yaml.safe_load((repo / "params.yaml").read_text())["fetch"]["dataset"] == "cifar10"

    page = check_page(repo / "reports/index.html")
    assert page.ok, page.describe()
    html = (repo / "reports/index.html").read_text()
    assert "airplane" in html and "32x32 RGB" in html
    if orchestrator == "snakemake":
        assert_predict_reads_colour_files_as_the_database_holds_them(repo, "cifar10_quick")
    if orchestrator == "dvc":
        assert "up to date" in run_command(["dvc", "status"], repo).stdout.lower()
    else:
        assert "Nothing to be done" in run_command(["snakemake", "-n", "--cores", "2"], repo).stdout



def assert_predict_reads_colour_files_as_the_database_holds_them(repo: Path, model: str, count: int = 8) -> None:
    """`caffepipe predict` on the exported PNGs (lossless) gives the deploy net's probabilities for the database's
    pixels, minus the mean image, scaled: the colour path from file to net is the training data's."""
    import numpy as np

    from caffepipe.data.datum import read_db
    from caffepipe.data.mean_image import decode_blob_proto

    out = repo / "colour-predictions"
    files = [f"data/images/png/{index:05d}.png" for index in range(count)]
    run_command(["caffepipe", "predict", "--nets", f"data/nets/{model}", "--weights", f"data/train/{model}/final.caffemodel",
                 "--source", "data/raw/source.json", "--top-k", "10", "--out", str(out), *files], repo)
    images, _ = read_db(repo / "data/db/train_lmdb", "lmdb", limit=count)
    mean = decode_blob_proto((repo / f"data/nets/{model}/mean.binaryproto").read_bytes())
    caffe = caffe_env.import_caffe(threads=1)
    net = caffe.Net(str(repo / f"data/nets/{model}/deploy.prototxt"), str(repo / f"data/train/{model}/final.caffemodel"),
                    caffe.TEST)
    net.blobs["data"].reshape(*images.shape)
    net.reshape()
    net.blobs["data"].data[...] = (images.astype(np.float32) - mean) * np.float32(1 / 256)
    expected = net.forward()["prob"].reshape(count, -1)
    record = json.loads((out / "predictions.json").read_text())
    assert record["classes"][0] == "airplane"
    for index, image in enumerate(record["images"]):
        got = np.zeros(10, dtype=np.float32)
        for entry in image["top"]:
            got[entry["class"]] = entry["probability"]
        np.testing.assert_allclose(got, expected[index], rtol=1e-5, atol=1e-6)
