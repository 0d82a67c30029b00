"""Daemons and CLI runs with the test handler (`tests.handler_doubles.file_handlers`), whose
calls are recorded as JSON lines in a file."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import asyncpg

from state.database import open_pool
from state.log import EventLog
from tests.acceptance.support import base_environment, json_lines, run_cli
from tests.events import event
from tests.handler_doubles import read_record

HOOK = "tests.handler_doubles:file_handlers"


def handler_environment(dsn: str, record: Path, **settings: str) -> dict[str, str]:
    return base_environment(
        SFSTRIPE_DATABASE_URL=dsn,
        SFSTRIPE_TEST_HANDLERS=HOOK,
        SFSTRIPE_TEST_RECORD=str(record),
        SFSTRIPE_HANDLER_RETRY_DELAY="0.1",
        SFSTRIPE_HANDLER_RETRY_MAX_DELAY="0.5",
        # From the start of the log, not the head: events appended before the dispatcher's
        # first start are its business too.
        SFSTRIPE_HANDLER_START_OFFSETS="recorder=0",
        **settings,
    )


def append(dsn: str, *ids: str) -> None:
    """Append events `id[@customer]` (customer 001A by default) in one transaction."""

    async def go() -> None:
        pool = await open_pool(dsn, min_size=1, max_size=1)
        try:
            batch = []
            for spec in ids:
                event_id, _, customer = spec.partition("@")
                batch.append(event(event_id, customer=customer or "001A"))
            await EventLog(pool).append(batch)
        finally:
            await pool.close()

    asyncio.run(go())


def fetch(dsn: str, sql: str) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(dsn)
        try:
            return [dict(row) for row in await conn.fetch(sql)]
        finally:
            await conn.close()

    return asyncio.run(go())


def calls(record: Path, what: str = "done", **match: object) -> list[dict[str, Any]]:
    lines = read_record(record)
    return [
        line
        for line in lines
        if line["what"] == what and all(line.get(k) == v for k, v in match.items())
    ]


def wait_for(check: Any, timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s (last: {result!r})")
        time.sleep(0.1)


def cli_json(env: dict[str, str], cwd: Path, *args: str) -> Any:
    result = run_cli(*args, env=env, cwd=cwd)
    assert result.returncode == 0, result.stderr
    lines = json_lines(result.stdout)
    return lines[-1] if lines else None


def status(env: dict[str, str], cwd: Path) -> dict[str, Any]:
    report: dict[str, Any] = cli_json(env, cwd, "status", "--json")
    return report


def last_json(stdout: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return loaded
