"""The README's screenshots of the report, from a full default run's reports/index.html.

    .venv/bin/python -m tests.report_screenshots reports/index.html --out reports/screenshots

Writes three PNGs, the names the README shows:
- report-top.png: the first screen a reader sees (the summary and the table of contents), 1280x1000 CSS pixels;
- report-cnn-vs-mlp.png: the error analyses' "CNN against MLP" sub-section (#analysis-comparison), whole;
- report-overview.png: the whole page at one-eighth scale, captured in slices of the page so a tall page does
  not need one huge screenshot.

The page is checked first, as tests/report_browser.py checks it (every image loads, no console error, the table
of contents follows scrolling); a page that fails is not photographed. Chromium is Debian's (/usr/bin/chromium),
driven by Playwright, at a device scale of 1 so the pictures are the same size on every machine.
"""
from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from PIL import Image
from playwright.sync_api import Error as PlaywrightError, Page, sync_playwright

from caffepipe.core.atomic import write_bytes_atomic
from caffepipe.core.errors import CaffepipeError
from tests.report_browser import CHROMIUM, CHROMIUM_ARGS, VIEWPORT_HEIGHT, check_page

WIDTH = 1280
OVERVIEW_SCALE = 8
SLICE = 4000                 # CSS pixels of the page per overview slice
SUB_SECTION = "analysis-comparison"


def save_png(image: Image.Image | bytes, path: Path) -> None:
    if isinstance(image, Image.Image):
        buffer = io.BytesIO()
        image.save(buffer, format="png", optimize=True)
        image = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, image)


def overview(page: Page, height: int) -> Image.Image:
    """The whole page shrunk OVERVIEW_SCALE times, pasted together from slices."""
    whole = Image.new("RGB", (WIDTH // OVERVIEW_SCALE, -(-height // OVERVIEW_SCALE)), "white")
    for top in range(0, height, SLICE):
        shot = page.screenshot(full_page=True, clip={"x": 0, "y": top, "width": WIDTH, "height": min(SLICE, height - top)})
        with Image.open(io.BytesIO(shot)) as part:
            small = part.convert("RGB").resize((WIDTH // OVERVIEW_SCALE, max(1, part.height // OVERVIEW_SCALE)),
                                               Image.Resampling.LANCZOS)
            whole.paste(small, (0, top // OVERVIEW_SCALE))
    return whole


def take_screenshots(html: Path, out: Path) -> list[Path]:
    result = check_page(html, follow_toc_links=True)
    if not result.ok:
        raise CaffepipeError(f"the page does not pass the browser check: {result.describe().splitlines()[0]} "
                             f"(run `python -m tests.report_browser {html} --follow-toc`)")
    written = [out / "report-top.png", out / "report-cnn-vs-mlp.png", out / "report-overview.png"]
    with sync_playwright() as playwright:
        with playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS) as browser:
            page = browser.new_page(viewport={"width": WIDTH, "height": VIEWPORT_HEIGHT}, device_scale_factor=1)
            page.goto(html.resolve().as_uri(), wait_until="load")
            save_png(page.screenshot(), written[0])
            section = page.locator(f"#{SUB_SECTION}")
            if section.count() == 0:
                raise CaffepipeError(f"{html} has no #{SUB_SECTION} sub-section (a report of one model?)")
            save_png(section.screenshot(), written[1])
            save_png(overview(page, page.evaluate("document.documentElement.scrollHeight")), written[2])
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.report_screenshots", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("html", type=Path, help="the report (reports/index.html of a full default run)")
    parser.add_argument("--out", type=Path, default=Path("reports/screenshots"), help="folder (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        written = take_screenshots(args.html, args.out)
    except (CaffepipeError, PlaywrightError) as error:
        print(f"report_screenshots: error: {str(error).strip().splitlines()[0]}", file=sys.stderr)
        return 2
    for path in written:
        with Image.open(path) as image:
            print(f"{path} ({image.width}x{image.height})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
