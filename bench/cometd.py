"""CometD intake against the client's own ceiling, in one run.

Events are published once into the test Bayeux server (tests/sfserver) and retained; both sides
subscribe with replay -2, so they get the same events from the same server through the same
client library. The ceiling is a bare `StreamingClient` that only counts; sfstripe is the real
`CdcSource` -> `LogIntake` -> `EventLog` on a fresh database, done when the last event is
committed (with its replay id, in the same transaction). Both are timed from subscribe; the
ceiling is measured before and after sfstripe and averaged.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import asyncpg
import msgspec

from bench.database import scratch_database
from sfstripe.logs import configure_logging
from state.credentials import StoredCredential
from state.database import open_pool
from state.log import EventLog
from state.records import AppendResult, Link, NewEvent, SourcePosition
from state.watch import DatabaseWatch
from stream.intake import LogIntake
from stream.salesforce.aiosfstream_fixes import (
    DurableReplay,
    StreamingClient,
    SubscriptionWatch,
    TokenAuthenticator,
)
from stream.salesforce.auth import SalesforceAuth
from stream.salesforce.cdc_source import CdcOptions, CdcSource
from stream.salesforce.rest import SalesforceRest
from tests.salesforce_support import password_flow
from tests.sfserver_fixture import (
    API_VERSION,
    CLIENT_ID,
    CLIENT_SECRET,
    INTEGRATION_PASSWORD,
    INTEGRATION_USERNAME,
    SalesforceServer,
)

SAMPLES = Path(__file__).resolve().parent.parent / "tests" / "samples"
CHANNEL = "/data/ChangeEvents"  # the daemon's default subscription: every entity
TARGET_BYTES = 2048  # one message as CometD delivers it, compact JSON
PUBLISH_CHUNK = 1000  # events per control call, well under the server's 10 MB body cap
PROGRESS_EVERY = 10_000
DEFAULT_RETAINED = 100_000  # the server's maxRetainedEvents default (per channel)
# The server answers a -2 subscribe with its whole backlog in one long-poll response, built as
# one string: V8 caps strings at about 512 MB, so about 2 KB x 200,000.
MAX_EVENTS = 200_000
CYCLE = 10  # one account and one contact created per ten events, see `cdc_events`


@dataclass(frozen=True)
class Published:
    """What the server retained: each event's `source_event_id` and the channel's last id."""

    source_event_ids: frozenset[str]
    last_replay_id: int


def _sample_payload(name: str) -> dict[str, Any]:
    message = json.loads((SAMPLES / name).read_text())
    payload: dict[str, Any] = message["data"]["payload"]
    return payload


def _delivered_size(template: dict[str, Any]) -> int:
    """Bytes of the message a subscriber gets (schema and replay ids at their real lengths)."""
    header = {k: v for k, v in template.items() if k not in ("entity", "fields")}
    header["entityName"] = template["entity"]
    message = {
        "channel": CHANNEL,
        "data": {
            "schema": "k3Jd8nQ2pXv7Lm0aB4cT9w",
            "payload": {"ChangeEventHeader": header, **template["fields"]},
            "event": {"replayId": 100_000_000},
        },
    }
    return len(msgspec.json.encode(message))


def _template(sample: dict[str, Any], change: str, fields: dict[str, Any]) -> dict[str, Any]:
    """A publish request with the sample's body (`fields` on top), author and origin, grown
    with plausible custom fields to about TARGET_BYTES as delivered; an UPDATE lists them in
    changedFields too (a wide edit, as integrations make). Per event only ids and keys change."""
    header = sample["ChangeEventHeader"]
    changed: list[str] = list(header["changedFields"]) if change == "UPDATE" else []
    body = {k: v for k, v in sample.items() if k != "ChangeEventHeader"} | fields
    template: dict[str, Any] = {
        "entity": header["entityName"],
        "changeType": change,
        "recordIds": ["001xx0000000000AAA"],
        "fields": body,
        "changedFields": changed,
        "transactionKey": header["transactionKey"],
        "sequenceNumber": 1,
        "commitTimestamp": header["commitTimestamp"],
        "commitNumber": header["commitNumber"],
        "commitUser": header["commitUser"],
        "changeOrigin": header["changeOrigin"],
    }
    words = ["renewal", "enterprise", "seat", "annual", "region", "north", "plan", "tier", "ops"]
    index = 0
    while _delivered_size(template) < TARGET_BYTES - 40:
        name = f"Sync_Note_{index}__c"
        body[name] = " ".join(words[(index + i) % len(words)] for i in range(6))
        if change == "UPDATE":
            changed.append(name)
        index += 1
    return template


def _templates() -> dict[str, dict[str, Any]]:
    contact = _sample_payload("sf_contact_update_cometd.json")
    new_contact = {
        "Name": {"FirstName": "Maria", "LastName": "Rivera"},
        "Email": "m.rivera@globex.example.com",
        "Phone": "+1 555 0142",
        "Title": "Head of Procurement",
        "AccountId": "001xx0000000000AAA",
        "MailingAddress": {"City": "Springfield", "Country": "United States"},
        "OwnerId": contact["ChangeEventHeader"]["commitUser"],
        "CreatedDate": contact["LastModifiedDate"],
        "CreatedById": contact["ChangeEventHeader"]["commitUser"],
    }
    return {
        "account_create": _template(_sample_payload("sf_account_create_cometd.json"), "CREATE", {}),
        "contact_create": _template(contact, "CREATE", new_contact),
        "account_update": _template(_sample_payload("sf_account_update_cometd.json"), "UPDATE", {}),
        "contact_update": _template(contact, "UPDATE", {}),
    }


def cdc_events(count: int, seed: int = 11) -> Iterator[dict[str, Any]]:
    """`count` publish requests (control API shape) over count/10 accounts and as many
    contacts. Each tenth event creates an account, the next one (same transaction) a contact
    of it; the rest update existing records, half accounts, half contacts, each in its own
    transaction. Contact updates carry no AccountId, as on Salesforce when it did not change."""
    rng = random.Random(seed)
    templates = _templates()
    run = rng.getrandbits(32)
    accounts: list[str] = []
    contacts: list[str] = []
    started_ms = int(time.time() * 1000) - count
    for n in range(count):
        step = n % CYCLE
        event = dict(
            templates[("account", "contact")[step % 2] + ("_create" if step < 2 else "_update")]
        )
        if step == 0:
            accounts.append(f"001xx{len(accounts):010d}AAA")
            record = accounts[-1]
        elif step == 1:
            contacts.append(f"003xx{len(contacts):010d}AAA")
            record = contacts[-1]
            event["fields"] = {**event["fields"], "AccountId": accounts[-1]}
        else:
            record = rng.choice(accounts if step % 2 == 0 else contacts)
        transaction = n - 1 if step == 1 else n
        event["recordIds"] = [record]
        event["transactionKey"] = f"{run:08x}-{transaction >> 16:04x}-4e2a-9c1d-{transaction:012x}"
        event["sequenceNumber"] = 2 if step == 1 else 1
        event["commitTimestamp"] = started_ms + n
        event["commitNumber"] = 11028456710234 + transaction
        yield event


async def publish(server: SalesforceServer, events: Sequence[dict[str, Any]]) -> Published:
    """Publish in chunks through the control API; the server retains every event."""
    ids: set[str] = set()
    last = 0
    for start in range(0, len(events), PUBLISH_CHUNK):
        chunk = events[start : start + PUBLISH_CHUNK]
        answer = await server.control("POST", "publish", {"events": chunk})
        for event, out in zip(chunk, answer["events"], strict=True):
            ids.add(f"{event['transactionKey']}:{event['sequenceNumber']}:{event['recordIds'][0]}")
            last = int(out["replayIds"][CHANNEL])
        done = start + len(chunk)
        if done % 10_000 < PUBLISH_CHUNK or done == len(events):
            print(f"published {done}/{len(events)}", flush=True)
    return Published(frozenset(ids), last)


@dataclass(frozen=True)
class Timing:
    """Seconds from subscribe to the first and to the last event (received or committed)."""

    first: float
    last: float


async def raw_receive(
    server: SalesforceServer, count: int, buffer_size: int, within: float
) -> Timing:
    """The ceiling: a client with the source's settings that only receives and counts."""
    status, token = await server.oauth_token(
        {
            "grant_type": "password",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "username": INTEGRATION_USERNAME,
            "password": INTEGRATION_PASSWORD,
        }
    )
    if status != 200:
        raise SystemExit(f"token request failed: {status} {token}")

    async def fetch_token() -> dict[str, Any]:
        return token

    client = StreamingClient(
        TokenAuthenticator(fetch_token),
        DurableReplay({CHANNEL: -2}),
        SubscriptionWatch(),
        api_version=API_VERSION,
        connection_timeout=30.0,
        max_pending_count=buffer_size,
    )
    replay_ids: set[int] = set()
    first = 0.0
    try:
        await client.open()
        started = time.perf_counter()
        await client.subscribe(CHANNEL)
        with anyio.move_on_after(within):
            while len(replay_ids) < count:
                message = await client.receive()
                replay_ids.add(message["data"]["event"]["replayId"])
                if len(replay_ids) == 1:
                    first = time.perf_counter() - started
        last = time.perf_counter() - started
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(10):
            await client.close()
    if len(replay_ids) < count:
        raise SystemExit(f"the raw client got {len(replay_ids)} of {count} events in {within} s")
    return Timing(first, last)


class _CountingLog(EventLog):
    """The real log; notes when the first and the last expected Salesforce event commit."""

    def __init__(self, pool: asyncpg.Pool, expected: int) -> None:
        super().__init__(pool)
        self.expected = expected
        self.stored = 0
        self.first_at = 0.0
        self.last_at = 0.0
        self.done = anyio.Event()

    async def append(
        self,
        events: Sequence[NewEvent],
        positions: Sequence[SourcePosition] = (),
        links: Sequence[Link] = (),
    ) -> AppendResult:
        result = await super().append(events, positions, links)
        before = self.stored
        self.stored += sum(
            1
            for event, outcome in zip(events, result.outcomes, strict=True)
            if outcome is not None and event.source == "salesforce"
        )
        if before == 0 < self.stored:
            self.first_at = time.perf_counter()
        if before // PROGRESS_EVERY < self.stored // PROGRESS_EVERY and self.stored < self.expected:
            print(f"sfstripe: {self.stored}/{self.expected} committed", flush=True)
        if self.stored >= self.expected and not self.done.is_set():
            self.last_at = time.perf_counter()
            self.done.set()
        return result


class _TimedSource(CdcSource):
    """The real source; notes when it first subscribes (the raw client's clock starts there)."""

    subscribed_at: float | None = None

    async def _subscribe(
        self, client: StreamingClient, replay: DurableReplay, channel: str
    ) -> None:
        if self.subscribed_at is None:
            self.subscribed_at = time.perf_counter()
        await super()._subscribe(client, replay, channel)


async def sfstripe_intake(
    server: SalesforceServer, published: Published, buffer_size: int, within: float
) -> Timing:
    """The daemon's intake path on a fresh database, until every event is committed; then
    checks the log."""
    count = len(published.source_event_ids)
    async with scratch_database() as dsn:
        pool = await open_pool(dsn, max_size=4)
        try:
            event_log = _CountingLog(pool, count)
            intake = LogIntake(event_log, DatabaseWatch(pool))
            async with aiohttp.ClientSession() as session:
                credential = StoredCredential(pool, "sf_refresh_token")
                auth = SalesforceAuth(password_flow(server), session, credential)
                rest = SalesforceRest(auth, session, api_version=API_VERSION, client_tag="sfstripe")
                options = CdcOptions(
                    channels=(CHANNEL,),
                    api_version=API_VERSION,
                    initial_replay=-2,
                    buffer_size=buffer_size,
                    connection_timeout=30.0,
                )
                source = _TimedSource(auth, rest, intake, event_log, options)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(intake.run)
                    tg.start_soon(source.run)
                    with anyio.move_on_after(within):
                        await event_log.done.wait()
                    intake.close()
                    tg.cancel_scope.cancel()
            if not event_log.done.is_set() or source.subscribed_at is None:
                raise SystemExit(f"sfstripe committed {event_log.stored} of {count} in {within} s")
            await _check_log(pool, published)
        finally:
            await pool.close()
    return Timing(
        event_log.first_at - source.subscribed_at, event_log.last_at - source.subscribed_at
    )


async def _check_log(pool: asyncpg.Pool, published: Published) -> None:
    """Exactly the published events, once each, and the last replay id committed."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT source_event_id FROM events WHERE source = 'salesforce'",
        )
        position = await conn.fetchval(
            "SELECT position FROM source_positions WHERE source = 'salesforce' AND channel = $1",
            CHANNEL,
        )
    ids = [row["source_event_id"] for row in rows]
    if len(ids) != len(published.source_event_ids) or set(ids) != published.source_event_ids:
        raise SystemExit(
            f"log holds {len(ids)} rows, {len(set(ids))} distinct, expected exactly "
            f"{len(published.source_event_ids)} published"
        )
    if position != str(published.last_replay_id):
        raise SystemExit(
            f"committed replay id {position}, last published {published.last_replay_id}"
        )
    print(
        f"log holds the {len(ids)} published events once each; "
        f"committed replay id {position} is the last",
        flush=True,
    )


def _quiet_cancelled_connect(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """aiocometd-ng's `TransportBase._connect_done` calls `result()` on the connect task that
    `close()` cancelled, so every client close reports a CancelledError traceback (the daemon's
    too). Only that one is dropped here; everything else goes to the default handler."""
    exc = context.get("exception")
    if isinstance(exc, asyncio.CancelledError) and "_connect_done" in repr(context.get("handle")):
        return
    loop.default_exception_handler(context)


def _line(name: str, count: int, timing: Timing, what: str) -> str:
    """Also the rate after the first event: the server builds the whole -2 backlog into one
    long-poll response first, a fixed cost both sides pay that flatters the ratio."""
    after = (count - 1) / max(timing.last - timing.first, 1e-9)
    return (
        f"{name}: {count} events {what} in {timing.last:.2f} s from subscribe "
        f"(the first after {timing.first:.2f} s, then {after:.0f}/s)"
    )


async def _run(count: int, buffer_size: int) -> dict[str, float]:
    asyncio.get_running_loop().set_exception_handler(_quiet_cancelled_connect)
    within = max(120.0, count / 200)  # bounds a broken run; a normal one takes a fraction
    async with SalesforceServer() as server:
        if count > DEFAULT_RETAINED:
            await server.set_config(maxRetainedEvents=count)
        started = time.perf_counter()
        published = await publish(server, list(cdc_events(count)))
        print(f"published in {time.perf_counter() - started:.1f} s", flush=True)
        # The ceiling is measured before and after sfstripe, so drift (the machine, the
        # server's heap) falls on both sides alike.
        raw = [await raw_receive(server, count, buffer_size, within)]
        print(_line("raw client", count, raw[0], "received"), flush=True)
        ours = await sfstripe_intake(server, published, buffer_size, within)
        print(_line("sfstripe", count, ours, "committed"), flush=True)
        raw.append(await raw_receive(server, count, buffer_size, within))
        print(_line("raw client", count, raw[1], "received"), flush=True)
    events_per_s = count / ours.last
    raw_per_s = count * len(raw) / sum(timing.last for timing in raw)
    return {
        "events_per_s": round(events_per_s),
        "raw_receive_per_s": round(raw_per_s),
        "ratio": round(events_per_s / raw_per_s, 3),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench cometd")
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument(
        "--buffer-size",
        type=int,
        default=CdcOptions.buffer_size,
        help="the source's buffer and both clients' max_pending_count (daemon default)",
    )
    args = parser.parse_args(argv)
    if not CYCLE <= args.events <= MAX_EVENTS:
        parser.error(f"--events must be between {CYCLE} and {MAX_EVENTS}")
    configure_logging("console", "WARNING")  # the daemon's logging: warnings show, on stderr
    result = anyio.run(_run, args.events, args.buffer_size)
    print(json.dumps(result))
    return 0
