"""One consumer per database: a session-level advisory lock on a dedicated connection.

The lock lives as long as the session: when the holder dies (even by kill -9), PostgreSQL ends
its session and the lock is free for a standby. The holder checks its session regularly; if the
connection is lost, so may be the lock, and it must stop consuming at once.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime
from types import TracebackType

import anyio
import asyncpg
import msgspec

from state.connections import CLOSE_WAIT_S, close_quickly
from state.sql import query

APPLICATION_PREFIX = "sfstripe "
# A leader cut off by the network leaves its session (and the lock) to the server, which by
# default notices a dead TCP peer only after two hours; these make it about 25 seconds.
KEEPALIVES = {
    "tcp_keepalives_idle": "10",
    "tcp_keepalives_interval": "5",
    "tcp_keepalives_count": "3",
}


def instance_name() -> str:
    """host:pid, short enough for `application_name` (63 bytes)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}"


class LeaderLock:
    """The leader lock on its own connection; `role` names the session in pg_stat_activity."""

    def __init__(self, dsn: str, role: str = "standby") -> None:
        self._dsn = dsn
        self._role = role
        self._conn: asyncpg.Connection | None = None
        self.held = False

    async def __aenter__(self) -> LeaderLock:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.release()

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(
                self._dsn,
                server_settings={"application_name": self._application_name(), **KEEPALIVES},
            )
        return self._conn

    def _application_name(self) -> str:
        return f"{APPLICATION_PREFIX}{self._role} {instance_name()}"[:63]

    async def try_acquire(self, role_when_held: str = "leader") -> bool:
        """Take the lock if it is free; the session is then named `role_when_held`."""
        conn = await self._connection()
        self.held = bool(await conn.fetchval(query("leader_try_lock")))
        if self.held:
            self._role = role_when_held
            await conn.execute(query("set_application_name"), self._application_name())
        return self.held

    async def try_acquire_quietly(self, role_when_held: str = "leader") -> bool:
        """`try_acquire`, with a database failure counting as "not now"."""
        try:
            return await self.try_acquire(role_when_held)
        except Exception:  # any failure of this session: try a new one next time
            await self._drop()
            return False

    async def retake(self, within: float = 5.0) -> bool | None:
        """After `check` failed: take the lock again on a new session. True: it is ours again;
        False: another session holds it; None: the database could not be asked (yet)."""
        try:
            with anyio.fail_after(within):
                return await self.try_acquire()
        except Exception:  # any failure of this session: a new one next time
            await self._drop()
            return None

    async def acquire(self, poll_s: float = 1.0, role_when_held: str = "leader") -> None:
        """Wait until the lock is ours, trying every `poll_s` (reconnecting when needed)."""
        # Polling, not pg_advisory_lock(): a blocked call cannot notice a lost connection.
        while not await self.try_acquire_quietly(role_when_held):  # noqa: ASYNC110
            await anyio.sleep(poll_s)

    async def check(self, within: float = 5.0) -> bool:
        """True while our session (and so the lock) is alive (answered within `within` s)."""
        if not self.held or self._conn is None or self._conn.is_closed():
            return False
        try:
            with anyio.fail_after(within):
                await self._conn.fetchval(query("ping"))
        except Exception:  # a terminated session surfaces as any of asyncpg's errors
            self.held = False
            await self._drop()
            return False
        return True

    async def release(self) -> None:
        """Give the lock up. Closing the session frees it too, so a database that does not
        answer only costs a short wait before the connection is dropped."""
        with anyio.CancelScope(shield=True):
            if self.held and self._conn is not None and not self._conn.is_closed():
                try:
                    with anyio.move_on_after(CLOSE_WAIT_S):
                        await self._conn.fetchval(query("leader_unlock"))
                except Exception:  # closing the session below releases it anyway
                    pass
            self.held = False
            await self._drop()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await close_quickly(conn)


class LeadershipSession(msgspec.Struct, frozen=True):
    pid: int
    application_name: str
    started_at: datetime
    leader: bool

    @property
    def role(self) -> str:
        return self.application_name.removeprefix(APPLICATION_PREFIX).split(" ", 1)[0]

    @property
    def instance(self) -> str:
        parts = self.application_name.split(" ", 2)
        return parts[2] if len(parts) == 3 else ""


async def leadership_sessions(pool: asyncpg.Pool) -> list[LeadershipSession]:
    """Every sfstripe leadership session on this database (leader, standbys, CLI replays)."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(query("leadership_sessions"))
    return [
        LeadershipSession(r["pid"], r["application_name"], r["backend_start"], r["holds_lock"])
        for r in rows
    ]
