"""Open an HTML file in headless Chromium, as a reader would, and report what went wrong; take a screenshot.

    python -m tests.report_browser reports/index.html --screenshot reports/screenshots/x.png [--max-height 4000]

Playwright drives Debian's Chromium (/usr/bin/chromium, envs/apt-packages.txt) rather than a browser of its
own, which it could not download here. The page is loaded from disk (file://); every <img> must have decoded
(naturalWidth > 0), and every console error, uncaught exception and failed request is collected. The page is read as soon as its load event
fires. With follow_toc (--follow-toc), the reader's path is walked too: what the first screen shows (the top
of the #summary section must be in it), then each table-of-contents target scrolled into view, recording which
contents links the page's script marks as current and where the contents sit (sticky: still on screen). With
--screenshot, the whole page (or its top --max-height CSS pixels) is captured at a fixed width. Exit status 1
when an image did not load, the console shows an error, or (with --follow-toc) the contents do not follow;
2 when the page could not be checked at all.

tests/integration/test_report_browser.py and test_orchestrators.py use check_page(); the README's screenshots
of the report come from the command above.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import ConsoleMessage, Error as PlaywrightError, Page, Request, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from caffepipe.core.atomic import write_bytes_atomic
from caffepipe.core.errors import CaffepipeError

CHROMIUM = Path("/usr/bin/chromium")
# Playwright adds most of these itself; they are spelt out so the check does not depend on its defaults.
# --no-sandbox: Chromium's sandbox refuses to run as root. The background-networking flags keep Chromium
# from calling hosts it cannot reach here (updates, sync, field trials).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
VIEWPORT_HEIGHT = 1000

# How long the table of contents may take to mark a section after a scroll (IntersectionObserver runs async).
TOC_WAIT_MS = 3000
TOC_TARGETS_SCRIPT = "Array.from(document.querySelectorAll('nav.toc a')).map(a => a.getAttribute('href').slice(1))"
TOC_CURRENT_SCRIPT = "Array.from(document.querySelectorAll('nav.toc a.current')).map(a => a.getAttribute('href').slice(1))"
FIRST_SCREEN_SCRIPT = """() => { const s = document.getElementById('summary');
    return s ? {top: s.getBoundingClientRect().top, text: s.innerText} : {top: null, text: ''}; }"""
TOC_ON_SCREEN_SCRIPT = """() => { const r = document.querySelector('nav.toc').getBoundingClientRect();
    return r.bottom > 0 && r.top < window.innerHeight; }"""

IMAGES_SCRIPT = """Array.from(document.images).map(img => ({
    src: img.currentSrc.slice(0, 60), alt: img.alt, complete: img.complete,
    natural_width: img.naturalWidth, natural_height: img.naturalHeight}))"""


@dataclass(frozen=True)
class ImageState:
    src: str                 # the first characters of the URL
    alt: str
    complete: bool
    natural_width: int
    natural_height: int

    @property
    def loaded(self) -> bool:
        return self.complete and self.natural_width > 0 and self.natural_height > 0


@dataclass
class PageCheck:
    url: str
    title: str = ""
    images: list[ImageState] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_height: int = 0
    # with follow_toc: the #summary section's top at load (CSS pixels; None: no such section) and its text;
    # per contents target, the targets marked current once it was scrolled into view, and whether the
    # contents were still on screen then
    summary_top: float | None = None
    summary_text: str = ""
    toc_current: dict[str, list[str]] = field(default_factory=dict)
    toc_on_screen: dict[str, bool] = field(default_factory=dict)

    @property
    def toc_misses(self) -> list[str]:
        """Contents targets that, scrolled into view, were not marked current or left the contents off screen."""
        return [target for target, current in self.toc_current.items()
                if target not in current or not self.toc_on_screen.get(target)]

    @property
    def broken_images(self) -> list[ImageState]:
        return [image for image in self.images if not image.loaded]

    @property
    def ok(self) -> bool:
        return not self.broken_images and not self.console_errors and not self.toc_misses

    def describe(self) -> str:
        lines = [f"{self.url}: {len(self.images)} images, {len(self.broken_images)} not loaded, "
                 f"{len(self.console_errors)} console errors"]
        lines += [f"  image not loaded: {image.alt or image.src}" for image in self.broken_images]
        lines += [f"  console error: {message}" for message in self.console_errors]
        if self.toc_current:
            lines.append(f"  summary at y={self.summary_top} on load; contents followed {len(self.toc_current) - len(self.toc_misses)}"
                         f" of {len(self.toc_current)} targets")
        lines += [f"  contents did not follow to #{target} (marked: {', '.join(self.toc_current[target]) or 'nothing'})"
                  for target in self.toc_misses]
        return "\n".join(lines)


def collect_errors(page: Page) -> list[str]:
    """A list that fills, while the page loads, with console errors, uncaught exceptions and failed requests."""
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "assert"):
            errors.append(message.text)

    def on_request_failed(request: Request) -> None:
        errors.append(f"{request.url}: {request.failure}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(f"uncaught {error.name}: {error.message}"))
    page.on("requestfailed", on_request_failed)
    return errors


def follow_toc(page: Page, result: "PageCheck") -> None:
    """Record the first screen, then scroll each contents target into view and record what the contents mark."""
    first = page.evaluate(FIRST_SCREEN_SCRIPT)
    result.summary_top, result.summary_text = first["top"], first["text"]
    for target in page.evaluate(TOC_TARGETS_SCRIPT):
        page.evaluate("id => document.getElementById(id).scrollIntoView()", target)
        try:
            page.wait_for_function("id => document.querySelector(`nav.toc a.current[href='#${id}']`) !== null",
                                   arg=target, timeout=TOC_WAIT_MS)
        except PlaywrightTimeout:
            pass                     # recorded below as not marked
        result.toc_current[target] = page.evaluate(TOC_CURRENT_SCRIPT)
        result.toc_on_screen[target] = page.evaluate(TOC_ON_SCREEN_SCRIPT)
    page.evaluate("window.scrollTo(0, 0)")


def take_screenshot(page: Page, path: Path, width: int, height: int) -> None:
    png = page.screenshot(full_page=True, clip={"x": 0, "y": 0, "width": width, "height": height})
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, png)


def check_page(html: str | os.PathLike, screenshot: str | os.PathLike | None = None, width: int = 1280,
               max_height: int | None = None, follow_toc_links: bool = False) -> PageCheck:
    """Load the HTML file in a fresh headless Chromium; optionally walk its table of contents (follow_toc) and
    write a PNG screenshot of the whole page (or of its top max_height CSS pixels), `width` CSS pixels wide."""
    path = Path(html).resolve()
    if not path.is_file():
        raise CaffepipeError(f"{path}: no such file")
    if not CHROMIUM.is_file():
        raise CaffepipeError(f"{CHROMIUM} not found; install Debian's `chromium` package (envs/setup.sh does)")
    with sync_playwright() as playwright:
        with playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS) as browser:
            page = browser.new_page(viewport={"width": width, "height": VIEWPORT_HEIGHT}, device_scale_factor=1)
            errors = collect_errors(page)
            page.goto(path.as_uri(), wait_until="load")
            images = [ImageState(**image) for image in page.evaluate(IMAGES_SCRIPT)]
            height = page.evaluate("document.documentElement.scrollHeight")
            result = PageCheck(url=page.url, title=page.title(), images=images, console_errors=errors, page_height=height)
            if follow_toc_links:
                follow_toc(page, result)
            if screenshot is not None:
                take_screenshot(page, Path(screenshot), width, min(height, max_height or height))
            return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.report_browser", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("html", type=Path, help="the HTML file to open (reports/index.html)")
    parser.add_argument("--screenshot", type=Path, help="write a full-page PNG screenshot here")
    parser.add_argument("--width", type=int, default=1280, help="viewport width in CSS pixels (default: %(default)s)")
    parser.add_argument("--follow-toc", action="store_true",
                        help="also check that the summary opens the page and the table of contents follows scrolling")
    parser.add_argument("--max-height", type=int, default=None,
                        help="capture only the top of the page, this many CSS pixels (default: the whole page)")
    args = parser.parse_args(argv)
    try:
        result = check_page(args.html, args.screenshot, args.width, args.max_height, args.follow_toc)
    except (CaffepipeError, PlaywrightError) as error:
        first_line = str(error).strip().splitlines()[0]
        print(f"report_browser: error: {first_line}", file=sys.stderr)
        return 2
    print(result.describe())
    if args.screenshot:
        height = min(result.page_height, args.max_height or result.page_height)
        print(f"screenshot: {args.screenshot} ({args.width}x{height} of a page {result.page_height} tall)")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
