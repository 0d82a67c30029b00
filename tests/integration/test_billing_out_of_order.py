"""The `salesforce-billing` handler over real Stripe events (from the Stripe Billing emulator)
delivered in another order than they happened: the Account ends where in-order delivery leaves it,
and applying everything again writes nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import asyncpg
import msgspec

from emulators.stripe import running_emulator
from handlers.api import HandlerContext
from handlers.clients import HandlerClients
from handlers.customers import fields
from handlers.customers.composite import CompositeWriter
from handlers.customers.mapping import load
from handlers.customers.to_salesforce import SalesforceBilling
from state.log import EventLog
from state.records import LoggedEvent
from state.sync_state import SyncState
from stream.salesforce.auth import SalesforceAuth
from stream.salesforce.rest import SalesforceRest
from stream.stripe.client import stripe_client
from stream.stripe.routing import route
from tests.acceptance.customer_sync_support import ORG_FIELDS
from tests.salesforce_support import password_flow
from tests.sfserver_fixture import API_VERSION, SalesforceServer
from tests.stripe_billing import pay_with, subscribe

DAY = 24 * 3600
BILLING = [name for name in fields.WRITTEN if name != fields.CUSTOMER_ID]


@asynccontextmanager
async def billing_story(
    sf: SalesforceServer,
) -> AsyncIterator[tuple[str, list[str], HandlerClients]]:
    """An account whose Stripe customer pays once, then fails: (account, raw events, clients)."""
    await sf.set_config(fields=ORG_FIELDS)
    account = await sf.edit_record("Account", {"Name": "Initech"}, emit=False)
    async with running_emulator(frozen_clock=True) as emulator, aiohttp.ClientSession() as session:
        client, http = stripe_client(
            "sk_test_order", api_base=emulator.url, api_version=None, max_network_retries=0
        )
        try:
            v1 = client.v1
            customer = await v1.customers.create_async(
                params={"name": "Initech", "metadata": {"sf_account_id": account["id"]}}
            )
            await pay_with(client, customer.id, "pm_card_visa")
            await subscribe(client, customer.id, product="Seats", unit_amount=999)
            emulator.advance(DAY)
            await pay_with(client, customer.id, "pm_card_chargeCustomerFail")
            seen = await v1.events.list_async(params={"limit": 100})  # Stripe keeps 30 days
            emulator.advance(31 * DAY)
            later = await v1.events.list_async(params={"limit": 100})
            known = {e.id for e in seen.data}
            events = [*reversed(seen.data), *(e for e in reversed(later.data) if e.id not in known)]
            raws = [json.dumps(e.to_dict(), default=str) for e in events]  # oldest first
            rest = SalesforceRest(
                SalesforceAuth(password_flow(sf), session),
                session,
                api_version=API_VERSION,
                client_tag="sfstripe",
            )
            yield account["id"], raws, HandlerClients(stripe_client=client, salesforce=rest)
        finally:
            await http.close_async()


async def logged(event_log: EventLog, raws: Sequence[str], account: str) -> list[LoggedEvent]:
    new = [msgspec.structs.replace(route(raw)[0], customer=account) for raw in raws]
    await event_log.append(new)
    return [e for e in await event_log.read(0, 1000) if e.source == "stripe"]


async def apply(
    handler: SalesforceBilling, events: Sequence[LoggedEvent], clients: HandlerClients
) -> None:
    for event in events:
        if handler.wants(event):
            await handler.handle(event, HandlerContext(handler.name, [event], clients))


async def billing_of(sf: SalesforceServer, account: str) -> dict[str, Any]:
    record = next(r for r in await sf.records("Account") if r["Id"] == account)
    return {name: record.get(name) for name in BILLING}


async def test_any_delivery_order_ends_in_the_same_account_state(
    sf: SalesforceServer, dsn: str, databases: Any
) -> None:
    async with billing_story(sf) as (account, raws, clients):
        in_order = await databases.fresh()
        shuffled = await databases.fresh()
        results = []
        for target, order in ((in_order, "forward"), (shuffled, "backward")):
            pool: asyncpg.Pool = await asyncpg.create_pool(target, min_size=1, max_size=4)
            try:
                event_log = EventLog(pool)
                handler = SalesforceBilling(
                    load(None), SyncState(pool), event_log, CompositeWriter(window_s=0)
                )
                events = await logged(event_log, raws, account)
                ordered = events if order == "forward" else list(reversed(events))
                await sf.edit_record(
                    "Account", dict.fromkeys(BILLING), record_id=account, emit=False
                )
                await apply(handler, ordered, clients)
                results.append(await billing_of(sf, account))
                published = len(await sf.published())
                await apply(handler, events, clients)  # everything again: nothing new to write
                assert len(await sf.published()) == published
            finally:
                await pool.close()
        forward, backward = results
        assert forward == backward
        assert forward[fields.BILLING_STATUS] == "past_due"
        assert forward[fields.INVOICE_STATUS] == "open"
        assert forward[fields.DUNNING_ATTEMPTS] >= 1
        assert forward[fields.PAYMENT_METHOD_BRAND] == "visa"


async def test_a_write_that_failed_is_made_when_the_event_is_tried_again(
    sf: SalesforceServer, databases: Any
) -> None:
    async with billing_story(sf) as (account, raws, clients):
        pool: asyncpg.Pool = await asyncpg.create_pool(
            await databases.fresh(), min_size=1, max_size=4
        )
        try:
            event_log = EventLog(pool)
            handler = SalesforceBilling(
                load(None), SyncState(pool), event_log, CompositeWriter(window_s=0)
            )
            events = [e for e in await logged(event_log, raws, account) if handler.wants(e)]
            *before, last = events
            await apply(handler, before, clients)
            # The last event's state is stored, then its Account write fails (a lock conflict).
            await sf.control("POST", "rest/fail", {"kind": "UNABLE_TO_LOCK_ROW", "count": 1})
            failed = None
            try:
                await apply(handler, [last], clients)
            except Exception as exc:
                failed = exc
            assert failed is not None
            stale = await billing_of(sf, account)
            await apply(handler, [last], clients)  # the runtime's retry
            assert await billing_of(sf, account) != stale
            assert (await billing_of(sf, account))[fields.BILLING_STATUS] == "past_due"
        finally:
            await pool.close()
