"""Reads of one customer's events bounded by offset: a lane catching up behind the dispatcher's
reader, and replays of one customer."""

from __future__ import annotations

import asyncpg

from state.log import logged_event
from state.records import LoggedEvent
from state.sql import query


class LogRanges:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def customer_through(
        self, customer: str, after_seq: int, through_offset: int, limit: int
    ) -> list[LoggedEvent]:
        """The customer's events with seq > `after_seq` and offset <= `through_offset`."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                query("read_customer_through_offset"), customer, after_seq, through_offset, limit
            )
        return [logged_event(row) for row in rows]

    async def customer_between(
        self, customer: str, after_offset: int, to_offset: int, limit: int
    ) -> list[LoggedEvent]:
        """The customer's events with `after_offset` < offset <= `to_offset`, in order."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                query("read_customer_offset_range"), customer, after_offset, to_offset, limit
            )
        return [logged_event(row) for row in rows]

    async def count_customer(self, customer: str, from_offset: int, to_offset: int) -> int:
        async with self._pool.acquire() as conn:
            count: int = await conn.fetchval(
                query("count_customer_offset_range"), customer, from_offset, to_offset
            )
        return count
