"""Wakes log readers when new events are committed (LISTEN/NOTIFY on the appends' channel).

A notification can be lost when the listening connection drops, so readers also wake on a
timeout and re-read: the wake-up makes reading prompt, never the only way it happens.
"""

from __future__ import annotations

from types import TracebackType

import anyio
import asyncpg

from state.connections import close_quickly
from state.log import NOTIFY_CHANNEL


class AppendWakeup:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: asyncpg.Connection | None = None
        self._changed = anyio.Event()
        self.head = 0

    async def __aenter__(self) -> AppendWakeup:
        self._conn = await asyncpg.connect(self._dsn)
        await self._conn.add_listener(NOTIFY_CHANNEL, self._notified)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._conn is not None:
            await close_quickly(self._conn)  # bounded: a silent server must not stall shutdown

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        self.head = max(self.head, int(str(payload)))
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_past(self, offset: int, max_wait: float) -> int:
        """Wait until a commit beyond `offset` is announced, or `max_wait`; return the head seen."""
        with anyio.move_on_after(max_wait):
            while self.head <= offset:
                await self._changed.wait()
        return self.head
