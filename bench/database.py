"""A throw-away database for one benchmark run, on the configured or the embedded server."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from state.database import start_embedded
from state.migrate import migrate


def _with_database(dsn: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def database_server(server: str | None = None) -> str:
    """`server`, else the configured server (as the tests find it), else the embedded one."""
    server = (
        server
        or os.environ.get("SFSTRIPE_TEST_DATABASE_URL")
        or os.environ.get("SFSTRIPE_DATABASE_URL")
    )
    if not server:
        server = await start_embedded(Path(os.environ.get("SFSTRIPE_DATA_DIR", ".sfstripe")))
    return server


@asynccontextmanager
async def scratch_database(
    server: str | None = None, *, migrated: bool = True
) -> AsyncIterator[str]:
    """Yield the DSN of a new database (with sfstripe's schema unless `migrated` is false) on
    `database_server(server)`, and drop it afterwards."""
    server = await database_server(server)
    name = f"sfstripe_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        dsn = _with_database(server, name)
        if migrated:
            conn = await asyncpg.connect(dsn)
            try:
                await migrate(conn)
            finally:
                await conn.close()
        yield dsn
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
