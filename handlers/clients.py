"""Stripe and Salesforce as handlers see them: thin clients behind the write switch.

Shadow mode (`SFSTRIPE_WRITES=off`, and every dry-run replay): reads go through, every other
call is logged (`write_skipped`) and counted (`sfstripe_writes_skipped_total{api,method}`)
instead of sent, and answers an empty object. Handlers that need a written object's id check
`ctx.writes_enabled`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import msgspec
import stripe
import structlog

from metrics.instruments import API_RATE_LIMITED, WRITES_SKIPPED

if TYPE_CHECKING:
    from handlers.api import HandlerContext

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class SalesforceApi(Protocol):
    """The Salesforce REST client's one call (`stream.salesforce.rest.SalesforceRest`)."""

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
    ) -> Any: ...


def _skip(
    log: structlog.stdlib.BoundLogger, api: str, method: str, path: str, body: object
) -> dict[str, Any]:
    WRITES_SKIPPED.labels(api, method).inc()
    log.info("write_skipped", api=api, method=method, path=path, body=body)
    return {}


class StripeApi:
    """`request` over `StripeClient.raw_request_async`: the SDK's retries, errors and version."""

    def __init__(
        self,
        client: stripe.StripeClient,
        *,
        writes_enabled: bool,
        log: structlog.stdlib.BoundLogger,
    ) -> None:
        self._client = client
        self._writes = writes_enabled
        self._log = log

    async def request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """One call; the decoded JSON answer. Raises the SDK's errors (see `handlers.errors`)."""
        verb = method.upper()
        if verb not in READ_METHODS and not self._writes:
            return _skip(self._log, "stripe", verb, path, params)
        options: dict[str, Any] = dict(params or {})
        if idempotency_key is not None and verb not in READ_METHODS:
            options["idempotency_key"] = idempotency_key
        try:
            response = await self._client.raw_request_async(verb.lower(), path, **options)
        except stripe.RateLimitError:
            API_RATE_LIMITED.labels("stripe").inc()
            raise
        return msgspec.json.decode(response.body) if response.body else None


class ShadowedSalesforce:
    """A `SalesforceApi` that sends reads and, in shadow mode, only logs writes."""

    def __init__(
        self, api: SalesforceApi, *, writes_enabled: bool, log: structlog.stdlib.BoundLogger
    ) -> None:
        self._api = api
        self._writes = writes_enabled
        self._log = log

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
    ) -> Any:
        verb = method.upper()
        if verb not in READ_METHODS and not self._writes:
            return _skip(self._log, "salesforce", verb, path, json)
        return await self._api.request(verb, path, params=params, json=json)


class HandlerClients:
    """The clients shared by every handler call, and the write switch they are used with."""

    def __init__(
        self,
        *,
        stripe_client: stripe.StripeClient | None = None,
        salesforce: SalesforceApi | None = None,
        writes_enabled: bool = True,
    ) -> None:
        self.stripe_client = stripe_client
        self.salesforce = salesforce
        self.writes_enabled = writes_enabled

    def shadowed(self) -> HandlerClients:
        """The same clients with writes off (dry runs)."""
        return HandlerClients(
            stripe_client=self.stripe_client, salesforce=self.salesforce, writes_enabled=False
        )

    def stripe_for(self, ctx: HandlerContext) -> StripeApi | None:
        if self.stripe_client is None:
            return None
        return StripeApi(self.stripe_client, writes_enabled=self.writes_enabled, log=ctx.log)

    def salesforce_for(self, ctx: HandlerContext) -> SalesforceApi | None:
        if self.salesforce is None:
            return None
        return ShadowedSalesforce(self.salesforce, writes_enabled=self.writes_enabled, log=ctx.log)
