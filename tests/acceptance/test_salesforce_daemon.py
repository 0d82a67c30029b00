"""`sfstripe run` with Salesforce settings, against the Salesforce-compatible test server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio.to_thread

from tests.acceptance.support import Daemon, base_environment, json_lines, run_cli
from tests.salesforce_support import salesforce_variables
from tests.sfserver_fixture import (
    SalesforceServer,
)
from tests.waiting import wait_until


def salesforce_env(server: SalesforceServer, dsn: str) -> dict[str, str]:
    return base_environment(SFSTRIPE_DATABASE_URL=dsn, **salesforce_variables(server))


async def logged(env: dict[str, str], workdir: Path) -> list[dict[str, Any]]:
    result = await anyio.to_thread.run_sync(
        lambda: run_cli("log", "--json", "--limit", "1000", env=env, cwd=workdir)
    )
    assert result.returncode == 0, result.stderr
    return json_lines(result.stdout)


async def test_the_daemon_ingests_cdc_and_resumes_after_a_restart(
    tmp_path: Path,
    workdir: Path,
    fresh_dsn: str,
    daemons: Callable[..., Daemon],
) -> None:
    async with SalesforceServer(tmp_path / "org.json", poll_timeout=2) as sf:
        env = salesforce_env(sf, fresh_dsn)
        daemon = daemons(env)
        await anyio.to_thread.run_sync(daemon.wait_ready)
        account = await sf.edit_record("Account", {"Name": "Acme"})
        await sf.edit_record("Contact", {"LastName": "Doe", "AccountId": account["id"]})

        async def two() -> bool:
            return len(await logged(env, workdir)) >= 2

        await wait_until(two, within=30)
        assert await anyio.to_thread.run_sync(daemon.stop) == 0

        await sf.edit_record("Account", {"Phone": "555"}, record_id=account["id"])
        again = daemons(env)
        await anyio.to_thread.run_sync(again.wait_ready)

        async def three() -> bool:
            return len(await logged(env, workdir)) >= 3

        await wait_until(three, within=30)
        events = await logged(env, workdir)
        assert [(e["type"], e["customer"], e["seq"]) for e in events] == [
            ("Account.CREATE", account["id"], 1),
            ("Contact.CREATE", account["id"], 2),
            ("Account.UPDATE", account["id"], 3),
        ]
        assert await anyio.to_thread.run_sync(again.stop) == 0
        assert again.logged("salesforce_subscribed")
