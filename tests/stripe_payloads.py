"""Stripe Event payloads for tests (API version `2025-03-31.basil`), signing, and a receiver.

The objects are shaped like the captured samples in `tests/samples/stripe_*.json`: invoices
name their subscription in `parent.subscription_details`, subscription periods live on the
items, `invoice.upcoming` has no `id`, and a detached payment method has `customer: null` with
the old id in `data.previous_attributes.customer`. Every event gets a fresh `evt_` id.

`receiving()` runs the real webhook endpoint (aiohttp on 127.0.0.1, a free port) in front of a
real `LogIntake` over a test database, as the daemon wires them.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import stripe
from aiohttp import web

from state.log import EventLog
from state.watch import DatabaseWatch
from stream.intake import LogIntake
from stream.stripe.webhook import MAX_BODY, PATH, StripeWebhook, add_webhook_route

API_VERSION = "2025-03-31.basil"
SAMPLES = Path(__file__).parent / "samples"
SECRET = "whsec_test_5f0c1d2e3a4b5c6d7e8f9a0b1c2d3e4f"
OTHER_SECRET = "whsec_test_a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4"

Json = dict[str, Any]


# ---------------------------------------------------------------------------------------------
# ids, envelopes


def new_id(prefix: str) -> str:
    """A fresh Stripe-style id: `cus_TEST...`, `evt_TEST...`."""
    return f"{prefix}_TEST{uuid.uuid4().hex[:14]}"


def sample(name: str) -> Json:
    """A captured sample event, e.g. `sample("invoice_paid")`."""
    loaded: Json = json.loads((SAMPLES / f"stripe_{name}.json").read_text())
    return loaded


def _now() -> int:
    return int(time.time())


def api_request(idempotency_key: str | None = None) -> Json:
    """`request` of an event caused by an API call."""
    return {"id": new_id("req"), "idempotency_key": idempotency_key or str(uuid.uuid4())}


AUTOMATIC: Json = {"id": None, "idempotency_key": None}
"""`request` of an event Stripe caused itself (renewals, retries, card updater...)."""


def envelope(
    type_: str,
    obj: Json,
    *,
    previous: Json | None = None,
    created: int | None = None,
    request: Json | None = None,
    event_id: str | None = None,
    livemode: bool = False,
) -> Json:
    """A Stripe Event around a snapshot `obj`, keys in the order Stripe sends them."""
    data: Json = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    return {
        "id": event_id or new_id("evt"),
        "object": "event",
        "api_version": API_VERSION,
        "created": created if created is not None else _now(),
        "data": data,
        "livemode": livemode,
        "pending_webhooks": 1,
        "request": request if request is not None else api_request(),
        "type": type_,
    }


# ---------------------------------------------------------------------------------------------
# objects (snapshots), based on the samples


def customer_object(
    customer_id: str, *, sf_account_id: str | None = None, name: str = "Globex Test Holdings"
) -> Json:
    obj: Json = copy.deepcopy(sample("customer_updated")["data"]["object"])
    obj["id"] = customer_id
    obj["name"] = name
    obj["metadata"] = {"sf_account_id": sf_account_id} if sf_account_id else {}
    return obj


def price_object(price_id: str, product_id: str) -> Json:
    sub = sample("subscription_updated_quantity")["data"]["object"]
    obj: Json = copy.deepcopy(sub["items"]["data"][0]["price"])
    obj.update(
        id=price_id,
        product=product_id,
        custom_unit_amount=None,
        tiers_mode=None,
        transform_quantity=None,
    )
    return obj


def product_object(product_id: str, *, name: str = "Pro seat") -> Json:
    return {
        "id": product_id,
        "object": "product",
        "active": True,
        "created": 1730419200,
        "default_price": None,
        "description": "One seat of the Pro plan",
        "images": [],
        "livemode": False,
        "marketing_features": [],
        "metadata": {"sf_product_id": "01txx0000008cXfAAI"},
        "name": name,
        "package_dimensions": None,
        "shippable": None,
        "statement_descriptor": None,
        "tax_code": None,
        "type": "service",
        "unit_label": "seat",
        "updated": 1730419200,
        "url": None,
    }


def subscription_object(
    customer_id: str, subscription_id: str, *, status: str = "active", quantity: int = 8
) -> Json:
    obj: Json = copy.deepcopy(sample("subscription_updated_quantity")["data"]["object"])
    obj["id"] = subscription_id
    obj["customer"] = customer_id
    obj["status"] = status
    obj["metadata"] = {}
    item = obj["items"]["data"][0]
    item["subscription"] = subscription_id
    item["quantity"] = quantity
    obj["items"]["url"] = f"/v1/subscription_items?subscription={subscription_id}"
    if status == "trialing":
        obj.update(trial_start=1748736000, trial_end=1749945600)
    if status == "canceled":
        obj.update(canceled_at=1750377600, ended_at=1750377600)
    return obj


_INVOICE_STATUS_TRANSITIONS = {
    "draft": {},
    "open": {"finalized_at": 1750381537},
    "paid": {"finalized_at": 1750381537, "paid_at": 1750924531},
    "void": {"finalized_at": 1750381537, "voided_at": 1750924531},
    "uncollectible": {"finalized_at": 1750381537, "marked_uncollectible_at": 1750924531},
}


def invoice_object(
    customer_id: str,
    invoice_id: str | None,
    *,
    status: str = "open",
    subscription_id: str | None = None,
) -> Json:
    """An invoice; `invoice_id=None` gives the id-less preview of `invoice.upcoming`."""
    obj: Json = copy.deepcopy(sample("invoice_payment_failed")["data"]["object"])
    subscription_id = subscription_id or new_id("sub")
    obj["customer"] = customer_id
    obj["status"] = status
    obj["parent"]["subscription_details"]["subscription"] = subscription_id
    obj["parent"]["subscription_details"]["metadata"] = {}
    line = obj["lines"]["data"][0]
    line["parent"]["subscription_item_details"]["subscription"] = subscription_id
    transitions = dict.fromkeys(
        ("finalized_at", "marked_uncollectible_at", "paid_at", "voided_at"), None
    )
    transitions.update(_INVOICE_STATUS_TRANSITIONS[status])
    obj["status_transitions"] = transitions
    paid = status == "paid"
    obj["amount_paid"] = obj["amount_due"] if paid else 0
    obj["amount_remaining"] = 0 if paid or status == "void" else obj["amount_due"]
    if status == "draft":
        obj.update(number=None, hosted_invoice_url=None, invoice_pdf=None, attempted=False)
        obj.update(attempt_count=0, effective_at=None, next_payment_attempt=None)
    if invoice_id is None:
        del obj["id"]
        obj.update(number=None, hosted_invoice_url=None, invoice_pdf=None)
        line["invoice"] = None
        line["id"] = new_id("il_tmp")
        obj["lines"]["url"] = "/v1/invoices/upcoming/lines"
    else:
        obj["id"] = invoice_id
        line["invoice"] = invoice_id
        obj["lines"]["url"] = f"/v1/invoices/{invoice_id}/lines"
        for key in ("hosted_invoice_url", "invoice_pdf"):
            if obj[key]:
                obj[key] = obj[key].replace("in_TEST5Xc2Vb9Nm", invoice_id)
    return obj


def payment_method_object(customer_id: str | None, payment_method_id: str) -> Json:
    obj: Json = copy.deepcopy(sample("payment_method_attached")["data"]["object"])
    obj["id"] = payment_method_id
    obj["customer"] = customer_id
    return obj


def billing_portal_session_object(customer_id: str) -> Json:
    session_id = new_id("bps")
    return {
        "id": session_id,
        "object": "billing_portal.session",
        "configuration": "bpc_TEST3Qe8Tn1Zr",
        "created": _now(),
        "customer": customer_id,
        "flow": None,
        "livemode": False,
        "locale": None,
        "on_behalf_of": None,
        "return_url": "https://globex.example.com/account",
        "url": f"https://billing.stripe.com/p/session/test_{session_id}",
    }


def credit_note_object(customer_id: str, invoice_id: str) -> Json:
    note_id = new_id("cn")
    return {
        "id": note_id,
        "object": "credit_note",
        "amount": 1500,
        "amount_shipping": 0,
        "created": _now(),
        "currency": "usd",
        "customer": customer_id,
        "customer_balance_transaction": None,
        "discount_amount": 0,
        "discount_amounts": [],
        "effective_at": _now(),
        "invoice": invoice_id,
        "lines": {
            "object": "list",
            "data": [
                {
                    "id": new_id("cnli"),
                    "object": "credit_note_line_item",
                    "amount": 1500,
                    "description": "1 \u00d7 Pro seat (at $15.00 / month)",
                    "discount_amount": 0,
                    "discount_amounts": [],
                    "invoice_line_item": "il_TEST8Rt3Wq6Za",
                    "livemode": False,
                    "metadata": {},
                    "pretax_credit_amounts": [],
                    "quantity": 1,
                    "taxes": [],
                    "type": "invoice_line_item",
                    "unit_amount": 1500,
                    "unit_amount_decimal": "1500",
                }
            ],
            "has_more": False,
            "total_count": 1,
            "url": f"/v1/credit_notes/{note_id}/lines",
        },
        "livemode": False,
        "memo": "One seat removed mid-period",
        "metadata": {},
        "number": "GLBX7Q2A-0004-CN-01",
        "out_of_band_amount": None,
        "pdf": f"https://pay.stripe.com/credit_notes/acct_TESTxxxxxxxx/test_{note_id}/pdf",
        "post_payment_amount": 1500,
        "pre_payment_amount": 0,
        "pretax_credit_amounts": [],
        "reason": "order_change",
        "refunds": [],
        "shipping_cost": None,
        "status": "issued",
        "subtotal": 1500,
        "subtotal_excluding_tax": 1500,
        "total": 1500,
        "total_excluding_tax": 1500,
        "total_taxes": [],
        "type": "post_payment",
        "voided_at": None,
    }


def early_fraud_warning_object() -> Json:
    """An object that names no customer (`radar.early_fraud_warning`)."""
    return {
        "id": new_id("issfr"),
        "object": "radar.early_fraud_warning",
        "actionable": True,
        "charge": new_id("ch"),
        "created": _now(),
        "fraud_type": "unauthorized_use_of_card",
        "livemode": False,
        "payment_intent": new_id("pi"),
    }


# ---------------------------------------------------------------------------------------------
# events


def customer_created(customer_id: str, *, sf_account_id: str | None = None, **kw: Any) -> Json:
    return envelope("customer.created", customer_object(customer_id, sf_account_id=sf_account_id))


def customer_updated(customer_id: str, *, sf_account_id: str | None = None, **kw: Any) -> Json:
    obj = customer_object(customer_id, sf_account_id=sf_account_id)
    previous: Json = {"email": "accounts@globex.example.com", "phone": "+15550100"}
    if sf_account_id:
        previous["metadata"] = {"sf_account_id": None}
    return envelope("customer.updated", obj, previous=previous)


def customer_deleted(customer_id: str, *, sf_account_id: str | None = None, **kw: Any) -> Json:
    return envelope("customer.deleted", customer_object(customer_id, sf_account_id=sf_account_id))


def subscription_created(customer_id: str, **kw: Any) -> Json:
    obj = subscription_object(customer_id, kw.get("subscription_id") or new_id("sub"))
    obj["status"] = "incomplete"
    return envelope("customer.subscription.created", obj)


def subscription_updated(customer_id: str, **kw: Any) -> Json:
    subscription_id = kw.get("subscription_id") or new_id("sub")
    obj = subscription_object(customer_id, subscription_id, quantity=8)
    before = copy.deepcopy(obj["items"])
    before["data"][0]["quantity"] = 5
    del before["object"], before["has_more"], before["total_count"], before["url"]
    return envelope("customer.subscription.updated", obj, previous={"items": before})


def subscription_deleted(customer_id: str, **kw: Any) -> Json:
    obj = subscription_object(
        customer_id, kw.get("subscription_id") or new_id("sub"), status="canceled"
    )
    return envelope("customer.subscription.deleted", obj)


def subscription_trial_will_end(customer_id: str, **kw: Any) -> Json:
    obj = subscription_object(
        customer_id, kw.get("subscription_id") or new_id("sub"), status="trialing"
    )
    return envelope("customer.subscription.trial_will_end", obj, request=AUTOMATIC)


def _invoice_event(type_: str, status: str, *, automatic: bool = True) -> Callable[..., Json]:
    def build(customer_id: str, **kw: Any) -> Json:
        obj = invoice_object(
            customer_id,
            kw.get("invoice_id") or new_id("in"),
            status=status,
            subscription_id=kw.get("subscription_id"),
        )
        previous: Json | None = None
        if type_ == "invoice.updated":
            previous = {"description": None}
            obj["description"] = "PO 4711"
        return envelope(
            type_, obj, previous=previous, request=AUTOMATIC if automatic else api_request()
        )

    build.__name__ = type_.replace(".", "_")
    return build


invoice_created = _invoice_event("invoice.created", "draft")
invoice_finalized = _invoice_event("invoice.finalized", "open")
invoice_updated = _invoice_event("invoice.updated", "open", automatic=False)
invoice_paid = _invoice_event("invoice.paid", "paid")
invoice_payment_succeeded = _invoice_event("invoice.payment_succeeded", "paid")
invoice_payment_failed = _invoice_event("invoice.payment_failed", "open")
invoice_payment_action_required = _invoice_event("invoice.payment_action_required", "open")
invoice_voided = _invoice_event("invoice.voided", "void", automatic=False)
invoice_marked_uncollectible = _invoice_event("invoice.marked_uncollectible", "uncollectible")


def invoice_upcoming(customer_id: str, **kw: Any) -> Json:
    obj = invoice_object(
        customer_id, None, status="draft", subscription_id=kw.get("subscription_id")
    )
    return envelope("invoice.upcoming", obj, request=AUTOMATIC)


def payment_method_attached(customer_id: str, **kw: Any) -> Json:
    obj = payment_method_object(customer_id, kw.get("payment_method_id") or new_id("pm"))
    return envelope("payment_method.attached", obj)


def payment_method_detached(customer_id: str, **kw: Any) -> Json:
    """`data.object.customer` is null; the old customer is only in `previous_attributes`."""
    obj = payment_method_object(None, kw.get("payment_method_id") or new_id("pm"))
    return envelope("payment_method.detached", obj, previous={"customer": customer_id})


def payment_method_updated(customer_id: str, **kw: Any) -> Json:
    obj = payment_method_object(customer_id, kw.get("payment_method_id") or new_id("pm"))
    obj["card"]["exp_year"] = 2031
    return envelope("payment_method.updated", obj, previous={"card": {"exp_year": 2029}})


def payment_method_automatically_updated(customer_id: str, **kw: Any) -> Json:
    obj = payment_method_object(customer_id, kw.get("payment_method_id") or new_id("pm"))
    obj["card"].update(exp_month=3, exp_year=2032, last4="1881")
    previous = {"card": {"exp_month": 9, "exp_year": 2029, "last4": "4242"}}
    return envelope(
        "payment_method.automatically_updated", obj, previous=previous, request=AUTOMATIC
    )


def billing_portal_session_created(customer_id: str, **kw: Any) -> Json:
    return envelope("billing_portal.session.created", billing_portal_session_object(customer_id))


def credit_note_created(customer_id: str, **kw: Any) -> Json:
    obj = credit_note_object(customer_id, kw.get("invoice_id") or new_id("in"))
    return envelope("credit_note.created", obj)


def product_created(**kw: Any) -> Json:
    return envelope("product.created", product_object(kw.get("product_id") or new_id("prod")))


def product_updated(**kw: Any) -> Json:
    obj = product_object(kw.get("product_id") or new_id("prod"), name="Pro seat (2026)")
    return envelope("product.updated", obj, previous={"name": "Pro seat"})


def price_created(**kw: Any) -> Json:
    obj = price_object(kw.get("price_id") or new_id("price"), kw.get("product_id") or "prod_x")
    return envelope("price.created", obj)


def price_updated(**kw: Any) -> Json:
    obj = price_object(kw.get("price_id") or new_id("price"), kw.get("product_id") or "prod_x")
    obj["active"] = False
    return envelope("price.updated", obj, previous={"active": True})


def early_fraud_warning_created(**kw: Any) -> Json:
    """A type sfstripe has no handler for, tied to no customer."""
    return envelope(
        "radar.early_fraud_warning.created", early_fraud_warning_object(), request=AUTOMATIC
    )


def future_thing_happened(customer_id: str, **kw: Any) -> Json:
    """A made-up type from a future API version, on an unknown object naming a customer."""
    obj = {
        "id": new_id("fth"),
        "object": "future_thing",
        "created": _now(),
        "customer": customer_id,
        "livemode": False,
        "metadata": {},
    }
    return envelope("future.thing.happened", obj)


CUSTOMER_EVENTS: dict[str, Callable[..., Json]] = {
    "customer.created": customer_created,
    "customer.updated": customer_updated,
    "customer.deleted": customer_deleted,
    "customer.subscription.created": subscription_created,
    "customer.subscription.updated": subscription_updated,
    "customer.subscription.deleted": subscription_deleted,
    "customer.subscription.trial_will_end": subscription_trial_will_end,
    "invoice.created": invoice_created,
    "invoice.finalized": invoice_finalized,
    "invoice.updated": invoice_updated,
    "invoice.paid": invoice_paid,
    "invoice.payment_succeeded": invoice_payment_succeeded,
    "invoice.payment_failed": invoice_payment_failed,
    "invoice.payment_action_required": invoice_payment_action_required,
    "invoice.voided": invoice_voided,
    "invoice.marked_uncollectible": invoice_marked_uncollectible,
    "invoice.upcoming": invoice_upcoming,
    "payment_method.attached": payment_method_attached,
    "payment_method.detached": payment_method_detached,
    "payment_method.updated": payment_method_updated,
    "payment_method.automatically_updated": payment_method_automatically_updated,
    "billing_portal.session.created": billing_portal_session_created,
    "credit_note.created": credit_note_created,
    "future.thing.happened": future_thing_happened,
}
"""Builders of events about one customer: `CUSTOMER_EVENTS[type](customer_id)`."""

CATALOG_EVENTS: dict[str, Callable[..., Json]] = {
    "product.created": product_created,
    "product.updated": product_updated,
    "price.created": price_created,
    "price.updated": price_updated,
}
"""Builders of catalog events (no customer): `CATALOG_EVENTS[type]()`."""

ACCOUNT_EVENTS: dict[str, Callable[..., Json]] = {
    "radar.early_fraud_warning.created": early_fraud_warning_created,
}
"""Builders of events about no customer and no catalog object."""


# ---------------------------------------------------------------------------------------------
# bodies and signatures


def encode(event: Json, *, ensure_ascii: bool = False) -> bytes:
    """The body as Stripe sends it: pretty-printed JSON, UTF-8."""
    return json.dumps(event, indent=2, ensure_ascii=ensure_ascii).encode()


def signature(body: bytes, secret: str = SECRET, *, timestamp: int | None = None) -> str:
    """`Stripe-Signature` for these exact bytes."""
    header: str = stripe.WebhookSignature.generate_signature_header(
        body.decode(), secret, timestamp=timestamp if timestamp is not None else _now()
    )
    return header


def headers(body: bytes, secret: str = SECRET, *, timestamp: int | None = None) -> dict[str, str]:
    """The headers of a Stripe delivery of `body`."""
    return {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        "Stripe-Signature": signature(body, secret, timestamp=timestamp),
    }


# ---------------------------------------------------------------------------------------------
# the receiving end


@dataclass
class Receiver:
    url: str
    event_log: EventLog
    intake: LogIntake
    watch: DatabaseWatch
    webhook: StripeWebhook


@contextlib.asynccontextmanager
async def receiving(
    pool: asyncpg.Pool,
    *,
    event_log: EventLog | None = None,
    secrets: list[str] | None = None,
    watch: DatabaseWatch | None = None,
    tolerance_s: int = 300,
    commit_wait_s: float = 5.0,
    drain_s: float = 5.0,
) -> AsyncIterator[Receiver]:
    """The webhook endpoint on 127.0.0.1 and its log writer, until the block ends.

    On the way out the HTTP server stops, the intake closes and its writer gets `drain_s` to
    commit what it holds before it is cancelled (a test may have left it blocked); a writer that
    crashed re-raises here.
    """
    event_log = event_log or EventLog(pool)
    watch = watch or DatabaseWatch(pool)
    intake = LogIntake(event_log, watch)
    webhook = StripeWebhook(
        intake,
        watch,
        secrets if secrets is not None else [SECRET],
        tolerance_s=tolerance_s,
        commit_wait_s=commit_wait_s,
    )
    app = web.Application(client_max_size=MAX_BODY)
    add_webhook_route(app, webhook)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    # A plain task rather than a task group, so that a failing assertion in the block comes out
    # as itself, not wrapped in an exception group.
    writer = asyncio.create_task(intake.run())
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        yield Receiver(f"http://127.0.0.1:{port}{PATH}", event_log, intake, watch, webhook)
    finally:
        await runner.cleanup()
        intake.close()
        await asyncio.wait({writer}, timeout=drain_s)
        if not writer.done():
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        else:
            await writer  # a crashed writer fails the test
