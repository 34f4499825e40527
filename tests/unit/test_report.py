"""`caffepipe report` on small stand-ins for every input: the page's content, its embedding, and its errors."""
from __future__ import annotations

import base64
import io
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from caffepipe.report import report
from caffepipe.core.errors import CaffepipeError
from tests.conftest import tiny_params, write_params
from tests.stage_outputs import figure_reports, upstream_reports

SECTIONS = ("data", "bench", "training", "comparison", "analysis", "timing", "visualizations", "run")


class PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str]] = []
        self.ids: list[str] = []
        self.links: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "img":
            self.images.append(attributes)
        if tag == "script":
            self.scripts += 1
        if tag in ("link", "a") and "href" in attributes:
            self.links.append(attributes["href"])
        if "id" in attributes:
            self.ids.append(attributes["id"])


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    folders = {**upstream_reports(tmp_path), **figure_reports(tmp_path)}
    folders["params"] = write_params(tmp_path / "params.yaml", tiny_params())
    folders["out"] = tmp_path / "reports" / "index.html"
    return folders


def report_argv(inputs: dict[str, Path]) -> list[str]:
    argv = ["--params", str(inputs["params"]), "--out", str(inputs["out"])]
    for name in ("raw", "bench", "train", "eval", "analysis", "time", "visualize", "sobel"):
        argv += [f"--{name}", str(inputs[name])]
    return argv


def test_report_has_every_section_and_embeds_every_figure(inputs: dict[str, Path]) -> None:
    assert report.main(report_argv(inputs)) == 0
    html = inputs["out"].read_text()
    page = PageParser()
    page.feed(html)
    assert set(SECTIONS) <= set(page.ids)
    # data grid, read benchmark, training curves, 2 analysis figures, 2 layer charts, 2 filter figures, Sobel
    assert len(page.images) == 10
    for image in page.images:
        assert image["src"].startswith("data:image/png;base64,")
        assert image["alt"]
        decoded = Image.open(io.BytesIO(base64.b64decode(image["src"].split(",", 1)[1])))
        assert decoded.size[0] > 0 and decoded.size[1] > 0
    assert page.links and all(link.startswith(("#", "data:")) for link in page.links), "nothing outside the file"
    assert page.scripts == 0
    assert "caffepipe report</title>" in html
    for text in ("8 of 40 test images are wrong", "Is every class equally likely to be wrong?",
                 "test (final snapshot): accuracy", "deploy net: images/s at batch 8", "sobel_x",
                 "snapshot_iters", "snakemake", "git commit"):
        assert text in html, text


def test_the_same_inputs_render_the_same_bytes(inputs: dict[str, Path]) -> None:
    """DVC compares outputs by hash: a report re-rendered by the other orchestrator must not differ."""
    report.main(report_argv(inputs))
    first = inputs["out"].read_bytes()
    time.sleep(1.1)             # a clock time to the second in the page would now differ
    report.main(report_argv(inputs))
    assert inputs["out"].read_bytes() == first


def test_comparison_table_puts_models_side_by_side(inputs: dict[str, Path]) -> None:
    timing = report.timing_section(inputs["time"], ["lenet", "mlp"])
    table = report.comparison_table(inputs["train"], inputs["eval"], ["lenet", "mlp"], timing)
    rows = {row[0]: row[1:] for row in table.rows}
    assert table.columns == ["measure", "lenet", "mlp"]
    assert rows["test (final snapshot): accuracy"] == ["0.8000", "0.7500"]
    assert rows["caffe time: forward-backward ms (batch 8)"] == ["4.700", "4.700"]
    assert rows["deploy net: images/s at batch 1"] == ["5,000", "5,000"]
    assert rows["training log: final_test_accuracy"] == ["0.7800", "0.7800"]


@pytest.mark.parametrize("missing,stage", [
    ("raw/t10k-labels-idx1-ubyte", "fetch"),
    ("raw/source.json", "fetch"),
    ("bench/io.png", "bench-io"),
    ("train/lenet/test.csv", "parse-log"),
    ("eval/mlp/metrics.json", "evaluate"),
    ("analysis/summary.json", "analyze"),
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
