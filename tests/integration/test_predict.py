"""`caffepipe predict` with the real Caffe on a tiny LeNet that `caffepipe netgen` and `caffepipe train` made
(40 iterations on synthetic digits whose label is the row of a bright bar, so its answers are confident).

The reference is the deploy net run by pycaffe on database records, scaled as the Data layers scale them. The
same records written as image files (enlarged, colour, inverted, 16-bit, palette, JPEG) must get the same
class, and, where the file keeps the pixels exactly (PNG), the same probabilities.
"""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_caffepipe, tiny_params, write_params
from tests.stage_outputs import tiny_db

pytestmark = pytest.mark.integration

RECORDS = 6                     # test records written as image files
SCALE = 0.00390625              # the Data layers' transform_param in netgen's nets


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("predict")
    tiny_db(work / "db", train=64, test=32)
    params = write_params(work / "params.yaml", tiny_params(netgen={"models": ["lenet"], "backend": "lmdb"}))
    run_caffepipe("netgen", "--params", str(params), "--model", "lenet", "--db", "db", "--out", "nets/lenet", cwd=work)
    run_caffepipe("train", "--params", str(params), "--model", "lenet", "--nets", "nets/lenet", "--db", "db",
                  "--out", "train/lenet", "--threads", "1", cwd=work)
    from caffepipe.data.datum import db_path, read_db

    images, labels = read_db(db_path(work / "db", "test", "lmdb"), "lmdb")
    return {"work": work, "params": params, "nets": work / "nets" / "lenet",
            "weights": work / "train" / "lenet" / "final.caffemodel",
            "pixels": images[:RECORDS, 0], "labels": labels[:RECORDS]}


def deploy_probabilities(model: dict, pixels: np.ndarray, scale: float = SCALE) -> np.ndarray:
    """pycaffe's deploy net on uint8 [N, 28, 28], scaled as the Data layers do."""
    from caffepipe.core.caffe_env import import_caffe

    caffe = import_caffe(threads=1)
    net = caffe.Net(str(model["nets"] / "deploy.prototxt"), caffe.TEST, weights=str(model["weights"]))
    net.blobs["data"].reshape(len(pixels), 1, 28, 28)
    net.reshape()
    net.blobs["data"].data[...] = pixels[:, None].astype(np.float32) * np.float32(scale)
    net.forward()
    return np.array(net.blobs["prob"].data).reshape(len(pixels), -1)


def enlarged(pixels: np.ndarray, factor: int) -> np.ndarray:
    return np.kron(pixels, np.ones((factor, factor), dtype=np.uint8))


# name -> (file suffix, how a 28×28 record becomes the image written); all exact under --fit square
EXACT_VARIANTS = {
    "grey": (".png", lambda p: Image.fromarray(p)),
    "rgb_x3": (".png", lambda p: Image.fromarray(np.stack([enlarged(p, 3)] * 3, axis=-1))),
    "inverted_rgba_x2": (".png", lambda p: Image.fromarray(np.dstack([enlarged(255 - p, 2)] * 3 + [np.full((56, 56), 255, np.uint8)]))),
    "sixteen_bit_x4": (".png", lambda p: Image.fromarray(enlarged(p, 4).astype(np.uint16) * 257)),
    "palette_x2": (".png", lambda p: Image.fromarray(enlarged(p, 2)).convert("P")),
}
JPEG_VARIANTS = {
    "grey_x4": lambda p: Image.fromarray(enlarged(p, 4)),
    "inverted_rgb_x5": lambda p: Image.fromarray(np.stack([enlarged(255 - p, 5)] * 3, axis=-1)),
}


def write_variants(model: dict, folder: Path) -> dict[str, tuple[int, str]]:
    """Every record in every variant under `folder`; file name -> (record index, variant)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for index, pixels in enumerate(model["pixels"]):
        for variant, (suffix, make) in EXACT_VARIANTS.items():
            make(pixels).save(folder / f"{index}_{variant}{suffix}")
            written[f"{index}_{variant}{suffix}"] = (index, variant)
        for variant, make in JPEG_VARIANTS.items():
            make(pixels).save(folder / f"{index}_{variant}.jpg", quality=95)
            written[f"{index}_{variant}.jpg"] = (index, variant)
    return written


def top1(out: Path) -> dict[str, tuple[int, float]]:
    """File name -> (top class, its probability), from predictions.csv."""
    rows = csv.DictReader((out / "predictions.csv").open())
    return {Path(row["file"]).name: (int(row["class"]), float(row["probability"])) for row in rows if row["rank"] == "1"}


def predict(model: dict, *arguments: str, check: bool = True, nets: bool = True):
    model_args = ["--nets", str(model["nets"])] if nets else []
    return run_caffepipe("predict", *model_args, "--weights", str(model["weights"]), *arguments, check=check,
                         cwd=model["work"])


def test_image_files_get_the_deploy_nets_answer_on_the_database_pixels(model, tmp_path) -> None:
    reference = deploy_probabilities(model, model["pixels"])
    assert (reference.argmax(axis=1) == model["labels"]).mean() >= 0.5     # the tiny net did learn something
    written = write_variants(model, tmp_path / "images")
    result = predict(model, "--fit", "square", "--top-k", "10", "--out", str(tmp_path / "out"), str(tmp_path / "images"))
    assert "caffepipe predict: skipped" not in result.stderr
    answers = top1(tmp_path / "out")
    assert set(answers) == set(written)
    for name, (index, variant) in written.items():
        predicted, probability = answers[name]
        assert predicted == reference[index].argmax(), name
        if name.endswith(".png"):
            assert probability == pytest.approx(float(reference[index].max()), rel=1e-5, abs=1e-6), name
    record = json.loads((tmp_path / "out" / "predictions.json").read_text())
    inverted = {Path(image["file"]).name for image in record["images"] if image["inverted"]}
    assert inverted == {name for name, (_, variant) in written.items() if variant.startswith("inverted")}
    assert record["model"]["input_scale"] == SCALE and record["model"]["transform_from"].endswith("test.prototxt layer 'data'")
    assert len(record["images"][0]["top"]) == 10


def test_the_scale_comes_from_the_net_not_a_constant(model, tmp_path) -> None:
    nets = tmp_path / "nets"
    shutil.copytree(model["nets"], nets)
    for name in ("test.prototxt", "train.prototxt"):
        text = (nets / name).read_text()
        assert "scale: 0.00390625" in text
        (nets / name).write_text(text.replace("scale: 0.00390625", "scale: 0.001953125"))
    Image.fromarray(model["pixels"][0]).save(tmp_path / "record.png")
    predict(model, "--deploy", str(nets / "deploy.prototxt"), "--fit", "square", "--out", str(tmp_path / "out"),
            str(tmp_path / "record.png"), nets=False)
    expected = deploy_probabilities(model, model["pixels"][:1], scale=0.001953125)[0]
    assert top1(tmp_path / "out")["record.png"][1] == pytest.approx(float(expected.max()), rel=1e-5, abs=1e-6)
    assert expected.max() != pytest.approx(float(deploy_probabilities(model, model["pixels"][:1])[0].max()), rel=1e-3)


def test_a_deploy_net_alone_needs_the_scale(model, tmp_path) -> None:
    shutil.copy(model["nets"] / "deploy.prototxt", tmp_path / "deploy.prototxt")
    Image.fromarray(model["pixels"][0]).save(tmp_path / "record.png")
    result = predict(model, "--deploy", str(tmp_path / "deploy.prototxt"), str(tmp_path / "record.png"),
                     "--out", str(tmp_path / "out"), check=False, nets=False)
    assert result.returncode == 2 and "give --scale" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    predict(model, "--deploy", str(tmp_path / "deploy.prototxt"), "--scale", str(SCALE), "--fit", "square",
            str(tmp_path / "record.png"),
            "--out", str(tmp_path / "out"), nets=False)
    assert top1(tmp_path / "out")["record.png"][0] == deploy_probabilities(model, model["pixels"][:1])[0].argmax()


def test_a_folder_with_bad_files_classifies_the_rest_and_names_each_bad_one_once(model, tmp_path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    for index in range(3):
        Image.fromarray(enlarged(model["pixels"][index], 2)).save(folder / f"good{index}.png")
    (folder / "notes.png").write_text("this is not an image\n")
    whole = (folder / "good0.png").read_bytes()
    (folder / "cut.png").write_bytes(whole[: len(whole) // 2])
    result = predict(model, "--out", str(tmp_path / "out"), str(folder), str(tmp_path / "missing.jpg"))
    skipped = [line for line in result.stderr.splitlines() if line.startswith("caffepipe predict: skipped ")]
    assert len(skipped) == 3
    assert {line.split("skipped ")[1].split(":")[0] for line in skipped} == {
        str(folder / "notes.png"), str(folder / "cut.png"), str(tmp_path / "missing.jpg")}
    assert set(top1(tmp_path / "out")) == {"good0.png", "good1.png", "good2.png"}
    unreadable = json.loads((tmp_path / "out" / "predictions.json").read_text())["unreadable"]
    assert len(unreadable) == 3
    assert "good0.png" in result.stdout and "top 3" in result.stdout


def test_nothing_classified_exits_non_zero_with_one_line(model, tmp_path) -> None:
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 not really")
    result = predict(model, "--out", str(tmp_path / "out"), str(tmp_path / "bad.jpg"), check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("caffepipe predict: error: no image could be classified")
    assert not (tmp_path / "out").exists()


def test_a_glob_selects_the_matching_files(model, tmp_path) -> None:
    for index in range(3):
        Image.fromarray(model["pixels"][index]).save(tmp_path / f"digit{index}.png")
        Image.fromarray(model["pixels"][index]).save(tmp_path / f"digit{index}.jpg")
    predict(model, "--out", str(tmp_path / "out"), str(tmp_path / "digit*.png"))
    assert set(top1(tmp_path / "out")) == {"digit0.png", "digit1.png", "digit2.png"}


@pytest.mark.parametrize("flag, bad", [("--weights", "nowhere.caffemodel"), ("--nets", "no/such/nets")])
def test_bad_model_paths_are_one_line(model, tmp_path, flag, bad) -> None:
    Image.fromarray(model["pixels"][0]).save(tmp_path / "record.png")
    arguments = {"--nets": str(model["nets"]), "--weights": str(model["weights"]), flag: str(tmp_path / bad)}
    result = run_caffepipe("predict", *[x for pair in arguments.items() for x in pair], str(tmp_path / "record.png"),
                           "--out", str(tmp_path / "out"), check=False, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(tmp_path / bad) in lines[0]


def test_the_pipeline_stage_scores_exported_images_against_their_labels(model, tmp_path) -> None:
    from caffepipe.data.export_images import export_images

    export_images(np.repeat(model["pixels"], 2, axis=0), np.repeat(model["labels"], 2), tmp_path / "images", 95)
    params = tiny_params(predict={"count": 8, "format": "png", "top_k": 2, "invert": "auto", "fit": "square"})
    write_params(tmp_path / "params.yaml", params)
    (tmp_path / "source.json").write_text(json.dumps({"dataset": "fashion-mnist"}))
    out = tmp_path / "reports" / "predict" / "lenet"
    run_caffepipe("predict", "--params", str(tmp_path / "params.yaml"), "--nets", str(model["nets"]), "--weights",
                  str(model["weights"]), "--source", str(tmp_path / "source.json"), "--exported",
                  str(tmp_path / "images"), "--out", str(out), cwd=tmp_path)
    reference = deploy_probabilities(model, np.repeat(model["pixels"], 2, axis=0)[:8])
    labels = np.repeat(model["labels"], 2)[:8]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["images"] == 8
    assert metrics["agreement"] == pytest.approx(float((reference.argmax(axis=1) == labels).mean()))
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert len(rows) == 16 and rows[0]["name"] in ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                                                   "Shirt", "Sneaker", "Bag", "Ankle boot")
    assert [int(row["label"]) for row in rows if row["rank"] == "1"] == labels.tolist()
