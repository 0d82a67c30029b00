"""The aiohttp application: Stripe's REST conventions around the resource handlers.

Every `/v1/...` request passes, in order: fault switches, authentication (`sk_test_` /
`rk_test_` keys), `Stripe-Version`, form decoding, `Idempotency-Key`, the handler, `expand[]`.
`/_emulator/...` holds the control API (clock, settings, faults, webhook attempts, the portal's
customer actions, hosted invoice pages); it takes JSON and needs no key.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from emulators.stripe import (
    billing_cycle,
    catalog,
    credit_notes,
    customers,
    events,
    invoices,
    meters,
    payment_methods,
    portal,
    subscriptions,
    webhooks,
)
from emulators.stripe.account import Account
from emulators.stripe.errors import StripeError
from emulators.stripe.expand import expand
from emulators.stripe.faults import Fault
from emulators.stripe.forms import parse_pairs
from emulators.stripe.idempotency import StoredResult, fingerprint
from emulators.stripe.params import array
from emulators.stripe.routing import Call, Origin, Router
from emulators.stripe.webhooks import WebhookSender

log = logging.getLogger("emulators.stripe")

ACCOUNT = web.AppKey("account", Account)
SENDER = web.AppKey("sender", WebhookSender)

API_ROUTERS: list[Router] = [
    customers.router,
    catalog.router,
    payment_methods.router,
    subscriptions.router,
    invoices.router,
    credit_notes.router,
    meters.router,
    portal.router,
    events.router,
    webhooks.router,
]
_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$")
TEST_KEY_PREFIXES = ("sk_test_", "rk_test_")


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(body, indent=2).encode(),
        status=status,
        headers=headers,
        content_type="application/json",
    )


def _api_key(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[len("Bearer ") :].strip()
    if header.startswith("Basic "):
        try:
            return base64.b64decode(header[len("Basic ") :]).decode().split(":", 1)[0]
        except (ValueError, UnicodeDecodeError):
            return ""
    return ""


def _authenticate(request: web.Request) -> None:
    key = _api_key(request)
    if not key:
        raise StripeError(
            401,
            "You did not provide an API key. You need to provide your API key in the "
            "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
            "YOUR_SECRET_KEY').",
        )
    if not key.startswith(TEST_KEY_PREFIXES):
        raise StripeError(
            401, f"Invalid API Key provided: {key[:8]}{'*' * 8}{key[-4:]}", code="api_key_invalid"
        )


async def _params(request: web.Request) -> dict[str, Any]:
    pairs = list(request.query.items())
    if request.method == "POST" and request.can_read_body:
        raw = await request.read()
        content_type = request.content_type
        if content_type not in (
            "application/x-www-form-urlencoded",
            "application/octet-stream",
            "",
        ):
            raise StripeError(
                400,
                f"Invalid request: unsupported Content-Type {content_type}. If error persists "
                "and you need assistance, please contact support@stripe.com.",
            )
        pairs += parse_qsl(raw.decode(), keep_blank_values=True)
    return parse_pairs(pairs)


def _error(exc: StripeError, request_id: str | None) -> web.Response:
    headers = dict(exc.headers)
    if request_id:
        headers["Request-Id"] = request_id
    return _json(exc.body(request_id), exc.status, headers)


async def _api(request: web.Request) -> web.Response:  # noqa: PLR0912 - the pipeline
    account = request.app[ACCOUNT]
    request_id = account.new_id("req", 14)
    method, path = request.method, request.path
    try:
        for fault in account.faults.take(method, path):
            if fault.kind == "latency":
                await asyncio.sleep(fault.latency_ms / 1000)
            else:
                raise fault.error()
        _authenticate(request)
        version = request.headers.get("Stripe-Version") or account.settings.api_version
        if not _VERSION.match(version):
            raise StripeError(400, f"Invalid Stripe API version: {version}", param="Stripe-Version")
        params = await _params(request)
        found = None
        for router in API_ROUTERS:
            found = router.match(method, path)
            if found:
                break
        if found is None:
            raise StripeError(
                404,
                f"Unrecognized request URL ({method}: {path}). Please see "
                "https://stripe.com/docs or we can help at https://support.stripe.com/.",
            )
        handler, path_args = found
        key = request.headers.get("Idempotency-Key") if method == "POST" else None
        headers = {"Request-Id": request_id, "Stripe-Version": version}
        if key is None:
            body = _execute(account, handler, params, path_args, Origin(request_id, None))
            return _json(body, headers=headers)
        print_ = fingerprint(method, path, params)
        stored = account.idempotency.lookup(key, print_, account.now())
        if stored is not None:
            return web.Response(
                body=stored.body,
                status=stored.status,
                content_type="application/json",
                headers={
                    "Request-Id": stored.request_id,
                    "Idempotency-Key": key,
                    "Idempotent-Replayed": "true",
                    "Original-Request": stored.request_id,
                    "Stripe-Version": version,
                },
            )
        account.idempotency.running.add(key)
        try:
            body = _execute(account, handler, params, path_args, Origin(request_id, key))
        except StripeError as exc:
            if exc.stored:
                raw = json.dumps(exc.body(request_id), indent=2).encode()
                stored_error = StoredResult(print_, exc.status, raw, request_id, account.now())
                account.idempotency.save(key, stored_error)
            raise
        finally:
            account.idempotency.running.discard(key)
        raw = json.dumps(body, indent=2).encode()
        account.idempotency.save(key, StoredResult(print_, 200, raw, request_id, account.now()))
        headers["Idempotency-Key"] = key
        return web.Response(body=raw, content_type="application/json", headers=headers)
    except StripeError as exc:
        return _error(exc, request_id)
    except Exception as exc:  # a bug in the emulator: Stripe's 500 shape, and a log line
        log.exception("stripe_emulator.handler_failed", extra={"path": path})
        return _error(
            StripeError(500, f"Emulator error: {type(exc).__name__}: {exc}", type="api_error"),
            request_id,
        )


def _execute(
    account: Account,
    handler: Any,
    params: dict[str, Any],
    path_args: dict[str, str],
    origin: Origin,
) -> Any:
    result = handler(Call(account, params, path_args, origin))
    return expand(account, result, [str(path) for path in array(params, "expand")])


# -- control API ---------------------------------------------------------------------------------
async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    body = await request.json()
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="a JSON object is expected")
    return body


async def _advance(request: web.Request) -> web.Response:
    account = request.app[ACCOUNT]
    body = await _body(request)
    before = len(account.events)
    target = int(body["to"]) if "to" in body else account.now() + int(body.get("seconds", 0))
    billing_cycle.advance_to(account, target)
    return _json({"now": account.now(), "events": len(account.events) - before})


async def _clock(request: web.Request) -> web.Response:
    return _json({"now": request.app[ACCOUNT].now()})


async def _config(request: web.Request) -> web.Response:
    account = request.app[ACCOUNT]
    body = await _body(request)
    settings = account.settings
    if "finalize_delay" in body:
        settings.finalize_delay = int(body["finalize_delay"])
    if "api_version" in body:
        settings.api_version = str(body["api_version"])
    dunning = body.get("dunning") or {}
    if "retry_delays" in dunning:
        settings.dunning.retry_delays = [int(delay) for delay in dunning["retry_delays"]]
    if "subscription_status" in dunning:
        if dunning["subscription_status"] not in ("canceled", "unpaid", "past_due"):
            raise web.HTTPBadRequest(text="subscription_status: canceled, unpaid or past_due")
        settings.dunning.subscription_status = dunning["subscription_status"]
    if "invoice_status" in dunning:
        if dunning["invoice_status"] not in ("open", "uncollectible"):
            raise web.HTTPBadRequest(text="invoice_status: open or uncollectible")
        settings.dunning.invoice_status = dunning["invoice_status"]
    if "webhooks" in body:
        request.app[SENDER].configure(body["webhooks"])
    return _json({"ok": True})


async def _add_fault(request: web.Request) -> web.Response:
    try:
        fault = Fault.from_json(await _body(request))
    except (ValueError, TypeError) as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    request.app[ACCOUNT].faults.add(fault)
    return _json({"ok": True})


async def _clear_faults(request: web.Request) -> web.Response:
    request.app[ACCOUNT].faults.clear()
    return _json({"ok": True})


async def _attempts(request: web.Request) -> web.Response:
    return _json({"data": [attempt.as_json() for attempt in request.app[SENDER].attempts]})


async def _settle(request: web.Request) -> web.Response:
    body = await _body(request)
    try:
        await request.app[SENDER].settled(float(body.get("timeout", 10)))
    except TimeoutError:
        return _json({"settled": False}, 504)
    return _json({"settled": True})


async def _portal_action(request: web.Request) -> web.Response:
    account = request.app[ACCOUNT]
    try:
        result = portal.act(
            account,
            request.match_info["session"],
            request.match_info["action"],
            await _body(request),
        )
    except StripeError as exc:
        return _error(exc, None)
    return _json(result)


Page = Callable[[Account, str], str | bytes]
Handler = Callable[[web.Request], Awaitable[web.Response]]


def _page(render: Page, param: str, content_type: str) -> Handler:
    """A page the emulator renders itself (portal, hosted invoice, its PDF) for a path
    parameter; an unknown id answers as the API would."""

    async def serve(request: web.Request) -> web.Response:
        try:
            content = render(request.app[ACCOUNT], request.match_info[param])
        except StripeError as exc:
            return _error(exc, None)
        if isinstance(content, str):
            return web.Response(text=content, content_type=content_type)
        return web.Response(body=content, content_type=content_type)

    return serve


def build_app(account: Account | None = None) -> web.Application:
    app = web.Application()
    app[ACCOUNT] = account or Account()
    app[SENDER] = WebhookSender(app[ACCOUNT])

    async def start_sender(app: web.Application) -> None:
        await app[SENDER].start()

    async def stop_sender(app: web.Application) -> None:
        await app[SENDER].stop()

    app.on_startup.append(start_sender)
    app.on_cleanup.append(stop_sender)
    app.router.add_post("/_emulator/advance", _advance)
    app.router.add_get("/_emulator/clock", _clock)
    app.router.add_post("/_emulator/config", _config)
    app.router.add_post("/_emulator/faults", _add_fault)
    app.router.add_delete("/_emulator/faults", _clear_faults)
    app.router.add_get("/_emulator/webhook_attempts", _attempts)
    app.router.add_post("/_emulator/webhooks/settle", _settle)
    app.router.add_get("/_emulator/portal/{session}", _page(portal.page, "session", "text/html"))
    app.router.add_post("/_emulator/portal/{session}/{action}", _portal_action)
    app.router.add_get("/_emulator/invoices/{id}", _page(invoices.hosted_page, "id", "text/html"))
    app.router.add_get("/_emulator/invoices/{id}/pdf", _page(invoices.pdf, "id", "application/pdf"))
    app.router.add_route("*", "/v1/{tail:.*}", _api)
    return app
