"""Replay requests: how the CLI asks a running leader to replay, and follows its progress.

The row is the request; a notification on the control channel makes the leader look at once.
Whoever claims a pending request first runs it, so a request survives the leader's death: a new
leader, or the CLI that asked, claims it.

A request can be cancelled: a pending one at once, a running one by asking its runner, which
stops at a safe point and records `cancelled` with how far it got.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import asyncpg
import msgspec

from state.sql import query

Kind = Literal["log", "position"]
RequestStatus = Literal["pending", "running", "done", "failed", "cancelled"]
FINISHED: tuple[RequestStatus, ...] = ("done", "failed", "cancelled")


class ReplayRequest(msgspec.Struct, frozen=True):
    id: int
    kind: Kind
    status: RequestStatus
    claimed_by: str | None
    processed: int
    total: int | None
    result: dict[str, Any] | None
    cancel_requested: bool = False


class ReplayRequests:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def insert(self, kind: Kind, params: dict[str, Any]) -> int:
        async with self._pool.acquire() as conn:
            request_id: int = await conn.fetchval(
                query("insert_replay_request"), kind, msgspec.json.encode(params).decode()
            )
        return request_id

    async def claim(self, request_id: int, claimed_by: str) -> tuple[Kind, dict[str, Any]] | None:
        """The request's kind and parameters if this caller claimed it, else None."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(query("claim_replay_request"), request_id, claimed_by)
        if row is None:
            return None
        params: dict[str, Any] = msgspec.json.decode(row["params"])
        return row["kind"], params

    async def pending(self) -> list[int]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(query("pending_replay_requests"))
        return [row["id"] for row in rows]

    async def progress(self, request_id: int, processed: int, total: int | None) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(query("replay_request_progress"), request_id, processed, total)

    async def finish(self, request_id: int, status: RequestStatus, result: dict[str, Any]) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(
                query("finish_replay_request"),
                request_id,
                status,
                msgspec.json.encode(result).decode(),
            )

    async def get(self, request_id: int) -> ReplayRequest | None:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(query("replay_request"), request_id)
        if row is None:
            return None
        result = msgspec.json.decode(row["result"]) if row["result"] is not None else None
        return ReplayRequest(
            row["id"],
            row["kind"],
            row["status"],
            row["claimed_by"],
            row["processed"],
            row["total"],
            result,
            row["cancel_requested"],
        )

    async def cancel(self, request_id: int) -> RequestStatus | None:
        """Cancel a pending request at once, or ask the runner of a running one to stop.

        Returns the status after this (`cancelled`, or `running` while its runner has yet to
        stop); None when the request is unknown or already finished."""
        async with self._pool.acquire() as conn:
            status: RequestStatus | None = await conn.fetchval(
                query("cancel_replay_request"), request_id
            )
        return status

    async def cancel_asked(self) -> list[int]:
        """Running requests whose cancellation was asked."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(query("cancelled_replay_requests"))
        return [row["id"] for row in rows]

    async def interrupt_running(self) -> list[int]:
        """Fail requests left `running` by a leader that is gone (call as the new leader)."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(query("interrupt_running_replays"))
        return [row["id"] for row in rows]


async def stripe_event_created(pool: asyncpg.Pool, event_id: str) -> datetime | None:
    """When a logged Stripe event was created (to seed a moved poller cursor); None when it is
    not in the log."""
    async with pool.acquire() as conn:
        created: datetime | None = await conn.fetchval(query("stripe_event_created"), event_id)
    return created
