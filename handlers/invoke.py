"""One handler call: its context, its metrics, and the verdict on its failure."""

from __future__ import annotations

import time
from collections.abc import Sequence

from handlers.api import HandlerContext, Registered
from handlers.clients import HandlerClients
from handlers.errors import Verdict, classify
from metrics.instruments import HANDLER_EVENTS, HANDLER_SECONDS, HANDLER_START_DELAY
from state.records import LoggedEvent


class HandlerMetrics:
    """The handler's labelled metrics, looked up once (a label look-up per event costs)."""

    __slots__ = ("ok", "permanent", "retryable", "seconds", "start_delay")

    def __init__(self, handler: str) -> None:
        self.seconds = HANDLER_SECONDS.labels(handler)
        self.start_delay = HANDLER_START_DELAY.labels(handler)
        self.ok = HANDLER_EVENTS.labels(handler, "ok")
        self.retryable = HANDLER_EVENTS.labels(handler, "retryable_error")
        self.permanent = HANDLER_EVENTS.labels(handler, "permanent_error")


async def call_handler(
    handler: Registered,
    events: Sequence[LoggedEvent],
    clients: HandlerClients,
    metrics: HandlerMetrics,
    *,
    replay: bool = False,
) -> Verdict | None:
    """Apply `events` (one, or a batch of one customer's); None on success, else the verdict.

    Cancellation (a shutdown past its grace) is not a failure: it propagates, nothing is
    recorded, and the event is applied again after the restart.
    """
    if not replay:
        now = time.time()
        for event in events:
            metrics.start_delay.observe(max(0.0, now - event.ingested_at.timestamp()))
    ctx = HandlerContext(handler.name, events, clients, replay=replay)
    started = time.perf_counter()
    try:
        await handler.apply(events, ctx)
    except Exception as exc:
        metrics.seconds.observe(time.perf_counter() - started)
        verdict = classify(exc)
        (metrics.retryable if verdict.retryable else metrics.permanent).inc(len(events))
        ctx.log.warning("handler_failed", retryable=verdict.retryable, error=verdict.reason)
        return verdict
    metrics.seconds.observe(time.perf_counter() - started)
    metrics.ok.inc(len(events))
    return None
