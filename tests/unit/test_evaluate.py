"""caffepipe evaluate without Caffe: batching, the manifest checks, and the evaluation folder format."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from caffepipe.evaluation import eval_files
from caffepipe.core.errors import CaffepipeError
from caffepipe.evaluation.evaluate import forward_probs, load_manifest
from caffepipe.training.input_transform import InputTransform


class FakeBlob:
    def __init__(self, shape: tuple[int, ...]) -> None:
        self.data = np.zeros(shape, dtype=np.float32)

    def reshape(self, *shape: int) -> None:
        self.data = np.zeros(shape, dtype=np.float32)


class FakeNet:
    """A 'net' whose prob output is one-hot on (sum of the input pixels) mod 10: batching errors show."""

    def __init__(self, batch: int) -> None:
        self.blobs = {"data": FakeBlob((batch, 1, 2, 2)), "prob": FakeBlob((batch, 10))}
        self.batches: list[int] = []

    def reshape(self) -> None:
        self.blobs["prob"].reshape(self.blobs["data"].data.shape[0], 10)

    def forward(self) -> None:
        data = self.blobs["data"].data
        self.batches.append(len(data))
        classes = np.rint(data.reshape(len(data), -1).sum(axis=1)).astype(int) % 10
        self.blobs["prob"].data[...] = np.eye(10, dtype=np.float32)[classes]


def test_forward_probs_batches_with_a_short_last_batch_and_scales_the_pixels() -> None:
    images = np.zeros((7, 1, 2, 2), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(7) * 2          # scaled by 0.5: the sum is the image's index
    net = FakeNet(batch=3)
    probs = forward_probs(net, images, batch_size=3, transform=InputTransform(0.5, 0.0, "test"))
    assert net.batches == [3, 3, 1]
    assert probs.shape == (7, 10) and probs.dtype == np.float32
    np.testing.assert_array_equal(np.argmax(probs, axis=1), np.arange(7))


def write_manifest(folder: Path, model: str = "lenet", iterations=(10, 20), max_iter: int = 20,
                   missing: int | None = None) -> Path:
    (folder / "snapshots").mkdir(parents=True, exist_ok=True)
    entries = []
    for iteration in iterations:
        caffemodel = f"snapshots/{model}_iter_{iteration}.caffemodel"
        if iteration != missing:
            (folder / caffemodel).write_bytes(b"")
        entries.append({"iteration": iteration, "caffemodel": caffemodel,
                        "solverstate": f"snapshots/{model}_iter_{iteration}.solverstate"})
    (folder / "final.caffemodel").write_bytes(b"")
    manifest = {"version": 1, "model": model, "max_iter": max_iter, "fingerprint": "f" * 16,
                "final": "final.caffemodel", "snapshots": entries}
    path = folder / "snapshots.json"
    path.write_text(json.dumps(manifest))
    return path


def test_load_manifest_sorts_and_resolves_paths(tmp_path: Path) -> None:
    manifest = load_manifest(write_manifest(tmp_path, iterations=(20, 10)), "lenet")
    assert [s.iteration for s in manifest.snapshots] == [10, 20]
    assert manifest.snapshots[0].caffemodel == tmp_path / "snapshots/lenet_iter_10.caffemodel"


@pytest.mark.parametrize("kwargs, message", [
    ({"model": "mlp"}, "model 'mlp', not 'lenet'"),
    ({"missing": 20}, "missing"),
    ({"iterations": (10, 10, 20)}, "listed twice"),
    ({"iterations": ()}, "no snapshot"),
])
def test_load_manifest_refuses_a_wrong_manifest(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(CaffepipeError, match=message):
        load_manifest(write_manifest(tmp_path, **kwargs), "lenet")


def test_load_manifest_without_a_file_says_to_train(tmp_path: Path) -> None:
    with pytest.raises(CaffepipeError, match="caffepipe train"):
        load_manifest(tmp_path / "snapshots.json", "lenet")


def hand_made_probs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two snapshots of 4 images: uniform (all read as 0), then 3 of 4 right with p = 0.5."""
    labels = np.array([0, 1, 2, 2])
    first = np.full((4, 10), 0.1)
    second = np.full((4, 10), 0.5 / 9)
    for image, answer in enumerate([0, 1, 2, 1]):
        second[image, answer] = 0.5
    return np.array([10, 100]), labels, np.stack([first, second]).astype(np.float32)


def test_evaluation_folder_round_trip_and_metrics(tmp_path: Path) -> None:
    iterations, labels, probs = hand_made_probs()
    out = tmp_path / "eval" / "lenet"
    summary = eval_files.write_evaluation(out, iterations, labels, probs, {"model": "lenet", "backend": "lmdb"})
    assert sorted(p.name for p in out.iterdir()) == ["confusion.csv", "info.json", "predictions.npz", "summary.csv"]

    written = pd.read_csv(out / "summary.csv")
    assert written["iteration"].tolist() == [10, 100]
    np.testing.assert_allclose(written["accuracy"], [0.25, 0.75])
    np.testing.assert_allclose(written["loss"], [math.log(10), (3 * math.log(2) + math.log(18)) / 4], rtol=1e-5)
    assert written["errors"].tolist() == [3, 1]
    np.testing.assert_allclose(written[["error_class_0", "error_class_1", "error_class_2"]].iloc[1], [0, 0, 0.5])
    assert written["error_class_3"].isna().all()   # no image of class 3
    pd.testing.assert_frame_equal(summary[["iteration", "errors"]], written[["iteration", "errors"]])

    confusion = pd.read_csv(out / "confusion.csv")
    assert len(confusion) == 2 * 100
    cell = confusion[(confusion.iteration == 100) & (confusion.true == 2) & (confusion.predicted == 1)]
    assert cell["count"].tolist() == [1]

    evaluation = eval_files.read_evaluation(out, "lenet")
    assert evaluation.model == "lenet" and evaluation.n_classes == 10 and evaluation.final_iteration == 100
    np.testing.assert_array_equal(evaluation.labels, labels)
    np.testing.assert_array_equal(evaluation.predictions, [[0, 0, 0, 0], [0, 1, 2, 1]])
    np.testing.assert_array_equal(evaluation.confusion[1, :3, :3], [[1, 0, 0], [0, 1, 0], [0, 1, 1]])
    np.testing.assert_allclose(evaluation.probs, probs)
    info = json.loads((out / "info.json").read_text())
    assert info["format"] == eval_files.FORMAT and info["iterations"] == [10, 100] and info["images"] == 4
    assert info["backend"] == "lmdb"

    assert eval_files.final_metrics(summary) == {"iteration": 100, "accuracy": 0.75, "error": 0.25,
                                                  "loss": pytest.approx(written["loss"].iloc[1], rel=1e-5),
                                                  "errors": 1, "images": 4}


def test_write_evaluation_refuses_labels_beyond_the_classes(tmp_path: Path) -> None:
    iterations, labels, probs = hand_made_probs()
    with pytest.raises(CaffepipeError, match="net outputs 3 classes"):
        eval_files.write_evaluation(tmp_path / "e", iterations, labels + 1, probs[:, :, :3], {"model": "lenet"})
    assert not (tmp_path / "e").exists()


def test_read_evaluation_explains_a_missing_or_old_folder(tmp_path: Path) -> None:
    with pytest.raises(CaffepipeError, match="run `caffepipe evaluate` for lenet"):
        eval_files.read_evaluation(tmp_path / "nothing", "lenet")
    iterations, labels, probs = hand_made_probs()
    out = tmp_path / "old"
    eval_files.write_evaluation(out, iterations, labels, probs, {"model": "lenet"})
    (out / "info.json").write_text(json.dumps({"format": 0}))
    with pytest.raises(CaffepipeError, match="format 0"):
        eval_files.read_evaluation(out, "lenet")
    (out / "predictions.npz").write_bytes(b"not a zip")
    (out / "info.json").write_text(json.dumps({"format": eval_files.FORMAT}))
    with pytest.raises(CaffepipeError, match="unreadable"):
        eval_files.read_evaluation(out, "lenet")


def test_forward_probs_subtracts_a_mean_image_before_scaling_as_caffe_does() -> None:
    images = np.full((4, 3, 2, 2), 10, dtype=np.uint8)
    images[:, 0, 0, 0] = 10 + np.arange(4) * 4      # minus the mean 10, times 0.25: the image's index
    mean = np.full((3, 2, 2), 10, dtype=np.float32)
    probs = forward_probs(FakeNet(batch=1), images, batch_size=4, transform=InputTransform(0.25, mean, "test"))
    np.testing.assert_array_equal(np.argmax(probs, axis=1), np.arange(4))
