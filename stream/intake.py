"""Group commit in front of the log: sources hand over batches and wait for their commit.

One writer task drains a bounded queue, merging whatever is waiting into one transaction, so
throughput does not depend on one transaction per source call. The bound is the backpressure:
when the writer falls behind, `submit` waits and the sources stop pulling. While the database is
away the writer holds its batch and retries it once the database is back; nothing is dropped and
no position moves without its events.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import anyio
import asyncpg
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from metrics.instruments import (
    APPEND_FAILURES,
    APPEND_SECONDS,
    EVENTS_APPENDED,
    EVENTS_DUPLICATE,
    EVENTS_REJECTED,
    INGEST_LAG,
    INTAKE_QUEUE_FILL,
    LOG_HEAD,
)
from state.log import EventLog
from state.records import AppendResult, Link, NewEvent, SourcePosition, Stored
from state.watch import CONNECTION_ERRORS, DatabaseWatch

log = structlog.get_logger(__name__)


class IntakeClosed(Exception):
    """The daemon is shutting down: the batch was not taken and its source must not advance."""


@dataclass(eq=False)
class _Request:
    events: Sequence[NewEvent]
    positions: Sequence[SourcePosition]
    links: Sequence[Link]
    done: anyio.Event = field(default_factory=anyio.Event)
    result: AppendResult | None = None
    error: BaseException | None = None


class LogIntake:
    """The one way sources append: bounded, batched, and paused while the database is away."""

    def __init__(
        self,
        event_log: EventLog,
        watch: DatabaseWatch,
        *,
        queue_size: int = 256,
        max_batch_events: int = 2000,
    ) -> None:
        self._log = event_log
        self._watch = watch
        self._max_batch = max_batch_events
        self._queue_size = queue_size
        send, receive = anyio.create_memory_object_stream[_Request](queue_size)
        self._send: MemoryObjectSendStream[_Request] = send
        self._receive: MemoryObjectReceiveStream[_Request] = receive

    async def submit(
        self,
        events: Sequence[NewEvent],
        positions: Sequence[SourcePosition] = (),
        links: Sequence[Link] = (),
    ) -> AppendResult:
        """Return once `events` (and `positions`, `links`) are committed; waits while the
        queue is full."""
        request = _Request(events, positions, links)
        try:
            await self._send.send(request)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            raise IntakeClosed from None
        self._gauge()
        await request.done.wait()
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

    def close(self) -> None:
        """Refuse new batches; `run` returns once everything already queued is committed."""
        self._send.close()

    async def run(self) -> None:
        """Commit queued batches until `close` was called and the queue is empty.

        After a crash the queue stays open, so that the supervisor can run this loop again.
        """
        crashed = False
        try:
            async for first in self._receive:
                await self._commit_with(first)
        except Exception:
            crashed = True
            raise
        finally:
            if not crashed:
                self._receive.close()

    async def _commit_with(self, first: _Request) -> None:
        batch = [first]
        size = len(first.events)
        while size < self._max_batch:
            try:
                request = self._receive.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream):
                break
            batch.append(request)
            size += len(request.events)
        self._gauge()
        try:
            await self._commit(batch)
        finally:
            # Whatever happened, no submitter may wait forever; an unfinished one learns that
            # its batch was not taken (its source position did not move either).
            for request in batch:
                if not request.done.is_set():
                    request.error = IntakeClosed()
                    request.done.set()

    def _gauge(self) -> None:
        INTAKE_QUEUE_FILL.set(self._send.statistics().current_buffer_used / self._queue_size)

    async def _commit(self, batch: list[_Request]) -> None:
        try:
            results = self._split(batch, await self._append_until_stored(*self._merge(batch)))
        except asyncpg.PostgresError:
            # One bad batch must not sink its neighbours: commit each request on its own.
            results = []
            for request in batch:
                try:
                    results.append(await self._append_until_stored(*self._merge([request])))
                except asyncpg.PostgresError:
                    results.append(await self._salvage(request))
        for request, result in zip(batch, results, strict=True):
            request.result = result
            request.done.set()

    @staticmethod
    def _merge(
        batch: list[_Request],
    ) -> tuple[list[NewEvent], list[SourcePosition], list[Link]]:
        return (
            [e for request in batch for e in request.events],
            [p for request in batch for p in request.positions],
            [link for request in batch for link in request.links],
        )

    @staticmethod
    def _split(batch: list[_Request], result: AppendResult) -> list[AppendResult]:
        results = []
        start = 0
        for request in batch:
            end = start + len(request.events)
            results.append(AppendResult(result.outcomes[start:end]))
            start = end
        return results

    async def _salvage(self, request: _Request) -> AppendResult:
        """Store what PostgreSQL takes one event at a time; keep the others as rejected events
        (raw, with the reason), then commit the request's position: no event is lost and the
        source is not stuck re-reading what can never be stored."""
        if request.links:
            await self._append_until_stored([], [], list(request.links))
        outcomes: list[Stored | None] = []
        rejected = []
        for index, event in enumerate(request.events):
            try:
                outcomes += (await self._append_until_stored([event], [], [])).outcomes
            except asyncpg.PostgresError as exc:
                APPEND_FAILURES.labels("rejected").inc()
                EVENTS_REJECTED.labels(event.source).inc()
                log.error(
                    "event_rejected",
                    source=event.source,
                    source_event_id=event.source_event_id,
                    error=repr(exc),
                )
                await self._log.reject(event, repr(exc))
                outcomes.append(None)
                rejected.append(index)
        await self._append_until_stored([], list(request.positions), [])
        return AppendResult(outcomes, rejected)

    async def _append_until_stored(
        self, events: list[NewEvent], positions: list[SourcePosition], links: list[Link]
    ) -> AppendResult:
        while True:
            await self._watch.wait_available()
            started = time.perf_counter()
            try:
                result = await self._log.append(events, positions, links)
            except CONNECTION_ERRORS as exc:
                # Retrying is safe even if the commit went through: the duplicates are no-ops.
                APPEND_FAILURES.labels("database_unavailable").inc()
                self._watch.report_failure(exc)
                continue
            APPEND_SECONDS.observe(time.perf_counter() - started)
            break
        stored = Counter(
            (event.source, event.type)
            for event, outcome in zip(events, result.outcomes, strict=True)
            if outcome is not None
        )
        for (source, type_), count in stored.items():
            EVENTS_APPENDED.labels(source, type_).inc(count)
        duplicates = Counter(
            event.source
            for event, outcome in zip(events, result.outcomes, strict=True)
            if outcome is None
        )
        for source, count in duplicates.items():
            EVENTS_DUPLICATE.labels(source).inc(count)
        committed = datetime.now(UTC)
        lags = {source: INGEST_LAG.labels(source) for source, _ in stored}
        for event, outcome in zip(events, result.outcomes, strict=True):
            if outcome is not None and event.source != "sfstripe":
                lag = (committed - event.occurred_at).total_seconds()
                lags[event.source].observe(max(lag, 0.0))
        if result.stored:
            LOG_HEAD.set(result.stored[-1].offset)
        return result
