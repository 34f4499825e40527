"""`caffepipe report` on small stand-ins for every input: its tables, numbers and errors. (The whole page, which
names the Caffe version that the real `caffe` binary reports, is rendered in tests/integration/test_report.py.)"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from caffepipe.report import report
from caffepipe.core.errors import CaffepipeError
from tests.stage_outputs import report_argv, report_inputs


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    return report_inputs(tmp_path)


def test_comparison_table_puts_models_side_by_side(inputs: dict[str, Path]) -> None:
    timing = report.timing_numbers(inputs["time"], ["lenet", "mlp"])
    table = report.comparison_table(inputs["train"], inputs["eval"], ["lenet", "mlp"], timing)
    rows = {row[0]: row[1:] for row in table.rows}
    assert table.columns == ["measure", "lenet", "mlp"]
    assert rows["test (final snapshot): accuracy"] == ["0.8000", "0.7500"]
    assert rows["caffe time: forward-backward ms (batch 8)"] == ["4.700", "4.700"]
    assert rows["deploy net: images/s at batch 1"] == ["5,000", "5,000"]
    assert rows["training log: test.accuracy"] == ["0.7800", "0.7800"]


@pytest.mark.parametrize("missing,stage", [
    ("raw/t10k-labels-idx1-ubyte", "fetch"),
    ("raw/source.json", "fetch"),
    ("bench/io.png", "bench-io"),
    ("train/lenet/test.csv", "parse-log"),
    ("train/mlp/reproducibility.json", "train"),
    ("eval/mlp/metrics.json", "evaluate"),
    ("analysis/summary.json", "analyze"),
    ("analysis-metrics.json", "analyze"),
    ("analysis/class_error_rates_lenet.csv", "analyze"),
    ("time/mlp/throughput.json", "time"),
    ("visualize/lenet/filters.png", "visualize"),
    ("sobel/index.json", "sobel"),
])
def test_a_missing_input_names_the_file_and_the_stage_that_makes_it(inputs, missing: str, stage: str) -> None:
    path = inputs["params"].parent / missing
    path.unlink()
    with pytest.raises(CaffepipeError, match=rf"{path} not found; it is made by `caffepipe {stage}`"):
        report.main(report_argv(inputs))
    assert not inputs["out"].exists()


def test_models_trained_with_mixed_blas_threads_are_named_with_the_reason(inputs: dict[str, Path]) -> None:
    assert report.not_reproducible(inputs["train"], ["lenet", "mlp"]) == []
    verdict = inputs["train"] / "mlp" / "reproducibility.json"
    verdict.write_text(json.dumps({"blas_threads": [2, 1], "bit_reproducible": False,
                                   "reproducibility_note": "segments ran with 2 and 1 BLAS threads"}))
    assert report.not_reproducible(inputs["train"], ["lenet", "mlp"]) == ["mlp (segments ran with 2 and 1 BLAS threads)"]


@pytest.mark.parametrize("fields", [{"bit_reproducible": None}, {"bit_reproducible": False, "reproducibility_note": None}])
def test_a_verdict_that_does_not_say_whether_the_weights_are_reproducible_is_an_error(inputs: dict[str, Path], fields: dict) -> None:
    """A damaged or incomplete verdict is not read as reproducible."""
    verdict = inputs["train"] / "lenet" / "reproducibility.json"
    verdict.write_text(json.dumps({**json.loads(verdict.read_text()), **fields}))
    with pytest.raises(CaffepipeError, match=rf"{verdict} does not say whether its weights are bit-reproducible; re-run `caffepipe train`"):
        report.main(report_argv(inputs))
    assert not inputs["out"].exists()


def test_a_training_table_without_its_columns_is_an_error(inputs: dict[str, Path]) -> None:
    (inputs["train"] / "mlp" / "test.csv").write_text("iteration,acc\n0,0.1\n")
    with pytest.raises(CaffepipeError, match="test.csv has no column loss, accuracy"):
        report.main(report_argv(inputs))


def test_a_non_png_figure_is_an_error(inputs: dict[str, Path]) -> None:
    (inputs["sobel"] / "sobel.png").write_text("not a picture")
    with pytest.raises(CaffepipeError, match="sobel.png is not a PNG file"):
        report.main(report_argv(inputs))


@pytest.mark.parametrize("value,text", [
    (3, "3"), (12345, "12,345"), (0.98765, "0.9877"), (0.0325, "0.03250"), (2.399, "2.399"), (7114.13, "7,114"),
    (123456.7, "123,457"), (1.5e-7, "1.500e-07"), (0.0, "0"), (float("nan"), "–"), (None, "–"), (True, "yes"),
    ("lmdb", "lmdb"),
])
def test_numbers_are_formatted_readably(value, text: str) -> None:
    assert report.format_value(value) == text


def test_numbers_read_as_text_from_a_mixed_column_are_formatted_too() -> None:
    frame = pd.DataFrame({"measure": ["final loss", "top pair", "errors"], "lenet": ["0.029668527051364038", "3/5", "94"]})
    assert [row[1] for row in report.frame_table(frame).rows] == ["0.02967", "3/5", "94"]


def test_long_tables_are_cut_with_a_note_naming_the_file() -> None:
    frame = pd.DataFrame({"index": range(30), "p": [0.5] * 30, "label": ["x"] * 30})
    table = report.frame_table(frame, source="reports/analysis/errors_lenet.csv")
    assert len(table.rows) == report.TABLE_ROWS
    assert table.note == f"first {report.TABLE_ROWS} of 30 rows; the whole table: reports/analysis/errors_lenet.csv"
    assert table.numeric == [True, True, False]


def test_headlines_prefer_their_text_and_else_show_label_and_value() -> None:
    assert report.headline_text({"label": "errors", "value": 8, "text": "8 are wrong"}) == "8 are wrong"
    assert report.headline_text({"label": "worst class", "value": 2, "text": None}) == "worst class: 2"
    assert report.headline_text({"label": "error", "value": {"lenet": 0.01, "mlp": 0.02}, "text": ""}) == "error: lenet 0.01000, mlp 0.02000"


def test_git_commit_outside_and_inside_a_checkout(tmp_path: Path) -> None:
    assert report.git_commit(tmp_path) == "not a git checkout"
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "PATH": "/usr/bin:/bin"}
    (tmp_path / "f").write_text("1")
    for command in (["git", "init", "-q"], ["git", "add", "f"], ["git", "commit", "-qm", "x"]):
        subprocess.run(command, cwd=tmp_path, check=True, env=env)
    commit = report.git_commit(tmp_path)
    assert len(commit) == 40 and int(commit, 16) >= 0
    (tmp_path / "f").write_text("2")
    assert report.git_commit(tmp_path) == f"{commit} (with uncommitted changes)"


def test_long_tables_start_folded_and_class_tables_do_not() -> None:
    assert report.frame_table(pd.DataFrame({"class": range(11)}), max_rows=None).collapsed is False
    assert report.frame_table(pd.DataFrame({"index": range(30)})).collapsed is True


def test_a_figure_links_its_own_table_else_the_tables_of_its_question_and_model() -> None:
    items = [{"question": "why", "kind": "table", "path": "confused_pairs_lenet.csv", "model": "lenet"},
             {"question": "why", "kind": "figure", "path": "confused_pairs_lenet.png", "model": "lenet"},
             {"question": "which", "kind": "table", "path": "errors_lenet.csv", "model": "lenet"},
             {"question": "which", "kind": "table", "path": "errors_mlp.csv", "model": "mlp"},
             {"question": "which", "kind": "figure", "path": "errors_gallery_lenet.png", "model": "lenet"}]
    assert report.figure_tables(items[1], items) == ["confused_pairs_lenet.csv"]
    assert report.figure_tables(items[4], items) == ["errors_lenet.csv"]


def test_data_links_are_relative_to_the_page(tmp_path: Path) -> None:
    inputs = report.ReportInputs(params={}, params_path=tmp_path / "params.yaml", raw=tmp_path / "data/raw",
                                 bench=tmp_path / "reports/bench", train=tmp_path / "reports/train", eval=tmp_path,
                                 analysis=tmp_path, analysis_metrics=tmp_path, time=tmp_path, visualize=tmp_path,
                                 sobel=tmp_path, finetune=tmp_path, cam=tmp_path, out=tmp_path / "reports/index.html",
                                 baseline=report.resolve_baseline(False, tmp_path))
    assert inputs.link(tmp_path / "reports/bench/io.csv") == report.DataLink("io.csv", "bench/io.csv")
    assert inputs.link(tmp_path / "data/raw/source.json", "source").href == "../data/raw/source.json"
