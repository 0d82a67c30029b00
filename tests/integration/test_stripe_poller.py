"""The /v1/events poller against a server of Stripe's documented list semantics."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import asyncpg
import pytest
import stripe

from metrics.registry import REGISTRY
from state.log import EventLog
from state.records import SourcePosition
from state.watch import DatabaseWatch
from stream.intake import LogIntake
from stream.stripe.client import stripe_client
from stream.stripe.poller import StripePoller
from stream.stripe.routing import route
from tests.stripe_events_api import EventsApi, Fault, running_events_api
from tests.waiting import wait_until

NOW = int(time.time())


@asynccontextmanager
async def polling(
    pool: asyncpg.Pool, **options: Any
) -> AsyncIterator[tuple[EventsApi, StripePoller, EventLog]]:
    event_log = EventLog(pool)
    intake = LogIntake(event_log, DatabaseWatch(pool))
    async with running_events_api() as api:
        client, http = stripe_client(
            "sk_test_poller", api_base=api.url, api_version=None, max_network_retries=2
        )
        poller = StripePoller(client, intake, event_log, **options)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(intake.run)
                yield api, poller, event_log
                intake.close()
        finally:
            await http.close_async()


async def stored_ids(event_log: EventLog, source: str = "stripe") -> list[str]:
    return [e.source_event_id for e in await event_log.read(0, 10_000) if e.source == source]


async def cursor(event_log: EventLog) -> dict[str, Any]:
    stored = await event_log.position("stripe", "events")
    assert stored is not None
    loaded: dict[str, Any] = json.loads(stored)
    return loaded


async def test_first_start_now_ingests_no_history(pool: asyncpg.Pool) -> None:
    async with polling(pool, initial="now") as (api, poller, event_log):
        for i in range(3):
            api.add(f"evt_old{i}", NOW - 100 + i)
        await poller.poll_once()
        assert await stored_ids(event_log) == []
        assert (await cursor(event_log))["id"] == "evt_old2"

        api.add("evt_new0", NOW)
        api.add("evt_new1", NOW)
        await poller.poll_once()
        assert await stored_ids(event_log) == ["evt_new0", "evt_new1"]
        assert (await cursor(event_log))["id"] == "evt_new1"


async def test_first_start_all_pages_through_one_second_in_order(pool: asyncpg.Pool) -> None:
    async with polling(pool, initial="all") as (api, poller, event_log):
        ids = [f"evt_{i:04d}" for i in range(250)]
        for event_id in ids:
            api.add(event_id, NOW - 30)  # all in the same second: ids, not times, are cursors
        await poller.poll_once()
        assert await stored_ids(event_log) == ids
        assert (await cursor(event_log))["id"] == ids[-1]
        assert all(int(r.get("limit", 10)) <= 100 for r in api.requests)


async def test_catch_up_after_downtime_commits_page_by_page(pool: asyncpg.Pool) -> None:
    async with polling(pool, initial="now") as (api, poller, event_log):
        api.add("evt_start", NOW - 500)
        await poller.poll_once()
        ids = [f"evt_{i:04d}" for i in range(230)]
        for n, event_id in enumerate(ids):
            api.add(event_id, NOW - 400 + n // 7)  # runs of 7 events share a second
        await poller.poll_once()
        assert await stored_ids(event_log) == ids
        assert (await cursor(event_log))["id"] == ids[-1]
        walked = [r for r in api.requests if "ending_before" in r]
        assert len(walked) >= 3  # three pages of 100, each committed with its cursor


async def test_a_late_visible_event_is_caught_by_the_overlap(pool: asyncpg.Pool) -> None:
    async with polling(pool, initial="now", overlap_s=60) as (api, poller, event_log):
        api.add("evt_start", NOW - 100)  # where polling starts: it and older are history
        await poller.poll_once()
        api.add("evt_late", NOW - 25, visible=False)  # older than the next cursor, shown later
        api.add("evt_too_late", NOW - 80, visible=False)  # outside the 60 s overlap window
        api.add("evt_b", NOW - 10)
        await poller.poll_once()
        api.reveal("evt_late")
        api.reveal("evt_too_late")
        await poller.poll_once()
        await poller.poll_once()
        assert await stored_ids(event_log) == ["evt_b", "evt_late"]


async def test_a_cursor_stripe_forgot_leaves_a_gap_marker_then_restarts(
    pool: asyncpg.Pool,
) -> None:
    async with polling(pool, initial="now") as (api, poller, event_log):
        await event_log.append(
            [],
            [SourcePosition("stripe", "events", json.dumps({"id": "evt_gone", "created": NOW}))],
        )
        api.add("evt_kept1", NOW - 50)
        api.add("evt_kept2", NOW - 40)
        await poller.poll_once()
        gaps = [e for e in await event_log.read(0, 100) if e.type == "sfstripe.gap"]
        assert len(gaps) == 1
        assert gaps[0].customer == "stripe:account"
        assert json.loads(gaps[0].payload)["after_event"] == "evt_gone"
        assert REGISTRY.get_sample_value("sfstripe_gap_markers_total", {"source": "stripe"})
        await poller.poll_once()
        assert await stored_ids(event_log) == ["evt_kept1", "evt_kept2"]


async def test_a_cursor_past_retention_leaves_a_gap_marker(pool: asyncpg.Pool) -> None:
    async with polling(pool, initial="now") as (api, poller, event_log):
        old = NOW - 31 * 24 * 3600
        position = json.dumps({"id": "evt_ancient", "created": old})
        await event_log.append([], [SourcePosition("stripe", "events", position)])
        api.add("evt_recent", NOW - 5)
        await poller.poll_once()
        await poller.poll_once()
        events = await event_log.read(0, 100)
        assert [e.type for e in events] == ["sfstripe.gap", "customer.updated"]


async def test_should_retry_is_honoured_within_a_pass(pool: asyncpg.Pool) -> None:
    async with polling(pool, initial="all") as (api, poller, event_log):
        api.add("evt_1", NOW - 5)
        api.faults.append(Fault(500, {"Stripe-Should-Retry": "true"}))
        await poller.poll_once()
        assert await stored_ids(event_log) == ["evt_1"]


async def test_rate_limits_back_off_and_polling_goes_on(pool: asyncpg.Pool) -> None:
    before = REGISTRY.get_sample_value("sfstripe_api_rate_limited_total", {"api": "stripe"}) or 0
    async with polling(pool, initial="all", interval_s=0.05) as (api, poller, event_log):
        api.add("evt_1", NOW - 5)
        api.faults.append(Fault(429, error_type="invalid_request_error"))
        with pytest.raises(stripe.RateLimitError):
            await poller.poll_once()
        api.faults.append(Fault(429, error_type="invalid_request_error"))
        async with anyio.create_task_group() as tg:
            tg.start_soon(poller.run)

            async def stored() -> bool:
                return await stored_ids(event_log) == ["evt_1"]

            await wait_until(stored)
            tg.cancel_scope.cancel()
    after = REGISTRY.get_sample_value("sfstripe_api_rate_limited_total", {"api": "stripe"})
    assert after == before + 1


async def test_an_event_received_by_webhook_and_by_polling_is_stored_once(
    pool: asyncpg.Pool,
) -> None:
    async with polling(pool, initial="all") as (api, poller, event_log):
        api.add("evt_both", NOW - 5)
        body = json.dumps(api.events["evt_both"].body)
        webhook_event, _ = route(body)
        await event_log.append([webhook_event])
        await poller.poll_once()
        assert await stored_ids(event_log) == ["evt_both"]


async def test_starting_now_keeps_history_out_of_the_overlap(pool: asyncpg.Pool) -> None:
    async with polling(pool, initial="now", overlap_s=60) as (api, poller, event_log):
        api.add("evt_history", NOW - 30)
        api.add("evt_start", NOW - 20)
        await poller.poll_once()
        api.add("evt_new", NOW - 10)
        await poller.poll_once()
        await poller.poll_once()
        assert await stored_ids(event_log) == ["evt_new"]
