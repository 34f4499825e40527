"""`caffepipe report`'s whole page on small stand-ins for every input: every section, every figure embedded, and
the same bytes when rendered again. The page's run information names the Caffe version, which the real
`caffe` binary reports."""
from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from caffepipe.report import report
from tests.stage_outputs import report_argv, report_inputs

pytestmark = pytest.mark.integration

SECTIONS = ("summary", "data", "bench", "training", "comparison", "zoo", "cam", "analysis", "timing", "visualizations",
            "finetune", "diagrams", "weights", "run")
GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


class PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str]] = []
        self.ids: list[str] = []
        self.links: list[str] = []
        self.scripts: list[dict[str, str]] = []
        self.toc: list[str] = []
        self.details = 0
        self._in_toc = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "img":
            self.images.append(attributes)
        if tag == "script":
            self.scripts.append(attributes)
        if tag == "details":
            self.details += 1
        if tag == "nav" and "toc" in attributes.get("class", ""):
            self._in_toc = True
        if tag in ("link", "a") and "href" in attributes:
            self.links.append(attributes["href"])
            if tag == "a" and self._in_toc:
                self.toc.append(attributes["href"])
        if "id" in attributes:
            self.ids.append(attributes["id"])

    def handle_endtag(self, tag):
        if tag == "nav":
            self._in_toc = False


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    return report_inputs(tmp_path)


def test_report_has_every_section_and_embeds_every_figure(inputs: dict[str, Path]) -> None:
    assert report.main(report_argv(inputs)) == 0
    html = inputs["out"].read_text()
    page = PageParser()
    page.feed(html)
    assert [identifier for identifier in page.ids if identifier in SECTIONS] == list(SECTIONS)
    assert page.toc[:9] == ["#summary", "#data", "#bench", "#training", "#comparison", "#zoo", "#cam", "#analysis",
                            "#analysis-which"]
    assert {link.removeprefix("#") for link in page.toc} <= set(page.ids)
    # data grid, read benchmark, training curves, the zoo's error curves, gapnet's 2 CAM figures, 2 analysis
    # figures, 3 layer charts, 3 filter figures (lenet, mlp, gapnet), Sobel, fine-tuning, then per model a net
    # diagram (SVG) and 3 weight-statistics figures
    models = 3
    assert len(page.images) == 16 + models * (1 + 3)
    svgs = [image for image in page.images if image["src"].startswith("data:image/svg+xml;base64,")]
    assert len(svgs) == models and all(b"<svg" in base64.b64decode(image["src"].split(",", 1)[1]) for image in svgs)
    for image in page.images:
        assert image["alt"]
        if image in svgs:
            continue
        assert image["src"].startswith("data:image/png;base64,")
        decoded = Image.open(io.BytesIO(base64.b64decode(image["src"].split(",", 1)[1])))
        assert decoded.size[0] > 0 and decoded.size[1] > 0
    # nothing is loaded from outside the file: links are anchors, data: URIs, or data files beside the page
    assert len(page.scripts) == 1 and "src" not in page.scripts[0]
    files = [link for link in page.links if not link.startswith(("#", "data:"))]
    assert files and not [link for link in files if "://" in link or link.startswith("/")]
    for link in files:
        assert (inputs["out"].parent / link).is_file(), link
    assert {"../bench/io.csv", "../train/lenet/test.csv", "../time/mlp/layers.csv", "../raw/source.json"} <= set(files)
    assert page.details >= 2          # long tables fold, and so do the params
    assert "caffepipe report</title>" in html
    for text in ("8 of 40 test images are wrong", "Is every class equally likely to be wrong?",
                 "test (final snapshot): accuracy", "deploy net: images/s at batch 8", "sobel_x",
                 "snapshot_iters", "snakemake", "git commit", "Worth looking at", "4/9: 3 errors (37.50% of all)",
                 "No baseline to compare with: not a git work tree", "relu1 (on ip1) has 12% dead units at the end.",
                 # time's flop_rate.json and machine.json (stage_outputs.time_flop_reports works the numbers out)
                 "gapnet reaches 2.0% of the 1-core peak over a forward-backward pass (2.0 of 96 GFLOP/s); its "
                 "fastest layer pass, conv1&#39;s forward, 24.0%.", "forward-backward % of peak", "Peak of lenet, mlp, "
                 "gapnet: 1 core × 3,000 MHz × 8 floats", "lenet: FLOP rate of the layers with multiply-adds"):
        assert text in html, text


def test_the_page_says_when_a_model_is_not_bit_reproducible(inputs: dict[str, Path]) -> None:
    report.main(report_argv(inputs))
    assert "Not bit-reproducible" not in inputs["out"].read_text()
    (inputs["train"] / "lenet" / "reproducibility.json").write_text(json.dumps(
        {"blas_threads": [2, 1], "bit_reproducible": False, "reproducibility_note": "segments ran with 2 and 1 BLAS threads"}))
    report.main(report_argv(inputs))
    html = inputs["out"].read_text()
    training = html[html.index('<section id="training">'):html.index('<section id="comparison">')]
    assert "Not bit-reproducible: lenet (segments ran with 2 and 1 BLAS threads)" in training
    assert html.count("Not bit-reproducible") == 1


def test_the_same_inputs_render_the_same_bytes(inputs: dict[str, Path]) -> None:
    """DVC compares outputs by hash: a report re-rendered by the other orchestrator must not differ."""
    report.main(report_argv(inputs))
    first = inputs["out"].read_bytes()
    time.sleep(1.1)             # a clock time to the second in the page would now differ
    report.main(report_argv(inputs))
    assert inputs["out"].read_bytes() == first


def git(repo: Path, *arguments: str) -> None:
    subprocess.run(["git", *arguments], cwd=repo, env=GIT_ENV, check=True, capture_output=True)


def test_a_committed_baseline_shows_every_headline_change_and_its_curves(inputs: dict[str, Path]) -> None:
    """In a git work tree the summary compares with HEAD's metrics files, which git holds (DVC cache: false)."""
    repo = inputs["params"].parent
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "baseline")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    metrics = inputs["eval"] / "lenet" / "metrics.json"
    metrics.write_text(json.dumps({**json.loads(metrics.read_text()), "accuracy": 0.9, "errors": 4}))
    (inputs["bench"] / "metrics.json").write_text(json.dumps({"python_lmdb_over_jpeg_warm": 150.0}))
    report.main(report_argv(inputs))
    html = inputs["out"].read_text()
    first_screen = html[html.index('<section id="summary">'):html.index('<section id="data">')]
    assert f"commit <code>{head[:8]}</code> (HEAD)" in first_screen
    assert '<span class="change better"' in first_screen and "+0.1000" in first_screen and "−4" in first_screen
    run_info = html[html.index('<section id="run">'):]
    assert f"{head} (HEAD)" in run_info
    assert f"dashed: the same curves at the baseline commit {head[:8]}" in html

    # the same inputs and the same baseline commit: the same bytes
    first = inputs["out"].read_bytes()
    report.main(report_argv(inputs))
    assert inputs["out"].read_bytes() == first


def test_an_unknown_baseline_revision_renders_without_changes(inputs: dict[str, Path]) -> None:
    repo = inputs["params"].parent
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "baseline")
    params = inputs["params"].read_text().replace("baseline: null", "baseline: no-such-tag")
    assert params != inputs["params"].read_text()
    inputs["params"].write_text(params)
    assert report.main(report_argv(inputs)) == 0
    html = inputs["out"].read_text()
    assert "No baseline to compare with: git has no commit &#39;no-such-tag&#39;." in html
    assert 'class="change' not in html[html.index('<tbody>'):html.index('</tbody>')]
