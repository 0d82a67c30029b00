"""Replay: apply handlers again to logged events of an offset range.

Checkpoints are ignored and never written (so they never move backwards); order per lane
(handler and customer) is kept, and lanes run side by side up to `concurrency`. The range is
read a page at a time (the next page is read while the current one is applied), so memory stays
flat whatever its size. A retryable failure is retried in place with backoff; a lane that still
fails is left alone for the rest of the replay (order matters) and reported in the summary.

A replay can be cancelled (`cancel`): it stops at a safe point, between handler calls, never in
the middle of one; what it did not apply is counted in `not_applied` and `cancelled` is true.

Replays never run alongside the dispatcher on the same lane: either the caller holds the
leader lock (no dispatcher runs anywhere) or the leader runs the replay with `guard` set to its
dispatcher, which keeps itself off each lane while the replay applies its events.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

import anyio
import asyncpg
import msgspec
import structlog

from handlers.api import Registered
from handlers.backoff import retry_delay
from handlers.clients import HandlerClients
from handlers.invoke import HandlerMetrics, call_handler
from handlers.links import joining_marker
from state.log import EventLog
from state.log_ranges import LogRanges
from state.records import LoggedEvent

log = structlog.get_logger(__name__)

Progress = Callable[[int, int], Awaitable[None]]


class ReplayError(Exception):
    """The replay cannot start (an unknown handler, an empty range)."""


class LaneGuard(Protocol):
    def exclusive(self, handler: str, customer: str) -> AbstractAsyncContextManager[None]: ...


class ReplayRange(msgspec.Struct, frozen=True, kw_only=True):
    from_offset: int
    to_offset: int | None = None
    customer: str | None = None
    handler: str | None = None
    dry_run: bool = False


class FailedLane(msgspec.Struct, frozen=True):
    handler: str
    customer: str
    seq: int
    offset: int
    error: str


class ReplaySummary(msgspec.Struct, kw_only=True):
    from_offset: int
    to_offset: int
    customer: str | None
    handlers: list[str]
    dry_run: bool
    events: int = 0
    applied: int = 0
    not_wanted: int = 0
    not_applied: int = 0
    failed_lanes: list[FailedLane] = msgspec.field(default_factory=list)
    cancelled: bool = False
    seconds: float = 0.0
    events_per_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = msgspec.to_builtins(self)
        return result


class _NoGuard:
    @asynccontextmanager
    async def exclusive(self, handler: str, customer: str) -> AsyncIterator[None]:
        yield


class ReplayOptions(msgspec.Struct, frozen=True, kw_only=True):
    concurrency: int = 16
    page_size: int = 2_000
    max_attempts: int = 8
    retry_first_s: float = 1.0
    retry_max_s: float = 300.0


def select_handlers(handlers: Sequence[Registered], name: str | None) -> list[Registered]:
    if name is None:
        return list(handlers)
    chosen = [h for h in handlers if h.name == name]
    if not chosen:
        known = ", ".join(h.name for h in handlers) or "none"
        raise ReplayError(f"no handler named {name!r} (registered: {known})")
    return chosen


async def replay_range(
    pool: asyncpg.Pool,
    handlers: Sequence[Registered],
    clients: HandlerClients,
    selection: ReplayRange,
    *,
    options: ReplayOptions | None = None,
    guard: LaneGuard | None = None,
    progress: Progress | None = None,
    cancel: anyio.Event | None = None,
) -> ReplaySummary:
    """Apply `handlers` (those `selection.handler` names) to the selected events again.

    Once `cancel` is set, no handler call starts: the calls running finish and the summary
    says `cancelled`, with what was applied so far."""
    options = options or ReplayOptions()
    cancel = cancel or anyio.Event()
    chosen = select_handlers(handlers, selection.handler)
    if selection.dry_run:
        clients = clients.shadowed()
    event_log, ranges = EventLog(pool), LogRanges(pool)
    head, _ = await event_log.summary()
    to_offset = min(head, selection.to_offset) if selection.to_offset is not None else head
    after = selection.from_offset - 1
    if selection.customer is not None:
        total = await ranges.count_customer(selection.customer, selection.from_offset, to_offset)
    else:
        total = max(0, to_offset - after)
    summary = ReplaySummary(
        from_offset=selection.from_offset,
        to_offset=to_offset,
        customer=selection.customer,
        handlers=[h.name for h in chosen],
        dry_run=selection.dry_run,
    )
    run = _Replay(chosen, clients, options, guard or _NoGuard(), summary, cancel=cancel)
    log.info(
        "replay_started",
        from_offset=selection.from_offset,
        to_offset=to_offset,
        customer=selection.customer,
        handlers=summary.handlers,
        dry_run=selection.dry_run,
        events=total,
    )

    async def read(after_offset: int) -> list[LoggedEvent]:
        if selection.customer is None:
            return await event_log.read(after_offset, options.page_size, to_offset)
        return await ranges.customer_between(
            selection.customer, after_offset, to_offset, options.page_size
        )

    started = time.perf_counter()
    page = await read(after) if after < to_offset else []
    while page and not cancel.is_set():
        next_page: list[LoggedEvent] = []

        async def read_next(after_offset: int = page[-1].offset) -> None:
            nonlocal next_page
            if after_offset < to_offset:
                next_page = await read(after_offset)

        async with anyio.create_task_group() as tg:
            tg.start_soon(read_next)
            await run.apply_page(page)
        summary.events += len(page)
        if progress is not None:
            await progress(summary.events, total)
        page = next_page
    summary.cancelled = cancel.is_set()
    summary.seconds = round(time.perf_counter() - started, 3)
    summary.events_per_s = round(summary.events / summary.seconds, 1) if summary.seconds else 0.0
    log.info(
        "replay_finished",
        events=summary.events,
        applied=summary.applied,
        failed_lanes=len(summary.failed_lanes),
        cancelled=summary.cancelled,
        seconds=summary.seconds,
    )
    return summary


class _Replay:
    def __init__(
        self,
        handlers: list[Registered],
        clients: HandlerClients,
        options: ReplayOptions,
        guard: LaneGuard,
        summary: ReplaySummary,
        *,
        cancel: anyio.Event,
    ) -> None:
        self._handlers = handlers
        self._cancel = cancel
        self._metrics = {h.name: HandlerMetrics(h.name) for h in handlers}
        self._clients = clients
        self._options = options
        self._guard = guard
        self._summary = summary
        self._failed: set[tuple[str, str]] = set()

    async def apply_page(self, page: list[LoggedEvent]) -> None:
        """Apply one page; at a joining link marker, everything before it (the alias stream
        included) is applied before anything after it (the link rule)."""
        start = 0
        for index, event in enumerate(page):
            if index > start and joining_marker(event) is not None:
                await self._apply_segment(page[start:index])
                start = index
        await self._apply_segment(page[start:])

    async def _apply_segment(self, page: list[LoggedEvent]) -> None:
        runs: dict[tuple[str, str], tuple[Registered, list[LoggedEvent]]] = {}
        for handler in self._handlers:
            wants = handler.wants
            for event in page:
                marker = joining_marker(event)
                if marker is not None and (handler.name, marker.alias) in self._failed:
                    self._fail(handler, event, "the alias stream it joins failed in this replay", 0)
                if not wants(event):
                    self._summary.not_wanted += 1
                    continue
                key = (handler.name, event.customer)
                if key in self._failed:
                    self._summary.not_applied += 1
                    continue
                entry = runs.get(key)
                if entry is None:
                    runs[key] = (handler, [event])
                else:
                    entry[1].append(event)
        queue = deque(runs.values())
        async with anyio.create_task_group() as tg:
            for _ in range(min(self._options.concurrency, len(queue))):
                tg.start_soon(self._drain, queue)

    async def _drain(self, queue: deque[tuple[Registered, list[LoggedEvent]]]) -> None:
        while queue:
            handler, events = queue.popleft()
            if self._cancel.is_set():
                self._summary.not_applied += len(events)
                continue
            async with self._guard.exclusive(handler.name, events[0].customer):
                await self._apply_lane(handler, events)

    def _fail(self, handler: Registered, head: LoggedEvent, reason: str, left: int) -> None:
        """Leave the lane alone for the rest of the replay: order matters."""
        self._failed.add((handler.name, head.customer))
        self._summary.failed_lanes.append(
            FailedLane(handler.name, head.customer, head.seq, head.offset, reason)
        )
        self._summary.not_applied += left
        log.error(
            "replay_lane_failed",
            handler=handler.name,
            customer=head.customer,
            seq=head.seq,
            error=reason,
        )

    async def _apply_lane(self, handler: Registered, events: list[LoggedEvent]) -> None:
        index = 0
        metrics = self._metrics[handler.name]
        while index < len(events):
            batch = events[index : index + handler.max_batch]
            attempts = 0
            while True:
                if self._cancel.is_set():  # a safe point: between two handler calls
                    self._summary.not_applied += len(events) - index
                    return
                verdict = await call_handler(handler, batch, self._clients, metrics, replay=True)
                if verdict is None:
                    break
                attempts += 1
                if not verdict.retryable or attempts >= self._options.max_attempts:
                    self._fail(handler, batch[0], verdict.reason, len(events) - index)
                    return
                delay = retry_delay(
                    attempts,
                    first=self._options.retry_first_s,
                    maximum=self._options.retry_max_s,
                    at_least=verdict.retry_after,
                )
                with anyio.move_on_after(delay):
                    await self._cancel.wait()  # a cancel need not wait for the retry
            self._summary.applied += len(batch)
            index += len(batch)
