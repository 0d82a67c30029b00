"""Webhooks from a fake Stripe: localstripe signs and sends, sfstripe verifies and stores.

The Stripe SDK drives localstripe (customers, a payment method, a plan, a subscription);
localstripe POSTs each resulting event, signed with the registered secret, to the webhook
endpoint of `tests.stripe_payloads.receiving`. Deliveries run concurrently and in no fixed
order, so the linked customer is created first and its link awaited before the rest.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import asyncpg

from metrics.registry import REGISTRY
from state.records import LoggedEvent
from tests.localstripe_fixture import LocalStripe, localstripe_fixture  # noqa: F401
from tests.stripe_payloads import OTHER_SECRET, SECRET, Receiver, receiving

ACCOUNT = "001xx000003LoCaLAAA"
DEADLINE_S = 20.0


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll `check` until it holds; fail after DEADLINE_S."""
    with anyio.move_on_after(DEADLINE_S):
        for _ in range(int(DEADLINE_S / 0.05) + 1):
            if await check():
                return
            await anyio.sleep(0.05)
    raise AssertionError(f"not within {DEADLINE_S} s: {what}")


@dataclass
class Story:
    linked: str  # customer id with metadata.sf_account_id = ACCOUNT
    plain: str  # customer id without
    sent: list[dict[str, Any]]  # the events localstripe generated (and delivered)


def _customer_of(obj: dict[str, Any]) -> Any:
    return obj["id"] if obj["object"] == "customer" else obj.get("customer")


async def billing_story(localstripe: LocalStripe, rx: Receiver) -> Story:
    """Two customers (one linked), a card, a plan and a subscription, through the SDK."""
    client, http = localstripe.client()
    try:
        linked = await client.v1.customers.create_async(
            params={
                "name": "Globex Local",
                "email": "billing@globex.example.com",
                "metadata": {"sf_account_id": ACCOUNT},
            }
        )

        async def linked_customer_stored() -> bool:
            return await rx.event_log.resolve(f"stripe:{linked.id}") == ACCOUNT

        await eventually(linked_customer_stored, "the linked customer's customer.created")
        plain = await client.v1.customers.create_async(params={"email": "a@initech.example"})
        card = await client.v1.payment_methods.attach_async(
            "pm_card_visa", params={"customer": linked.id}
        )
        assert card.customer == linked.id
        await client.v1.customers.update_async(
            linked.id, params={"invoice_settings": {"default_payment_method": card.id}}
        )
        plan = await client.v1.plans.create_async(
            params={
                "amount": 1500,
                "currency": "usd",
                "interval": "month",
                "nickname": "Pro seat (monthly)",
                "product": {"name": "Pro seat"},
            }
        )
        subscription = await client.v1.subscriptions.create_async(
            params={"customer": linked.id, "items": [{"plan": plan.id, "quantity": 3}]}
        )
        assert subscription.status == "active"
        listed = await client.v1.events.list_async(params={"limit": 100})
        sent = [event.to_dict() for event in listed.data]
    finally:
        await http.close_async()  # type: ignore[no-untyped-call]
    return Story(linked.id, plain.id, sent)


async def test_localstripe_deliveries_are_verified_stored_once_and_routed(
    pool: asyncpg.Pool, localstripe: LocalStripe
) -> None:
    accepted_before = metric("sfstripe_webhook_accepted_total", outcome="new")
    duplicates_before = metric("sfstripe_webhook_accepted_total", outcome="duplicate")
    # a rotation in progress on the sfstripe side: localstripe's secret is the second one
    async with receiving(pool, secrets=[OTHER_SECRET, SECRET]) as rx:
        await localstripe.configure_webhook("sfstripe", rx.url, SECRET)
        story = await billing_story(localstripe, rx)
        linked, plain, sent = story.linked, story.plain, story.sent
        sent_ids = {event["id"] for event in sent}

        async def all_stored() -> bool:
            return {r.source_event_id for r in await rx.event_log.read(0, 1000)} >= sent_ids

        await eventually(all_stored, f"all {len(sent_ids)} events localstripe sent")
        await anyio.sleep(1.5)  # anything sent twice would have arrived by now
        rows = await rx.event_log.read(0, 1000)
        account = await rx.event_log.read_customer(ACCOUNT, 0, 100)
        linked_alias = await rx.event_log.read_customer(f"stripe:{linked}", 0, 100)
        plain_stream = await rx.event_log.read_customer(f"stripe:{plain}", 0, 100)
        catalog = await rx.event_log.read_customer("catalog", 0, 100)

    # every delivery verified and stored exactly once
    assert Counter(r.source_event_id for r in rows) == Counter(sent_ids)
    assert len(rows) == len(sent) >= 9
    assert metric("sfstripe_webhook_accepted_total", outcome="new") - accepted_before == len(sent)
    assert metric("sfstripe_webhook_accepted_total", outcome="duplicate") == duplicates_before
    log = localstripe.log()
    assert log.count("successfully delivered") == len(sent), log
    assert "failed" not in log, log
    # same clock: localstripe's `t=` (its event.created) was well inside the 300 s tolerance
    now = time.time()
    assert all(abs(now - event["created"]) < 120 for event in sent)

    types = Counter(r.type for r in rows)
    assert {
        "customer.created",
        "customer.updated",
        "product.created",
        "plan.created",
        "invoice.created",
        "invoice.payment_succeeded",
        "customer.subscription.created",
    } <= set(types)
    assert types["customer.created"] == 2

    # routed: catalog, the plain customer's alias stream, the linked customer's account
    def stream_of(row: LoggedEvent) -> str:  # decided here from localstripe's own list
        obj = next(e for e in sent if e["id"] == row.source_event_id)["data"]["object"]
        if obj["object"] in ("product", "plan"):
            return "catalog"
        customer = _customer_of(obj)
        if customer == linked:
            return ACCOUNT
        assert customer == plain, obj
        return f"stripe:{plain}"

    assert {r.source_event_id: r.customer for r in rows} == {
        r.source_event_id: stream_of(r) for r in rows
    }
    assert {r.type for r in catalog} == {"product.created", "plan.created"}
    assert [r.type for r in plain_stream] == ["customer.created"]
    assert linked_alias == []
    assert account[0].type == "customer.created"  # linked in its own transaction
    assert account[0].object_id == linked
    assert {r.type for r in account} >= {
        "customer.updated",
        "invoice.created",
        "invoice.payment_succeeded",
        "customer.subscription.created",
    }
    assert [r.seq for r in account] == list(range(1, len(account) + 1))


async def test_a_delivery_signed_with_another_secret_is_refused(
    pool: asyncpg.Pool, localstripe: LocalStripe
) -> None:
    refused_before = metric("sfstripe_webhook_rejections_total", reason="bad_signature")
    async with receiving(pool, secrets=[OTHER_SECRET]) as rx:
        await localstripe.configure_webhook("sfstripe", rx.url, SECRET)
        client, http = localstripe.client()
        try:
            customer = await client.v1.customers.create_async(
                params={"metadata": {"sf_account_id": ACCOUNT}}
            )
        finally:
            await http.close_async()  # type: ignore[no-untyped-call]

        async def refused() -> bool:
            return 'webhook "customer.created" failed with response code 400' in localstripe.log()

        await eventually(refused, "localstripe's delivery answered 400")
        rows = await rx.event_log.read(0, 100)
        linked = await rx.event_log.resolve(f"stripe:{customer.id}")

    assert rows == []
    assert linked is None
    assert metric("sfstripe_webhook_rejections_total", reason="bad_signature") - refused_before == 1
