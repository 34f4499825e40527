"""The report as a reader sees it: opened from disk in headless Chromium (Debian's package), every image must
load and the console must show no error; the first screen is the summary, and the table of contents follows the
reader down the page. tests/report_browser.py drives Chromium through Playwright."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from caffepipe.core import caffe_env
from tests.conftest import REPO, run_caffepipe
from tests.report_browser import check_page
from tests.stage_outputs import MODEL_KINDS, cam_reports, stage_workdir, upstream_reports

pytestmark = pytest.mark.integration

ONE_PIXEL_PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def test_the_check_sees_broken_images_console_errors_and_exceptions(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text(f"""<!DOCTYPE html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>t</title></head>
<body><img src="{ONE_PIXEL_PNG}" alt="fine"><img src="missing.png" alt="missing">
<script>console.error("something broke"); undefined_function();</script></body></html>""")
    result = check_page(page)
    assert [image.alt for image in result.images] == ["fine", "missing"]
    assert [image.alt for image in result.broken_images] == ["missing"]
    messages = "\n".join(result.console_errors)
    assert "something broke" in messages and "undefined_function" in messages and "missing.png" in messages
    assert not result.ok

    page.write_text(f"""<!DOCTYPE html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>ok</title></head>
<body><img src="{ONE_PIXEL_PNG}" alt="fine"></body></html>""")
    clean = check_page(page)
    assert clean.ok and clean.title == "ok" and len(clean.images) == 1


def test_command_line_screenshots_the_top_of_a_page_and_fails_on_a_missing_file(tmp_path: Path) -> None:
    """`python -m tests.report_browser` is how the README's screenshots are made."""
    page = tmp_path / "tall.html"
    page.write_text("""<!DOCTYPE html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>tall</title></head>
<body style="margin: 0"><div style="height: 3000px"></div></body></html>""")
    screenshot = tmp_path / "shots/top.png"
    command = [sys.executable, "-m", "tests.report_browser"]
    made = subprocess.run([*command, str(page), "--screenshot", str(screenshot), "--width", "800", "--max-height", "1200"],
                          cwd=REPO, capture_output=True, text=True)
    assert made.returncode == 0, made.stdout + made.stderr
    assert "(800x1200 of a page 3000 tall)" in made.stdout
    with Image.open(screenshot) as shot:
        assert shot.size == (800, 1200)

    missing = subprocess.run([*command, str(tmp_path / "absent.html")], cwd=REPO, capture_output=True, text=True)
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0 and "absent.html: no such file" in missing.stderr


def test_report_from_real_time_visualize_and_sobel_outputs_loads_cleanly(tmp_path: Path) -> None:
    """The real time, visualize, sobel and report commands on tiny nets; the other stages' files made up."""
    work = stage_workdir(caffe_env.import_caffe(threads=1), tmp_path / "work")
    upstream = upstream_reports(work / "reports")
    cam = cam_reports(work / "reports")["cam"]
    for model in MODEL_KINDS:
        common = ["--params", "params.yaml", "--model", model, "--nets", f"nets/{model}", "--weights", f"nets/{model}/final.caffemodel"]
        run_caffepipe("time", *common, "--out", f"reports/time/{model}", "--threads", "1", cwd=work)
        run_caffepipe("visualize", *common, "--db", "db", "--out", f"reports/visualize/{model}", cwd=work)
    run_caffepipe("sobel", "--params", "params.yaml", "--db", "db", "--out", "reports/sobel", cwd=work)
    run_caffepipe("report", "--params", "params.yaml", "--raw", str(upstream["raw"]), "--bench", str(upstream["bench"]),
                  "--train", str(upstream["train"]), "--eval", str(upstream["eval"]), "--analysis", str(upstream["analysis"]),
                  "--analysis-metrics", str(upstream["analysis_metrics"]),
                  "--time", "reports/time", "--visualize", "reports/visualize", "--sobel", "reports/sobel",
                  "--finetune", str(upstream["finetune"]), "--cam", str(cam), "--out", "reports/index.html", cwd=work)

    screenshot = tmp_path / "screenshot.png"
    result = check_page(work / "reports/index.html", screenshot=screenshot, follow_toc_links=True)
    assert result.ok, result.describe()
    # the first screen (1000 CSS pixels) opens with the summary: every model's accuracy, the read ratio, and
    # three findings
    assert result.summary_top is not None and result.summary_top < 300
    for text in ("test accuracy", "95% interval", "lenet", "mlp", "LMDB over JPEG files", "Worth looking at"):
        assert text in result.summary_text, text
    # every contents entry, scrolled to, is marked as the reader's place, with the contents still on screen;
    # a sub-section marks its section too
    assert {"summary", "data", "training", "analysis", "analysis-which", "run"} <= set(result.toc_current)
    assert result.toc_misses == []
    assert result.toc_current["analysis-which"] == ["analysis", "analysis-which"]
    assert result.toc_current["training"] == ["training"]
    # data grid, read benchmark, training curves, 2 analysis figures, 2 layer charts, Sobel,
    # lenet: filters + conv1 pool1 conv2 pool2, mlp: filters + ip1 ip2, fine-tuning, the zoo's error curves
    # (neither model has class activation maps)
    assert len(result.images) == 8 + 5 + 3 + 1 + 1
    assert result.title == "caffepipe report"
    with Image.open(screenshot) as shot:
        assert shot.size == (1280, result.page_height) and result.page_height > 4000

# The report of a tiny real run, by every stage under Snakemake, is opened in Chromium by
# tests/integration/test_orchestrators.py (one pipeline run serves both checks).


def test_the_readme_screenshots_come_from_one_command(tmp_path: Path) -> None:
    """`python -m tests.report_screenshots` photographs a page that passes the browser check."""
    from caffepipe.report import report
    from tests.stage_outputs import report_argv, report_inputs

    inputs = report_inputs(tmp_path / "work")
    report.main(report_argv(inputs))
    shots = tmp_path / "shots"
    made = subprocess.run([sys.executable, "-m", "tests.report_screenshots", str(inputs["out"]), "--out", str(shots)],
                          cwd=REPO, capture_output=True, text=True)
    assert made.returncode == 0, made.stdout + made.stderr
    sizes = {}
    for name in ("report-top.png", "report-cnn-vs-mlp.png", "report-overview.png"):
        with Image.open(shots / name) as shot:
            sizes[name] = shot.size
    assert sizes["report-top.png"] == (1280, 1000)
    assert sizes["report-overview.png"][0] == 160 and sizes["report-overview.png"][1] > 500
    assert 0 < sizes["report-cnn-vs-mlp.png"][1] < 2000

    broken = tmp_path / "broken.html"
    broken.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>b</title>'
                      '</head><body><img src="missing.png" alt="missing"></body></html>')
    refused = subprocess.run([sys.executable, "-m", "tests.report_screenshots", str(broken), "--out", str(tmp_path / "no")],
                             cwd=REPO, capture_output=True, text=True)
    assert refused.returncode == 2 and "does not pass the browser check" in refused.stderr
    assert not (tmp_path / "no").exists()
