"""Runs named components; one that crashes is logged, counted and restarted with backoff."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

import anyio
import structlog

from metrics.instruments import COMPONENT_RESTARTS

log = structlog.get_logger(__name__)

Component = Callable[[], Awaitable[None]]


async def supervise(
    name: str,
    component: Component,
    *,
    first_delay: float = 0.5,
    max_delay: float = 30.0,
    healthy_after: float = 60.0,
) -> None:
    """Run `component` until it returns; restart it after each crash.

    The delay doubles per consecutive crash (with jitter, so that restarts of several components
    do not align) and resets once a run lasted `healthy_after` seconds.
    """
    delay = first_delay
    while True:
        started = anyio.current_time()
        try:
            await component()
            return
        except Exception:
            COMPONENT_RESTARTS.labels(name).inc()
            if anyio.current_time() - started >= healthy_after:
                delay = first_delay
            log.exception("component_crashed", component=name, restart_in_s=round(delay, 2))
            await anyio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, max_delay)
