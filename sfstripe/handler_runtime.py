"""The handler runtime built from settings: the registered handlers, their API clients behind
the write switch, and the dispatcher's and replays' options."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
import asyncpg
import structlog

from handlers.api import Registered
from handlers.clients import HandlerClients, SalesforceApi
from handlers.dispatcher import DispatchOptions
from handlers.replay import ReplayOptions
from sfstripe.config import Settings
from sfstripe.salesforce_settings import REFRESH_TOKEN_CREDENTIAL, oauth_settings
from state.credentials import StoredCredential
from stream.salesforce.auth import SalesforceAuth
from stream.salesforce.rest import SalesforceRest
from stream.stripe.client import stripe_client

log = structlog.get_logger(__name__)


def dispatch_options(settings: Settings) -> DispatchOptions:
    return DispatchOptions(
        concurrency=settings.handler_concurrency,
        max_attempts=settings.handler_max_attempts,
        retry_first_s=settings.handler_retry_delay,
        retry_max_s=settings.handler_retry_max_delay,
        buffer_events=settings.handler_buffer,
        lane_events=max(16, min(1_000, settings.handler_buffer // 16)),
        start_offsets=settings.handler_start,
    )


def replay_options(settings: Settings) -> ReplayOptions:
    return ReplayOptions(
        concurrency=settings.handler_concurrency,
        max_attempts=settings.handler_max_attempts,
        retry_first_s=settings.handler_retry_delay,
        retry_max_s=settings.handler_retry_max_delay,
    )


class HandlerRuntime:
    """What handlers run with; `close()` releases the HTTP sessions it opened."""

    def __init__(
        self,
        settings: Settings,
        handlers: list[Registered],
        *,
        salesforce: SalesforceApi | None = None,
    ) -> None:
        self.settings = settings
        self.handlers = handlers
        self._closers: list[Callable[[], Awaitable[None]]] = []
        client = None
        if settings.stripe_enabled and handlers:
            assert settings.stripe_api_key is not None  # config validation guarantees it
            client, http = stripe_client(
                settings.stripe_api_key.reveal(),
                api_base=settings.stripe_api_base,
                api_version=settings.stripe_api_version,
                max_network_retries=settings.stripe_max_network_retries,
            )
            self._closers.append(http.close_async)
        self.clients = HandlerClients(
            stripe_client=client, salesforce=salesforce, writes_enabled=settings.writes == "on"
        )
        self.dispatch_options = dispatch_options(settings)
        self.replay_options = replay_options(settings)
        if settings.writes == "off":
            log.warning(
                "shadow_mode",
                note="SFSTRIPE_WRITES=off: handlers run, writes to Stripe and Salesforce are"
                " logged and counted, not sent",
            )

    def own_salesforce(self, pool: asyncpg.Pool) -> None:
        """Give handlers a Salesforce client of their own (the CLI has no CDC source)."""
        if not (self.settings.salesforce_enabled and self.handlers) or self.clients.salesforce:
            return
        session = aiohttp.ClientSession()
        self._closers.append(session.close)
        auth = SalesforceAuth(
            oauth_settings(self.settings),
            session,
            StoredCredential(pool, REFRESH_TOKEN_CREDENTIAL),
        )
        self.clients.salesforce = SalesforceRest(
            auth,
            session,
            api_version=self.settings.sf_api_version,
            client_tag=self.settings.sf_client_tag,
        )

    async def close(self) -> None:
        for close in self._closers:
            await close()
        self._closers.clear()
