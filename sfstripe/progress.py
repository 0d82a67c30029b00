"""Progress of a long command: a bar with rate and ETA on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO

BAR_WIDTH = 30


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class ProgressDisplay:
    """Shows `done` of `total` with the rate since the start and the time left.

    On a terminal one line is redrawn at most every 0.2 s; otherwise (a pipe, a log file) a
    plain line is written at most every `plain_every_s`. Nothing goes to stdout, which is kept
    for the command's result.
    """

    def __init__(
        self,
        label: str,
        *,
        out: TextIO | None = None,
        tty: bool | None = None,
        plain_every_s: float = 5.0,
        clock: object = time.monotonic,
    ) -> None:
        self._label = label
        self._out = out if out is not None else sys.stderr
        self._tty = self._out.isatty() if tty is None else tty
        self._every = 0.2 if self._tty else plain_every_s
        self._clock = clock if callable(clock) else time.monotonic
        self._started = self._clock()
        self._shown_at: float | None = None
        self._last = ""

    def line(self, done: int, total: int) -> str:
        elapsed = self._clock() - self._started
        rate = done / elapsed if elapsed > 0 else 0.0
        left = (total - done) / rate if rate > 0 and total >= done else None
        eta = _duration(left) if left is not None else "?"
        share = done / total if total else 1.0
        if self._tty:
            filled = int(BAR_WIDTH * min(1.0, share))
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            return (
                f"{self._label} [{bar}] {share:4.0%} {done:,}/{total:,}"
                f" {rate:,.0f} events/s ETA {eta}"
            )
        return f"{self._label}: {done}/{total} events ({share:.0%}), {rate:.0f} events/s, ETA {eta}"

    def update(self, done: int, total: int, *, force: bool = False) -> None:
        now = self._clock()
        if not force and self._shown_at is not None and now - self._shown_at < self._every:
            return
        self._shown_at = now
        text = self.line(done, total)
        if self._tty:
            padding = " " * max(0, len(self._last) - len(text))
            self._out.write(f"\r{text}{padding}")
        else:
            self._out.write(text + "\n")
        self._last = text
        self._out.flush()

    def finish(self, done: int, total: int) -> None:
        self.update(done, total, force=True)
        if self._tty:
            self._out.write("\n")
            self._out.flush()
