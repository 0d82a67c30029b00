"""What the handler runtime keeps in PostgreSQL: low-water offsets, lane checkpoints, retry
schedules and dead letters.

A lane is one handler and one customer. Its checkpoint (last seq applied or passed as unwanted)
only moves forward; the handler's low-water offset is where a restart reads the log from.
Checkpoints and low-water offsets are written together in one transaction, retries and dead
letters at once (they are rare and must survive a crash).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg
import msgspec

from state.sql import query

MAX_REASON = 4000


class HandlerStart(msgspec.Struct, frozen=True):
    start_offset: int
    low_water: int
    new: bool


class LaneRetry(msgspec.Struct, frozen=True):
    customer: str
    seq: int
    offset: int
    attempts: int
    next_at: datetime
    last_error: str


class LaneDeadLetter(msgspec.Struct, frozen=True):
    """A dead letter as the dispatcher needs it: parked, or retried/skipped but not settled."""

    id: int
    customer: str
    seq: int
    offset: int
    status: str


class Flush(msgspec.Struct):
    """One flush: checkpoints (handler, customer, seq), low-water offsets per handler, retry
    schedules the lanes got past, and dead letters whose lanes caught up."""

    checkpoints: list[tuple[str, str, int]] = msgspec.field(default_factory=list)
    low_waters: dict[str, int] = msgspec.field(default_factory=dict)
    passed_retries: list[tuple[str, str, int]] = msgspec.field(default_factory=list)
    settled: list[int] = msgspec.field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.checkpoints or self.low_waters or self.passed_retries or self.settled)


def _columns(rows: Sequence[tuple[str, str, int]]) -> tuple[list[str], list[str], list[int]]:
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


class HandlerProgress:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def register(self, handler: str, start_offset: int | None) -> HandlerStart:
        """The handler's row, created on first sight at `start_offset` (None: the log head)."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(query("register_handler"), handler, start_offset)
        assert row is not None
        return HandlerStart(row["start_offset"], row["low_water"], row["new"])

    async def checkpoints(self, handler: str, customers: Sequence[str]) -> dict[str, int]:
        """Known checkpoints of these lanes (a lane never checkpointed is absent)."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(query("lane_checkpoints"), handler, list(customers))
        return {row["customer"]: row["last_seq"] for row in rows}

    async def flush(self, flush: Flush) -> None:
        """Write one flush in one transaction: a crash leaves all of it or none."""
        async with self._pool.acquire() as conn, conn.transaction():
            if flush.checkpoints:
                await conn.execute(query("save_checkpoints"), *_columns(flush.checkpoints))
            if flush.passed_retries:
                await conn.execute(query("clear_retries"), *_columns(flush.passed_retries))
            if flush.settled:
                await conn.execute(query("settle_dead_letters"), flush.settled)
            if flush.low_waters:
                await conn.execute(
                    query("save_low_waters"),
                    list(flush.low_waters),
                    list(flush.low_waters.values()),
                )

    async def save_retry(
        self,
        *,
        handler: str,
        customer: str,
        seq: int,
        offset: int,
        attempts: int,
        next_at: datetime,
        error: str,
    ) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(
                query("save_retry"),
                handler,
                customer,
                seq,
                offset,
                attempts,
                next_at,
                error[:MAX_REASON],
            )

    async def retries(self, handler: str) -> list[LaneRetry]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(query("lane_retries"), handler)
        return [
            LaneRetry(
                r["customer"],
                r["seq"],
                r["log_offset"],
                r["attempts"],
                r["next_at"],
                r["last_error"],
            )
            for r in rows
        ]

    async def park(
        self,
        *,
        handler: str,
        customer: str,
        seq: int,
        offset: int,
        source_event_id: str,
        reason: str,
        attempts: int,
    ) -> int:
        """Record a dead letter and end the lane's retry schedule; returns the dead letter id."""
        async with self._pool.acquire() as conn:
            dead_letter_id: int = await conn.fetchval(
                query("park_lane"),
                handler,
                customer,
                seq,
                offset,
                source_event_id,
                reason[:MAX_REASON],
                attempts,
            )
        return dead_letter_id

    async def parked(self, handler: str) -> list[LaneDeadLetter]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(query("parked_lanes"), handler)
        return [
            LaneDeadLetter(r["id"], r["customer"], r["seq"], r["log_offset"], "parked")
            for r in rows
        ]

    async def unsettled(self, handler: str) -> list[LaneDeadLetter]:
        """Dead letters an operator retried or skipped whose lane has not caught up yet."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(query("unsettled_dead_letters"), handler)
        return [
            LaneDeadLetter(r["id"], r["customer"], r["seq"], r["log_offset"], r["status"])
            for r in rows
        ]
