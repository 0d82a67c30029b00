"""`sfstripe migrate`: applies pending migrations once, even from two processes at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from state.sql import migrations
from tests.acceptance.support import (
    CLI_TIMEOUT,
    MIGRATED,
    base_environment,
    run_cli,
    start_cli,
)

APPLIED = [(number, name) for number, name, _ in migrations()]


def applied_migrations(dsn: str) -> list[tuple[int, str]]:
    async def fetch() -> list[tuple[int, str]]:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch("SELECT number, name FROM schema_migrations ORDER BY number")
            return [(row["number"], row["name"]) for row in rows]
        finally:
            await conn.close()

    return asyncio.run(fetch())


def table_names(dsn: str) -> set[str]:
    async def fetch() -> set[str]:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            )
            return {row["tablename"] for row in rows}
        finally:
            await conn.close()

    return asyncio.run(fetch())


def test_migrate_applies_the_schema_once(empty_dsn: str, workdir: Path) -> None:
    env = base_environment(SFSTRIPE_DATABASE_URL=empty_dsn)

    first = run_cli("migrate", env=env, cwd=workdir)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == MIGRATED
    assert applied_migrations(empty_dsn) == APPLIED
    assert {"events", "log_head", "source_positions", "identity_links"} <= table_names(empty_dsn)

    second = run_cli("migrate", env=env, cwd=workdir)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "applied 0 migration(s)"
    assert applied_migrations(empty_dsn) == APPLIED


def test_two_concurrent_migrates_both_succeed_and_apply_once(empty_dsn: str, workdir: Path) -> None:
    env = base_environment(SFSTRIPE_DATABASE_URL=empty_dsn)
    processes = [start_cli("migrate", env=env, cwd=workdir) for _ in range(2)]
    try:
        outputs = [process.communicate(timeout=CLI_TIMEOUT) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)

    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
    stdouts = sorted(stdout.strip() for stdout, _ in outputs)
    assert stdouts == [
        "applied 0 migration(s)",
        MIGRATED,
    ]
    assert applied_migrations(empty_dsn) == APPLIED
