"""Waiting for something another process or task will do, with a deadline."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio


async def wait_until(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    """Re-check every 50 ms; fail with TimeoutError when `within` seconds pass first."""
    with anyio.fail_after(within):
        for _ in iter(int, 1):
            if await check():
                return
            await anyio.sleep(0.05)
