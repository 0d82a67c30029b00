"""Fixtures: a fresh Stripe emulator per test (in-process, free loopback port, frozen clock) and
the official SDK as its client."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest_asyncio
import stripe
from aiohttp import web

from emulators.stripe import StripeEmulator, running_emulator

API_KEY = "sk_test_emulator_4eC39HqLyjWDarjtT1zdp7dc"


@dataclass
class Emu:
    """The running emulator, an SDK client on it, and plain HTTP for the control API."""

    server: StripeEmulator
    client: stripe.StripeClient
    http: aiohttp.ClientSession
    http_clients: list[stripe.AIOHTTPClient] = field(default_factory=list)

    def sdk(self, key: str = API_KEY, retries: int = 0) -> stripe.StripeClient:
        """Another SDK client (closed with the fixture)."""
        http_client = stripe.AIOHTTPClient()
        self.http_clients.append(http_client)
        return stripe.StripeClient(
            key,
            base_addresses={"api": self.url},
            http_client=http_client,
            max_network_retries=retries,
        )

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def now(self) -> int:
        return self.server.account.now()

    async def control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        async with self.http.post(f"{self.url}/_emulator/{path}", json=body or {}) as answer:
            assert answer.status == 200, await answer.text()
            return await answer.json()

    async def advance(self, seconds: int) -> Any:
        return await self.control("advance", {"seconds": seconds})

    async def events(self, **params: Any) -> list[stripe.Event]:
        page = await self.client.v1.events.list_async(params={"limit": 100, **params})
        return list(page.data)

    async def types(self, **params: Any) -> list[str]:
        """Event types, oldest first."""
        return [event.type for event in reversed(await self.events(**params))]


@pytest_asyncio.fixture
async def emu() -> AsyncIterator[Emu]:
    async with running_emulator(frozen_clock=True) as server:
        http_client = stripe.AIOHTTPClient()
        client = stripe.StripeClient(
            API_KEY,
            base_addresses={"api": server.url},
            http_client=http_client,
            max_network_retries=0,
        )
        async with aiohttp.ClientSession() as http:
            emu = Emu(server, client, http)
            yield emu
        for other in [http_client, *emu.http_clients]:
            await other.close_async()


@dataclass
class Receiver:
    """A webhook endpoint on loopback that records what it gets and can refuse some."""

    url: str = ""
    bodies: list[bytes] = field(default_factory=list)
    signatures: list[str] = field(default_factory=list)
    refuse_next: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for body in self.bodies]


@contextlib.asynccontextmanager
async def receiving() -> AsyncIterator[Receiver]:
    """A webhook receiver on a free loopback port for the duration of the block."""
    state = Receiver()

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        if state.refuse_next > 0:
            state.refuse_next -= 1
            return web.Response(status=500)
        state.bodies.append(body)
        state.signatures.append(request.headers["Stripe-Signature"])
        state.arrived.set()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    assert site._server is not None
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    state.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield state
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with receiving() as state:
        yield state
