"""Realistic event payloads (about 2 KB) made from the reference samples in tests/samples."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from state.records import NewEvent

SAMPLES = Path(__file__).resolve().parent.parent / "tests" / "samples"
TARGET_BYTES = 2048


def _load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SAMPLES / name).read_text())
    return loaded


def _pad(body: dict[str, Any], target: int, slot: dict[str, Any], rng: random.Random) -> None:
    """Grow `slot` with plausible fields until the compact body is about `target` bytes."""
    words = ["renewal", "enterprise", "seat", "annual", "region", "north", "plan", "tier", "ops"]
    index = 0
    while len(json.dumps(body, separators=(",", ":"))) < target - 40:
        slot[f"field_{index}__c"] = " ".join(rng.choice(words) for _ in range(6))
        index += 1


def _padded(message: dict[str, Any], slot: list[str], rng: random.Random) -> dict[str, Any]:
    """The sample grown to about TARGET_BYTES with plausible fields at `slot`."""
    body: dict[str, Any] = json.loads(json.dumps(message))
    target = body
    for key in slot:
        target = target.setdefault(key, {})
    _pad(body, TARGET_BYTES, target, rng)
    return body


def events(count: int, customers: int, seed: int = 7) -> Iterator[NewEvent]:
    """A mix of Salesforce CDC and Stripe events spread over `customers` accounts.

    Each sample is padded once; per event only ids change (same lengths), so building 200,000
    payloads is cheap.
    """
    rng = random.Random(seed)
    sf_samples = [
        _padded(_load(name), ["data", "payload"], rng)
        for name in (
            "sf_account_create_cometd.json",
            "sf_account_update_cometd.json",
            "sf_contact_update_cometd.json",
        )
    ]
    stripe_samples = [
        _padded(_load(name), ["data", "object", "metadata"], rng)
        for name in (
            "stripe_customer_updated.json",
            "stripe_invoice_paid.json",
            "stripe_invoice_payment_failed.json",
            "stripe_payment_method_attached.json",
            "stripe_subscription_updated_quantity.json",
        )
    ]
    run = rng.getrandbits(48)
    for n in range(count):
        customer = f"001xx{n % customers:013d}"
        occurred = datetime.now(UTC)
        if n % 2 == 0:
            message = rng.choice(sf_samples)
            header = message["data"]["payload"]["ChangeEventHeader"]
            header["recordIds"] = [customer]
            header["transactionKey"] = f"{run:012x}-{n:020d}"
            message["data"]["event"]["replayId"] = n
            yield NewEvent(
                customer=customer,
                source="salesforce",
                source_event_id=f"{header['transactionKey']}:{header['sequenceNumber']}:{customer}",
                type=f"{header['entityName']}.{header['changeType']}",
                occurred_at=occurred,
                payload=json.dumps(message, separators=(",", ":")),
                object_type=header["entityName"],
                object_id=customer,
            )
        else:
            event = rng.choice(stripe_samples)
            obj = event["data"]["object"]
            cus = f"cus_{n % customers:014d}"
            event["id"] = f"evt_{run:012x}{n:012d}"
            if obj.get("object") == "customer":
                obj["id"] = cus
            else:
                obj["customer"] = cus
            yield NewEvent(
                customer=f"stripe:{cus}",
                source="stripe",
                source_event_id=event["id"],
                type=event["type"],
                occurred_at=occurred,
                payload=json.dumps(event, separators=(",", ":")),
                object_type=obj["object"],
                object_id=obj["id"],
            )


@dataclass(frozen=True, slots=True)
class StripeWebhook:
    """One Stripe webhook body as Stripe sends it, and the rows it leaves in the peer's
    `stripe.*` tables (table, object id), whose `last_synced_at` becomes `created`."""

    event_id: str
    type: str
    body: str
    created: int
    rows: tuple[tuple[str, str], ...]


# Relative weights of what happens to an existing customer; `catalog` is a product or price.
_WEBHOOK_MIX = {
    "customer": 10,
    "subscription": 14,
    "invoice": 56,
    "payment_method": 8,
    "catalog": 3,
}
_PRICES_PER_PRODUCT = 3


def _pad_pretty(event: dict[str, Any], target: int, rng: random.Random) -> None:
    """Grow the object's metadata until the body, indented as Stripe sends it, has `target`
    bytes (products and prices are small otherwise)."""
    slot = event["data"]["object"].setdefault("metadata", {})
    words = ["renewal", "enterprise", "seat", "annual", "region", "north", "plan", "tier", "ops"]
    index = 0
    while len(_stripe_json(event)) < target:
        slot[f"bench_{index}"] = " ".join(rng.choice(words) for _ in range(4))
        index += 1


def _stripe_json(event: dict[str, Any]) -> bytes:
    """JSON indented by two spaces, as Stripe sends it (msgspec: json.dumps's indenting is
    pure Python and slow)."""
    return msgspec.json.format(msgspec.json.encode(event), indent=2)


def _stripe_templates(rng: random.Random) -> dict[str, dict[str, Any]]:
    """One event per type, from the samples; per event only ids and timestamps change."""
    customer = _load("stripe_customer_updated.json")
    subscription = _load("stripe_subscription_updated_quantity.json")
    paid = _load("stripe_invoice_paid.json")
    failed = _load("stripe_invoice_payment_failed.json")
    method = _load("stripe_payment_method_attached.json")

    def variant(sample: dict[str, Any], type_: str, created: bool = False) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(json.dumps(sample))
        event["type"] = type_
        if created:
            event["data"].pop("previous_attributes", None)
        return event

    def open_invoice(type_: str, status: str) -> dict[str, Any]:
        event = variant(failed, type_)
        invoice = event["data"]["object"]
        invoice.update(status=status, attempted=False, attempt_count=0, next_payment_attempt=None)
        return event

    price = variant(customer, "price.created", created=True)
    price["data"]["object"] = json.loads(
        json.dumps(subscription["data"]["object"]["items"]["data"][0]["price"])
    )
    product = variant(customer, "product.created", created=True)
    product["data"]["object"] = {
        "id": "",
        "object": "product",
        "active": True,
        "attributes": [],
        "created": 0,
        "default_price": None,
        "description": "Per-seat licence, billed monthly.",
        "images": [],
        "livemode": False,
        "marketing_features": [],
        "metadata": {},
        "name": "Pro seat",
        "package_dimensions": None,
        "shippable": None,
        "statement_descriptor": None,
        "tax_code": "txcd_10103001",
        "type": "service",
        "unit_label": "seat",
        "updated": 0,
        "url": None,
    }
    templates = {
        "customer.created": variant(customer, "customer.created", created=True),
        "customer.updated": variant(customer, "customer.updated"),
        "customer.subscription.created": variant(
            subscription, "customer.subscription.created", created=True
        ),
        "customer.subscription.updated": variant(subscription, "customer.subscription.updated"),
        "invoice.created": open_invoice("invoice.created", "draft"),
        "invoice.finalized": open_invoice("invoice.finalized", "open"),
        "invoice.paid": variant(paid, "invoice.paid"),
        "invoice.payment_failed": variant(failed, "invoice.payment_failed"),
        "payment_method.attached": variant(method, "payment_method.attached"),
        "product.created": product,
        "price.created": price,
    }
    for event in templates.values():
        _pad_pretty(event, 1536, rng)
    return templates


def stripe_webhooks(
    count: int, customers: int, *, namespace: str, created_from: int, seed: int = 11
) -> list[StripeWebhook]:
    """`count` Stripe webhooks of a billing account's life, spread over `customers` customers.

    Every customer starts with customer.created; then updates, subscriptions created and
    updated, invoices through created, finalized, paid or payment_failed, payment methods, and
    now and then a product or price. `created` rises by one second per event, so the newest
    event of each object is unambiguous. Ids carry `namespace` (one letter), so that warm-up
    and timed events touch different objects; fixed-width ids keep the sizes constant.
    """
    rng = random.Random(seed)
    templates = _stripe_templates(rng)
    run = rng.getrandbits(32) ^ random.SystemRandom().getrandbits(32)
    kinds, weights = list(_WEBHOOK_MIX), list(_WEBHOOK_MIX.values())
    known: set[int] = set()
    subscribed: set[int] = set()
    invoice_no = [0] * customers
    stage = [0] * customers
    catalog = 0
    out = []
    for n in range(count):
        created = created_from + n
        c = rng.randrange(customers)
        kind = rng.choices(kinds, weights)[0] if c in known else "new"
        ids = {
            "cus": f"cus_{namespace}{c:010d}",
            "sub": f"sub_{namespace}{c:010d}",
            "si": f"si_{namespace}{c:010d}",
            "pm": f"pm_{namespace}{c:010d}",
            "in": f"in_{namespace}{c:010d}n{invoice_no[c]:04d}",
            "account": f"001{namespace}{c:014d}",
            "price": f"price_{namespace}{c % 97:06d}",
            "prod": f"prod_{namespace}{c % 97 // _PRICES_PER_PRODUCT:06d}",
        }
        if kind == "new":
            known.add(c)
            type_ = "customer.created"
        elif kind == "customer":
            type_ = "customer.updated"
        elif kind == "subscription":
            first = c not in subscribed
            subscribed.add(c)
            type_ = f"customer.subscription.{'created' if first else 'updated'}"
        elif kind == "invoice":
            if stage[c] == 0:
                type_ = "invoice.created"
            elif stage[c] == 1:
                type_ = "invoice.finalized"
            else:
                type_ = "invoice.paid" if rng.random() < 0.8 else "invoice.payment_failed"
            stage[c] += 1
            if type_ == "invoice.paid":
                invoice_no[c] += 1
                stage[c] = 0
        elif kind == "payment_method":
            type_ = "payment_method.attached"
        else:
            type_ = "price.created" if catalog % (_PRICES_PER_PRODUCT + 1) else "product.created"
            ids["prod"] = f"prod_{namespace}{catalog // (_PRICES_PER_PRODUCT + 1):06d}"
            ids["price"] = f"price_{namespace}{catalog:06d}"
            catalog += 1
        event = templates[type_]
        rows = _fill(event, ids, created, rng)
        event["id"] = f"evt_{run:08x}{namespace}{n:09d}"
        event["created"] = created
        body = _stripe_json(event).decode()
        out.append(StripeWebhook(event["id"], type_, body, created, rows))
    return out


def _fill(
    event: dict[str, Any], ids: dict[str, str], created: int, rng: random.Random
) -> tuple[tuple[str, str], ...]:
    """Point the template's object at this event's ids; return the peer rows it upserts."""
    obj = event["data"]["object"]
    kind = obj["object"]
    if kind == "customer":
        obj["id"] = ids["cus"]
        obj["metadata"]["sf_account_id"] = ids["account"]
        obj["invoice_settings"]["default_payment_method"] = ids["pm"]
        return (("customers", ids["cus"]),)
    if kind == "subscription":
        obj.update(id=ids["sub"], customer=ids["cus"], latest_invoice=ids["in"])
        obj["metadata"]["sf_account_id"] = ids["account"]
        items = [obj["items"]["data"][0]]
        previous = event["data"].get("previous_attributes")
        if previous:
            items.append(previous["items"]["data"][0])
        for item in items:
            item.update(id=ids["si"], subscription=ids["sub"])
            item["price"].update(id=ids["price"], product=ids["prod"])
        items[0]["quantity"] = rng.randrange(1, 100)
        obj["items"]["url"] = f"/v1/subscription_items?subscription={ids['sub']}"
        return (("subscriptions", ids["sub"]), ("subscription_items", ids["si"]))
    if kind == "invoice":
        obj.update(id=ids["in"], customer=ids["cus"], webhooks_delivered_at=created)
        line = obj["lines"]["data"][0]
        line.update(id=f"il_{ids['in'][3:]}", invoice=ids["in"])
        details = line["parent"]["subscription_item_details"]
        details.update(subscription=ids["sub"], subscription_item=ids["si"])
        line["pricing"]["price_details"].update(price=ids["price"], product=ids["prod"])
        obj["lines"]["url"] = f"/v1/invoices/{ids['in']}/lines"
        parent = obj["parent"]["subscription_details"]
        parent["subscription"] = ids["sub"]
        parent["metadata"]["sf_account_id"] = ids["account"]
        return (("invoices", ids["in"]),)
    if kind == "payment_method":
        obj.update(id=ids["pm"], customer=ids["cus"])
        return (("payment_methods", ids["pm"]),)
    if kind == "product":
        obj.update(id=ids["prod"], default_price=ids["price"], created=created, updated=created)
        return (("products", ids["prod"]),)
    obj.update(id=ids["price"], product=ids["prod"], created=created)
    return (("prices", ids["price"]),)
