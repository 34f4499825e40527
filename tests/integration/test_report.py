"""`caffepipe report`'s whole page on small stand-ins for every input: every section, every figure embedded, and
the same bytes when rendered again. The page's run information names the Caffe version, which the real
`caffe` binary reports."""
from __future__ import annotations

import base64
import io
import json
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from caffepipe.report import report
from tests.stage_outputs import report_argv, report_inputs

pytestmark = pytest.mark.integration

SECTIONS = ("data", "bench", "training", "comparison", "analysis", "timing", "visualizations", "finetune", "diagrams",
            "weights", "run")


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
    return report_inputs(tmp_path)


def test_report_has_every_section_and_embeds_every_figure(inputs: dict[str, Path]) -> None:
    assert report.main(report_argv(inputs)) == 0
    html = inputs["out"].read_text()
    page = PageParser()
    page.feed(html)
    assert set(SECTIONS) <= set(page.ids)
    # data grid, read benchmark, training curves, 2 analysis figures, 2 layer charts, 2 filter figures, Sobel,
    # fine-tuning, then 2 net diagrams (SVG) and 3 weight-statistics figures per model
    assert len(page.images) == 19
    svgs = [image for image in page.images if image["src"].startswith("data:image/svg+xml;base64,")]
    assert len(svgs) == 2 and all(b"<svg" in base64.b64decode(image["src"].split(",", 1)[1]) for image in svgs)
    for image in page.images:
        assert image["alt"]
        if image in svgs:
            continue
        assert image["src"].startswith("data:image/png;base64,")
        decoded = Image.open(io.BytesIO(base64.b64decode(image["src"].split(",", 1)[1])))
        assert decoded.size[0] > 0 and decoded.size[1] > 0
    assert page.links and all(link.startswith(("#", "data:")) for link in page.links), "nothing outside the file"
    assert page.scripts == 0
    assert "caffepipe report</title>" in html
    for text in ("8 of 40 test images are wrong", "Is every class equally likely to be wrong?",
                 "test (final snapshot): accuracy", "deploy net: images/s at batch 8", "sobel_x",
                 "snapshot_iters", "snakemake", "git commit", "relu1 (on ip1) has 12% dead units at the end."):
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
