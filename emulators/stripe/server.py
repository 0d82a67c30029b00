"""Running the emulator on a loopback port: in-process (tests) or `python -m emulators.stripe`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from emulators.stripe import billing_cycle
from emulators.stripe.account import Account
from emulators.stripe.app import SENDER, build_app
from emulators.stripe.clock import Clock
from emulators.stripe.webhooks import WebhookSender


@dataclass
class StripeEmulator:
    """A running emulator: its URL, its account state and its webhook sender."""

    url: str
    account: Account
    webhooks: WebhookSender

    def advance(self, seconds: int) -> None:
        """Move the test clock forward, running renewals, finalisation and dunning on the way."""
        billing_cycle.advance_to(self.account, self.account.now() + seconds)


@contextlib.asynccontextmanager
async def running_emulator(
    host: str = "127.0.0.1", port: int = 0, *, frozen_clock: bool = False
) -> AsyncIterator[StripeEmulator]:
    """Serve a fresh emulator on `host:port` (0 = a free port) for the duration of the block."""
    account = Account(clock=Clock(frozen=frozen_clock))
    app = build_app(account)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    assert server is not None
    bound = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    url = f"http://{host}:{bound}"
    account.base_url = url
    try:
        yield StripeEmulator(url, account, app[SENDER])
    finally:
        await runner.cleanup()
