"""The Stripe source against the Billing emulator, where localstripe falls short: prices,
proration, renewals and dunning emit `customer.subscription.updated`, `invoice.finalized`,
`invoice.paid` and `invoice.payment_failed`, and `/v1/events` lists newest first with
`ending_before`. Every event arrives by signed webhook and by polling, and is stored once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import asyncpg
import stripe

from emulators.stripe import running_emulator
from state.log import EventLog
from state.watch import DatabaseWatch
from stream.intake import LogIntake
from stream.stripe.client import stripe_client
from stream.stripe.poller import StripePoller
from tests.stripe_payloads import receiving
from tests.waiting import wait_until

ACCOUNT = "001xx00000EMU01AAA"
DAY = 24 * 3600


@asynccontextmanager
async def sdk(url: str) -> AsyncIterator[stripe.StripeClient]:
    client, http = stripe_client(
        "sk_test_emulated", api_base=url, api_version=None, max_network_retries=0
    )
    try:
        yield client
    finally:
        await http.close_async()


async def paying_customer(client: stripe.StripeClient, fields: dict[str, Any]) -> stripe.Customer:
    """A customer whose default payment method is a card that pays."""
    customer = await client.v1.customers.create_async(params=fields)  # type: ignore[arg-type]
    card = await client.v1.payment_methods.attach_async(
        "pm_card_visa", params={"customer": customer.id}
    )
    await client.v1.customers.update_async(
        customer.id, params={"invoice_settings": {"default_payment_method": card.id}}
    )
    return customer


async def recurring_price(
    client: stripe.StripeClient, name: str, amount: int, interval: str
) -> stripe.Price:
    product = await client.v1.products.create_async(params={"name": name})
    return await client.v1.prices.create_async(
        params={
            "product": product.id,
            "currency": "usd",
            "unit_amount": amount,
            "recurring": {"interval": interval},  # type: ignore[typeddict-item]
        }
    )


async def all_event_ids(client: stripe.StripeClient) -> list[str]:
    """Every event the emulator lists, newest first, paging as Stripe documents."""
    ids: list[str] = []
    params: dict[str, object] = {"limit": 100}
    while True:
        page = await client.v1.events.list_async(params=params)  # type: ignore[arg-type]
        ids += [event.id for event in page.data]
        if not page.has_more:
            return ids
        params["starting_after"] = ids[-1]


async def test_billing_events_arrive_once_by_webhook_and_by_polling(pool: asyncpg.Pool) -> None:
    secrets: list[str] = []  # filled once the endpoint exists: the receiver reads this list
    async with (
        running_emulator(frozen_clock=True) as emulator,
        receiving(pool, secrets=secrets) as rx,
        sdk(emulator.url) as client,
    ):
        endpoint = await client.v1.webhook_endpoints.create_async(
            params={"url": rx.url, "enabled_events": ["*"]}
        )
        secrets.append(endpoint.secret or "")
        customer = await paying_customer(
            client, {"email": "billing@emu.example", "metadata": {"sf_account_id": ACCOUNT}}
        )
        price = await recurring_price(client, "Seats", 1500, "month")
        subscription = await client.v1.subscriptions.create_async(
            params={"customer": customer.id, "items": [{"price": price.id, "quantity": 5}]}
        )
        emulator.advance(10 * DAY)
        item = subscription["items"]["data"][0]
        await client.v1.subscriptions.update_async(
            subscription.id,
            params={
                "items": [{"id": item.id, "quantity": 8}],
                "proration_behavior": "always_invoice",
            },
        )
        emulator.advance(25 * DAY)  # the renewal: a new invoice, finalised and paid

        listed = await all_event_ids(client)
        log = EventLog(pool)

        async def all_delivered() -> bool:
            stored = {e.source_event_id for e in await log.read(0, 10_000) if e.source == "stripe"}
            return stored >= set(listed)

        await wait_until(all_delivered, within=30)

        intake = LogIntake(log, DatabaseWatch(pool))
        poller = StripePoller(client, intake, log, initial="all")
        async with anyio.create_task_group() as tg:
            tg.start_soon(intake.run)
            await poller.poll_once()
            intake.close()

    rows = [e for e in await log.read(0, 10_000) if e.source == "stripe"]
    ids = [e.source_event_id for e in rows]
    assert len(ids) == len(set(ids))  # every event once, whichever path came first
    # The list keeps 30 days: the first events (35 emulated days ago) came by webhook only.
    assert set(listed) < set(ids)
    types = {e.type for e in rows}
    assert {
        "customer.subscription.updated",
        "invoice.finalized",
        "invoice.paid",
    } <= types
    assert {e.customer for e in rows if e.type.startswith(("invoice.", "customer."))} == {ACCOUNT}
    assert {e.customer for e in rows if e.type.startswith(("product.", "price."))} == {"catalog"}
    assert (await log.position("stripe", "events") or "").find(listed[0]) > 0


async def test_polling_alone_catches_up_in_order_across_renewals(pool: asyncpg.Pool) -> None:
    log = EventLog(pool)
    intake = LogIntake(log, DatabaseWatch(pool))
    async with (
        running_emulator(frozen_clock=True) as emulator,
        sdk(emulator.url) as client,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(intake.run)
        poller = StripePoller(client, intake, log, initial="all")
        customer = await paying_customer(client, {"email": "poll@emu.example"})
        price = await recurring_price(client, "Plan", 900, "week")
        await client.v1.subscriptions.create_async(
            params={"customer": customer.id, "items": [{"price": price.id}]}
        )
        await poller.poll_once()
        first = await all_event_ids(client)
        for _ in range(3):  # three weekly renewals while polling was "down" (within retention)
            emulator.advance(8 * DAY)
        await poller.poll_once()
        listed = await all_event_ids(client)
        intake.close()

    rows = [e for e in await log.read(0, 10_000) if e.source == "stripe"]
    assert [e.source_event_id for e in rows][: len(first)] == list(reversed(first))
    assert {e.source_event_id for e in rows} >= set(listed)
    assert len(rows) == len({e.source_event_id for e in rows})
    assert [e.occurred_at for e in rows] == sorted(e.occurred_at for e in rows)
    assert "invoice.paid" in {e.type for e in rows}


async def test_down_past_retention_leaves_a_gap_marker_then_reads_what_is_retained(
    pool: asyncpg.Pool,
) -> None:
    log = EventLog(pool)
    intake = LogIntake(log, DatabaseWatch(pool))
    async with (
        running_emulator(frozen_clock=True) as emulator,
        sdk(emulator.url) as client,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(intake.run)
        poller = StripePoller(client, intake, log, initial="all")
        await client.v1.customers.create_async(params={"email": "old@emu.example"})
        await poller.poll_once()
        emulator.advance(31 * DAY)  # the cursor's event leaves Stripe's 30-day window
        await client.v1.customers.create_async(params={"email": "new@emu.example"})
        await poller.poll_once()
        await poller.poll_once()
        intake.close()

    rows = await log.read(0, 100)
    assert [e.type for e in rows] == ["customer.created", "sfstripe.gap", "customer.created"]
