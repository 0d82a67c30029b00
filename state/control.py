"""The control channel: operators' commands tell a running leader to look again.

Dead letter actions and replay requests are rows first; the notification only makes the leader
look at once. A lost notification costs a delay, never a command: the leader also looks on a
timeout.
"""

from __future__ import annotations

import anyio
import asyncpg

from state.connections import ChannelListener
from state.sql import query

CONTROL_CHANNEL = "sfstripe_control"


async def notify_control(pool: asyncpg.Pool, topic: str) -> None:
    async with pool.acquire() as conn:
        await conn.execute(query("notify_control"), topic)


class ControlListener(ChannelListener):
    """Collects the topics notified on the control channel until they are taken."""

    def __init__(self, dsn: str) -> None:
        super().__init__(dsn, CONTROL_CHANNEL)
        self._topics: set[str] = set()
        self._changed = anyio.Event()

    def notified(self, payload: str) -> None:
        self._topics.add(payload)
        self._changed.set()

    async def take(self, max_wait: float) -> set[str]:
        """The topics notified since the last call, waiting up to `max_wait` for one."""
        with anyio.move_on_after(max_wait):
            await self._changed.wait()
        topics, self._topics = self._topics, set()
        self._changed = anyio.Event()
        return topics
