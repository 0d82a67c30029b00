"""One named credential kept in PostgreSQL (a rotated refresh token must survive a restart)."""

from __future__ import annotations

import asyncpg

from state.sql import query


class StoredCredential:
    def __init__(self, pool: asyncpg.Pool, name: str) -> None:
        self._pool = pool
        self._name = name

    async def load(self) -> str | None:
        async with self._pool.acquire() as conn:
            value: str | None = await conn.fetchval(query("load_credential"), self._name)
            return value

    async def save(self, value: str) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(query("save_credential"), self._name, value)
