"""Knows whether PostgreSQL can take commits, so intake can pause instead of losing events."""

from __future__ import annotations

import anyio
import asyncpg
import structlog

from state.sql import query

log = structlog.get_logger(__name__)

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
)


class DatabaseWatch:
    """Probes the database; anyone who sees a connection failure reports it for a fast re-probe."""

    def __init__(self, pool: asyncpg.Pool, *, interval: float = 1.0, timeout: float = 2.0) -> None:
        self._pool = pool
        self._interval = interval
        self._timeout = timeout
        self._available = True
        self._back = anyio.Event()
        self._back.set()
        self._suspect = anyio.Event()

    @property
    def available(self) -> bool:
        return self._available

    def report_failure(self, error: BaseException) -> None:
        if self._available:
            log.error("database_unavailable", error=repr(error))
            self._available = False
            self._back = anyio.Event()
        self._suspect.set()

    async def wait_available(self) -> None:
        await self._back.wait()

    async def probe(self) -> bool:
        try:
            with anyio.fail_after(self._timeout):
                async with self._pool.acquire() as conn:
                    await conn.fetchval(query("ping"))
        except CONNECTION_ERRORS as exc:
            self.report_failure(exc)
            return False
        if not self._available:
            log.info("database_available")
            self._available = True
            self._back.set()
        return True

    async def run(self) -> None:
        """Probe forever: every interval, and at once after a reported failure."""
        while True:
            await self.probe()
            self._suspect = anyio.Event()
            with anyio.move_on_after(self._interval):
                await self._suspect.wait()
