"""Replay progress: a bar with rate and ETA on a terminal, plain lines otherwise."""

from __future__ import annotations

import io

from sfstripe.progress import ProgressDisplay


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_terminal_bar_redraws_one_line() -> None:
    out, clock = io.StringIO(), Clock()
    display = ProgressDisplay("replay", out=out, tty=True, clock=clock)
    clock.now += 10
    display.update(500, 1000)
    clock.now += 0.05
    display.update(600, 1000)  # too soon: not drawn
    clock.now += 10
    display.finish(1000, 1000)
    text = out.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n")
    first = text.split("\r")[1]
    assert "[###############---------------]" in first
    assert "50%" in first and "500/1,000" in first and "50 events/s" in first
    assert "ETA 0:00:10" in first
    assert "100%" in text.split("\r")[2]


def test_plain_lines_off_a_terminal() -> None:
    out, clock = io.StringIO(), Clock()
    display = ProgressDisplay("replay", out=out, tty=False, clock=clock, plain_every_s=5)
    clock.now += 2
    display.update(200, 1000)
    clock.now += 1
    display.update(300, 1000)  # within 5 s of the last line
    clock.now += 5
    display.update(800, 1000)
    lines = out.getvalue().splitlines()
    assert lines == [
        "replay: 200/1000 events (20%), 100 events/s, ETA 0:00:08",
        "replay: 800/1000 events (80%), 100 events/s, ETA 0:00:02",
    ]
    assert "\r" not in out.getvalue()
