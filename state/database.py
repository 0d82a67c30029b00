"""Connections to PostgreSQL, and the embedded server used when no DSN is configured."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import anyio.to_thread
import asyncpg


class _StatelessConnection(asyncpg.Connection):
    """Pooled connections keep no session state (SET, LISTEN and advisory locks live on
    dedicated connections), so giving one back skips asyncpg's reset query: one round trip
    less per use, which the append path pays once per batch. Open transactions are still
    rolled back on release."""

    def get_reset_query(self) -> str:
        return ""


async def open_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose sessions identify themselves in `pg_stat_activity`."""
    pool: asyncpg.Pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        server_settings={"application_name": "sfstripe"},
        connection_class=_StatelessConnection,
    )
    return pool


async def start_embedded(data_dir: Path) -> str:
    """Start (or join) the PostgreSQL server kept in `data_dir` and return its DSN.

    pgserver counts the processes using one data folder and stops the server when the last one
    exits, so `sfstripe log` can join a running daemon's database.
    """

    def start() -> str:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers): harmless here.
            warnings.simplefilter("ignore")
            # imported here: a configured DSN never needs it
            from pgserver.postgres_server import get_server

            logging.getLogger("pgserver").setLevel(logging.WARNING)
            data_dir.mkdir(parents=True, exist_ok=True)
            server = get_server(data_dir.resolve())
        uri: str = server.get_uri()
        return uri

    return await anyio.to_thread.run_sync(start)
