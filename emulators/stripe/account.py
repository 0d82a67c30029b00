"""One emulated Stripe account: every object, the clock, the event log and the settings.

Objects are kept as dicts in their wire shape, except that relations are stored as ids and keys
starting with `_` are internal; `render` produces what the API returns (for example a
subscription with its items and their prices). Every change goes through `emit` or `updating`, so
each one leaves an event.
"""

from __future__ import annotations

import contextlib
import copy
import secrets
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import stripe

from emulators.stripe.clock import Clock
from emulators.stripe.errors import no_such
from emulators.stripe.events import EventLog
from emulators.stripe.faults import Faults
from emulators.stripe.idempotency import IdempotencyStore
from emulators.stripe.routing import AUTOMATIC, Obj, Origin

_ALPHABET = string.ascii_letters + string.digits
DAY = 86400

Renderer = Callable[["Account", Obj], Obj]
RENDERERS: dict[str, Renderer] = {}

# Event type prefix of each object kind (a subscription's events are `customer.subscription.*`).
EVENT_PREFIX = {"subscription": "customer.subscription"}

# The API's names for kinds in "No such ..." errors.
LABELS = {
    "customer": "customer",
    "product": "product",
    "price": "price",
    "plan": "plan",
    "payment_method": "PaymentMethod",
    "subscription": "subscription",
    "subscription_item": "subscription item",
    "invoice": "invoice",
    "invoiceitem": "invoiceitem",
    "credit_note": "credit note",
    "billing.meter": "billing meter",
    "webhook_endpoint": "webhook endpoint",
    "invoice_payment": "invoice payment",
}


def renders(kind: str) -> Callable[[Renderer], Renderer]:
    """Register the renderer of one object kind."""

    def register(function: Renderer) -> Renderer:
        RENDERERS[kind] = function
        return function

    return register


def public(obj: Obj) -> Obj:
    """A deep copy without the internal (`_`-prefixed) keys."""
    return {key: copy.deepcopy(value) for key, value in obj.items() if not key.startswith("_")}


def previous_attributes(before: Any, after: Any) -> Obj:
    """Stripe's `data.previous_attributes`: old values of changed keys, nested objects diffed
    key by key, arrays (and anything else) whole."""
    changed: Obj = {}
    for key in before.keys() | after.keys():
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict) and old.get("object") is None:
            changed[key] = previous_attributes(old, new)
        elif isinstance(old, dict) and isinstance(new, dict) and old.get("object") == "list":
            changed[key] = {"data": old.get("data")}
        else:
            changed[key] = old
    return changed


@dataclass
class Dunning:
    """What happens after failed automatic charges (Stripe: Billing -> Revenue recovery)."""

    retry_delays: list[int] = field(default_factory=lambda: [3 * DAY, 5 * DAY, 7 * DAY])
    subscription_status: str = "canceled"  # canceled | unpaid | past_due
    invoice_status: str = "open"  # open | uncollectible


@dataclass
class Settings:
    api_version: str = stripe.api_version
    # Seconds between a renewal invoice's creation and its finalisation (Stripe: about an hour).
    finalize_delay: int = 3600
    dunning: Dunning = field(default_factory=Dunning)
    account_name: str = "sfstripe emulator"


class Account:
    def __init__(self, *, clock: Clock | None = None, base_url: str = "") -> None:
        self.clock = clock or Clock()
        self.base_url = base_url
        self.settings = Settings()
        self.objects: dict[str, Obj] = {}
        self._order: dict[str, int] = {}
        self._sequence = 0
        self.events = EventLog()
        self.idempotency = IdempotencyStore()
        self.faults = Faults()
        # Called with each new event (the webhook sender subscribes).
        self.listeners: list[Callable[[Obj], None]] = []

    # -- ids and storage ---------------------------------------------------------------------
    def now(self) -> int:
        return self.clock.now()

    @staticmethod
    def new_id(prefix: str, length: int = 24) -> str:
        return f"{prefix}_{''.join(secrets.choice(_ALPHABET) for _ in range(length))}"

    def add(self, obj: Obj) -> Obj:
        self._sequence += 1
        self.objects[obj["id"]] = obj
        self._order[obj["id"]] = self._sequence
        return obj

    def remove(self, object_id: str) -> None:
        self.objects.pop(object_id, None)
        self._order.pop(object_id, None)

    def find(self, object_id: str) -> Obj | None:
        return self.objects.get(object_id)

    def get(self, kind: str, object_id: str, param: str = "id") -> Obj:
        obj = self.objects.get(object_id)
        if obj is None or obj.get("object") != kind or obj.get("_deleted"):
            raise no_such(LABELS.get(kind, kind), object_id, param)
        return obj

    def all(self, kind: str, where: Callable[[Obj], bool] | None = None) -> list[Obj]:
        """Objects of one kind, newest first (Stripe's list order)."""
        found = [
            obj
            for obj in self.objects.values()
            if obj.get("object") == kind
            and not obj.get("_deleted")
            and (where is None or where(obj))
        ]
        found.sort(key=lambda obj: self._order[obj["id"]], reverse=True)
        return found

    # -- rendering ----------------------------------------------------------------------------
    def render(self, obj: Obj) -> Obj:
        renderer = RENDERERS.get(obj.get("object", ""))
        return renderer(self, obj) if renderer else public(obj)

    # -- events -------------------------------------------------------------------------------
    def emit(
        self,
        event_type: str,
        obj: Obj | None,
        origin: Origin = AUTOMATIC,
        previous: Obj | None = None,
        *,
        rendered: Obj | None = None,
    ) -> Obj:
        """Record one event whose `data.object` is the object as it is now."""
        data: Obj = {"object": rendered if rendered is not None else self.render(obj or {})}
        if previous is not None:
            data["previous_attributes"] = previous
        event = {
            "id": self.new_id("evt"),
            "object": "event",
            "api_version": self.settings.api_version,
            "created": self.now(),
            "data": data,
            "livemode": False,
            "pending_webhooks": 0,
            "request": {"id": origin.request_id, "idempotency_key": origin.idempotency_key},
            "type": event_type,
        }
        self.events.append(event)
        for listener in self.listeners:
            listener(event)
        return event

    def event_prefix(self, obj: Obj) -> str:
        kind = str(obj["object"])
        return EVENT_PREFIX.get(kind, kind)

    def created(self, obj: Obj, origin: Origin) -> Obj:
        """Store a new object and emit its `*.created` event."""
        self.add(obj)
        self.emit(f"{self.event_prefix(obj)}.created", obj, origin)
        return obj

    @contextlib.contextmanager
    def updating(self, obj: Obj, origin: Origin, event_type: str | None = None) -> Iterator[Obj]:
        """Change `obj` inside the block; one `*.updated` event (with `previous_attributes`)
        follows if what the API shows changed."""
        before = self.render(obj)
        yield obj
        after = self.render(obj)
        changed = previous_attributes(before, after)
        if changed:
            kind = event_type or f"{self.event_prefix(obj)}.updated"
            # Only `*.updated` events carry previous_attributes (e.g. not invoice.finalized).
            shown = changed if kind.endswith(".updated") else None
            self.emit(kind, obj, origin, shown, rendered=after)

    @contextlib.contextmanager
    def dry_run(self) -> Iterator[None]:
        """Run changes that are undone afterwards, with no events (invoice previews)."""
        saved = (copy.deepcopy(self.objects), dict(self._order), self._sequence)
        events, listeners = self.events, self.listeners
        self.events, self.listeners = EventLog(), []
        try:
            yield
        finally:
            self.objects, self._order, self._sequence = saved
            self.events, self.listeners = events, listeners
