"""`POST /webhooks/stripe`: verify, store, and only then acknowledge.

The signature is checked on the raw body with the SDK (no event object is built), the body is
routed with msgspec, and the event joins the intake's group commit. The 2xx goes out after the
commit; when the log cannot take the event in time the answer is 503 with `Retry-After`, so
Stripe redelivers it later and nothing is lost.
"""

from __future__ import annotations

import asyncio

import msgspec
import stripe
import structlog
from aiohttp import web

from metrics.instruments import WEBHOOK_ACCEPTED, WEBHOOK_DEFERRED, WEBHOOK_REJECTIONS
from state.records import Link, NewEvent
from state.watch import DatabaseWatch
from stream.intake import IntakeClosed, LogIntake
from stream.stripe.routing import NotAnEvent, route

log = structlog.get_logger(__name__)

PATH = "/webhooks/stripe"
MAX_BODY = 1024 * 1024
RETRY_AFTER_S = "30"
_ANSWERS = {
    "new": b'{"received": true, "duplicate": false}',
    "duplicate": b'{"received": true, "duplicate": true}',
    "kept_aside": b'{"received": true, "kept_aside": true}',
}


class _Refusal(Exception):
    """What the sender sent wrong: answered at the door, nothing stored."""

    def __init__(self, reason: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status

    def response(self) -> web.Response:
        WEBHOOK_REJECTIONS.labels(self.reason).inc()
        log.warning("webhook_rejected", reason=self.reason, detail=str(self))
        return web.json_response({"error": str(self)}, status=self.status)


def _defer(reason: str) -> web.Response:
    WEBHOOK_DEFERRED.labels(reason).inc()
    log.warning("webhook_deferred", reason=reason)
    return web.json_response(
        {"error": f"temporarily unable to store events ({reason})"},
        status=503,
        headers={"Retry-After": RETRY_AFTER_S},
    )


def _signature_problem(body: str, header: str, secrets: list[str], tolerance: int) -> str | None:
    """None when any secret verifies the body (several during rotation), else the reason."""
    reason = "bad_signature"
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(body, header, secret, tolerance)
        except stripe.SignatureVerificationError as exc:
            text = str(exc)
            if "tolerance" in text:
                reason = "stale_timestamp"  # the signature matched, the time did not
            elif "extract" in text or "expected scheme" in text:
                return "malformed_signature"
            continue
        return None
    return reason


class StripeWebhook:
    def __init__(
        self,
        intake: LogIntake,
        watch: DatabaseWatch,
        secrets: list[str],
        *,
        tolerance_s: int = 300,
        commit_wait_s: float = 5.0,
    ) -> None:
        self._intake = intake
        self._watch = watch
        self._secrets = secrets
        self._tolerance = tolerance_s
        self._commit_wait = commit_wait_s
        self._accepted = {outcome: WEBHOOK_ACCEPTED.labels(outcome) for outcome in _ANSWERS}

    async def handle(self, request: web.Request) -> web.Response:
        try:
            event, link = await self._admit(request)
        except _Refusal as refusal:
            return refusal.response()
        if not self._watch.available:
            return _defer("database_unavailable")
        try:
            # asyncio's own timeout: this is the hot path and aiohttp runs on asyncio anyway.
            async with asyncio.timeout(self._commit_wait):
                result = await self._intake.submit([event], links=[link] if link else [])
        except IntakeClosed:
            return _defer("shutting_down")
        except TimeoutError:
            return _defer("log_busy")
        if result.rejected:
            # Ours now, kept aside with its reason (rejected_events): Stripe need not retry.
            outcome = "kept_aside"
        else:
            outcome = "new" if result.outcomes[0] is not None else "duplicate"
        self._accepted[outcome].inc()
        return web.Response(body=_ANSWERS[outcome], content_type="application/json")

    async def _admit(self, request: web.Request) -> tuple[NewEvent, Link | None]:
        """The verified, routed event; raises _Refusal for anything the sender got wrong."""
        too_large = _Refusal("too_large", "body over 1 MiB", status=413)
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise too_large
        header = request.headers.get("Stripe-Signature")
        if not header:
            raise _Refusal("missing_signature", "Stripe-Signature header missing")
        try:
            body = (await request.read()).decode("utf-8")
        except web.HTTPRequestEntityTooLarge:
            raise too_large from None
        except UnicodeDecodeError:
            raise _Refusal("not_utf8", "body is not UTF-8") from None
        problem = _signature_problem(body, header, self._secrets, self._tolerance)
        if problem:
            raise _Refusal(problem, f"signature check failed: {problem}")
        try:
            return route(body)
        except msgspec.DecodeError:
            raise _Refusal("invalid_json", "body is not JSON") from None
        except NotAnEvent as exc:
            raise _Refusal("not_an_event", f"body is not a Stripe event: {exc}") from None


def add_webhook_route(app: web.Application, webhook: StripeWebhook) -> None:
    app.router.add_post(PATH, webhook.handle)
