"""The real event log, with the controls tests need: hold appends, slow them, fail them."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import asyncpg

from state.log import EventLog
from state.records import AppendResult, Link, NewEvent, SourcePosition


class ControlledLog(EventLog):
    """`gate` holds appends (a stalled writer), `delay` slows them, `failures` are raised by
    the next appends in turn; `calls`, `events_in` and `transactions` count what happened."""

    def __init__(self, pool: asyncpg.Pool, *, delay: float = 0.0) -> None:
        super().__init__(pool)
        self.gate = anyio.Event()
        self.gate.set()
        self.delay = delay
        self.failures: list[BaseException] = []
        self.calls = 0
        self.events_in = 0
        self.transactions = 0

    async def append(
        self,
        events: Sequence[NewEvent],
        positions: Sequence[SourcePosition] = (),
        links: Sequence[Link] = (),
    ) -> AppendResult:
        self.calls += 1
        self.events_in += len(events)
        await self.gate.wait()
        await anyio.sleep(self.delay)
        if self.failures:
            raise self.failures.pop(0)
        result = await super().append(events, positions, links)
        self.transactions += 1
        return result
