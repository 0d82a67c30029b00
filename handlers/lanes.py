"""A lane is one handler and one customer: its events are applied strictly in seq order, one
call at a time. This module holds a lane's state; `handlers.dispatcher` moves it.

A lane holds at most a bounded run of its events in memory (`pending`). When it cannot take
more (full, or not runnable: waiting to retry, parked, waiting at a link), it *overflows*: the
reader drops its further events and the lane later reads them back from the log by seq
(`seen_seq` is the last seq it took or passed). So a slow or stuck customer never holds the
memory that the others need.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import anyio

from handlers.api import Registered
from handlers.invoke import HandlerMetrics
from state.records import LoggedEvent

NOTHING = 2**63


class Lane:
    __slots__ = (
        "attempts",
        "catching_up",
        "checkpoint",
        "customer",
        "dropped",
        "idle",
        "overflow",
        "overflow_floor",
        "parked",
        "parked_seq",
        "pending",
        "queued",
        "retry_seq",
        "retry_wake",
        "running",
        "seen_seq",
        "waiting_for",
    )

    def __init__(self, customer: str, checkpoint: int, seen_seq: int) -> None:
        self.customer = customer
        self.checkpoint = checkpoint  # last seq applied or passed
        self.seen_seq = seen_seq  # last seq taken into `pending` or passed
        self.pending: deque[LoggedEvent] = deque()
        self.overflow = False  # events after `seen_seq` are in the log, not in memory
        self.overflow_floor = 0  # a lower bound of the offsets of those events
        self.dropped = False  # the reader dropped an event while the lane read the log
        self.running = False
        self.queued = False
        self.idle: anyio.Event | None = None  # set when a run ends, for whoever waits on it
        self.parked: int | None = None  # the dead letter id while parked
        self.parked_seq = 0
        self.catching_up: int | None = None  # retried or skipped dead letter not yet settled
        self.attempts = 0  # failed attempts of the event at the head
        self.retry_seq: int | None = None  # seq with a persisted retry schedule
        self.retry_wake: float | None = None  # monotonic deadline while waiting to retry
        self.waiting_for: tuple[str, int] | None = None  # (alias, seq) of a link

    def __repr__(self) -> str:
        return f"Lane({self.customer!r}, checkpoint={self.checkpoint}, pending={len(self.pending)})"

    @property
    def waiting(self) -> bool:
        return (
            self.parked is not None or self.retry_wake is not None or self.waiting_for is not None
        )

    @property
    def has_work(self) -> bool:
        return bool(self.pending) or self.overflow

    def floor(self) -> int | None:
        """The lowest offset this lane has not finished, as far as the low-water offset is
        concerned; None when it has nothing, or is parked or catching up (those do not hold the
        low-water offset back: they read their events from the log by seq)."""
        if self.parked is not None or self.catching_up is not None:
            return None
        if self.pending:
            return self.pending[0].offset
        if self.overflow:
            return self.overflow_floor
        return None

    def done_through(self, seq: int) -> bool:
        """Whether every event of this lane up to `seq` is applied or passed (for the link rule:
        the reader has already passed every one of them)."""
        if self.checkpoint >= seq:
            return True
        first = NOTHING
        if self.parked is not None:
            first = self.parked_seq
        if self.pending:
            first = min(first, self.pending[0].seq)
        if self.overflow:
            first = min(first, self.seen_seq + 1)
        return first > seq


@dataclass(eq=False)
class HandlerLanes:
    """One handler's lanes and bookkeeping."""

    handler: Registered
    metrics: HandlerMetrics
    skip_through: int  # its low-water offset at start: events at or below are not its business
    saved_low_water: int
    lanes: dict[str, Lane] = field(default_factory=dict)
    touched: set[Lane] = field(default_factory=set)  # lanes that may hold the low-water back
    dirty: set[Lane] = field(default_factory=set)  # checkpoints not yet written
    catching_up: set[Lane] = field(default_factory=set)
    alias_waiters: dict[str, set[Lane]] = field(default_factory=dict)
    parked: int = 0

    @property
    def name(self) -> str:
        return self.handler.name

    def low_water(self, read_offset: int) -> int:
        """Every event at or below the result is applied, passed, or belongs to a parked lane.

        Lanes with nothing left drop out of `touched` on the way."""
        lowest = NOTHING
        finished = []
        for lane in self.touched:
            floor = lane.floor()
            if floor is None:
                if not lane.has_work or lane.parked is not None:
                    finished.append(lane)
                continue
            lowest = min(lowest, floor)
        self.touched.difference_update(finished)
        low = read_offset if lowest == NOTHING else min(read_offset, lowest - 1)
        return max(low, self.skip_through)

    def settled(self, low_water: int) -> Iterator[Lane]:
        """Lanes catching up that have caught up: from now on they hold the low-water offset
        back like any lane (call `settle` once that is written)."""
        for lane in self.catching_up:
            if lane.overflow or lane.parked is not None or lane.catching_up is None:
                continue
            if lane.pending and lane.pending[0].offset <= low_water:
                continue
            yield lane

    def settle(self, lane: Lane) -> None:
        if lane.catching_up is not None and lane in self.catching_up:
            lane.catching_up = None
            self.catching_up.discard(lane)
            self.touched.add(lane)


class ReadyLanes:
    """Runnable lanes for the workers. Unbounded in type, bounded in fact: a lane is in it at
    most once, and only lanes with events in memory or in overflow are runnable."""

    def __init__(self) -> None:
        self._items: deque[tuple[HandlerLanes, Lane]] = deque()
        self._waiters: deque[anyio.Event] = deque()
        self.closed = False

    def put(self, item: tuple[HandlerLanes, Lane]) -> None:
        self._items.append(item)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.is_set():
                waiter.set()
                return

    async def get(self) -> tuple[HandlerLanes, Lane] | None:
        """The next lane to run, waiting for one; None once closed."""
        while True:
            if self.closed:
                return None
            if self._items:
                return self._items.popleft()
            waiter = anyio.Event()
            self._waiters.append(waiter)
            try:
                await waiter.wait()
            finally:
                if not waiter.is_set():
                    self._waiters.remove(waiter)

    def close(self) -> None:
        self.closed = True
        while self._waiters:
            self._waiters.popleft().set()

    def __len__(self) -> int:
        return len(self._items)
