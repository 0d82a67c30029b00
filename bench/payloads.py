"""Realistic event payloads (about 2 KB) made from the reference samples in tests/samples."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
