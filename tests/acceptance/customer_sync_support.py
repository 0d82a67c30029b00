"""The pieces of a two-way customer sync run: the Salesforce-compatible test server set up as an
org with sfstripe's metadata deployed, a Stripe (the Stripe Billing emulator, or localstripe) with
a webhook endpoint for the daemon, and the daemon's environment; and the waits the scenarios share.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import stripe

from emulators.stripe import StripeEmulator, running_emulator
from handlers.customers import fields
from stream.stripe.client import stripe_client
from tests.acceptance.support import Daemon, base_environment
from tests.localstripe_fixture import API_KEY as LOCALSTRIPE_KEY
from tests.localstripe_fixture import LocalStripe, running_localstripe
from tests.pgproxy import free_port
from tests.salesforce_support import salesforce_variables
from tests.sfserver_fixture import (
    API_VERSION,
    SalesforceServer,
)
from tests.waiting import wait_until

STRIPE_KEY = "sk_test_customer_sync"
OWN_ORIGIN = f"com/salesforce/api/rest/{API_VERSION};client=sfstripe"
# The org's fields: the standard ones the default mapping reads, and the deployed metadata.
ORG_FIELDS = {
    "Account": [
        "Name",
        "Type",
        "Phone",
        "BillingStreet",
        "BillingCity",
        "BillingState",
        "BillingPostalCode",
        "BillingCountry",
        *fields.READ,
        *fields.WRITTEN,
    ],
    "Contact": ["FirstName", "LastName", "Name", "Email", "Title", "AccountId"],
}
LOCALSTRIPE_WEBHOOK_SECRET = "whsec_sfstripe_customer_sync_localstripe"
SETTLE_TIMEOUT = 40.0


def daemon_environment(
    *,
    dsn: str,
    sf: SalesforceServer,
    http_port: int,
    stripe_key: str,
    stripe_base: str,
    webhook_secret: str,
    stripe_mode: str,
    **settings: str,
) -> dict[str, str]:
    """`sfstripe run`'s environment for a customer sync against `sf` and the Stripe at
    `stripe_base`, which sends its webhooks to the daemon's `http_port`."""
    return base_environment(
        SFSTRIPE_DATABASE_URL=dsn,
        SFSTRIPE_HTTP_PORT=str(http_port),
        **salesforce_variables(sf),
        SFSTRIPE_STRIPE_API_KEY=stripe_key,
        SFSTRIPE_STRIPE_API_BASE=stripe_base,
        SFSTRIPE_STRIPE_WEBHOOK_SECRETS=webhook_secret,
        SFSTRIPE_STRIPE_MODE=stripe_mode,
        SFSTRIPE_STRIPE_POLL_INTERVAL="0.5",
        SFSTRIPE_HANDLER_RETRY_DELAY="0.2",
        SFSTRIPE_HANDLER_RETRY_MAX_DELAY="1",
        **settings,
    )


@dataclass
class World:
    """The org, a Stripe client, and the daemon's port and environment."""

    sf: SalesforceServer
    stripe: stripe.StripeClient
    http_port: int
    env: dict[str, str]

    async def account(self, account_id: str) -> dict[str, Any]:
        found = [r for r in await self.sf.records("Account") if r["Id"] == account_id]
        assert found, f"no Account {account_id}"
        return found[0]

    async def customers_of(self, account_id: str) -> list[stripe.Customer]:
        """The Stripe customers whose `metadata.sf_account_id` is the account (its 18- or
        15-character Id): searched, or listed where there is no search (localstripe answers 404,
        as the handler expects)."""
        query = " OR ".join(
            f"metadata['sf_account_id']:'{form}'" for form in (account_id, account_id[:15])
        )
        try:
            result = await self.stripe.v1.customers.search_async(params={"query": query})
            return list(result.data)
        except stripe.InvalidRequestError as exc:
            if exc.http_status != 404:
                raise
        found: list[stripe.Customer] = []
        params: stripe.CustomerService.ListParams = {"limit": 100}
        while True:
            page = await self.stripe.v1.customers.list_async(params=params)
            found += [
                c
                for c in page.data
                if (c.to_dict().get("metadata") or {}).get("sf_account_id")
                in (account_id, account_id[:15])
            ]
            if not page.has_more or not page.data:
                return found
            params = {"limit": 100, "starting_after": page.data[-1].id}

    async def customer_of(self, account_id: str) -> stripe.Customer | None:
        customers = await self.customers_of(account_id)
        assert len(customers) <= 1, f"{account_id} has {len(customers)} Stripe customers"
        return customers[0] if customers else None

    async def published(self) -> int:
        return len(await self.sf.published())


@dataclass
class SyncWorld(World):
    emulator: StripeEmulator


@dataclass
class LocalStripeWorld(World):
    localstripe: LocalStripe


@contextlib.asynccontextmanager
async def sync_world(tmp_path: Path, dsn: str, **settings: str) -> AsyncIterator[SyncWorld]:
    async with (
        SalesforceServer(tmp_path / "org.json", poll_timeout=2) as sf,
        running_emulator(frozen_clock=True) as emulator,
    ):
        await sf.set_config(fields=ORG_FIELDS)
        client, http = stripe_client(
            STRIPE_KEY, api_base=emulator.url, api_version=None, max_network_retries=0
        )
        try:
            port = free_port()
            endpoint = await client.v1.webhook_endpoints.create_async(
                params={"url": f"http://127.0.0.1:{port}/webhooks/stripe", "enabled_events": ["*"]}
            )
            env = daemon_environment(
                dsn=dsn,
                sf=sf,
                http_port=port,
                stripe_key=STRIPE_KEY,
                stripe_base=emulator.url,
                webhook_secret=endpoint.secret or "",
                stripe_mode="both",
                **settings,
            )
            yield SyncWorld(sf, client, port, env, emulator)
        finally:
            await http.close_async()


@contextlib.asynccontextmanager
async def localstripe_world(
    tmp_path: Path, dsn: str, **settings: str
) -> AsyncIterator[LocalStripeWorld]:
    """The org and a fresh localstripe whose webhooks go, signed, to the daemon's port.

    localstripe lists events without `ending_before`, so the daemon cannot poll it: webhooks
    only."""
    scratch = tmp_path / "localstripe"
    scratch.mkdir()
    with running_localstripe(scratch) as localstripe:
        async with SalesforceServer(tmp_path / "org.json", poll_timeout=2) as sf:
            await sf.set_config(fields=ORG_FIELDS)
            client, http = localstripe.client()
            try:
                port = free_port()
                await localstripe.configure_webhook(
                    "sfstripe",
                    f"http://127.0.0.1:{port}/webhooks/stripe",
                    LOCALSTRIPE_WEBHOOK_SECRET,
                )
                env = daemon_environment(
                    dsn=dsn,
                    sf=sf,
                    http_port=port,
                    stripe_key=LOCALSTRIPE_KEY,
                    stripe_base=localstripe.url,
                    webhook_secret=LOCALSTRIPE_WEBHOOK_SECRET,
                    stripe_mode="webhook",
                    **settings,
                )
                yield LocalStripeWorld(sf, client, port, env, localstripe)
            finally:
                await http.close_async()  # type: ignore[no-untyped-call]


# ---- Waiting for the two sides --------------------------------------------------------------


def metric(daemon: Daemon, name: str, **labels: str) -> float:
    """The sum of a metric's samples that carry `labels`."""
    total = 0.0
    for line in daemon.metrics().splitlines():
        match = re.match(rf"^{name}(?:\{{(.*)\}})? (\S+)$", line)
        if match is None:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if all(found.get(key) == value for key, value in labels.items()):
            total += float(match.group(2))
    return total


async def settled(world: World, account_id: str, **expected: Any) -> dict[str, Any]:
    """Wait until the Account shows `expected` values."""

    async def shows() -> bool:
        account = await world.account(account_id)
        return all(account.get(name) == value for name, value in expected.items())

    await wait_until(shows, within=SETTLE_TIMEOUT)
    return await world.account(account_id)


async def customer_settled(world: World, account_id: str, **expected: Any) -> stripe.Customer:
    """Wait until the account's one Stripe customer shows `expected` (dotted paths)."""

    async def shows() -> bool:
        customer = await world.customer_of(account_id)
        if customer is None:
            return False
        data = customer.to_dict()
        for path, value in expected.items():
            node: Any = data
            for part in path.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if node != value:
                return False
        return True

    await wait_until(shows, within=SETTLE_TIMEOUT)
    customer = await world.customer_of(account_id)
    assert customer is not None
    return customer


GLOBEX_ADDRESS = {
    "BillingStreet": "Unter den Linden 1\nHaus B",
    "BillingCity": "Berlin",
    "BillingPostalCode": "10117",
    "BillingCountry": "Germany",
}


async def create_globex(sf: SalesforceServer) -> str:
    """A sales rep creates an account and its billing contact: the account's id."""
    account: str = (
        await sf.edit_record(
            "Account", {"Name": "Globex GmbH", "Phone": "+49 30 1234", **GLOBEX_ADDRESS}
        )
    )["id"]
    await sf.edit_record(
        "Contact",
        {
            "FirstName": "Ada",
            "LastName": "Lovelace",
            "Email": "ada@globex.example",
            "AccountId": account,
        },
    )
    return account


async def paid_by_visa(world: World, account_id: str, amount_due: float, currency: str) -> Any:
    """Wait until the Account shows a current subscription whose last invoice a test Visa card
    paid; the Account."""
    paid = await settled(
        world,
        account_id,
        **{
            fields.BILLING_STATUS: "current",
            fields.INVOICE_STATUS: "paid",
            fields.PAYMENT_METHOD_LAST4: "4242",
        },
    )
    assert paid[fields.INVOICE_AMOUNT_DUE] == amount_due
    assert paid[fields.INVOICE_CURRENCY] == currency
    assert paid[fields.PAYMENT_METHOD_BRAND] == "visa"
    assert paid[fields.DUNNING_ATTEMPTS] == 0
    return paid
