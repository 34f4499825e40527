"""Progress for long work: a live bar on a terminal, plain log lines elsewhere (CI, orchestrator logs).

    with Progress(total=10000, desc="train lenet", unit="it") as progress:
        progress.update(to=500, loss=0.31)

On a TTY it draws a tqdm bar with rate and ETA; otherwise it logs one line at most every `interval_s`
seconds and at the end: "train lenet: 500/10000 it (5.0%), loss=0.31, 30.1 it/s, ETA 5m15s".
"""
from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

from tqdm import tqdm

log = logging.getLogger(__name__)


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def progress_line(desc: str, done: int, total: int, unit: str, rate: float, postfix: dict[str, Any]) -> str:
    share = 100.0 * done / total if total else 100.0
    extras = "".join(f", {key}={value:.4g}" if isinstance(value, float) else f", {key}={value}" for key, value in postfix.items())
    eta = format_duration((total - done) / rate) if rate > 0 and total else "?"
    return f"{desc}: {done}/{total} {unit} ({share:.1f}%){extras}, {rate:.1f} {unit}/s, ETA {eta}"


class Progress:
    def __init__(self, total: int, desc: str, unit: str = "it", initial: int = 0,
                 stream: TextIO | None = None, interval_s: float = 10.0) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.done = self._start_done = initial
        self.interval_s = interval_s
        self.stream = stream if stream is not None else sys.stderr
        self.postfix: dict[str, Any] = {}
        self._started = self._last_line = time.monotonic()
        self._bar = None
        if self.stream.isatty():
            self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, file=self.stream, dynamic_ncols=True)

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self._started
        return (self.done - self._start_done) / elapsed if elapsed > 0 else 0.0

    def update(self, to: int | None = None, step: int = 0, **postfix: Any) -> None:
        new_done = to if to is not None else self.done + step
        self.postfix.update(postfix)
        if self._bar is not None:
            self._bar.update(new_done - self.done)
            if postfix:
                self._bar.set_postfix(self.postfix, refresh=False)
        self.done = new_done
        now = time.monotonic()
        if self._bar is None and now - self._last_line >= self.interval_s:
            self._last_line = now
            log.info(progress_line(self.desc, self.done, self.total, self.unit, self.rate, self.postfix))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        log.info(progress_line(self.desc, self.done, self.total, self.unit, self.rate, self.postfix))

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
