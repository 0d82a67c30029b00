"""The Stripe SDK's client, set up for asyncio, the configured address and a pinned version."""

from __future__ import annotations

import stripe


def stripe_client(
    api_key: str,
    *,
    api_base: str,
    api_version: str | None,
    max_network_retries: int,
) -> tuple[stripe.StripeClient, stripe.AIOHTTPClient]:
    """The client and its HTTP session (close it with `await http.close_async()`).

    The SDK retries connection errors, 409 and 5xx itself and obeys `Stripe-Should-Retry`;
    callers back off on what is left (a plain 429).
    """
    http = stripe.AIOHTTPClient()
    client = stripe.StripeClient(
        api_key,
        base_addresses={"api": api_base},
        stripe_version=api_version,
        max_network_retries=max_network_retries,
        http_client=http,
    )
    return client, http
