"""The dispatcher: reads the log in offset order and applies every handler to what it wants,
per lane (handler and customer) strictly in seq order and never two calls at once, with up to
`concurrency` lanes running side by side.

Reading. One reader follows the log (woken by the appends' NOTIFY, and re-reading on a timeout)
and hands each event to its lanes. Memory is bounded: the reader stops when the lanes hold
`buffer_events` events (backpressure), and a lane that is full or not runnable drops what it is
given and reads it back from the log later (see `handlers.lanes`).

Progress. A lane's checkpoint (last seq applied) advances only after success; checkpoints and
each handler's low-water offset are written together every `flush_interval_s` and on shutdown.
A crash loses at most that interval of checkpoints: those events are applied again after the
restart, which handlers tolerate by design (they are idempotent). A restart reads the log from
the lowest low-water offset and skips each lane's events up to its checkpoint.

Failures. A retryable failure schedules a retry (exponential backoff with jitter, persisted);
the lane waits, the others go on. After `max_attempts`, or on a permanent failure, the event
becomes a dead letter and the lane is parked until an operator retries or skips it.

Links. An account-stream event past a joining `sfstripe.link` marker waits until the handler's
lane for the alias stream has applied through the marker's `alias_last_seq`.

Outages. A lost database connection pauses dispatch instead of crashing it (see `pause`): no
lane starts, the handler calls in flight finish, and every database step that failed (a read,
a checkpoint write, a retry schedule, a dead letter) is done again once the database is back
(each is safe to redo). The lanes keep their state in memory; dispatch resumes after the
checkpoints reached meanwhile are written. The leader pauses it the same way while it takes
its lock again on a new session.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TypeVar

import anyio
import anyio.lowlevel
import asyncpg
import msgspec
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from handlers.api import Registered
from handlers.backoff import retry_delay
from handlers.clients import HandlerClients
from handlers.errors import Verdict
from handlers.invoke import HandlerMetrics, call_handler
from handlers.lanes import HandlerLanes, Lane, ReadyLanes
from handlers.links import is_link, joining_marker
from metrics.instruments import (
    DEAD_LETTERS,
    DISPATCH_BUFFER_FILL,
    DISPATCH_PAUSED,
    HANDLER_BACKLOG,
    HANDLER_LOW_WATER,
    HANDLER_RETRIES,
    PARKED_CUSTOMERS,
)
from state.handler_progress import Flush, HandlerProgress
from state.log import EventLog
from state.log_ranges import LogRanges
from state.records import LoggedEvent
from state.wakeup import AppendWakeup
from state.watch import CONNECTION_ERRORS, DatabaseWatch

log = structlog.get_logger(__name__)

T = TypeVar("T")

RUN_EVENTS = 64  # events a lane applies before it lets the next lane have the worker
YIELD_EVERY = 256  # events a worker applies before it lets the reader run
FINAL_FLUSH_S = 1.0
FLUSH_TIMEOUT_S = 10.0
REDO_PAUSE_S = 0.2  # between two tries of a database step, even when the watch says it is up
DATABASE = "database"  # the cause of a pause the dispatcher finds itself (see `pause`)


class _Stopping(Exception):
    """`stop()` came while a lane waited for the database: the lane gives up its turn."""


class DispatchOptions(msgspec.Struct, frozen=True, kw_only=True):
    concurrency: int = 16
    max_attempts: int = 8
    retry_first_s: float = 1.0
    retry_max_s: float = 300.0
    buffer_events: int = 10_000
    lane_events: int = 256
    page_size: int = 1_000
    flush_interval_s: float = 0.2
    reread_s: float = 1.0
    max_lanes: int = 100_000
    start_offsets: dict[str, int] = msgspec.field(default_factory=dict)


class Dispatcher:
    def __init__(
        self,
        pool: asyncpg.Pool,
        dsn: str,
        handlers: Sequence[Registered],
        clients: HandlerClients,
        options: DispatchOptions | None = None,
        *,
        watch: DatabaseWatch | None = None,
    ) -> None:
        """`watch` is the process's database watch (the daemon runs it); without one the
        dispatcher runs a watch of its own on `pool`."""
        self._pool = pool
        self._dsn = dsn
        self._handlers = list(handlers)
        self._clients = clients
        self._options = options or DispatchOptions()
        self._own_watch = watch is None
        self._watch = watch or DatabaseWatch(pool)
        self._log = EventLog(pool)
        self._ranges = LogRanges(pool)
        self._progress = HandlerProgress(pool)
        self._holds: dict[tuple[str, str], int] = {}
        self._stopping = False
        self._stopped = anyio.Event()
        self._running = False
        self._run_ended = anyio.Event()
        self._pauses: dict[str, str] = {}  # cause -> reason, while dispatch is paused
        self._paused_at = 0.0
        self._unpaused = anyio.Event()
        self._unpaused.set()
        self.started = anyio.Event()
        self._reset()

    def _reset(self) -> None:
        self._by_name: dict[str, HandlerLanes] = {}
        self._ready = ReadyLanes()
        self._held = 0
        self._space = anyio.Event()
        self._space_wanted = False
        self._read_offset = 0
        self._head_seen = 0
        self._reading: anyio.CancelScope | None = None
        self._timers: list[tuple[float, int, HandlerLanes, Lane]] = []
        self._timer_order = itertools.count()
        self._timers_changed = anyio.Event()

    # ---- life cycle ---------------------------------------------------------------------

    async def run(self) -> None:
        """Dispatch until `stop()`; then finish the calls in flight and write the checkpoints.

        Cancelled instead (a shutdown past its grace), the calls in flight are abandoned and
        the checkpoints written so far are written all the same (shielded). Run again after a
        crash, it starts over from what the database holds.
        """
        if self._stopping:
            return
        self._reset()
        self._running, self._run_ended = True, anyio.Event()
        try:
            await self._setup()
            async with AppendWakeup(self._dsn) as wakeup:
                self.started.set()
                try:
                    async with anyio.create_task_group() as helpers:
                        if self._own_watch:
                            helpers.start_soon(self._watch.run)
                        helpers.start_soon(self._read, wakeup)
                        helpers.start_soon(self._wake_retries)
                        helpers.start_soon(self._flush_every_interval)
                        async with anyio.create_task_group() as workers:
                            for _ in range(self._options.concurrency):
                                workers.start_soon(self._work)
                        helpers.cancel_scope.cancel()
                finally:
                    # Shielded, so that it happens even when cancelled; bounded, so that a silent
                    # database cannot hold the shutdown beyond its grace.
                    with anyio.CancelScope(shield=True), anyio.move_on_after(FINAL_FLUSH_S):
                        await self._final_flush()
        finally:
            self._running = False
            self._run_ended.set()
        log.info("dispatcher_stopped", read_offset=self._read_offset)

    async def wait_stopped(self) -> None:
        """Return once no run is in progress (after `stop()`: once it has drained)."""
        while self._running:
            await self._run_ended.wait()

    def stop(self) -> None:
        """Stop reading and taking lanes; calls in flight finish, then `run` flushes and returns."""
        if self._stopping:
            return
        self._stopping = True
        self._stopped.set()
        self._unpaused.set()  # paused workers wake up to see that they must stop
        log.info("dispatcher_stopping", in_memory=self._held)
        if self._reading is not None:
            self._reading.cancel()
        self._ready.close()
        self._space.set()

    # ---- pausing while the database (or the leader's session) is away -------------------

    @property
    def paused(self) -> bool:
        return bool(self._pauses)

    def pause(self, cause: str, reason: str) -> None:
        """Take no new work until `resume(cause)` (and every other cause is resumed too).

        Calls in flight finish; their lanes stop after them. Logged and exported once per
        pause (`dispatch_paused`, `sfstripe_dispatch_paused`), whatever the number of causes.
        """
        if cause in self._pauses:
            return
        self._pauses[cause] = reason
        if len(self._pauses) > 1:
            return
        self._paused_at = time.monotonic()
        self._unpaused = anyio.Event()
        if self._stopping:
            self._unpaused.set()
        DISPATCH_PAUSED.set(1)
        log.warning(
            "dispatch_paused",
            cause=cause,
            reason=reason,
            running_lanes=sum(
                1 for hl in self._by_name.values() for lane in hl.lanes.values() if lane.running
            ),
            note="calls in flight finish; no new work until it is back",
        )

    def resume(self, cause: str) -> None:
        if self._pauses.pop(cause, None) is None or self._pauses:
            return
        DISPATCH_PAUSED.set(0)
        self._unpaused.set()
        log.info(
            "dispatch_resumed",
            cause=cause,
            paused_s=round(time.monotonic() - self._paused_at, 3),
            read_offset=self._read_offset,
        )

    def _database_lost(self, error: BaseException, step: str) -> None:
        self._watch.report_failure(error)
        self.pause(DATABASE, f"{step}: {type(error).__name__}: {error}")

    async def _wait_for_database(self) -> None:
        """Until the watch sees the database again; `_Stopping` when `stop()` comes first."""
        async with anyio.create_task_group() as race:

            async def first(wait: Callable[[], Awaitable[object]]) -> None:
                await wait()
                race.cancel_scope.cancel()

            race.start_soon(first, self._watch.wait_available)
            race.start_soon(first, self._stopped.wait)
        if self._stopping:
            raise _Stopping

    async def _redo(self, step: str, operation: Callable[[], Awaitable[T]]) -> T:
        """Run one database step, again and again while the connection is lost (pausing
        dispatch meanwhile). Only for steps that are safe to redo: reads, and writes whose
        outcome is the same however often they run."""
        while True:
            try:
                return await operation()
            except CONNECTION_ERRORS as exc:
                self._database_lost(exc, step)
            await anyio.sleep(REDO_PAUSE_S)
            await self._wait_for_database()

    async def _setup(self) -> None:
        progress = self._progress
        for handler in self._handlers:
            start = await progress.register(
                handler.name, self._options.start_offsets.get(handler.name)
            )
            if start.new:
                log.info(
                    "handler_registered", handler=handler.name, start_offset=start.start_offset
                )
            lanes = HandlerLanes(
                handler, HandlerMetrics(handler.name), start.low_water, start.low_water
            )
            self._by_name[handler.name] = lanes
            await self._restore(lanes)
            HANDLER_LOW_WATER.labels(handler.name).set(start.low_water)
        self._read_offset = min((h.skip_through for h in self._by_name.values()), default=0)
        self._head_seen = self._read_offset
        log.info(
            "dispatcher_started",
            handlers=[h.name for h in self._handlers],
            from_offset=self._read_offset,
            concurrency=self._options.concurrency,
        )

    async def _restore(self, hl: HandlerLanes) -> None:
        """Parked lanes, lanes catching up after an operator's action, and retry schedules."""
        progress = self._progress
        parked = await progress.parked(hl.name)
        unsettled = await progress.unsettled(hl.name)
        retries = await progress.retries(hl.name)
        customers = {d.customer for d in parked} | {d.customer for d in unsettled}
        customers |= {r.customer for r in retries}
        checkpoints = await progress.checkpoints(hl.name, sorted(customers))

        def lane_of(customer: str) -> Lane:
            lane = hl.lanes.get(customer)
            if lane is None:
                checkpoint = checkpoints.get(customer, 0)
                lane = hl.lanes[customer] = Lane(customer, checkpoint, checkpoint)
                lane.overflow = True
                lane.overflow_floor = hl.skip_through + 1
                hl.touched.add(lane)
            return lane

        for dead in unsettled:
            lane = lane_of(dead.customer)
            lane.catching_up = dead.id
            hl.catching_up.add(lane)
        for dead in parked:
            lane = lane_of(dead.customer)
            lane.parked, lane.parked_seq = dead.id, dead.seq
            hl.parked += 1
        now = time.time()
        for retry in retries:
            lane = lane_of(retry.customer)
            if lane.checkpoint >= retry.seq or lane.parked is not None:
                lane.retry_seq = retry.seq  # stale: the next flush clears it
                hl.dirty.add(lane)
                continue
            lane.attempts, lane.retry_seq = retry.attempts, retry.seq
            lane.overflow_floor = retry.offset
            self._sleep_until(hl, lane, max(0.0, retry.next_at.timestamp() - now))
        for lane in hl.lanes.values():
            self._schedule(hl, lane)
        PARKED_CUSTOMERS.labels(hl.name).set(hl.parked)

    # ---- reading ------------------------------------------------------------------------

    async def _read(self, wakeup: AppendWakeup) -> None:
        send, receive = anyio.create_memory_object_stream[list[LoggedEvent]](1)
        with anyio.CancelScope() as self._reading:
            if self._stopping:
                self._reading.cancel()
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._fetch, send, wakeup)
                    tg.start_soon(self._distribute, receive)
            except _Stopping:
                pass

    async def _fetch(
        self, send: MemoryObjectSendStream[list[LoggedEvent]], wakeup: AppendWakeup
    ) -> None:
        """Read pages ahead of the distributor; a full page stream is what stops reading."""
        position = self._read_offset
        page_size = self._options.page_size

        replacement: AppendWakeup | None = None  # the wake-up opened after an outage
        try:
            async with send:
                while True:
                    read = partial(self._log.read, position, page_size)
                    page = await self._redo("read the log", read)
                    if page:
                        position = page[-1].offset
                        self._head_seen = max(self._head_seen, position)
                        await send.send(page)
                        if len(page) == page_size:
                            continue
                    if not wakeup.listening and self._watch.available:
                        replacement = await self._listen_anew(replacement)
                        wakeup = replacement or wakeup
                    await wakeup.wait_past(position, self._options.reread_s)
        finally:
            if replacement is not None:
                await replacement.__aexit__(None, None, None)

    async def _listen_anew(self, previous: AppendWakeup | None) -> AppendWakeup | None:
        """After an outage, LISTEN on a new connection: the old one is gone with its
        notifications. Until this works, the reader re-reads on its timeout."""
        try:
            fresh = await AppendWakeup(self._dsn).__aenter__()
        except CONNECTION_ERRORS as exc:
            self._watch.report_failure(exc)
            return previous
        if previous is not None:
            await previous.__aexit__(None, None, None)
        return fresh

    async def _distribute(self, receive: MemoryObjectReceiveStream[list[LoggedEvent]]) -> None:
        buffer = self._options.buffer_events
        async with receive:
            async for page in receive:
                while self._held >= buffer:
                    self._space_wanted = True
                    await self._space.wait()
                    self._space = anyio.Event()
                    self._space_wanted = False
                await self._offer_page(page)
                DISPATCH_BUFFER_FILL.set(min(1.0, self._held / buffer))

    async def _offer_page(self, page: list[LoggedEvent]) -> None:
        for hl in self._by_name.values():
            wants = hl.handler.wants
            skip = hl.skip_through
            mine = [e for e in page if e.offset > skip and (wants(e) or is_link(e))]
            if not mine:
                continue
            lanes = hl.lanes
            missing = {e.customer for e in mine if e.customer not in lanes}
            if missing:
                await self._redo("open lanes", partial(self._open_lanes, hl, missing, mine))
            for event in mine:
                self._offer(hl, lanes[event.customer], event)
        self._read_offset = page[-1].offset

    async def _open_lanes(
        self, hl: HandlerLanes, customers: set[str], page: list[LoggedEvent]
    ) -> None:
        checkpoints = await self._progress.checkpoints(hl.name, sorted(customers))
        for event in page:
            customer = event.customer
            if customer in customers and customer not in hl.lanes:
                checkpoint = checkpoints.get(customer, 0)
                # Events of this customer before the first one offered were not wanted (or the
                # lane was evicted with nothing outstanding): they count as seen.
                hl.lanes[customer] = Lane(customer, checkpoint, max(checkpoint, event.seq - 1))

    def _offer(self, hl: HandlerLanes, lane: Lane, event: LoggedEvent) -> None:
        seq = event.seq
        if seq <= lane.seen_seq:
            return
        if seq <= lane.checkpoint:
            lane.seen_seq = seq
            return
        hl.touched.add(lane)
        if lane.overflow or len(lane.pending) >= self._options.lane_events:
            if not lane.overflow:
                lane.overflow = True
                lane.overflow_floor = event.offset
            lane.dropped = True
            return
        lane.pending.append(event)
        lane.seen_seq = seq
        self._held += 1
        if not lane.queued and not lane.running:
            self._schedule(hl, lane)

    async def _catch_up(self, hl: HandlerLanes, lane: Lane) -> None:
        """Read back from the log what the lane dropped, up to what the reader has passed."""
        limit = self._options.lane_events
        lane.dropped = False
        read = partial(
            self._ranges.customer_through, lane.customer, lane.seen_seq, self._read_offset, limit
        )
        rows = await self._redo("read a lane back", read)
        wants = hl.handler.wants
        for event in rows:
            if event.seq <= lane.seen_seq:
                continue
            lane.seen_seq = event.seq
            if event.seq <= lane.checkpoint:
                continue
            if lane.catching_up is None and event.offset <= hl.skip_through:
                continue  # before the handler's start (an unparked lane's events may be)
            if wants(event) or is_link(event):
                lane.pending.append(event)
                self._held += 1
        if len(rows) < limit and not lane.dropped:
            lane.overflow = False
        elif rows:
            lane.overflow_floor = rows[-1].offset + 1

    # ---- running lanes ------------------------------------------------------------------

    def _runnable(self, hl: HandlerLanes, lane: Lane) -> bool:
        return (
            lane.has_work
            and not lane.waiting
            and not self._stopping
            and (hl.name, lane.customer) not in self._holds
        )

    def _schedule(self, hl: HandlerLanes, lane: Lane) -> None:
        if not lane.queued and not lane.running and self._runnable(hl, lane):
            lane.queued = True
            self._ready.put((hl, lane))

    async def _work(self) -> None:
        since_yield = 0
        while True:
            item = await self._ready.get()
            if item is None:
                return
            hl, lane = item
            if self._pauses:
                # Paused: the lane stays queued (in this worker's hands) until resumed.
                await self._unpaused.wait()
            lane.queued = False
            if not self._runnable(hl, lane) or lane.running:
                continue
            lane.running = True
            try:
                since_yield += await self._run_lane(hl, lane)
            except _Stopping:
                pass  # stopped while waiting for the database: nothing of the lane changed
            finally:
                lane.running = False
                if lane.idle is not None:
                    lane.idle.set()
                    lane.idle = None
                self._after_run(hl, lane)
            if since_yield >= YIELD_EVERY:
                since_yield = 0
                await anyio.lowlevel.checkpoint()

    async def _run_lane(self, hl: HandlerLanes, lane: Lane) -> int:
        """Apply the lane's events in order until it runs dry, must wait, or had its turn."""
        handler = hl.handler
        applied = 0
        while not self._stopping and not self._pauses and applied < RUN_EVENTS:
            if not lane.pending:
                if not lane.overflow:
                    break
                await self._catch_up(hl, lane)
                applied += 1  # a read counts towards the turn, so a lane cannot hog a worker
                continue
            if (hl.name, lane.customer) in self._holds:
                break
            head = lane.pending[0]
            if head.seq <= lane.checkpoint:
                self._pop(lane, 1)
                continue
            if is_link(head):
                marker = joining_marker(head)
                if marker is not None and not self._alias_done(
                    hl, marker.alias, marker.alias_last_seq
                ):
                    self._wait_for_alias(hl, lane, marker.alias, marker.alias_last_seq)
                    break
                if not handler.wants(head):
                    self._advance(hl, lane, head.seq)
                    self._pop(lane, 1)
                    continue
            batch = self._batch(handler, lane)
            verdict = await call_handler(handler, batch, self._clients, hl.metrics)
            if verdict is not None:
                await self._failed(hl, lane, batch, verdict)
                break
            self._pop(lane, len(batch))
            self._advance(hl, lane, batch[-1].seq)
            lane.attempts = 0
            applied += len(batch)
        return applied

    @staticmethod
    def _batch(handler: Registered, lane: Lane) -> list[LoggedEvent]:
        if handler.max_batch == 1:
            return [lane.pending[0]]
        batch: list[LoggedEvent] = []
        for event in lane.pending:
            if len(batch) == handler.max_batch or (batch and is_link(event)):
                break
            batch.append(event)
        return batch

    def _pop(self, lane: Lane, count: int) -> None:
        for _ in range(count):
            lane.pending.popleft()
        self._held -= count
        if self._space_wanted and self._held < self._options.buffer_events:
            self._space.set()

    def _advance(self, hl: HandlerLanes, lane: Lane, seq: int) -> None:
        lane.checkpoint = seq
        hl.dirty.add(lane)

    def _shed(self, lane: Lane) -> None:
        """Give back the memory of a lane that must wait; it reads its events back later."""
        if lane.pending:
            first = lane.pending[0]
            lane.seen_seq = max(lane.checkpoint, first.seq - 1)
            if not lane.overflow or first.offset < lane.overflow_floor:
                lane.overflow_floor = first.offset
            count = len(lane.pending)
            lane.pending.clear()
            self._held -= count
            if self._space_wanted and self._held < self._options.buffer_events:
                self._space.set()
        lane.overflow = True

    def _after_run(self, hl: HandlerLanes, lane: Lane) -> None:
        waiters = hl.alias_waiters.get(lane.customer)
        if waiters:
            for waiter in list(waiters):
                assert waiter.waiting_for is not None
                if self._alias_done(hl, *waiter.waiting_for):
                    waiters.discard(waiter)
                    waiter.waiting_for = None
                    self._schedule(hl, waiter)
            if not waiters:
                del hl.alias_waiters[lane.customer]
        self._schedule(hl, lane)

    def _alias_done(self, hl: HandlerLanes, alias: str, seq: int) -> bool:
        alias_lane = hl.lanes.get(alias)
        return alias_lane is None or alias_lane.done_through(seq)

    def _wait_for_alias(self, hl: HandlerLanes, lane: Lane, alias: str, seq: int) -> None:
        log.info("link_wait", handler=hl.name, customer=lane.customer, alias=alias, alias_seq=seq)
        lane.waiting_for = (alias, seq)
        hl.alias_waiters.setdefault(alias, set()).add(lane)
        self._shed(lane)

    async def _failed(
        self, hl: HandlerLanes, lane: Lane, batch: list[LoggedEvent], verdict: Verdict
    ) -> None:
        head = batch[0]
        attempts = lane.attempts + 1
        options = self._options
        if verdict.retryable and attempts < options.max_attempts:
            delay = retry_delay(
                attempts,
                first=options.retry_first_s,
                maximum=options.retry_max_s,
                at_least=verdict.retry_after,
            )
            next_at = datetime.now(UTC) + timedelta(seconds=delay)
            save_retry = partial(
                self._progress.save_retry,  # an upsert: the same row however often it runs
                handler=hl.name,
                customer=lane.customer,
                seq=head.seq,
                offset=head.offset,
                attempts=attempts,
                next_at=next_at,
                error=verdict.reason,
            )
            await self._redo("schedule a retry", save_retry)
            lane.attempts, lane.retry_seq = attempts, head.seq
            HANDLER_RETRIES.labels(hl.name).inc()
            log.warning(
                "handler_retry_scheduled",
                handler=hl.name,
                customer=lane.customer,
                seq=head.seq,
                offset=head.offset,
                attempts=attempts,
                retry_in_s=round(delay, 3),
                error=verdict.reason,
            )
            self._shed(lane)
            self._sleep_until(hl, lane, delay)
            return
        dead_letter = await self._park(hl, lane, head, verdict.reason, attempts)
        if lane.catching_up is not None:
            hl.catching_up.discard(lane)  # parking settled the earlier dead letter
            lane.catching_up = None
        lane.parked, lane.parked_seq = dead_letter, head.seq
        lane.attempts, lane.retry_seq = 0, None
        hl.parked += 1
        PARKED_CUSTOMERS.labels(hl.name).set(hl.parked)
        DEAD_LETTERS.labels(hl.name).inc()
        log.error(
            "dead_letter",
            handler=hl.name,
            customer=lane.customer,
            seq=head.seq,
            offset=head.offset,
            source_event_id=head.source_event_id,
            dead_letter_id=dead_letter,
            attempts=attempts,
            permanent=not verdict.retryable,
            error=verdict.reason,
        )
        self._shed(lane)

    async def _park(
        self, hl: HandlerLanes, lane: Lane, head: LoggedEvent, reason: str, attempts: int
    ) -> int:
        """Record the dead letter once. A write whose answer the lost connection took may have
        committed: before writing again, look for the dead letter it would have made (the lane
        runs, so no other parked dead letter of it can exist)."""
        park = partial(
            self._progress.park,
            handler=hl.name,
            customer=lane.customer,
            seq=head.seq,
            offset=head.offset,
            source_event_id=head.source_event_id,
            reason=reason,
            attempts=attempts,
        )
        while True:
            try:
                return await park()
            except CONNECTION_ERRORS as exc:
                self._database_lost(exc, "record a dead letter")
            await anyio.sleep(REDO_PAUSE_S)
            await self._wait_for_database()
            parked = await self._redo(
                "look for a dead letter", partial(self._progress.parked, hl.name)
            )
            for dead in parked:
                if dead.customer == lane.customer and dead.seq == head.seq:
                    return dead.id

    # ---- retries ------------------------------------------------------------------------

    def _sleep_until(self, hl: HandlerLanes, lane: Lane, delay: float) -> None:
        lane.retry_wake = wake = time.monotonic() + delay
        heapq.heappush(self._timers, (wake, next(self._timer_order), hl, lane))
        self._timers_changed.set()

    async def _wake_retries(self) -> None:
        while True:
            now = time.monotonic()
            while self._timers and self._timers[0][0] <= now:
                wake, _, hl, lane = heapq.heappop(self._timers)
                if lane.retry_wake == wake:
                    lane.retry_wake = None
                    self._schedule(hl, lane)
            wait = self._timers[0][0] - now if self._timers else 60.0
            self._timers_changed = anyio.Event()
            with anyio.move_on_after(max(wait, 0.001)):
                await self._timers_changed.wait()

    # ---- checkpoints --------------------------------------------------------------------

    async def _flush_every_interval(self) -> None:
        while True:
            await anyio.sleep(self._options.flush_interval_s)
            if not self._watch.available:  # someone else (intake, the watch) saw it first
                self.pause(DATABASE, "the database watch lost the database")
                await self._watch.wait_available()
            # Not shielded: a flush cancelled half-way (at shutdown) changes nothing in memory,
            # and the final flush writes it. A flush that fails or hangs (the database went
            # away) changes nothing either: it pauses dispatch and is done again.
            try:
                with anyio.fail_after(FLUSH_TIMEOUT_S):
                    await self.flush()
            except CONNECTION_ERRORS as exc:
                self._database_lost(exc, "write checkpoints")
                continue
            # The checkpoints reached while the database was away are written: go on.
            self.resume(DATABASE)

    async def flush(self) -> None:
        """Write the checkpoints and low-water offsets reached so far, in one transaction.

        Nothing in memory changes before the write succeeds (a failed or cancelled flush is
        simply done again by the next one)."""
        flush = Flush()
        written: list[tuple[HandlerLanes, list[Lane], int]] = []
        passed: list[Lane] = []
        settled: list[tuple[HandlerLanes, Lane]] = []
        for hl in self._by_name.values():
            dirty = list(hl.dirty)
            hl.dirty.clear()
            for lane in dirty:
                flush.checkpoints.append((hl.name, lane.customer, lane.checkpoint))
                if lane.retry_seq is not None and lane.checkpoint >= lane.retry_seq:
                    flush.passed_retries.append((hl.name, lane.customer, lane.checkpoint))
                    passed.append(lane)
            low = hl.low_water(self._read_offset)
            for lane in hl.settled(low):
                assert lane.catching_up is not None
                flush.settled.append(lane.catching_up)
                settled.append((hl, lane))
            if low != hl.saved_low_water:
                flush.low_waters[hl.name] = low
            written.append((hl, dirty, low))
        if flush:
            try:
                await self._progress.flush(flush)
            except BaseException:
                for hl, dirty, _ in written:
                    hl.dirty.update(dirty)
                raise
        for lane in passed:
            if lane.retry_seq is not None and lane.checkpoint >= lane.retry_seq:
                lane.retry_seq = None
        for hl, lane in settled:
            hl.settle(lane)
        head = max(self._head_seen, self._read_offset)
        for hl, _, low in written:
            hl.saved_low_water = low
            HANDLER_LOW_WATER.labels(hl.name).set(low)
            HANDLER_BACKLOG.labels(hl.name).set(max(0, head - low))
            self._evict(hl)
        DISPATCH_BUFFER_FILL.set(min(1.0, self._held / self._options.buffer_events))

    async def _final_flush(self) -> None:
        try:
            await self.flush()
        except Exception as exc:
            log.error("checkpoint_flush_failed", error=repr(exc))

    def _evict(self, hl: HandlerLanes) -> None:
        """Forget idle lanes beyond `max_lanes`; their checkpoints are in the database."""
        excess = len(hl.lanes) - self._options.max_lanes
        if excess <= 0:
            return
        for customer, lane in list(hl.lanes.items()):
            if excess <= 0:
                break
            if (
                lane.running
                or lane.queued
                or lane.has_work
                or lane.waiting
                or lane.catching_up is not None
                or lane.retry_seq is not None
                or lane in hl.dirty
                or customer in hl.alias_waiters
                or (hl.name, customer) in self._holds
            ):
                continue
            del hl.lanes[customer]
            hl.touched.discard(lane)
            excess -= 1

    # ---- operators ----------------------------------------------------------------------

    async def reload_dead_letters(self) -> None:
        """Unpark the lanes whose dead letters an operator retried or skipped."""
        for hl in self._by_name.values():
            unsettled = await self._progress.unsettled(hl.name)
            reopened = [
                d
                for d in unsettled
                if (lane := hl.lanes.get(d.customer)) is not None and lane.parked == d.id
            ]
            if not reopened:
                continue
            checkpoints = await self._progress.checkpoints(hl.name, [d.customer for d in reopened])
            for dead in reopened:
                lane = hl.lanes[dead.customer]
                if lane.parked != dead.id:
                    continue
                lane.checkpoint = max(lane.checkpoint, checkpoints.get(dead.customer, 0))
                lane.seen_seq = lane.checkpoint
                lane.parked = None
                lane.attempts = 0
                lane.overflow = True
                lane.catching_up = dead.id
                hl.catching_up.add(lane)
                hl.parked -= 1
                log.info(
                    "lane_unparked",
                    handler=hl.name,
                    customer=dead.customer,
                    dead_letter_id=dead.id,
                    action=dead.status,
                    from_seq=lane.checkpoint + 1,
                )
                self._schedule(hl, lane)
            PARKED_CUSTOMERS.labels(hl.name).set(hl.parked)

    @asynccontextmanager
    async def exclusive(self, handler: str, customer: str) -> AsyncIterator[None]:
        """Keep the dispatcher off one lane (a replay applies its events meanwhile)."""
        key = (handler, customer)
        self._holds[key] = self._holds.get(key, 0) + 1
        try:
            hl = self._by_name.get(handler)
            lane = hl.lanes.get(customer) if hl is not None else None
            while lane is not None and lane.running:
                if lane.idle is None:
                    lane.idle = anyio.Event()
                await lane.idle.wait()
            yield
        finally:
            remaining = self._holds[key] - 1
            if remaining:
                self._holds[key] = remaining
            else:
                del self._holds[key]
                hl = self._by_name.get(handler)
                lane = hl.lanes.get(customer) if hl is not None else None
                if hl is not None and lane is not None:
                    self._schedule(hl, lane)

    # ---- what tests, benchmarks and status look at --------------------------------------

    @property
    def read_offset(self) -> int:
        return self._read_offset

    @property
    def held_events(self) -> int:
        """Events held in memory by the lanes."""
        return self._held

    def low_water(self, handler: str) -> int:
        """The handler's low-water offset as of now (written at the next flush)."""
        return self._by_name[handler].low_water(self._read_offset)

    def handler_names(self) -> list[str]:
        return list(self._by_name)
