"""Where the report's bytes go, and how long it takes to render and to open.

    .venv/bin/python bench/report_size.py --workspace . --repeats 3 --out bench/results/report.md

Run after a pipeline run, in its workspace (the report stage's inputs must be there). Renders the report with
the report stage's own command line (stages.py) in this process, `repeats` times each way, alternating:

- as shipped: figures re-encoded with a 256-colour palette (report/images.py);
- the baseline, in the same invocation: figures embedded as the stages wrote them (the re-encoding off).

For each it records the page's size, split into embedded images and everything else, the largest images with
their section, repeated images (the same data: URI more than once), and the render's median wall time. Then it
opens the shipped page in headless Chromium (tests/report_browser.py's browser) and records the time from
navigation to the load event and to the first paint. Both pages are written to a temporary folder; the
workspace's reports/index.html is not touched. Results are a Markdown table, ratios against the baseline.
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from caffepipe.pipeline.stages import stage  # noqa: E402
from caffepipe.report import report  # noqa: E402

IMAGE = re.compile(r'<img src="(data:image/png;base64,[A-Za-z0-9+/=]+)" alt="([^"]*)"')
SECTION = re.compile(r'<section id="([^"]+)">')


def report_argv(out: Path) -> list[str]:
    """The report stage's arguments, as the orchestrators pass them, with the page written to `out`."""
    words = shlex.split(stage("report").command)[2:]
    words[words.index("--out") + 1] = str(out)
    return words


def render(out: Path, compact: bool) -> float:
    """Render the page once; seconds of wall time."""
    report.compact_png = report_compact if compact else (lambda data: data)
    started = time.perf_counter()
    report.main(report_argv(out))
    return time.perf_counter() - started


report_compact = report.compact_png


def page_images(html: str) -> list[tuple[str, str, int]]:
    """(section id, alt text, bytes in the page) of every embedded image, in page order."""
    sections = [(match.start(), match.group(1)) for match in SECTION.finditer(html)]
    found = []
    for match in IMAGE.finditer(html):
        section = next((name for start, name in reversed(sections) if start < match.start()), "")
        found.append((section, match.group(2), len(match.group(1))))
    return found


def browser_timings(page: Path) -> dict[str, float]:
    """Milliseconds from navigation to the load event and to the first contentful paint, in Chromium."""
    from playwright.sync_api import sync_playwright

    from tests.report_browser import CHROMIUM, CHROMIUM_ARGS, VIEWPORT_HEIGHT

    with sync_playwright() as playwright:
        with playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS) as browser:
            tab = browser.new_page(viewport={"width": 1280, "height": VIEWPORT_HEIGHT})
            tab.goto(page.resolve().as_uri(), wait_until="load")
            return tab.evaluate("""() => {
                const nav = performance.getEntriesByType('navigation')[0];
                const paint = performance.getEntriesByName('first-contentful-paint')[0];
                return {load_ms: nav.loadEventStart, first_paint_ms: paint ? paint.startTime : NaN}; }""")


def measure(workspace: Path, repeats: int) -> dict:
    os.chdir(workspace)
    results: dict = {"shipped": [], "baseline": []}
    with tempfile.TemporaryDirectory() as folder:
        pages = {"shipped": Path(folder) / "shipped.html", "baseline": Path(folder) / "baseline.html"}
        for _ in range(repeats):
            for name in ("baseline", "shipped"):
                results[name].append(render(pages[name], compact=name == "shipped"))
        html = {name: path.read_text() for name, path in pages.items()}
        results["html"] = html
        results["browser"] = browser_timings(pages["shipped"])
    return results


def markdown(results: dict, command: str) -> str:
    lines = ["# The report's size and render time", "",
             f"Command: `{command}` (in the workspace of a pipeline run; each way rendered alternately, median wall time).",
             ""]
    rows = []
    for name in ("baseline", "shipped"):
        html = results["html"][name]
        images = page_images(html)
        image_bytes = sum(size for _section, _alt, size in images)
        repeated = sum(count - 1 for count in Counter(IMAGE.findall(html)).values() if count > 1)
        rows.append((name, len(html.encode()), image_bytes, len(images), repeated, statistics.median(results[name])))
    base = rows[0]
    lines += ["| page | size | embedded images | images | repeated images | render (median) | size against baseline |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for name, size, image_bytes, count, repeated, seconds in rows:
        label = "figures as the stages wrote them (baseline)" if name == "baseline" else "palette-quantised figures (shipped)"
        lines.append(f"| {label} | {size / 1e6:.2f} MB | {image_bytes / 1e6:.2f} MB ({image_bytes / size:.0%}) | {count} "
                     f"| {repeated} | {seconds:.1f} s | {size / base[1]:.2f}× |")
    timings = results["browser"]
    lines += ["", f"Opening the shipped page in headless Chromium (Debian's, 1280×1000): load event after "
              f"{timings['load_ms']:.0f} ms, first contentful paint after {timings['first_paint_ms']:.0f} ms.", "",
              "Largest embedded images (shipped page, base64 bytes):", "", "| section | image | bytes | as written |",
              "|---|---|---:|---:|"]
    written = {alt: size for _section, alt, size in page_images(results["html"]["baseline"])}
    by_section: Counter = Counter()
    for section, alt, size in page_images(results["html"]["shipped"]):
        by_section[section] += size
    for section, alt, size in sorted(page_images(results["html"]["shipped"]), key=lambda item: -item[2])[:12]:
        lines.append(f"| {section} | {alt[:70]} | {size:,} | {written.get(alt, 0):,} |")
    lines += ["", "Embedded image bytes per section (shipped): " +
              ", ".join(f"{section} {size / 1e6:.2f} MB" for section, size in by_section.most_common()), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", type=Path, default=Path("."), help="a pipeline run's folder (default: .)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, help="write the Markdown here (default: print it)")
    args = parser.parse_args(argv)
    out = args.out.resolve() if args.out else None
    command = "python bench/report_size.py " + " ".join(shlex.quote(word) for word in (argv or sys.argv[1:]))
    text = markdown(measure(args.workspace.resolve(), args.repeats), command)
    if out:
        out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
