"""Which PostgreSQL the daemon and the CLI use: the configured one or the embedded default."""

from __future__ import annotations

import asyncpg
import structlog

from sfstripe.config import Settings
from state.database import start_embedded
from state.migrate import migrate

log = structlog.get_logger(__name__)


async def database_dsn(settings: Settings) -> str:
    if settings.database_url is not None:
        return settings.database_url.reveal()
    log.info(
        "embedded_database",
        data_dir=str(settings.data_dir.resolve()),
        note="SFSTRIPE_DATABASE_URL is unset: using sfstripe's own PostgreSQL in this folder",
    )
    return await start_embedded(settings.data_dir)


async def migrate_database(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        applied = await migrate(conn)
    finally:
        await conn.close()
    for name in applied:
        log.info("migration_applied", migration=name)
    return applied
