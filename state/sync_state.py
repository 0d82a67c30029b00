"""What the customer sync remembers between events: which Stripe customers an account is linked
to, what sfstripe last wrote to each field on either side (to recognise its own echoes), and the
latest applied state of the Stripe objects behind an account's billing status."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import asyncpg
import msgspec

from state.sql import query

Side = Literal["salesforce", "stripe"]

_encode = msgspec.json.encode
_decode = msgspec.json.decode


class StoredObject(msgspec.Struct, frozen=True):
    object_id: str
    kind: str
    stripe_customer: str
    event_created: int
    status: str | None
    body: dict[str, Any]


def _stored(row: asyncpg.Record) -> StoredObject:
    return StoredObject(
        object_id=row["object_id"],
        kind=row["kind"],
        stripe_customer=row["stripe_customer"],
        event_created=row["event_created"],
        status=row["status"],
        body=_decode(row["body"]),
    )


class SyncState:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def linked_stripe_customers(self, account: str) -> list[str]:
        """The Stripe customer ids linked to an account, oldest link first."""
        rows = await self._pool.fetch(query("linked_stripe_customers"), account)
        return [row["stripe_customer"] for row in rows]

    async def written(self, side: Side, record_id: str, fields: Sequence[str]) -> dict[str, Any]:
        """Field -> the value sfstripe last wrote there (fields it never wrote are absent)."""
        if not fields:
            return {}
        rows = await self._pool.fetch(query("sync_written"), side, record_id, list(fields))
        return {row["field"]: _decode(row["value"]) for row in rows}

    async def unwritten(
        self, side: Side, record_id: str, values: Mapping[str, Any]
    ) -> dict[str, Any]:
        """`values` minus the fields that hold, as JSON, what sfstripe last wrote there."""
        written = await self.written(side, record_id, list(values))
        return {
            name: value
            for name, value in values.items()
            if name not in written or _encode(written[name]) != _encode(value)
        }

    async def record_written(self, side: Side, record_id: str, values: Mapping[str, Any]) -> None:
        if not values:
            return
        names = list(values)
        encoded = [_encode(values[name]).decode() for name in names]
        await self._pool.execute(query("record_sync_writes"), side, record_id, names, encoded)

    async def stripe_object(self, object_id: str) -> StoredObject | None:
        row = await self._pool.fetchrow(query("stripe_object"), object_id)
        return _stored(row) if row is not None else None

    async def stripe_objects(self, stripe_customer: str) -> list[StoredObject]:
        rows = await self._pool.fetch(query("stripe_objects_of_customer"), stripe_customer)
        return [_stored(row) for row in rows]

    async def save_stripe_object(self, stored: StoredObject) -> None:
        await self._pool.execute(
            query("save_stripe_object"),
            stored.object_id,
            stored.kind,
            stored.stripe_customer,
            stored.event_created,
            stored.status,
            _encode(stored.body).decode(),
        )
