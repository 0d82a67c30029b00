"""The shapes that cross the log's boundary."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

Source = Literal["salesforce", "stripe", "sfstripe"]


class NewEvent(msgspec.Struct, frozen=True):
    """An event as a source hands it over; `payload` is the raw JSON text, stored as jsonb."""

    customer: str
    source: Source
    source_event_id: str
    type: str
    occurred_at: datetime
    payload: str
    object_type: str | None = None
    object_id: str | None = None


class LoggedEvent(msgspec.Struct, frozen=True):
    """A committed row of the log; the payload stays JSON text, decoded only by who uses it."""

    offset: int
    customer: str
    seq: int
    source: Source
    source_event_id: str
    type: str
    object_type: str | None
    object_id: str | None
    occurred_at: datetime
    ingested_at: datetime
    payload: str


class SourcePosition(msgspec.Struct, frozen=True):
    """How far one source connection has been committed (a replay id, a cursor)."""

    source: str
    channel: str
    position: str


class Link(msgspec.Struct, frozen=True):
    """Route an alias's events (`stripe:cus_...`, `contact:003...`) to a customer's stream."""

    alias: str
    customer: str


class Stored(msgspec.Struct, frozen=True):
    offset: int
    customer: str
    seq: int


class AppendResult(msgspec.Struct, frozen=True):
    """Per input, in order: where it was stored, or None for a duplicate; `rejected` lists the
    inputs the log refused (kept aside as rejected events, see `EventLog.reject`)."""

    outcomes: list[Stored | None]
    rejected: list[int] = msgspec.field(default_factory=list)

    @property
    def stored(self) -> list[Stored]:
        return [outcome for outcome in self.outcomes if outcome is not None]

    @property
    def duplicates(self) -> int:
        return sum(outcome is None for outcome in self.outcomes) - len(self.rejected)
