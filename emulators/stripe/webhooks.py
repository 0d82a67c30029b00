"""Webhook endpoints (`/v1/webhook_endpoints`) and signed, retried delivery of events.

Each event goes to every enabled endpoint that listens to its type (`enabled_events` holds exact
types or `*`), as JSON with `Stripe-Signature: t=<wall clock>,v1=<HMAC-SHA256 of "t.body">`
under the endpoint's own `whsec_` secret. A non-2xx answer or a timeout is retried after each
delay of `retry_delays` (real seconds, short by default so tests can watch retries); the event
stays counted in `pending_webhooks` and listed by `delivery_success=false` until acknowledged.
Switches mimic Stripe's delivery: `shuffle` sends what is waiting in random order, and
`duplicate_rate` sends some deliveries twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from emulators.stripe.account import Account
from emulators.stripe.errors import invalid
from emulators.stripe.lists import page
from emulators.stripe.params import apply_metadata, array, boolean, required_text, text
from emulators.stripe.routing import Call, Obj, Router

router = Router()


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header Stripe would send for `payload`."""
    stamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256)
    return f"t={stamp},v1={mac.hexdigest()}"


def _events_of(params: dict[str, Any]) -> list[str]:
    events = [str(item) for item in array(params, "enabled_events")]
    if not events:
        raise invalid("Missing required param: enabled_events.", "enabled_events")
    return events


@router.post("/v1/webhook_endpoints")
def create_endpoint(call: Call) -> Obj:
    account, params = call.account, call.params
    endpoint: Obj = {
        "id": account.new_id("we"),
        "object": "webhook_endpoint",
        "api_version": text(params, "api_version"),
        "application": None,
        "created": account.now(),
        "description": text(params, "description"),
        "enabled_events": _events_of(params),
        "livemode": False,
        "metadata": {},
        "status": "enabled",
        "url": required_text(params, "url"),
        "_secret": account.new_id("whsec", 32),
    }
    apply_metadata(endpoint["metadata"], params)
    account.add(endpoint)
    shown = account.render(endpoint)
    shown["secret"] = endpoint["_secret"]  # only the creation response shows the secret
    return shown


@router.get("/v1/webhook_endpoints/{id}")
def retrieve_endpoint(call: Call) -> Obj:
    return call.account.render(call.account.get("webhook_endpoint", call.path["id"]))


@router.post("/v1/webhook_endpoints/{id}")
def update_endpoint(call: Call) -> Obj:
    endpoint = call.account.get("webhook_endpoint", call.path["id"])
    params = call.params
    if "enabled_events" in params:
        endpoint["enabled_events"] = _events_of(params)
    if "url" in params:
        endpoint["url"] = required_text(params, "url")
    if "description" in params:
        endpoint["description"] = text(params, "description")
    disabled = boolean(params, "disabled")
    if disabled is not None:
        endpoint["status"] = "disabled" if disabled else "enabled"
    apply_metadata(endpoint["metadata"], params)
    return call.account.render(endpoint)


@router.delete("/v1/webhook_endpoints/{id}")
def delete_endpoint(call: Call) -> Obj:
    endpoint = call.account.get("webhook_endpoint", call.path["id"])
    call.account.remove(endpoint["id"])
    return {"id": endpoint["id"], "object": "webhook_endpoint", "deleted": True}


@router.get("/v1/webhook_endpoints")
def list_endpoints(call: Call) -> Obj:
    account = call.account
    return page(
        account.all("webhook_endpoint"),
        call.params,
        "/v1/webhook_endpoints",
        account.render,
        label="webhook endpoint",
    )


@dataclass
class DeliverySettings:
    retry_delays: list[float] = field(default_factory=lambda: [0.5, 2.0, 5.0])
    timeout: float = 10.0
    shuffle: bool = False
    duplicate_rate: float = 0.0
    seed: int | None = None


@dataclass
class Attempt:
    event_id: str
    endpoint_id: str
    attempt: int
    status: int | None
    error: str | None
    at: float

    def as_json(self) -> dict[str, Any]:
        return {
            "event": self.event_id,
            "endpoint": self.endpoint_id,
            "attempt": self.attempt,
            "status": self.status,
            "error": self.error,
            "at": self.at,
        }


@dataclass
class _Delivery:
    event: Obj
    endpoint_id: str
    attempt: int = 1


class WebhookSender:
    """Delivers each new event of `account` to its endpoints in the background."""

    def __init__(self, account: Account) -> None:
        self.account = account
        self.settings = DeliverySettings()
        self.attempts: list[Attempt] = []
        self._queue: asyncio.Queue[_Delivery] = asyncio.Queue()
        self._outstanding = 0  # queued, in flight, or waiting for a retry
        self._idle = asyncio.Event()
        self._idle.set()
        self._random = random.Random()
        self._task: asyncio.Task[None] | None = None
        self._retries: set[asyncio.TimerHandle] = set()
        self._http: aiohttp.ClientSession | None = None
        account.listeners.append(self._on_event)

    def configure(self, body: dict[str, Any]) -> None:
        for key in ("retry_delays", "timeout", "shuffle", "duplicate_rate", "seed"):
            if key in body:
                setattr(self.settings, key, body[key])
        if "seed" in body:
            self._random.seed(body["seed"])

    def _on_event(self, event: Obj) -> None:
        targets = [
            endpoint
            for endpoint in self.account.all("webhook_endpoint")
            if endpoint["status"] == "enabled"
            and ("*" in endpoint["enabled_events"] or event["type"] in endpoint["enabled_events"])
        ]
        if not targets:
            return
        self.account.events.undelivered[event["id"]] = {endpoint["id"] for endpoint in targets}
        for endpoint in targets:
            self._enqueue(_Delivery(event, endpoint["id"]))

    def _enqueue(self, delivery: _Delivery) -> None:
        self._outstanding += 1
        self._idle.clear()
        self._queue.put_nowait(delivery)

    def _done_one(self) -> None:
        self._outstanding -= 1
        if self._outstanding == 0:
            self._idle.set()

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout)
        )
        self._task = asyncio.create_task(self._run(), name="stripe-emulator-webhooks")

    async def stop(self) -> None:
        for handle in self._retries:
            handle.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._http is not None:
            await self._http.close()

    async def settled(self, wait_s: float = 10.0) -> None:
        """Wait until every delivery succeeded or ran out of retries."""
        await asyncio.wait_for(self._idle.wait(), wait_s)

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            if self.settings.shuffle:
                await asyncio.sleep(0.05)  # let a few gather, then send them in random order
                while not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                self._random.shuffle(batch)
            for delivery in batch:
                copies = 2 if self._random.random() < self.settings.duplicate_rate else 1
                for copy_number in range(copies):
                    await self._send(delivery, count_attempt=copy_number == 0)

    async def _send(self, delivery: _Delivery, *, count_attempt: bool) -> None:
        endpoint = self.account.find(delivery.endpoint_id)
        if endpoint is None or endpoint["status"] != "enabled":
            if count_attempt:
                self._done_one()
            return
        event_id = delivery.event["id"]
        pending = self.account.events.undelivered.get(event_id, set())
        body = dict(delivery.event)
        body["pending_webhooks"] = len(pending)
        payload = json.dumps(body, indent=2).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": sign(payload, endpoint["_secret"]),
        }
        status: int | None = None
        error: str | None = None
        assert self._http is not None
        try:
            async with self._http.post(endpoint["url"], data=payload, headers=headers) as answer:
                status = answer.status
                await answer.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        self.attempts.append(
            Attempt(event_id, endpoint["id"], delivery.attempt, status, error, time.time())
        )
        if not count_attempt:
            return
        if status is not None and 200 <= status < 300:
            pending.discard(endpoint["id"])
            self._done_one()
            return
        delays = self.settings.retry_delays
        if delivery.attempt <= len(delays):
            retry = _Delivery(delivery.event, delivery.endpoint_id, delivery.attempt + 1)
            loop = asyncio.get_running_loop()
            handle: asyncio.TimerHandle

            def requeue() -> None:
                self._retries.discard(handle)
                self._queue.put_nowait(retry)

            handle = loop.call_later(delays[delivery.attempt - 1], requeue)
            self._retries.add(handle)
        else:
            self._done_one()
