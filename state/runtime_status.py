"""What `sfstripe status` shows of the handler runtime: per-handler progress and parked lanes."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

from state.sql import query


class HandlerStatus(msgspec.Struct, frozen=True):
    handler: str
    start_offset: int
    low_water: int
    updated_at: datetime
    parked: int
    dead_letters: int
    retrying: int


class ParkedLane(msgspec.Struct, frozen=True):
    handler: str
    customer: str
    dead_letter_id: int
    seq: int
    since: datetime


async def handler_status(pool: asyncpg.Pool) -> list[HandlerStatus]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(query("handler_status"))
    return [
        HandlerStatus(
            r["handler"],
            r["start_offset"],
            r["low_water"],
            r["updated_at"],
            r["parked"],
            r["dead_letters"],
            r["retrying"],
        )
        for r in rows
    ]


async def parked_lanes(pool: asyncpg.Pool, limit: int = 100) -> list[ParkedLane]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(query("parked_customers"), limit)
    return [
        ParkedLane(r["handler"], r["customer"], r["id"], r["seq"], r["created_at"]) for r in rows
    ]
