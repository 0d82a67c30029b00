"""Dead letters for operators: list them, retry them (unpark the lane), skip them.

These only change rows; a running leader learns of the change through the control channel
(`state.control`) and re-reads them, and one started later reads them at start-up.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import asyncpg
import msgspec

from state.sql import query

Status = Literal["parked", "retried", "skipped"]


class DeadLetter(msgspec.Struct, frozen=True):
    id: int
    handler: str
    customer: str
    seq: int
    offset: int
    source_event_id: str
    reason: str
    attempts: int
    created_at: datetime
    status: Status
    resolved_at: datetime | None
    resolution: str | None
    settled_at: datetime | None


def _dead_letter(row: asyncpg.Record) -> DeadLetter:
    return DeadLetter(
        id=row["id"],
        handler=row["handler"],
        customer=row["customer"],
        seq=row["seq"],
        offset=row["log_offset"],
        source_event_id=row["source_event_id"],
        reason=row["reason"],
        attempts=row["attempts"],
        created_at=row["created_at"],
        status=row["status"],
        resolved_at=row["resolved_at"],
        resolution=row["resolution"],
        settled_at=row["settled_at"],
    )


class DeadLetters:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def listed(self, status: Status | None = "parked") -> list[DeadLetter]:
        """Oldest first; `status` None lists every dead letter ever recorded."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(query("list_dead_letters"), status)
        return [_dead_letter(row) for row in rows]

    async def get(self, dead_letter_id: int) -> DeadLetter | None:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(query("dead_letter"), dead_letter_id)
        return None if row is None else _dead_letter(row)

    async def retry(
        self, dead_letter_id: int | None = None, customer: str | None = None
    ) -> list[DeadLetter]:
        """Unpark one dead letter, or every parked lane of `customer`; returns what changed."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(query("retry_dead_letters"), dead_letter_id, customer)
        return [_dead_letter(row) for row in rows]

    async def skip(self, dead_letter_id: int, reason: str) -> DeadLetter | None:
        """Move the lane past the dead letter (its checkpoint becomes the dead letter's seq);
        None when it is not parked."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(query("skip_dead_letter"), dead_letter_id, reason)
        return None if row is None else _dead_letter(row)
