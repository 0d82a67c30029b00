"""Turns a raw Stripe event into a log event: its stream, its object, and any link it implies.

Customer key rule: the event's customer (`data.object.customer`, or the customer object's own
id) as the alias `stripe:<cus id>`, which the log resolves to the Salesforce account once linked;
`metadata.sf_account_id` on a customer object makes that link. Products and prices go to
`catalog`; events tied to no customer to `stripe:account`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from state.records import Link, NewEvent
from stream.salesforce.ids import id18

CATALOG_OBJECTS = frozenset({"product", "price", "plan"})
CATALOG_STREAM = "catalog"
ACCOUNT_STREAM = "stripe:account"


class NotAnEvent(ValueError):
    """The body is JSON but not a Stripe event object."""


class _Object(msgspec.Struct):
    id: str | None = None
    object: str | None = None
    customer: str | dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


class _Previous(msgspec.Struct):
    customer: str | None = None


class _Data(msgspec.Struct):
    object: _Object
    previous_attributes: _Previous | None = None


class _Event(msgspec.Struct):
    id: str
    object: str
    type: str
    created: int
    data: _Data
    api_version: str | None = None


_decoder = msgspec.json.Decoder(_Event)


def _customer_of(event: _Event) -> str | None:
    obj = event.data.object
    if obj.object == "customer":
        return obj.id
    if isinstance(obj.customer, dict):
        expanded = obj.customer.get("id")
        return expanded if isinstance(expanded, str) else None
    if obj.customer:
        return obj.customer
    # A detached payment method no longer names its customer; the old value still does.
    previous = event.data.previous_attributes
    return previous.customer if previous else None


def route(raw: bytes | str) -> tuple[NewEvent, Link | None]:
    """Decode only the routing fields; the payload is stored exactly as received."""
    try:
        event = _decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise NotAnEvent(str(exc)) from None
    if event.object != "event" or not event.id:
        raise NotAnEvent("object is not 'event'")
    obj = event.data.object
    customer = _customer_of(event)
    link = None
    if obj.object in CATALOG_OBJECTS:
        stream = CATALOG_STREAM
    elif customer:
        stream = f"stripe:{customer}"
        account = (obj.metadata or {}).get("sf_account_id") if obj.object == "customer" else None
        if isinstance(account, str) and account:
            link = Link(stream, id18(account))  # people may paste the 15-character form
    else:
        stream = ACCOUNT_STREAM
    payload = raw.decode() if isinstance(raw, bytes) else raw
    return (
        NewEvent(
            customer=stream,
            source="stripe",
            source_event_id=event.id,
            type=event.type,
            occurred_at=datetime.fromtimestamp(event.created, UTC),
            payload=payload,
            object_type=obj.object,
            object_id=obj.id,
        ),
        link,
    )
