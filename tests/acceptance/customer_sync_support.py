"""The pieces of a two-way customer sync run: the Salesforce-compatible test server set up as an
org with sfstripe's metadata deployed, the Stripe Billing emulator with a webhook endpoint for the
daemon, and the daemon's environment."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import stripe

from emulators.stripe import StripeEmulator, running_emulator
from handlers.customers import fields
from stream.stripe.client import stripe_client
from tests.acceptance.support import base_environment
from tests.pgproxy import free_port
from tests.sfserver_fixture import (
    API_VERSION,
    CLIENT_ID,
    CLIENT_SECRET,
    INTEGRATION_PASSWORD,
    INTEGRATION_USERNAME,
    SalesforceServer,
)

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


@dataclass
class SyncWorld:
    sf: SalesforceServer
    emulator: StripeEmulator
    stripe: stripe.StripeClient
    http_port: int
    env: dict[str, str]

    async def account(self, account_id: str) -> dict[str, Any]:
        found = [r for r in await self.sf.records("Account") if r["Id"] == account_id]
        assert found, f"no Account {account_id}"
        return found[0]

    async def customers_of(self, account_id: str) -> list[stripe.Customer]:
        result = await self.stripe.v1.customers.search_async(
            params={"query": f"metadata['sf_account_id']:'{account_id}'"}
        )
        return list(result.data)

    async def customer_of(self, account_id: str) -> stripe.Customer | None:
        customers = await self.customers_of(account_id)
        assert len(customers) <= 1, f"{account_id} has {len(customers)} Stripe customers"
        return customers[0] if customers else None

    async def published(self) -> int:
        return len(await self.sf.published())


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
            env = base_environment(
                SFSTRIPE_DATABASE_URL=dsn,
                SFSTRIPE_HTTP_PORT=str(port),
                SFSTRIPE_SF_LOGIN_URL=sf.base_url,
                SFSTRIPE_SF_AUTH_FLOW="password",
                SFSTRIPE_SF_CLIENT_ID=CLIENT_ID,
                SFSTRIPE_SF_CLIENT_SECRET=CLIENT_SECRET,
                SFSTRIPE_SF_USERNAME=INTEGRATION_USERNAME,
                SFSTRIPE_SF_PASSWORD=INTEGRATION_PASSWORD,
                SFSTRIPE_SF_API_VERSION=API_VERSION,
                SFSTRIPE_SF_CHANNELS="/data/AccountChangeEvent,/data/ContactChangeEvent",
                SFSTRIPE_SF_INITIAL_REPLAY="-2",
                SFSTRIPE_STRIPE_API_KEY=STRIPE_KEY,
                SFSTRIPE_STRIPE_API_BASE=emulator.url,
                SFSTRIPE_STRIPE_WEBHOOK_SECRETS=endpoint.secret or "",
                SFSTRIPE_STRIPE_MODE="both",
                SFSTRIPE_STRIPE_POLL_INTERVAL="0.5",
                SFSTRIPE_HANDLER_RETRY_DELAY="0.2",
                SFSTRIPE_HANDLER_RETRY_MAX_DELAY="1",
            )
            env.update(settings)
            yield SyncWorld(sf, emulator, client, port, env)
        finally:
            await http.close_async()
