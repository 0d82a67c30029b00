"""Account snapshots: a whole Account as one log event in its own stream, for accounts whose changes
were never seen one by one (a backfill of accounts older than sfstripe, an overflow event).

The event id names why and which version (`backfill:<LastModifiedDate>:<Id>`), so running the same
backfill twice stores nothing new, while a later change of the account makes a new snapshot. The
handler takes a snapshot as the cue to re-read the Account (a change applied since must not be
undone); the record it carries is what the backfill saw, kept for people reading the log.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from state.records import NewEvent

SNAPSHOT_TYPE = "sfstripe.account_snapshot"
ADOPTED_TYPE = "sfstripe.stripe_customer_adopted"


class Snapshot(msgspec.Struct, frozen=True):
    record: dict[str, Any]
    reason: str


def snapshot_event(record: dict[str, Any], key: str, reason: str) -> NewEvent:
    account_id = str(record["Id"])
    return NewEvent(
        customer=account_id,
        source="sfstripe",
        source_event_id=f"{key}:{account_id}",
        type=SNAPSHOT_TYPE,
        occurred_at=datetime.now(UTC),
        payload=msgspec.json.encode(Snapshot(record, reason)).decode(),
        object_type="Account",
        object_id=account_id,
    )


class Adopted(msgspec.Struct, frozen=True):
    stripe_customer: str


def adopted_event(account_id: str, customer: str) -> NewEvent:
    """An existing Stripe customer was linked to the account: its billing so far has to be read
    from Stripe once (it may never send another event)."""
    return NewEvent(
        customer=account_id,
        source="sfstripe",
        source_event_id=f"adopted:{customer}",
        type=ADOPTED_TYPE,
        occurred_at=datetime.now(UTC),
        payload=msgspec.json.encode(Adopted(customer)).decode(),
        object_type="customer",
        object_id=customer,
    )


def decode_adopted(payload: str) -> Adopted:
    return msgspec.json.decode(payload, type=Adopted)


def decode_snapshot(payload: str) -> Snapshot:
    return msgspec.json.decode(payload, type=Snapshot)
