"""The PostgreSQL server for tests: SFSTRIPE_TEST_DATABASE_URL, or an embedded one."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from state.database import start_embedded
from state.migrate import migrate


def with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


async def server_dsn(scratch: Path) -> str:
    configured = os.environ.get("SFSTRIPE_TEST_DATABASE_URL")
    if configured:
        return configured
    return await start_embedded(scratch)


class Databases:
    """Hands out one fresh database per test, cloned from a template migrated once."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.template = f"sfstripe_template_{uuid.uuid4().hex[:8]}"
        self.created: list[str] = []

    async def prepare(self) -> None:
        await self._admin("CREATE DATABASE {}", self.template)
        conn = await asyncpg.connect(with_database(self.server, self.template))
        try:
            await migrate(conn)
        finally:
            await conn.close()

    async def fresh(self, *, migrated: bool = True) -> str:
        name = f"sfstripe_test_{uuid.uuid4().hex[:12]}"
        if migrated:
            await self._admin("CREATE DATABASE {} TEMPLATE {}", name, self.template)
        else:
            await self._admin("CREATE DATABASE {}", name)
        self.created.append(name)
        return with_database(self.server, name)

    async def drop_all(self) -> None:
        for name in [*self.created, self.template]:
            await self._admin("DROP DATABASE IF EXISTS {} WITH (FORCE)", name)

    async def _admin(self, statement: str, *names: str) -> None:
        conn = await asyncpg.connect(self.server)
        try:
            # Identifiers cannot be parameters; these names are generated above, never input.
            await conn.execute(statement.format(*(f'"{n}"' for n in names)))
        finally:
            await conn.close()
