"""Polls `GET /v1/events` and commits what it finds, page by page, with its cursor.

Stripe lists newest first. Catching up walks forward from the committed cursor with
`ending_before=<cursor id>`: each page is the run of events just newer than the cursor, so it is
reversed, committed together with its newest id as the new cursor (one transaction), and the walk
goes on from there. Memory stays one page however far behind the poller is, and because cursors
are ids, events sharing one `created` second are never lost or doubled at a page boundary.
Each pass also re-reads a short overlap window by `created`, to catch events that became visible
late; those are deduplicated by the log. A cursor Stripe no longer knows (past its 30-day
retention) leaves a gap marker in the log and restarts from the oldest retained event.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

import anyio
import msgspec
import stripe
import structlog

from metrics.instruments import (
    API_RATE_LIMITED,
    GAP_MARKERS,
    STRIPE_CURSOR_AGE,
    STRIPE_POLL_PASSES,
)
from state.log import EventLog, marker
from state.records import Link, NewEvent, SourcePosition
from stream.intake import LogIntake
from stream.stripe.routing import ACCOUNT_STREAM, NotAnEvent, route

log = structlog.get_logger(__name__)

POSITION_SOURCE = "stripe"
POSITION_CHANNEL = "events"
PAGE_SIZE = 100
RETENTION_S = 30 * 24 * 3600


class Cursor(msgspec.Struct, frozen=True):
    """The newest committed event; `id` None means: start from the oldest event retained.

    `floor` is the `created` second of the event polling started at with `initial = now`: what
    is not newer is history, which the overlap re-read must not bring in either.
    """

    id: str | None = None
    created: int | None = None
    floor: int | None = None


class _Page(msgspec.Struct):
    data: list[msgspec.Raw]
    has_more: bool


_page_decoder = msgspec.json.Decoder(_Page)


class StripePoller:
    def __init__(
        self,
        client: stripe.StripeClient,
        intake: LogIntake,
        event_log: EventLog,
        *,
        initial: Literal["now", "all"] = "now",
        overlap_s: int = 60,
        interval_s: float = 5.0,
        max_backoff_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._intake = intake
        self._log = event_log
        self._initial = initial
        self._overlap = overlap_s
        self._interval = interval_s
        self._max_backoff = max_backoff_s
        self._clock = clock

    async def run(self) -> None:
        """Poll forever; rate limits and Stripe outages back off with jitter, never stop it."""
        backoff = self._interval
        while True:
            try:
                await self.poll_once()
            except stripe.RateLimitError:
                API_RATE_LIMITED.labels("stripe").inc()
                STRIPE_POLL_PASSES.labels("rate_limited").inc()
                log.warning("stripe_poll_rate_limited", retry_in_s=round(backoff, 1))
            except (stripe.APIConnectionError, stripe.APIError) as exc:
                STRIPE_POLL_PASSES.labels("failed").inc()
                log.warning("stripe_poll_failed", error=str(exc), retry_in_s=round(backoff, 1))
            else:
                STRIPE_POLL_PASSES.labels("ok").inc()
                backoff = self._interval
                await anyio.sleep(self._interval)
                continue
            await anyio.sleep(backoff * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, self._max_backoff)

    async def poll_once(self) -> None:
        """One pass: catch up to the newest event, then re-read the overlap window."""
        cursor = await self._cursor()
        if cursor is None:
            if self._initial == "now":
                await self._start_at_newest()
                return
            cursor = Cursor()
        if cursor.id is None:
            cursor = await self._ingest_oldest_page()
            if cursor.id is None:
                return
        elif cursor.created is not None and cursor.created < self._clock() - RETENTION_S:
            await self._gap(cursor, "cursor older than Stripe's 30-day event retention")
            return
        cursor = await self._catch_up(cursor)
        if cursor.created is not None:
            STRIPE_CURSOR_AGE.set(max(0.0, self._clock() - cursor.created))
            await self._reread_overlap(cursor)

    async def _cursor(self) -> Cursor | None:
        stored = await self._log.position(POSITION_SOURCE, POSITION_CHANNEL)
        return None if stored is None else msgspec.json.decode(stored, type=Cursor)

    async def _list(self, **params: Any) -> _Page:
        response = await self._client.raw_request_async("get", "/v1/events", **params)
        return _page_decoder.decode(response.body)

    async def _commit(self, raws: list[msgspec.Raw], cursor: Cursor | None) -> None:
        """Commit events (oldest first) and, if given, the cursor, in one transaction."""
        events: list[NewEvent] = []
        links: list[Link] = []
        for raw in raws:
            try:
                event, link = route(bytes(raw))
            except (NotAnEvent, msgspec.DecodeError) as exc:
                log.error("stripe_event_unreadable", error=str(exc))
                continue
            events.append(event)
            if link:
                links.append(link)
        positions = []
        if cursor is not None:
            positions.append(
                SourcePosition(
                    POSITION_SOURCE, POSITION_CHANNEL, msgspec.json.encode(cursor).decode()
                )
            )
        await self._intake.submit(events, positions, links)

    @staticmethod
    def _cursor_of(raw: msgspec.Raw) -> Cursor:
        event, _ = route(bytes(raw))
        return Cursor(event.source_event_id, int(event.occurred_at.timestamp()))

    async def _start_at_newest(self) -> None:
        page = await self._list(limit=1)
        cursor = self._cursor_of(page.data[0]) if page.data else Cursor()
        cursor = msgspec.structs.replace(cursor, floor=cursor.created)
        log.info("stripe_poll_started", at=cursor.id or "oldest retained event")
        await self._commit([], cursor)

    async def _ingest_oldest_page(self) -> Cursor:
        """Walk back to the oldest page (keeping one page in memory) and commit it."""
        page = await self._list(limit=PAGE_SIZE)
        while page.has_more and page.data:
            older = await self._list(
                limit=PAGE_SIZE, starting_after=self._cursor_of(page.data[-1]).id
            )
            if not older.data:
                break
            page = older
        if not page.data:
            return Cursor()
        cursor = self._cursor_of(page.data[0])
        await self._commit(list(reversed(page.data)), cursor)
        return cursor

    async def _catch_up(self, cursor: Cursor) -> Cursor:
        while True:
            try:
                page = await self._list(limit=PAGE_SIZE, ending_before=cursor.id)
            except stripe.InvalidRequestError as exc:
                if exc.http_status == 404 or exc.code == "resource_missing":
                    await self._gap(
                        cursor, f"Stripe no longer knows the cursor: {exc.user_message}"
                    )
                    return Cursor()
                raise
            if not page.data:
                return cursor
            cursor = msgspec.structs.replace(self._cursor_of(page.data[0]), floor=cursor.floor)
            await self._commit(list(reversed(page.data)), cursor)
            if not page.has_more:
                return cursor

    async def _reread_overlap(self, cursor: Cursor) -> None:
        assert cursor.created is not None
        window = {"created[gte]": cursor.created - self._overlap}
        if cursor.floor is not None and cursor.floor >= cursor.created - self._overlap:
            window = {"created[gt]": cursor.floor}
        page = await self._list(limit=PAGE_SIZE, **window)
        while page.data:
            await self._commit(list(reversed(page.data)), None)
            if not page.has_more:
                return
            last = self._cursor_of(page.data[-1]).id
            page = await self._list(limit=PAGE_SIZE, starting_after=last, **window)

    async def _gap(self, cursor: Cursor, reason: str) -> None:
        """Record that events after `cursor` may be lost, and restart from the oldest retained."""
        now = datetime.now(UTC)
        lost_since = (
            datetime.fromtimestamp(cursor.created, UTC).isoformat() if cursor.created else None
        )
        GAP_MARKERS.labels("stripe").inc()
        log.error("stripe_events_gap", after_event=cursor.id, since=lost_since, reason=reason)
        gap = marker(
            ACCOUNT_STREAM,
            f"gap:stripe:{cursor.id}:{int(now.timestamp())}",
            "sfstripe.gap",
            {
                "source": "stripe",
                "after_event": cursor.id,
                "after_created": lost_since,
                "detected_at": now.isoformat(),
                "reason": reason,
                "resumed_from": "oldest retained event",
            },
        )
        position = SourcePosition(
            POSITION_SOURCE, POSITION_CHANNEL, msgspec.json.encode(Cursor()).decode()
        )
        await self._intake.submit([gap], [position])
