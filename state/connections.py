"""Dedicated connections: closing one without waiting on a database that stopped answering,
and one that LISTENs on a channel."""

from __future__ import annotations

from types import TracebackType
from typing import Self

import anyio
import asyncpg

CLOSE_WAIT_S = 0.5


async def close_quickly(conn: asyncpg.Connection) -> None:
    """Close politely if the server answers at once, else drop the socket (shutdown must not
    hang on a silent server; the server ends the session either way)."""
    with anyio.CancelScope(shield=True):
        if not conn.is_closed():
            try:
                with anyio.move_on_after(CLOSE_WAIT_S):
                    await conn.close()
            except Exception:
                pass
        if not conn.is_closed():
            conn.terminate()


class ChannelListener:
    """A connection of its own that LISTENs on `channel`; subclasses say what a notification
    means in `notified`. Pooled connections must not listen (they are not reset on release)."""

    def __init__(self, dsn: str, channel: str) -> None:
        self._dsn = dsn
        self._channel = channel
        self._conn: asyncpg.Connection | None = None

    async def __aenter__(self) -> Self:
        self._conn = await asyncpg.connect(self._dsn)
        await self._conn.add_listener(self._channel, self._received)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._conn is not None:
            await close_quickly(self._conn)  # bounded: a silent server must not stall shutdown

    @property
    def listening(self) -> bool:
        """False once the connection is gone (notifications are lost until a new listener)."""
        return self._conn is not None and not self._conn.is_closed()

    def _received(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        self.notified(str(payload))

    def notified(self, payload: str) -> None:
        raise NotImplementedError
