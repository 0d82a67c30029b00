"""Handlers for tests: they record what they applied and can be slow or fail on demand.

`Recorder` is for in-process tests. `file_handlers` is for daemons run as subprocesses (through
the `SFSTRIPE_TEST_HANDLERS=tests.handler_doubles:file_handlers` hook): it appends one JSON line
per call to `SFSTRIPE_TEST_RECORD`, sleeps `SFSTRIPE_TEST_DELAY` seconds per event, and fails
events whose source_event_id starts with `fail-` (permanently) or `flaky-` (retryably, the
first time).
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio

from handlers.api import HandlerContext
from handlers.errors import PermanentError, RetryableError
from state.records import LoggedEvent

Failure = Callable[[LoggedEvent, int], BaseException | None]


class Recorder:
    """Applies by remembering; checks that no lane ever has two calls at once."""

    def __init__(
        self,
        name: str = "recorder",
        *,
        wants: Callable[[LoggedEvent], bool] | None = None,
        delay: float | Callable[[LoggedEvent], float] = 0.0,
        fail: Failure | None = None,
    ) -> None:
        self.name = name
        self._wants = wants
        self._delay = delay
        self._fail = fail
        self.applied: list[LoggedEvent] = []
        self.attempts: dict[tuple[str, int], int] = defaultdict(int)
        self.started: list[tuple[float, LoggedEvent]] = []
        self.active: set[str] = set()
        self.max_active = 0
        self.overlaps: list[str] = []
        self.keys: list[str] = []
        self.writes_enabled: list[bool] = []

    def wants(self, event: LoggedEvent) -> bool:
        return self._wants(event) if self._wants is not None else True

    async def handle(self, event: LoggedEvent, ctx: HandlerContext) -> None:
        if event.customer in self.active:
            self.overlaps.append(f"{event.customer} seq {event.seq}")
        self.active.add(event.customer)
        self.max_active = max(self.max_active, len(self.active))
        self.started.append((time.monotonic(), event))
        try:
            key = (event.customer, event.seq)
            self.attempts[key] += 1
            delay = self._delay(event) if callable(self._delay) else self._delay
            if delay:
                await anyio.sleep(delay)
            if self._fail is not None:
                error = self._fail(event, self.attempts[key])
                if error is not None:
                    raise error
            self.keys.append(ctx.idempotency_key)
            self.writes_enabled.append(ctx.writes_enabled)
            self.applied.append(event)
        finally:
            self.active.discard(event.customer)

    def seqs(self, customer: str) -> list[int]:
        return [e.seq for e in self.applied if e.customer == customer]


class BatchRecorder(Recorder):
    def __init__(self, name: str = "batcher", *, max_batch: int = 5, **kwargs: object) -> None:
        super().__init__(name, **kwargs)  # type: ignore[arg-type]
        self.max_batch = max_batch
        self.batches: list[list[int]] = []

    async def handle_batch(self, events: Sequence[LoggedEvent], ctx: HandlerContext) -> None:
        self.batches.append([e.seq for e in events])
        for event in events:
            await self.handle(event, ctx)


class FileRecorder:
    """The subprocess double: one JSON line per applied event in `SFSTRIPE_TEST_RECORD`."""

    def __init__(self, name: str, record: Path, delay: float) -> None:
        self.name = name
        self._record = record
        self._delay = delay
        self._flaky_seen: set[str] = set()

    def wants(self, event: LoggedEvent) -> bool:
        return event.source != "sfstripe"

    async def handle(self, event: LoggedEvent, ctx: HandlerContext) -> None:
        self._write("start", event, ctx)
        if self._delay:
            await anyio.sleep(self._delay)
        if event.source_event_id.startswith("fail-"):
            raise PermanentError(f"test failure of {event.source_event_id}")
        if (
            event.source_event_id.startswith("flaky-")
            and event.source_event_id not in self._flaky_seen
        ):
            self._flaky_seen.add(event.source_event_id)
            raise RetryableError("test flake")
        if ctx.stripe is not None:
            await ctx.stripe.request("post", "/v1/customers", {"name": event.source_event_id})
        self._write("done", event, ctx)

    def _write(self, what: str, event: LoggedEvent, ctx: HandlerContext) -> None:
        line = {
            "what": what,
            "handler": self.name,
            "customer": event.customer,
            "seq": event.seq,
            "offset": event.offset,
            "id": event.source_event_id,
            "replay": ctx.replay,
            "writes": ctx.writes_enabled,
            "pid": os.getpid(),
        }
        with self._record.open("a") as out:
            out.write(json.dumps(line) + "\n")


def file_handlers() -> list[FileRecorder]:
    record = Path(os.environ["SFSTRIPE_TEST_RECORD"])
    delay = float(os.environ.get("SFSTRIPE_TEST_DELAY", "0"))
    return [FileRecorder("recorder", record, delay)]


def read_record(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
