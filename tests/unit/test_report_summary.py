"""The report's first screen (report/summary.py): headline numbers, their change against a baseline, and the
findings ranked by what most deserves a look."""
from __future__ import annotations

import pytest

from caffepipe.report import summary
from caffepipe.report.summary import Findings, ModelRun


def run(model: str, errors: int, images: int = 10000, seconds: float = 200.0, iterations: float = 10000) -> ModelRun:
    return ModelRun(model, 1 - errors / images, errors, images, iterations, seconds)


def findings(**fields) -> Findings:
    empty = dict(runs={}, baseline_runs={}, not_reproducible=[], test_losses={}, analysis={}, top_pairs={}, bench={},
                 finetune_runs=[], slowest_layers={})
    return Findings(**{**empty, **fields})


def test_model_numbers_come_from_the_metrics_files() -> None:
    current = summary.model_run("lenet", {"accuracy": 0.9907, "errors": 93, "images": 10000},
                                {"iteration": 10000, "seconds": 250.0})
    assert current == ModelRun("lenet", 0.9907, 93, 10000, 10000.0, 250.0)
    assert current.iterations_per_s == 40.0
    low, high = current.interval
    assert low < 0.9907 < high and round(low, 4) == 0.9886 and round(high, 4) == 0.9924
    assert summary.model_run("mlp", None, {"seconds": "n/a"}) == ModelRun("mlp", None, None, None, None, None)


def test_changes_against_the_baseline_read_like_dvc_metrics_diff() -> None:
    shown = summary.model_summary(run("lenet", 93, seconds=250), run("lenet", 120, seconds=200), "4/9: 11 errors")
    assert (shown.accuracy.text, shown.accuracy.change.text, shown.accuracy.change.verdict) == ("0.9907", "+0.0027", "better")
    assert (shown.errors.text, shown.errors.change.text, shown.errors.change.verdict) == ("93 of 10,000", "−27", "better")
    assert (shown.training_time.text, shown.training_time.change.text) == ("4 min 10 s", "+25%")
    assert shown.training_time.change.verdict == "worse"
    assert (shown.iterations_per_s.text, shown.iterations_per_s.change.text) == ("40.0", "−20%")
    assert shown.interval == "0.9886–0.9924" and shown.top_pair == "4/9: 11 errors"


def test_a_change_inside_the_interval_is_noise_and_no_baseline_is_no_change() -> None:
    shown = summary.model_summary(run("lenet", 93), run("lenet", 95), "")
    assert shown.accuracy.change.verdict == "noise" and shown.errors.change.text == "−2"
    assert summary.model_summary(run("lenet", 93), run("lenet", 93), "").accuracy.change.text == "±0"
    alone = summary.model_summary(run("lenet", 93), None, "")
    assert alone.accuracy.change is None and alone.errors.change is None and alone.top_pair == "–"


def test_bench_ratios_with_their_change() -> None:
    ratios = summary.bench_ratios({"python_lmdb_over_jpeg_warm": 139.62, "caffe_lmdb_over_jpeg_warm": 10.62},
                                  {"python_lmdb_over_jpeg_warm": 120.0})
    assert [(ratio.number.text, ratio.number.change and ratio.number.change.text) for ratio in ratios] == [
        ("139.6×", "+16%"), ("10.6×", None)]
    assert summary.bench_ratios(None, None) == []


def test_problems_come_first_then_clear_differences() -> None:
    found = summary.highlights(findings(
        runs={"lenet": run("lenet", 93), "mlp": run("mlp", 223)},
        baseline_runs={"lenet": run("lenet", 60)},
        not_reproducible=["mlp (segments ran with 2 and 1 BLAS threads)"],
        test_losses={"lenet": [2.3, 0.05, 0.03, 0.03], "mlp": [2.3, 0.1, 0.07, 0.09]},
        analysis={"lenet": {"top_pair_share": 0.12, "chi2_p": 0.0005, "worst_class_error": 0.021, "final_error": 0.0093}},
        top_pairs={"lenet": "4/9: 11 errors (11.83% of all)"},
        bench={"python_lmdb_over_jpeg_warm": 139.6}))
    assert [highlight.anchor for highlight in found] == ["training", "training", "training"]
    assert found[0].text.startswith("Weights not bit-reproducible: mlp")
    assert found[1].text.startswith("lenet's accuracy fell from 0.9940 to 0.9907, outside its 95% interval")
    assert found[2].text.startswith("mlp's test loss rose to 0.09")


def test_without_problems_the_differences_the_data_supports() -> None:
    found = summary.highlights(findings(
        runs={"lenet": run("lenet", 93), "mlp": run("mlp", 223)},
        test_losses={"lenet": [2.3, 0.05, 0.03]},
        analysis={"lenet": {"top_pair_share": 0.12, "chi2_p": 0.0005, "worst_class_error": 0.021, "final_error": 0.0093,
                            "images_forgotten": 1269, "never_learned": 26}},
        top_pairs={"lenet": "4/9: 11 errors (11.83% of all)"},
        bench={"python_lmdb_over_jpeg_warm": 139.6},
        slowest_layers={"lenet": ("conv2", 0.4)}))
    assert [highlight.anchor for highlight in found] == ["comparison", "analysis-per_class", "analysis-why"]
    assert found[0].text == ("lenet makes 2.4× fewer errors than mlp (93 against 223), and their 95% intervals do "
                             "not overlap.")
    assert "(χ² p = 0.0005)" in found[1].text and "2.3× as often as the average" in found[1].text
    assert found[2].text == "lenet's most-confused pair: 4/9: 11 errors (11.83% of all)."
    more = summary.highlights(findings(analysis={"lenet": {"images_forgotten": 1269, "never_learned": 26}},
                                       runs={"lenet": run("lenet", 93)}))
    assert more[0].text.startswith("lenet got 1,269 test images (13%) right at one snapshot and wrong at a later one")


@pytest.mark.parametrize("rows,phrase", [
    ([{"mode": "full", "size": 100, "accuracy": 0.69}, {"mode": "scratch", "size": 100, "accuracy": 0.72},
      {"mode": "full", "size": 1000, "accuracy": 0.9}], "training from scratch (0.720) beats"),
    ([{"mode": "full", "size": 100, "accuracy": 0.8}, {"mode": "scratch", "size": 100, "accuracy": 0.7}],
     "full reaches 0.800 against 0.700 from scratch"),
])
def test_fine_tuning_says_whether_the_features_transfer(rows, phrase: str) -> None:
    found = summary.highlights(findings(finetune_runs=rows))
    assert found[0].anchor == "finetune" and phrase in found[0].text


def test_nothing_to_say_says_nothing() -> None:
    assert summary.highlights(findings()) == []
