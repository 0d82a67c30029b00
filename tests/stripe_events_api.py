"""A small server of Stripe's documented `GET /v1/events` semantics, for the poller's tests.

localstripe lists events oldest first and rejects `ending_before`; Stripe does neither. This
server does what Stripe documents: newest first, `limit` up to 100, `starting_after` (older) and
`ending_before` (the page just newer than the cursor), `created[...]` filters, 30-day retention,
errors in Stripe's shape, and one-shot fault injection. Events can be hidden, to play ones that
become visible late.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

RETENTION_S = 30 * 24 * 3600


@dataclass
class StoredEvent:
    body: dict[str, Any]
    order: int
    visible: bool = True

    @property
    def key(self) -> tuple[int, int]:
        return (self.body["created"], self.order)


@dataclass
class Fault:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    error_type: str = "api_error"


class EventsApi:
    def __init__(self) -> None:
        self.events: dict[str, StoredEvent] = {}
        self.faults: list[Fault] = []
        self.requests: list[dict[str, str]] = []
        self._order = 0
        self.url = ""

    def add(self, event_id: str, created: int, *, visible: bool = True, **body: Any) -> None:
        self._order += 1
        payload = {
            "id": event_id,
            "object": "event",
            "api_version": "2025-03-31.basil",
            "created": created,
            "type": body.pop("type", "customer.updated"),
            "livemode": False,
            "pending_webhooks": 0,
            "request": {"id": None, "idempotency_key": None},
            "data": body.pop("data", {"object": {"id": "cus_1", "object": "customer"}}),
        }
        self.events[event_id] = StoredEvent(payload, self._order, visible)

    def reveal(self, event_id: str) -> None:
        self.events[event_id].visible = True

    def _error(self, status: int, kind: str, message: str, **extra: Any) -> web.Response:
        body = {"error": {"type": kind, "message": message, **extra}}
        return web.json_response(body, status=status)

    def _retained(self) -> list[StoredEvent]:
        horizon = time.time() - RETENTION_S
        listed = [e for e in self.events.values() if e.visible and e.body["created"] >= horizon]
        return sorted(listed, key=lambda e: e.key, reverse=True)

    async def list_events(self, request: web.Request) -> web.Response:
        params = dict(request.query)
        self.requests.append(params)
        if not request.headers.get("Authorization", "").startswith("Bearer sk_test_"):
            return self._error(401, "invalid_request_error", "Invalid API Key provided")
        if self.faults:
            fault = self.faults.pop(0)
            response = self._error(fault.status, fault.error_type, "injected fault")
            response.headers.update(fault.headers)
            return response
        if "starting_after" in params and "ending_before" in params:
            return self._error(
                400, "invalid_request_error", "starting_after and ending_before are exclusive"
            )
        limit = int(params.get("limit", "10"))
        if not 1 <= limit <= 100:
            return self._error(400, "invalid_request_error", "limit must be in 1..100")
        listed = [e for e in self._retained() if self._created_matches(e, params)]
        cursor_name = "starting_after" if "starting_after" in params else "ending_before"
        cursor_id = params.get(cursor_name)
        if cursor_id is not None:
            cursor = self.events.get(cursor_id)
            if cursor is None or cursor not in self._retained():
                return self._error(
                    404,
                    "invalid_request_error",
                    f"No such event: '{cursor_id}'",
                    code="resource_missing",
                    param=cursor_name,
                )
            if cursor_name == "starting_after":
                older = [e for e in listed if e.key < cursor.key]
                page, has_more = older[:limit], len(older) > limit
            else:
                newer = [e for e in listed if e.key > cursor.key]
                page, has_more = newer[-limit:], len(newer) > limit
        else:
            page, has_more = listed[:limit], len(listed) > limit
        body = {
            "object": "list",
            "url": "/v1/events",
            "has_more": has_more,
            "data": [e.body for e in page],
        }
        return web.Response(text=json.dumps(body), content_type="application/json")

    @staticmethod
    def _created_matches(event: StoredEvent, params: dict[str, str]) -> bool:
        created = event.body["created"]
        checks = {
            "created": lambda v: created == v,
            "created[gt]": lambda v: created > v,
            "created[gte]": lambda v: created >= v,
            "created[lt]": lambda v: created < v,
            "created[lte]": lambda v: created <= v,
        }
        return all(check(int(params[name])) for name, check in checks.items() if name in params)


@asynccontextmanager
async def running_events_api() -> AsyncIterator[EventsApi]:
    api = EventsApi()
    app = web.Application()
    app.router.add_get("/v1/events", api.list_events)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    api.url = f"http://127.0.0.1:{port}"
    try:
        yield api
    finally:
        await runner.cleanup()
