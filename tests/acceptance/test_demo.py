"""`sfstripe demo`: the daemon against the built-in Stripe Billing emulator tells a story."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.acceptance.support import (
    Daemon,
    base_environment,
    eventually,
    json_lines,
    run_cli,
)


def test_the_demo_stores_a_customers_billing_events(
    workdir: Path, fresh_dsn: str, daemons: Callable[..., Daemon]
) -> None:
    env = base_environment(SFSTRIPE_DATABASE_URL=fresh_dsn)
    daemon = daemons(env, command="demo")
    daemon.wait_ready()
    account = "001DEMO00000000001"

    def told() -> list[dict[str, object]]:
        result = run_cli(
            "log", "--json", "--customer", account, "--limit", "1000", env=env, cwd=workdir
        )
        events = json_lines(result.stdout)
        types = {e["type"] for e in events}
        done = {"invoice.paid", "invoice.payment_failed", "customer.subscription.updated"} <= types
        return events if done else []

    events = eventually(told, timeout=60, what="the demo's invoice events in the log")
    ids = [e["source_event_id"] for e in events]
    assert len(ids) == len(set(ids))
    assert daemon.logged("demo_story_told")
    assert daemon.stop() == 0
