"""`sfstripe run` with Stripe on: webhooks and polling together, catch-up after downtime."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio.to_thread
import stripe

from tests.acceptance.support import Daemon, base_environment, json_lines, run_cli
from tests.stripe_events_api import running_events_api
from tests.waiting import wait_until

SECRET = "whsec_acceptance"
NOW = int(time.time())


async def logged(env: dict[str, str], workdir: Path) -> list[dict[str, Any]]:
    result = await anyio.to_thread.run_sync(
        lambda: run_cli("log", "--json", "--limit", "1000", env=env, cwd=workdir)
    )
    assert result.returncode == 0, result.stderr
    return [e for e in json_lines(result.stdout) if e["source"] == "stripe"]


def post_webhook(daemon: Daemon, body: str) -> int:
    header = stripe.WebhookSignature.generate_signature_header(body, SECRET)
    request = urllib.request.Request(
        daemon.url("/webhooks/stripe"),
        data=body.encode(),
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        status: int = response.status
        return status


async def test_webhooks_and_polling_store_each_event_once_and_catch_up(
    workdir: Path, fresh_dsn: str, daemons: Callable[..., Daemon]
) -> None:
    async with running_events_api() as api:
        env = base_environment(
            SFSTRIPE_DATABASE_URL=fresh_dsn,
            SFSTRIPE_STRIPE_API_KEY="sk_test_acceptance",
            SFSTRIPE_STRIPE_API_BASE=api.url,
            SFSTRIPE_STRIPE_WEBHOOK_SECRETS=SECRET,
            SFSTRIPE_STRIPE_INITIAL="all",
            SFSTRIPE_STRIPE_POLL_INTERVAL="0.2",
        )
        for n in range(3):
            api.add(f"evt_{n:04d}", NOW - 100 + n)
        daemon = daemons(env)
        await anyio.to_thread.run_sync(daemon.wait_ready)

        async def count(expected: int) -> None:
            async def reached() -> bool:
                return len(await logged(env, workdir)) >= expected

            await wait_until(reached, within=30)

        await count(3)
        api.add("evt_0003", NOW - 50)  # delivered both ways
        body = json.dumps(api.events["evt_0003"].body)
        assert await anyio.to_thread.run_sync(post_webhook, daemon, body) == 200
        await count(4)
        assert await anyio.to_thread.run_sync(daemon.stop) == 0

        for n in range(4, 254):  # while it is down: more than two pages
            api.add(f"evt_{n:04d}", NOW - 40 + n // 10)
        again = daemons(env)
        await anyio.to_thread.run_sync(again.wait_ready)
        await count(254)
        events = await logged(env, workdir)
        assert [e["source_event_id"] for e in events] == [f"evt_{n:04d}" for n in range(254)]
        assert await anyio.to_thread.run_sync(again.stop) == 0
