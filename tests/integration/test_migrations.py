"""Migrations build the declared schema, take turns under a lock, and fail whole."""

from __future__ import annotations

import anyio
import asyncpg
import pytest

import state.migrate
from state.migrate import MigrationError, migrate
from state.sql import declared_schema, migrations
from tests.postgres import Databases

CATALOG = """
SELECT 'column' AS kind, table_name || '.' || column_name AS name,
       concat_ws(' ', data_type, is_nullable, column_default) AS detail
FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL
SELECT 'constraint', conrelid::regclass::text || '.' || conname, pg_get_constraintdef(oid)
FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL
SELECT 'index', tablename || '.' || indexname, indexdef
FROM pg_indexes WHERE schemaname = 'public'
ORDER BY 1, 2
"""


async def _catalog(dsn: str) -> list[tuple[str, str, str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(CATALOG)
    finally:
        await conn.close()
    return [
        (r["kind"], r["name"], r["detail"]) for r in rows if "schema_migrations" not in r["name"]
    ]


async def test_all_migrations_build_the_declared_schema(databases: Databases) -> None:
    migrated = await databases.fresh(migrated=False)
    declared = await databases.fresh(migrated=False)
    conn = await asyncpg.connect(migrated)
    try:
        applied = await migrate(conn)
    finally:
        await conn.close()
    conn = await asyncpg.connect(declared)
    try:
        await conn.execute(declared_schema())
    finally:
        await conn.close()

    assert applied == [name for _, name, _ in migrations()]
    assert await _catalog(migrated) == await _catalog(declared)
    assert await _catalog(migrated)  # the comparison is not between two empty catalogs


async def test_second_run_applies_nothing(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        assert await migrate(conn) == []
    finally:
        await conn.close()


async def test_concurrent_migrations_apply_each_file_once(databases: Databases) -> None:
    target = await databases.fresh(migrated=False)
    results: list[list[str]] = []

    async def run() -> None:
        conn = await asyncpg.connect(target)
        try:
            results.append(await migrate(conn))
        finally:
            await conn.close()

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(run)

    assert sorted(len(r) for r in results) == [0, 0, len(migrations())]
    conn = await asyncpg.connect(target)
    try:
        recorded = await conn.fetchval("SELECT count(*) FROM schema_migrations")
    finally:
        await conn.close()
    assert recorded == len(migrations())


async def test_a_failing_migration_leaves_nothing_half_applied(
    databases: Databases, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = await databases.fresh()
    broken = (999, "0999_broken.sql", "CREATE TABLE half_done (id int); SELECT no_such_function();")
    monkeypatch.setattr(state.migrate, "migrations", lambda: [*migrations(), broken])
    conn = await asyncpg.connect(target)
    try:
        with pytest.raises(MigrationError, match=r"0999_broken\.sql"):
            await migrate(conn)
        assert await conn.fetchval("SELECT to_regclass('half_done')") is None
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations WHERE number = 999") == 0
        # the advisory lock was released: another run can proceed (and fail the same way)
        with pytest.raises(MigrationError):
            await migrate(conn)
    finally:
        await conn.close()
