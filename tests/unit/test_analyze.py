"""caffepipe analyze on hand-made evaluations of two models, without Caffe or a database."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from caffepipe.evaluation import analyze as analyze_module
from caffepipe.core.errors import CaffepipeError
from caffepipe.evaluation.eval_files import read_evaluation, write_evaluation

LABELS = np.tile(np.arange(10), 2)          # 20 images, two of each class
ITERATIONS = np.array([10, 100, 1000])


def probs_for(answers: np.ndarray, confidence: dict[int, float] | None = None, runner_up: dict[int, int] | None = None) -> np.ndarray:
    """Probabilities answering `answers`, with p = 0.9 (or confidence[image]); runner_up[image] gets most of the rest."""
    confidence, runner_up = confidence or {}, runner_up or {}
    probs = np.zeros((len(answers), 10))
    for image, answer in enumerate(answers):
        p = confidence.get(image, 0.9)
        probs[image] = (1 - p) / 9
        if image in runner_up:
            probs[image] = (1 - p) * 0.1 / 8
            probs[image, runner_up[image]] = (1 - p) * 0.9
        probs[image, answer] = p
    return probs


def lenet_probs() -> np.ndarray:
    everything_zero = np.zeros(20, dtype=int)
    middle = LABELS.copy()
    middle[4] = 9                                   # image 4 (a 4) is never right
    final = middle.copy()
    final[14] = 9                                   # image 14 (a 4): right at 100, wrong at 1000: forgotten
    final[3] = 5                                    # image 3 (a 3): right at 100, wrong at 1000: forgotten
    return np.stack([probs_for(everything_zero), probs_for(middle),
                     probs_for(final, confidence={4: 0.8, 14: 0.6, 3: 0.7}, runner_up={4: 4, 14: 4, 3: 8})])


def mlp_probs() -> np.ndarray:
    return np.stack([probs_for(np.zeros(20, dtype=int)), probs_for(LABELS), probs_for(LABELS)])


@pytest.fixture
def evaluations(tmp_path: Path) -> dict:
    found = {}
    for model, probs in (("lenet", lenet_probs()), ("mlp", mlp_probs())):
        write_evaluation(tmp_path / "eval" / model, ITERATIONS, LABELS, probs.astype(np.float32), {"model": model})
        found[model] = read_evaluation(tmp_path / "eval" / model, model)
    return found


def digits() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(len(LABELS), 1, 28, 28), dtype=np.uint8)


def test_write_analysis_answers_every_question_with_known_numbers(tmp_path: Path, evaluations: dict) -> None:
    folder = tmp_path / "analysis"
    folder.mkdir()
    summary, metrics = analyze_module.write_analysis(evaluations, digits(), folder, {"gallery_max": 2, "forgotten_max": 5})

    # every item listed exists, every figure is a readable PNG, every question is answered for every model
    assert set(summary["questions"]) == {item["question"] for item in summary["items"]}
    for item in summary["items"]:
        path = folder / item["path"]
        assert path.is_file(), item
        if item["kind"] == "figure":
            with Image.open(path) as image:
                assert image.format == "PNG" and image.width > 200
        assert item["caption"] and item["headline"]["text"]
    listed = {item["path"] for item in summary["items"]}
    assert listed | {"summary.json"} == {p.name for p in folder.iterdir()}
    for model in ("lenet", "mlp"):
        questions = {item["question"] for item in summary["items"] if item["model"] == model}
        assert questions == {"which", "why", "per_class", "over_training", "forgetting"}
    json.loads((folder / "summary.json").read_text())

    lenet, mlp = metrics["lenet"], metrics["mlp"]
    assert lenet["final_errors"] == 3 and lenet["final_error"] == pytest.approx(0.15)
    assert lenet["earliest_iteration"] == 10 and lenet["earliest_error"] == pytest.approx(0.9)
    assert lenet["forgetting_events"] == 2 and lenet["images_forgotten"] == 2 and lenet["never_learned"] == 1
    assert lenet["top_pair_share"] == pytest.approx(2 / 3)
    assert lenet["worst_class_error"] == pytest.approx(1.0)           # both 4s are wrong
    assert mlp["final_errors"] == 0 and mlp["forgetting_events"] == 0 and mlp["chi2_p"] == 1.0
    assert mlp["top_pair_share"] is None

    errors = pd.read_csv(folder / "errors_lenet.csv")
    assert errors["index"].tolist() == [4, 3, 14]                       # most confident first
    assert errors["second"].tolist() == [4, 8, 4] and errors["true_is_second"].tolist() == [True, False, True]
    pairs = pd.read_csv(folder / "confused_pairs_lenet.csv")
    assert pairs["pair"].tolist() == ["4/9", "3/5"] and pairs["a_as_b"].tolist() == [2, 1]
    rates = pd.read_csv(folder / "class_error_rates_lenet.csv")
    assert rates["errors"].tolist() == [0, 0, 0, 1, 2, 0, 0, 0, 0, 0]
    forgetting = pd.read_csv(folder / "forgetting_lenet.csv")
    assert forgetting["forgotten"].tolist() == [0, 2] and forgetting["learned"].tolist() == [17, 0]
    assert forgetting["forgotten_class_4"].tolist() == [0, 1] and forgetting["forgotten_class_3"].tolist() == [0, 1]
    forgotten = pd.read_csv(folder / "forgotten_images_lenet.csv")
    assert forgotten["index"].tolist() == [3, 14]
    snapshots = pd.read_csv(folder / "snapshots_lenet.csv")
    assert snapshots["errors"].tolist() == [18, 1, 3] and snapshots["forgotten"].tolist() == [0, 0, 2]
    over = pd.read_csv(folder / "class_error_vs_iteration_lenet.csv")
    assert over["class_4"].tolist() == [1.0, 0.5, 1.0]
    total = pd.read_csv(folder / "total_error_vs_iteration.csv")
    assert total[total.model == "lenet"]["errors"].tolist() == [18, 1, 3]
    comparison = pd.read_csv(folder / "cnn_vs_mlp.csv").set_index("key")
    assert list(comparison.columns) == ["measure", "lenet", "mlp"]
    assert comparison.loc["top_pair", "lenet"] == "4/9"

    gallery = next(item for item in summary["items"] if item["path"] == "errors_gallery_lenet.png")
    assert "2 of 3 shown" in gallery["caption"]
    comparison_item = next(item for item in summary["items"] if item["path"] == "cnn_vs_mlp.png")
    assert comparison_item["headline"]["value"] == {"lenet": pytest.approx(0.9), "mlp": pytest.approx(0.9)}


def test_one_model_with_one_snapshot(tmp_path: Path) -> None:
    write_evaluation(tmp_path / "eval" / "mlp", ITERATIONS[-1:], LABELS, lenet_probs()[-1:].astype(np.float32), {"model": "mlp"})
    evaluation = read_evaluation(tmp_path / "eval" / "mlp", "mlp")
    folder = tmp_path / "analysis"
    folder.mkdir()
    summary, metrics = analyze_module.write_analysis({"mlp": evaluation}, digits(), folder, {"gallery_max": 10, "forgotten_max": 10})
    assert metrics["mlp"]["forgetting_events"] == 0 and metrics["mlp"]["final_errors"] == 3
    assert pd.read_csv(folder / "forgetting_mlp.csv").empty
    assert all((folder / item["path"]).is_file() for item in summary["items"])


def test_analyze_refuses_evaluations_of_other_test_images(tmp_path: Path, evaluations: dict, monkeypatch) -> None:
    params = {"netgen": {"models": ["lenet", "mlp"], "backend": "lmdb"}, "analyze": {"gallery_max": 2, "forgotten_max": 2}}
    monkeypatch.setattr(analyze_module, "read_test_images", lambda params, db: (digits(), LABELS[::-1].copy()))
    with pytest.raises(CaffepipeError, match="other test images"):
        analyze_module.analyze(params, tmp_path / "eval", tmp_path / "db", tmp_path / "out", tmp_path / "m.json")
    assert not (tmp_path / "out").exists() and not (tmp_path / "m.json").exists()

    monkeypatch.setattr(analyze_module, "read_test_images", lambda params, db: (digits(), LABELS.copy()))
    with pytest.raises(CaffepipeError, match="made by `caffepipe build-db`"):        # no db/info.json
        analyze_module.analyze(params, tmp_path / "eval", tmp_path / "db", tmp_path / "out", tmp_path / "m.json")
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "info.json").write_text(json.dumps({"dataset": "mnist", "test": len(LABELS)}))
    metrics = analyze_module.analyze(params, tmp_path / "eval", tmp_path / "db", tmp_path / "out", tmp_path / "m.json")
    assert json.loads((tmp_path / "m.json").read_text()) == json.loads(json.dumps(metrics))
    assert (tmp_path / "out" / "summary.json").is_file()


def test_fashion_mnist_classes_are_named_in_the_analysis(tmp_path: Path, evaluations: dict) -> None:
    folder = tmp_path / "fashion"
    folder.mkdir()
    summary, _ = analyze_module.write_analysis(evaluations, digits(), folder, {"gallery_max": 2, "forgotten_max": 5},
                                               dataset="fashion-mnist")
    names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}
    headlines = [item["headline"]["text"] for item in summary["items"]]
    pair_headline = next(h for item, h in zip(summary["items"], headlines) if item["headline"]["label"] == "most confused pair")
    assert pair_headline.split(":")[0].split("/")[0] in names
    comparison = pd.read_csv(folder / "cnn_vs_mlp.csv").set_index("key")
    pairs = comparison.loc["top_pair"].drop("measure").dropna()
    assert len(pairs) and all(pair.split("/")[1] in names for pair in pairs)
    assert set(comparison.loc["worst_class"].drop("measure").dropna()) <= names


def test_class_names_fall_back_to_numbers() -> None:
    from caffepipe.data.class_names import class_names

    assert class_names("mnist", 10) == [str(k) for k in range(10)]
    assert class_names("fashion-mnist", 10)[9] == "Ankle boot"
    assert class_names("fashion-mnist", 3) == ["0", "1", "2"] and class_names(None, 2) == ["0", "1"]


def test_analyze_says_which_evaluation_is_missing(tmp_path: Path) -> None:
    params = {"netgen": {"models": ["lenet"], "backend": "lmdb"}, "analyze": {"gallery_max": 2, "forgotten_max": 2}}
    with pytest.raises(CaffepipeError, match="caffepipe evaluate` for lenet"):
        analyze_module.analyze(params, tmp_path / "eval", tmp_path / "db", tmp_path / "out", tmp_path / "m.json")
