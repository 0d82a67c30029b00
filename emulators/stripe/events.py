"""The event log and `GET /v1/events`: newest first, cursors, `created`, `type` wildcards,
`types[]`, `delivery_success`, and Stripe's 30-day retention (of emulator time)."""

from __future__ import annotations

import bisect
import fnmatch
from typing import Any

from emulators.stripe.errors import StripeError, invalid, no_such
from emulators.stripe.lists import created_matches, page
from emulators.stripe.params import Params, array, boolean, text
from emulators.stripe.routing import Call, Router

Obj = dict[str, Any]
RETENTION_S = 30 * 24 * 3600
TYPES_MAX = 20


class EventLog:
    def __init__(self) -> None:
        self.events: list[Obj] = []  # oldest first
        self._index: dict[str, int] = {}
        # Endpoints that have not acknowledged each event yet (pending or failed).
        self.undelivered: dict[str, set[str]] = {}

    def append(self, event: Obj) -> None:
        self._index[event["id"]] = len(self.events)
        self.events.append(event)

    def __len__(self) -> int:
        return len(self.events)

    def render(self, event: Obj) -> Obj:
        rendered = dict(event)
        rendered["pending_webhooks"] = len(self.undelivered.get(event["id"], ()))
        return rendered

    def _retained_from(self, now: int) -> int:
        """Index of the oldest event still retained."""
        cutoff = now - RETENTION_S
        return bisect.bisect_left([event["created"] for event in self.events], cutoff)

    def retrieve(self, event_id: str, now: int) -> Obj:
        index = self._index.get(event_id)
        if index is None or index < self._retained_from(now):
            raise no_such("event", event_id)
        return self.render(self.events[index])

    def list(self, params: Params, now: int) -> Obj:
        type_pattern = text(params, "type")
        types = [str(item) for item in array(params, "types")]
        if type_pattern and types:
            raise StripeError(400, "You cannot specify both `type` and `types`.", param="types")
        if len(types) > TYPES_MAX:
            raise invalid(f"You may pass at most {TYPES_MAX} types.", "types")
        delivered = boolean(params, "delivery_success")
        oldest = self._retained_from(now)
        retained = self.events[oldest:]
        newest_first = list(reversed(retained))
        positions = {event["id"]: i for i, event in enumerate(newest_first)}

        def wanted(event: Obj) -> bool:
            if type_pattern and not fnmatch.fnmatchcase(event["type"], type_pattern):
                return False
            if types and event["type"] not in types:
                return False
            if delivered is not None:
                pending = bool(self.undelivered.get(event["id"]))
                if pending == delivered:
                    return False
            return created_matches(params, event["created"])

        matching = [event for event in newest_first if wanted(event)]
        # A cursor keeps its place even when it does not match the filters itself.
        matching_positions = [positions[event["id"]] for event in matching]

        def position(cursor: str) -> int | None:
            at = positions.get(cursor)
            if at is None:
                return None
            if params.get("starting_after"):
                return bisect.bisect_right(matching_positions, at) - 1
            return bisect.bisect_left(matching_positions, at)

        return page(matching, params, "/v1/events", self.render, label="event", position=position)


def _routes() -> Router:
    router = Router()

    @router.get("/v1/events")
    def list_events(call: Call) -> Obj:
        return call.account.events.list(call.params, call.account.now())

    @router.get("/v1/events/{id}")
    def retrieve_event(call: Call) -> Obj:
        return call.account.events.retrieve(call.path["id"], call.account.now())

    return router


router = _routes()
