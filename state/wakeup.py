"""Wakes log readers when new events are committed (LISTEN/NOTIFY on the appends' channel).

A notification can be lost when the listening connection drops, so readers also wake on a
timeout and re-read: the wake-up makes reading prompt, never the only way it happens.
"""

from __future__ import annotations

import anyio

from state.connections import ChannelListener
from state.log import NOTIFY_CHANNEL


class AppendWakeup(ChannelListener):
    def __init__(self, dsn: str) -> None:
        super().__init__(dsn, NOTIFY_CHANNEL)
        self._changed = anyio.Event()
        self.head = 0

    def notified(self, payload: str) -> None:
        self.head = max(self.head, int(payload))
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_past(self, offset: int, max_wait: float) -> int:
        """Wait until a commit beyond `offset` is announced, or `max_wait`; return the head seen."""
        with anyio.move_on_after(max_wait):
            while self.head <= offset:
                await self._changed.wait()
        return self.head
