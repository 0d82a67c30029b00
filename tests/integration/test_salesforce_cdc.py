"""The CDC source against the Salesforce-compatible test server: real CometD, real OAuth."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import anyio
import asyncpg

from metrics.registry import REGISTRY
from state.credentials import StoredCredential
from state.log import EventLog
from state.watch import DatabaseWatch
from stream.intake import LogIntake
from stream.salesforce.aiosfstream_fixes import DurableReplay
from stream.salesforce.auth import SalesforceAuth
from stream.salesforce.cdc_events import record_fields
from stream.salesforce.cdc_source import CdcOptions, CdcSource
from stream.salesforce.rest import SalesforceRest
from tests.log_doubles import ControlledLog
from tests.salesforce_support import password_flow
from tests.sfserver_fixture import (
    API_VERSION,
    INTEGRATION_PASSWORD,
    INTEGRATION_USER_ID,
    INTEGRATION_USERNAME,
    SalesforceServer,
)
from tests.waiting import wait_until

ACCOUNTS = "/data/AccountChangeEvent"


@asynccontextmanager
async def running_source(
    pool: asyncpg.Pool,
    server: SalesforceServer,
    event_log: EventLog | None = None,
    **options: Any,
) -> AsyncIterator[tuple[CdcSource, EventLog, SalesforceRest]]:
    event_log = event_log or EventLog(pool)
    intake = LogIntake(event_log, DatabaseWatch(pool))
    async with aiohttp.ClientSession() as session:
        auth = SalesforceAuth(
            password_flow(server), session, StoredCredential(pool, "sf_refresh_token")
        )
        rest = SalesforceRest(auth, session, api_version=API_VERSION, client_tag="sfstripe")
        settings = {
            "channels": (ACCOUNTS,),
            "api_version": API_VERSION,
            "initial_replay": -2,
            "first_backoff": 0.1,
            "max_backoff": 1.0,
            "connection_timeout": 5.0,
            **options,
        }
        source = CdcSource(auth, rest, intake, event_log, CdcOptions(**settings))
        async with anyio.create_task_group() as tg:
            tg.start_soon(intake.run)
            tg.start_soon(source.run)
            yield source, event_log, rest
            intake.close()
            tg.cancel_scope.cancel()


async def salesforce_events(event_log: EventLog) -> list[Any]:
    return [e for e in await event_log.read(0, 10_000) if e.source == "salesforce"]


async def wait_for_count(event_log: EventLog, count: int, within: float = 20) -> list[Any]:
    async def enough() -> bool:
        return len(await salesforce_events(event_log)) >= count

    await wait_until(enough, within=within)
    return await salesforce_events(event_log)


def connected() -> bool:
    value = REGISTRY.get_sample_value(
        "sfstripe_source_connected", {"source": "salesforce", "channel": ACCOUNTS}
    )
    return value == 1


async def test_a_rest_write_arrives_in_the_log_with_its_replay_id(
    pool: asyncpg.Pool, sf: SalesforceServer
) -> None:
    async with running_source(pool, sf) as (_, event_log, rest):
        account = await rest.create("Account", {"Name": "Globex", "BillingCity": "Springfield"})
        [event] = await wait_for_count(event_log, 1)
        assert event.customer == account
        assert event.type == "Account.CREATE"
        body = json.loads(event.payload)
        assert body["commit_user"] == INTEGRATION_USER_ID
        assert body["change_origin"].endswith("client=sfstripe")
        position = await event_log.position("salesforce", ACCOUNTS)
        assert position == str(body["replay_id"])


def server_errors(kind: str) -> float:
    value = REGISTRY.get_sample_value(
        "sfstripe_source_server_errors_total", {"source": "salesforce", "kind": kind}
    )
    return value or 0.0


def reconnects(reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "sfstripe_source_reconnects_total", {"source": "salesforce", "reason": reason}
    )
    return value or 0.0


def assert_once_each(events: list[Any]) -> None:
    ids = [e.source_event_id for e in events]
    assert len(ids) == len(set(ids)), ids


async def test_a_revoked_token_is_renewed_and_nothing_is_lost(
    pool: asyncpg.Pool, sf: SalesforceServer
) -> None:
    async with running_source(pool, sf) as (_, event_log, rest):
        await rest.create("Account", {"Name": "Before"})
        await wait_for_count(event_log, 1)
        await sf.revoke_tokens()
        await rest.create("Account", {"Name": "After"})  # REST re-authenticates on its 401
        events = await wait_for_count(event_log, 2)
        assert_once_each(events)


async def test_a_dropped_session_re_handshakes_from_the_committed_id(
    pool: asyncpg.Pool, sf: SalesforceServer
) -> None:
    async with running_source(pool, sf) as (_, event_log, rest):
        await rest.create("Account", {"Name": "Before"})
        await wait_for_count(event_log, 1)
        assert await sf.drop_sessions() >= 1
        await sf.edit_record("Account", {"Name": "While dropped"})
        events = await wait_for_count(event_log, 2)
        assert_once_each(events)


async def test_a_failed_re_authentication_builds_a_new_client(
    pool: asyncpg.Pool, sf: SalesforceServer
) -> None:
    before = reconnects("auth_failed")
    async with running_source(pool, sf) as (_, event_log, _rest):
        await sf.edit_record("Account", {"Name": "Before"})
        await wait_for_count(event_log, 1)
        await sf.add_user(INTEGRATION_USERNAME, "changed-password")
        await sf.revoke_tokens()
        await sf.edit_record("Account", {"Name": "While locked out"})

        async def refused() -> bool:
            return reconnects("auth_failed") > before

        await wait_until(refused)
        await sf.add_user(INTEGRATION_USERNAME, INTEGRATION_PASSWORD)
        events = await wait_for_count(event_log, 2)
        assert_once_each(events)


async def test_a_server_restart_mid_stream_loses_and_doubles_nothing(
    pool: asyncpg.Pool, sf: SalesforceServer
) -> None:
    async with running_source(pool, sf) as (_, event_log, _rest):
        for n in range(3):
            await sf.edit_record("Account", {"Name": f"Before {n}"})
        await wait_for_count(event_log, 3)
        await sf.restart(delay=1.0)
        for n in range(3):
            await sf.edit_record("Account", {"Name": f"After {n}"})
        events = await wait_for_count(event_log, 6)
        assert_once_each(events)
        assert len(events) == 6


async def _expired_start(pool: asyncpg.Pool, sf: SalesforceServer) -> int:
    """Ingest one event, then (source stopped) expire it and what follows it."""
    async with running_source(pool, sf) as (_, event_log, _rest):
        await sf.edit_record("Account", {"Name": "Seen"})
        [seen] = await wait_for_count(event_log, 1)
    lost = await sf.edit_record("Account", {"Name": "Lost"})
    await sf.expire_until(lost["replayIds"][ACCOUNTS], ACCOUNTS)
    await sf.edit_record("Account", {"Name": "Kept"})
    return int(json.loads(seen.payload)["replay_id"])


async def test_an_expired_replay_id_leaves_a_gap_marker_and_replays_all(
    pool: asyncpg.Pool, sf: SalesforceServer
) -> None:
    seen_id = await _expired_start(pool, sf)
    async with running_source(pool, sf, on_invalid_replay="from_all") as (_, event_log, _):

        async def kept() -> bool:
            names = [
                record_fields(json.loads(e.payload)).get("Name")
                for e in await salesforce_events(event_log)
            ]
            return "Kept" in names

        await wait_until(kept)
        gaps = [e for e in await event_log.read(0, 100) if e.type == "sfstripe.gap"]
        assert len(gaps) == 1
        gap = json.loads(gaps[0].payload)
        assert (gaps[0].customer, gap["channel"], gap["after_replay_id"]) == (
            "salesforce:org",
            ACCOUNTS,
            seen_id,
        )
        assert gap["resumed_from"] == "from_all"


async def test_an_expired_replay_id_with_policy_fail_stops_the_source(
    pool: asyncpg.Pool, sf: SalesforceServer
) -> None:
    await _expired_start(pool, sf)
    async with running_source(pool, sf, on_invalid_replay="fail") as (_, event_log, _):

        async def stopped() -> bool:
            gaps = [e for e in await event_log.read(0, 100) if e.type == "sfstripe.gap"]
            return bool(gaps) and not connected()

        await wait_until(stopped)
        await anyio.sleep(1)  # it stays stopped: nothing after the gap is read
        gaps = [e for e in await event_log.read(0, 100) if e.type == "sfstripe.gap"]
        assert len(gaps) == 1
        names = [
            record_fields(json.loads(e.payload)).get("Name")
            for e in await salesforce_events(event_log)
        ]
        assert names == ["Seen"]
        assert await event_log.position("salesforce", ACCOUNTS) == str(
            json.loads((await salesforce_events(event_log))[0].payload)["replay_id"]
        )


async def test_a_failed_automatic_re_subscribe_is_detected_and_repaired(
    pool: asyncpg.Pool, sf: SalesforceServer
) -> None:
    before = reconnects("server_error")
    async with running_source(pool, sf) as (_, event_log, _rest):
        await sf.edit_record("Account", {"Name": "Before"})
        await wait_for_count(event_log, 1)
        await sf.fail_next_subscribes(1, mode="error", error="403::Restricted channel")
        await sf.drop_sessions()  # the transport re-handshakes and re-subscribes on its own
        await sf.edit_record("Account", {"Name": "After"})
        events = await wait_for_count(event_log, 2)
        assert_once_each(events)
    assert reconnects("server_error") > before


async def test_redelivery_after_a_slow_consumer_lost_its_session_is_deduplicated(
    pool: asyncpg.Pool, sf: SalesforceServer
) -> None:
    event_log = ControlledLog(pool)
    async with running_source(pool, sf, event_log) as (_, _, _rest):
        await sf.edit_record("Account", {"Name": "First"})
        await wait_for_count(event_log, 1)
        event_log.gate = anyio.Event()  # the writer stalls: received events are not committed
        for n in range(5):
            await sf.edit_record("Account", {"Name": f"Pending {n}"})
        await anyio.sleep(1)
        await sf.drop_sessions()  # re-subscribing from the committed id redelivers them
        await anyio.sleep(2)
        event_log.gate.set()
        events = await wait_for_count(event_log, 6)
        await anyio.sleep(1)
        events = await salesforce_events(event_log)
        assert_once_each(events)
        assert len(events) == 6


async def test_daily_limit_and_busy_server_back_off_and_recover(
    pool: asyncpg.Pool, sf: SalesforceServer
) -> None:
    limited, busy = reconnects("limit_exceeded"), server_errors("server_busy")
    async with running_source(pool, sf) as (_, event_log, _rest):
        await sf.edit_record("Account", {"Name": "Before"})
        await wait_for_count(event_log, 1)
        await sf.limit_exceeded(count=2, on=("connect", "handshake", "subscribe"))
        await sf.drop_sessions()
        await sf.edit_record("Account", {"Name": "During the limit"})
        await wait_for_count(event_log, 2)
        await sf.too_busy(count=2)
        await sf.drop_sessions()
        await sf.edit_record("Account", {"Name": "While busy"})
        events = await wait_for_count(event_log, 3)
        assert_once_each(events)
    assert reconnects("limit_exceeded") > limited
    assert server_errors("server_busy") > busy  # the transport retried it; we said so


def received() -> float:
    value = REGISTRY.get_sample_value(
        "sfstripe_source_messages_received_total", {"source": "salesforce"}
    )
    return value or 0.0


async def test_a_stalled_log_stops_the_client_pulling(
    pool: asyncpg.Pool, sf: SalesforceServer
) -> None:
    event_log = ControlledLog(pool)
    options = {"buffer_size": 5, "max_batch": 5}
    async with running_source(pool, sf, event_log, **options) as (_, _, _rest):
        await sf.edit_record("Account", {"Name": "First"})
        await wait_for_count(event_log, 1)
        event_log.gate = anyio.Event()
        start = received()
        for n in range(40):
            await sf.edit_record("Account", {"Name": f"Queued {n}"})
        await anyio.sleep(3)
        # held by the writer (one batch), our buffer, and the client's own queue: no more
        assert received() - start <= 5 + 5 + 5 + 1
        event_log.gate.set()
        events = await wait_for_count(event_log, 41, within=30)
        assert_once_each(events)


async def test_an_unknown_contact_is_linked_to_its_account_through_rest(
    pool: asyncpg.Pool, sf: SalesforceServer
) -> None:
    contacts = "/data/ContactChangeEvent"
    async with running_source(pool, sf, channels=(ACCOUNTS, contacts)) as (_, event_log, rest):
        account = await rest.create("Account", {"Name": "Parent"})
        # Created before sfstripe listened (no event), then updated without touching AccountId:
        # the event does not name the account, so the source asks REST.
        contact = await sf.edit_record(
            "Contact", {"LastName": "Known", "AccountId": account}, emit=False
        )
        await sf.edit_record("Contact", {"Title": "CFO"}, record_id=contact["id"])
        events = await wait_for_count(event_log, 2)
        assert [(e.type, e.customer) for e in events] == [
            ("Account.CREATE", account),
            ("Contact.UPDATE", account),
        ]
        assert await event_log.resolve(f"contact:{contact['id']}") == account


async def test_a_message_that_is_no_change_event_is_kept_aside(
    pool: asyncpg.Pool, sf: SalesforceServer
) -> None:
    async with running_source(pool, sf) as (source, event_log, _rest):
        await sf.edit_record("Account", {"Name": "Normal"})
        await wait_for_count(event_log, 1)
        odd = {"channel": ACCOUNTS, "data": {"payload": {}, "event": {"replayId": 10**9}}}
        await source._commit([odd], DurableReplay({}))
        assert await event_log.rejected_count() == 1
        assert await event_log.position("salesforce", ACCOUNTS) == str(10**9)
