"""Schema migrations: numbered SQL files applied in order, each in its own transaction."""

from __future__ import annotations

import asyncpg

from state.sql import migrations, query


class MigrationError(Exception):
    """A migration failed; its transaction was rolled back, so nothing of it is applied."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"migration {name} failed: {reason}")
        self.name = name


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply pending migrations under an advisory lock and return the names applied.

    Holding the lock across the whole run means a second process waits, then finds nothing left.
    """
    await conn.execute(query("migration_lock"))
    try:
        await conn.execute(query("create_migrations_table"))
        done = {row["number"] for row in await conn.fetch(query("applied_migrations"))}
        applied = []
        for number, name, sql in migrations():
            if number in done:
                continue
            try:
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute(query("record_migration"), number, name)
            except asyncpg.PostgresError as exc:
                raise MigrationError(name, str(exc)) from exc
            applied.append(name)
        return applied
    finally:
        await conn.execute(query("migration_unlock"))
