"""Builders of log events for tests."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from state.records import NewEvent, Source

WHEN = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def event(
    event_id: str,
    customer: str = "001A",
    source: Source = "stripe",
    type_: str = "customer.updated",
    body: object = None,
) -> NewEvent:
    return NewEvent(
        customer=customer,
        source=source,
        source_event_id=event_id,
        type=type_,
        occurred_at=WHEN,
        payload=json.dumps(body if body is not None else {"id": event_id}),
        object_type="customer",
        object_id=f"obj_{event_id}",
    )
