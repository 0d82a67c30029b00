"""`sfstripe demo`: the daemon against the Stripe Billing emulator, with a customer's story.

A newcomer's first run needs something to happen: the emulator (in this process) bills a
customer linked to a Salesforce account, renews its subscription and fails a payment; the daemon
takes every event by signed webhook and by polling and stores each once. `sfstripe log` shows
them while it runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import msgspec
import stripe
import structlog
from aiohttp import ClientError, ClientSession

from emulators.stripe import StripeEmulator, running_emulator
from sfstripe.config import Settings
from sfstripe.daemon import run_daemon
from sfstripe.secrets import Secret
from stream.stripe.client import stripe_client

log = structlog.get_logger(__name__)

DEMO_KEY = "sk_test_sfstripe_demo"
DEMO_ACCOUNT = "001DEMO00000000001"
DAY = 24 * 3600


def _local(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


async def _wait_ready(settings: Settings) -> None:
    url = f"http://{_local(settings.http_host)}:{settings.http_port}/readyz"
    async with ClientSession() as http:
        with anyio.fail_after(60):
            while True:
                try:
                    async with http.get(url) as answer:
                        if answer.status == 200:
                            return
                except ClientError:
                    pass
                await anyio.sleep(0.2)


async def _story(client: stripe.StripeClient, emulator: StripeEmulator, settings: Settings) -> None:
    """What a customer's first two months in Stripe Billing look like, as events."""
    await _wait_ready(settings)
    customer = await client.v1.customers.create_async(
        params={
            "name": "Globex (demo)",
            "email": "billing@globex.example",
            "metadata": {"sf_account_id": DEMO_ACCOUNT},
        }
    )
    card = await client.v1.payment_methods.attach_async(
        "pm_card_visa", params={"customer": customer.id}
    )
    await client.v1.customers.update_async(
        customer.id, params={"invoice_settings": {"default_payment_method": card.id}}
    )
    product = await client.v1.products.create_async(params={"name": "Seats"})
    price = await client.v1.prices.create_async(
        params={
            "product": product.id,
            "currency": "usd",
            "unit_amount": 1500,
            "recurring": {"interval": "month"},
        }
    )
    await client.v1.subscriptions.create_async(
        params={"customer": customer.id, "items": [{"price": price.id, "quantity": 5}]}
    )
    emulator.advance(31 * DAY)  # a renewal, paid
    failing = await client.v1.payment_methods.attach_async(
        "pm_card_chargeCustomerFail", params={"customer": customer.id}
    )
    await client.v1.customers.update_async(
        customer.id, params={"invoice_settings": {"default_payment_method": failing.id}}
    )
    emulator.advance(31 * DAY)  # the next renewal fails: dunning starts
    log.info(
        "demo_story_told",
        account=DEMO_ACCOUNT,
        stripe_customer=customer.id,
        next_step=f"run `sfstripe log --customer {DEMO_ACCOUNT}` to see the events",
    )


async def run_demo(settings: Settings) -> None:
    async with running_emulator(frozen_clock=True) as emulator:
        client, http = stripe_client(
            DEMO_KEY, api_base=emulator.url, api_version=None, max_network_retries=2
        )
        try:
            host = _local(settings.http_host)
            endpoint = await client.v1.webhook_endpoints.create_async(
                params={
                    "url": f"http://{host}:{settings.http_port}/webhooks/stripe",
                    "enabled_events": ["*"],
                }
            )
            demo = msgspec.structs.replace(
                settings,
                stripe="on",
                stripe_api_key=Secret(DEMO_KEY),
                stripe_api_base=emulator.url,
                stripe_webhook_secrets=(Secret(endpoint.secret or ""),),
                stripe_mode="both",
                stripe_initial="all",
                stripe_poll_interval=1.0,
            )
            log.info("demo_emulator", url=emulator.url)
            async with anyio.create_task_group() as tg:
                tg.start_soon(_story, client, emulator, demo)
                await run_daemon(demo)
                tg.cancel_scope.cancel()
        finally:
            close: Callable[[], Awaitable[None]] = http.close_async  # the SDK leaves it untyped
            await close()
