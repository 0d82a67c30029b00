"""Running a dispatcher in the background of a test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import asyncpg

from handlers.api import BatchHandler, Handler, registered
from handlers.clients import HandlerClients
from handlers.dispatcher import Dispatcher, DispatchOptions
from tests.waiting import wait_until

FAST = {"retry_first_s": 0.05, "retry_max_s": 0.2, "flush_interval_s": 0.05, "reread_s": 0.2}


def dispatcher(
    pool: asyncpg.Pool,
    dsn: str,
    handlers: Sequence[Handler | BatchHandler],
    clients: HandlerClients | None = None,
    **options: Any,
) -> Dispatcher:
    """A dispatcher whose handlers start at offset 0 unless told, with short retry delays."""
    starts = options.pop("start_offsets", {h.name: 0 for h in handlers})
    return Dispatcher(
        pool,
        dsn,
        [registered(h) for h in handlers],
        clients or HandlerClients(),
        DispatchOptions(**{**FAST, "start_offsets": starts, **options}),
    )


@asynccontextmanager
async def running(the_dispatcher: Dispatcher) -> AsyncIterator[Dispatcher]:
    """Run it until the block ends, then stop it as the daemon does (drain and flush)."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(the_dispatcher.run)
        with anyio.fail_after(10):
            await the_dispatcher.started.wait()
        yield the_dispatcher
        the_dispatcher.stop()


async def applied_through(the_dispatcher: Dispatcher, offset: int, within: float = 10.0) -> None:
    """Wait until every handler's low-water offset reaches `offset`."""

    async def check() -> bool:
        return all(the_dispatcher.low_water(h) >= offset for h in the_dispatcher.handler_names())

    await wait_until(check, within=within)
