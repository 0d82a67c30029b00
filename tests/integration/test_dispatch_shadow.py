"""The write switch end to end: handlers talk to a Stripe API server through the SDK; in
shadow mode (writes off, or a dry-run replay) the server sees the reads and none of the writes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from aiohttp import web

from handlers.api import HandlerContext
from handlers.clients import HandlerClients
from metrics.registry import REGISTRY
from state.log import EventLog
from state.records import LoggedEvent
from stream.stripe.client import stripe_client
from tests.dispatching import applied_through, dispatcher, running
from tests.events import event


class StripeServer:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str | None]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path, request.headers.get("Idempotency-Key")))
        return web.json_response({"id": "cus_123", "object": "customer"})


@asynccontextmanager
async def stripe_server() -> AsyncIterator[StripeServer]:
    server = StripeServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    try:
        yield server
    finally:
        await runner.cleanup()


class CustomerSync:
    """Reads the customer, then writes it, with the event's idempotency key."""

    name = "customer_sync"

    def __init__(self) -> None:
        self.answers: list[object] = []

    def wants(self, event: LoggedEvent) -> bool:
        return event.source == "stripe"

    async def handle(self, event: LoggedEvent, ctx: HandlerContext) -> None:
        assert ctx.stripe is not None
        await ctx.stripe.request("GET", "/v1/customers/cus_123")
        answer = await ctx.stripe.request(
            "POST",
            "/v1/customers/cus_123",
            {"description": event.source_event_id},
            ctx.idempotency_key,
        )
        self.answers.append(answer)


def skipped_posts() -> float:
    value = REGISTRY.get_sample_value(
        "sfstripe_writes_skipped_total", {"api": "stripe", "method": "POST"}
    )
    return value or 0.0


async def _run(
    pool: asyncpg.Pool, dsn: str, event_log: EventLog, writes: bool
) -> tuple[StripeServer, CustomerSync]:
    await event_log.append([event("evt_1"), event("evt_2", customer="002")])
    sync = CustomerSync()
    async with stripe_server() as server:
        client, http = stripe_client(
            "sk_test_shadow", api_base=server.url, api_version=None, max_network_retries=0
        )
        try:
            clients = HandlerClients(stripe_client=client, writes_enabled=writes)
            async with running(dispatcher(pool, dsn, [sync], clients)) as d:
                await applied_through(d, 2)
        finally:
            await http.close_async()
    return server, sync


async def test_writes_on_reach_the_api_with_idempotency_keys(
    pool: asyncpg.Pool, dsn: str, event_log: EventLog
) -> None:
    server, sync = await _run(pool, dsn, event_log, writes=True)
    posts = sorted(r for r in server.requests if r[0] == "POST")
    assert posts == [
        ("POST", "/v1/customers/cus_123", "sfstripe:customer_sync:evt_1"),
        ("POST", "/v1/customers/cus_123", "sfstripe:customer_sync:evt_2"),
    ]
    assert sync.answers == [{"id": "cus_123", "object": "customer"}] * 2


async def test_shadow_mode_reads_and_counts_writes_without_sending_them(
    pool: asyncpg.Pool, dsn: str, event_log: EventLog
) -> None:
    before = skipped_posts()
    server, sync = await _run(pool, dsn, event_log, writes=False)
    assert [r[0] for r in server.requests] == ["GET", "GET"]
    assert sync.answers == [{}, {}]
    assert skipped_posts() == before + 2
    async with pool.acquire() as conn:  # the events count as applied: shadow mode moves on
        assert await conn.fetchval("SELECT low_water FROM handler_offsets") == 2
