"""Open an HTML file in headless Chromium, as a reader would, and report what went wrong; take a screenshot.

    python -m caffepipe.browser reports/index.html --screenshot reports/screenshot.png [--max-height 4000]

Chromium (Debian's `chromium` package, envs/apt-packages.txt) is driven over the DevTools protocol on a loopback
port: the page is loaded from disk (file://), then every <img> is checked for having decoded (naturalWidth > 0),
and every console error, uncaught exception and failed resource load is collected. With --screenshot, the whole
page is captured at a fixed width. Exit status 1 when an image did not load or the console shows an error.

The report test (tests/integration/test_report_browser.py) uses check_page(); the README's screenshot of the
report comes from the command above.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from caffepipe.core.errors import CaffepipeError

CHROMIUM = "chromium"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
)
STARTUP_TIMEOUT_S = 30
SETTLE_S = 0.5           # after the load event, for late console messages

IMAGES_SCRIPT = """JSON.stringify(Array.from(document.images).map(img => ({
    src: img.currentSrc.slice(0, 60), alt: img.alt, complete: img.complete,
    naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight})))"""


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

    @property
    def broken_images(self) -> list[ImageState]:
        return [image for image in self.images if not image.loaded]

    @property
    def ok(self) -> bool:
        return not self.broken_images and not self.console_errors

    def describe(self) -> str:
        lines = [f"{self.url}: {len(self.images)} images, {len(self.broken_images)} not loaded, "
                 f"{len(self.console_errors)} console errors"]
        lines += [f"  image not loaded: {image.alt or image.src}" for image in self.broken_images]
        lines += [f"  console error: {message}" for message in self.console_errors]
        return "\n".join(lines)


def chromium_binary() -> str:
    found = shutil.which(CHROMIUM)
    if found is None:
        raise CaffepipeError("chromium not found; install Debian's `chromium` package (envs/setup.sh does)")
    return found


class DevTools:
    """A minimal DevTools-protocol client over one browser websocket, with flat target sessions."""

    def __init__(self, websocket: aiohttp.ClientWebSocketResponse) -> None:
        self.websocket = websocket
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future] = {}
        self.events: list[dict[str, Any]] = []
        self.event_arrived = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.websocket:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if "id" in data and data["id"] in self.pending:
                self.pending.pop(data["id"]).set_result(data)
            elif "method" in data:
                self.events.append(data)
                self.event_arrived.set()

    async def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60) -> dict:
        message_id = next(self.ids)
        future = asyncio.get_running_loop().create_future()
        self.pending[message_id] = future
        payload = {"id": message_id, "method": method, "params": params or {}}
        if session:
            payload["sessionId"] = session
        await self.websocket.send_str(json.dumps(payload))
        reply = await asyncio.wait_for(future, timeout)
        if "error" in reply:
            raise CaffepipeError(f"Chromium DevTools {method} failed: {reply['error'].get('message')}")
        return reply.get("result", {})

    async def wait_for_event(self, method: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event["method"] == method:
                    return event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CaffepipeError(f"Chromium sent no {method} within {timeout:.0f} s")
            self.event_arrived.clear()
            try:
                await asyncio.wait_for(self.event_arrived.wait(), remaining)
            except asyncio.TimeoutError:
                pass


def console_errors(events: list[dict[str, Any]]) -> list[str]:
    """Console errors, uncaught exceptions and failed loads among DevTools events (Runtime and Log domains)."""
    errors = []
    for event in events:
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append(" ".join(str(arg.get("value", arg.get("description", ""))) for arg in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            errors.append(details.get("exception", {}).get("description") or details.get("text", "exception"))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            errors.append(f"{entry.get('text', '')} {entry.get('url', '')}".strip())
    return errors


async def _check(port: int, url: str, screenshot: Path | None, width: int, max_height: int | None,
                 timeout: float) -> PageCheck:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/json/version") as response:
            browser_ws = (await response.json())["webSocketDebuggerUrl"]
        async with http.ws_connect(browser_ws, max_msg_size=0) as websocket:
            tools = DevTools(websocket)
            target = await tools.send("Target.createTarget", {"url": "about:blank"})
            session = (await tools.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}))["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                await tools.send(f"{domain}.enable", session=session)
            await tools.send("Emulation.setDeviceMetricsOverride",
                             {"width": width, "height": 1000, "deviceScaleFactor": 1, "mobile": False}, session=session)
            tools.events.clear()
            navigation = await tools.send("Page.navigate", {"url": url}, session=session)
            if navigation.get("errorText"):
                raise CaffepipeError(f"Chromium could not open {url}: {navigation['errorText']}")
            await tools.wait_for_event("Page.loadEventFired", timeout)
            await asyncio.sleep(SETTLE_S)
            evaluated = await tools.send("Runtime.evaluate", {"expression": IMAGES_SCRIPT, "returnByValue": True}, session=session)
            images = [ImageState(item["src"], item["alt"], item["complete"], item["naturalWidth"], item["naturalHeight"])
                      for item in json.loads(evaluated["result"]["value"])]
            title = (await tools.send("Runtime.evaluate", {"expression": "document.title", "returnByValue": True},
                                      session=session))["result"]["value"]
            metrics = await tools.send("Page.getLayoutMetrics", session=session)
            height = int(metrics["cssContentSize"]["height"])
            if screenshot is not None:
                shot_height = min(height, max_height) if max_height else height
                await tools.send("Emulation.setDeviceMetricsOverride",
                                 {"width": width, "height": shot_height, "deviceScaleFactor": 1, "mobile": False}, session=session)
                clip = {"x": 0, "y": 0, "width": width, "height": shot_height, "scale": 1}
                shot = await tools.send("Page.captureScreenshot", {"format": "png", "clip": clip, "captureBeyondViewport": True},
                                        session=session)
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                screenshot.write_bytes(base64.b64decode(shot["data"]))
            errors = console_errors(tools.events)
            tools.reader.cancel()
            return PageCheck(url=url, title=title, images=images, console_errors=errors, page_height=height)


def _devtools_port(profile: Path, process: subprocess.Popen, stderr_path: Path) -> int:
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if port_file.is_file() and port_file.read_text().strip():
            return int(port_file.read_text().splitlines()[0])
        if process.poll() is not None:
            break
        time.sleep(0.1)
    tail = "\n".join(stderr_path.read_text(errors="replace").splitlines()[-10:])
    raise CaffepipeError(f"headless Chromium did not start its DevTools endpoint:\n{tail}")


def check_page(html: str | os.PathLike, screenshot: str | os.PathLike | None = None, width: int = 1280,
               max_height: int | None = None, timeout: float = 60) -> PageCheck:
    """Load the HTML file in a fresh headless Chromium; optionally write a PNG screenshot of the whole page
    (or of its top max_height CSS pixels), `width` CSS pixels wide."""
    path = Path(html).resolve()
    if not path.is_file():
        raise CaffepipeError(f"{path}: no such file")
    with tempfile.TemporaryDirectory(prefix="caffepipe-chromium-") as scratch:
        profile, stderr_path = Path(scratch) / "profile", Path(scratch) / "chromium.log"
        with stderr_path.open("w") as stderr:
            process = subprocess.Popen([chromium_binary(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                       stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            port = _devtools_port(profile, process, stderr_path)
            return asyncio.run(_check(port, path.as_uri(), Path(screenshot) if screenshot else None, width, max_height, timeout))
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m caffepipe.browser", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("html", type=Path, help="the HTML file to open (reports/index.html)")
    parser.add_argument("--screenshot", type=Path, help="write a full-page PNG screenshot here")
    parser.add_argument("--width", type=int, default=1280, help="viewport width in CSS pixels (default: %(default)s)")
    parser.add_argument("--max-height", type=int, default=None,
                        help="capture only the top of the page, this many CSS pixels (default: the whole page)")
    args = parser.parse_args(argv)
    try:
        result = check_page(args.html, args.screenshot, args.width, args.max_height)
    except CaffepipeError as error:
        print(f"caffepipe.browser: error: {error}", file=sys.stderr)
        return 2
    print(result.describe())
    if args.screenshot:
        height = min(result.page_height, args.max_height) if args.max_height else result.page_height
        print(f"screenshot: {args.screenshot} ({args.width}x{height} of a page {result.page_height} tall)")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
