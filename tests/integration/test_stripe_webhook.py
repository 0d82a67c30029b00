"""`POST /webhooks/stripe` over real HTTP, in front of a real intake and log.

Each test starts the aiohttp endpoint on 127.0.0.1 (see `tests.stripe_payloads.receiving`) and
talks to it with `aiohttp.ClientSession`: what is acknowledged is committed, what is refused or
deferred is not stored, and the answer tells Stripe whether to redeliver.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import anyio
import asyncpg
import pytest

from metrics.registry import REGISTRY
from state.log import EventLog
from state.records import LoggedEvent
from state.watch import DatabaseWatch
from stream.stripe.routing import route
from stream.stripe.webhook import MAX_BODY
from tests import stripe_payloads as sp
from tests.log_doubles import ControlledLog
from tests.stripe_payloads import (
    OTHER_SECRET,
    SECRET,
    Json,
    Receiver,
    encode,
    headers,
    receiving,
)

CLIENT_TIMEOUT = aiohttp.ClientTimeout(total=15)


@dataclass
class Answer:
    status: int
    body: Any  # the decoded JSON, or the text when it is not JSON
    headers: Any


async def deliver(
    http: aiohttp.ClientSession,
    url: str,
    body: bytes | Callable[[], AsyncIterator[bytes]],
    head: dict[str, str],
) -> Answer:
    # BytesIO: aiohttp warns about large raw bytes; the length still goes in Content-Length
    data: Any = io.BytesIO(body) if isinstance(body, bytes) else body()
    async with http.post(url, data=data, headers=head) as response:
        text = await response.text()
        try:
            parsed: Any = json.loads(text)
        except ValueError:
            parsed = text
        return Answer(response.status, parsed, response.headers)


async def send(http: aiohttp.ClientSession, url: str, event: Json, **sign: Any) -> Answer:
    """Deliver `event` signed like Stripe does (with SECRET unless `secret=` says otherwise)."""
    body = encode(event)
    return await deliver(http, url, body, headers(body, **sign))


def metric(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def rejections(reason: str) -> float:
    return metric("sfstripe_webhook_rejections_total", {"reason": reason})


def deferrals(reason: str) -> float:
    return metric("sfstripe_webhook_deferred_total", {"reason": reason})


async def all_rows(event_log: EventLog) -> list[LoggedEvent]:
    return await event_log.read(0, 1000)


async def arrived(rx: Receiver, gated: ControlledLog, count: int) -> None:
    """Wait (up to 10 s) until `count` one-event requests reached the held writer or its queue."""
    for _ in range(1000):
        if gated.events_in + rx.intake._send.statistics().current_buffer_used >= count:
            return
        await anyio.sleep(0.01)
    raise AssertionError(f"{count} requests never reached the intake")


def assert_is_the_event(row: LoggedEvent, event: Json) -> None:
    obj = event["data"]["object"]
    assert row.source == "stripe"
    assert row.source_event_id == event["id"]
    assert row.type == event["type"]
    assert row.object_type == obj["object"]
    assert row.object_id == obj.get("id")
    assert row.occurred_at == datetime.fromtimestamp(event["created"], UTC)
    assert json.loads(row.payload) == event


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as session:
        yield session


# --- acknowledged after commit, and routed --------------------------------------------------


async def test_the_ack_comes_only_after_the_event_is_committed(
    pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    slow = ControlledLog(pool, delay=0.3)  # every commit takes a while: an early ack would show
    event = sp.customer_updated("cus_TESTack1")
    async with receiving(pool, event_log=slow) as rx:
        started = time.monotonic()
        answer = await send(http, rx.url, event)
        rows = await all_rows(rx.event_log)  # read at once: no waiting for the writer

    assert answer.status == 200
    assert answer.body == {"received": True, "duplicate": False}
    assert time.monotonic() - started >= 0.3
    assert len(rows) == 1
    assert_is_the_event(rows[0], event)
    assert rows[0].customer == "stripe:cus_TESTack1"
    assert rows[0].seq == 1


def _customer_case(type_: str) -> tuple[Json, str]:
    customer = sp.new_id("cus")
    return sp.CUSTOMER_EVENTS[type_](customer), f"stripe:{customer}"


def _cases() -> list[Any]:
    cases: list[Any] = [
        pytest.param(_customer_case, type_, id=type_) for type_ in sp.CUSTOMER_EVENTS
    ]
    cases += [
        pytest.param(lambda t: (sp.CATALOG_EVENTS[t](), "catalog"), type_, id=type_)
        for type_ in sp.CATALOG_EVENTS
    ]
    cases += [
        pytest.param(lambda t: (sp.ACCOUNT_EVENTS[t](), "stripe:account"), type_, id=type_)
        for type_ in sp.ACCOUNT_EVENTS
    ]
    return cases


@pytest.mark.parametrize(("build", "type_"), _cases())
async def test_every_billing_event_type_is_stored_in_its_stream(
    pool: asyncpg.Pool,
    http: aiohttp.ClientSession,
    build: Callable[[str], tuple[Json, str]],
    type_: str,
) -> None:
    event, stream = build(type_)
    assert event["type"] == type_
    async with receiving(pool) as rx:
        answer = await send(http, rx.url, event)
        rows = await all_rows(rx.event_log)

    assert answer.status == 200, answer.body
    assert answer.body == {"received": True, "duplicate": False}
    assert [row.customer for row in rows] == [stream]
    assert_is_the_event(rows[0], event)


async def test_a_detached_payment_method_follows_its_old_customer(
    pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    attached = sp.payment_method_attached("cus_TESTpm1", payment_method_id="pm_TESTmoving")
    detached = sp.payment_method_detached("cus_TESTpm1", payment_method_id="pm_TESTmoving")
    assert detached["data"]["object"]["customer"] is None
    async with receiving(pool) as rx:
        for event in (attached, detached):
            assert (await send(http, rx.url, event)).status == 200
        rows = await rx.event_log.read_customer("stripe:cus_TESTpm1", 0, 10)

    assert [r.type for r in rows] == ["payment_method.attached", "payment_method.detached"]
    assert [r.seq for r in rows] == [1, 2]


async def test_sf_account_id_links_the_customer_to_its_account(
    pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    created = sp.customer_created("cus_TESTlinked", sf_account_id="001xx000003DGb2AAG")
    later = [
        sp.subscription_created("cus_TESTlinked"),
        sp.invoice_paid("cus_TESTlinked"),
        sp.payment_method_detached("cus_TESTlinked"),
    ]
    unrelated = sp.invoice_paid("cus_TESTother")
    async with receiving(pool) as rx:
        assert (await send(http, rx.url, created)).status == 200
        assert await rx.event_log.resolve("stripe:cus_TESTlinked") == "001xx000003DGb2AAG"
        for event in [*later, unrelated]:
            assert (await send(http, rx.url, event)).status == 200
        account = await rx.event_log.read_customer("001xx000003DGb2AAG", 0, 10)
        alias = await rx.event_log.read_customer("stripe:cus_TESTlinked", 0, 10)
        other = await rx.event_log.read_customer("stripe:cus_TESTother", 0, 10)

    # the link is made in the customer event's own transaction, before the event goes in
    assert [r.source_event_id for r in account] == [created["id"], *(e["id"] for e in later)]
    assert [r.seq for r in account] == [1, 2, 3, 4]
    assert alias == []
    assert [r.source_event_id for r in other] == [unrelated["id"]]


async def test_a_link_made_late_closes_the_customer_stream_and_moves_on(
    pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    early = sp.invoice_paid("cus_TESTlate")
    linking = sp.customer_updated("cus_TESTlate", sf_account_id="001xx00000LATEAAA")
    after = sp.subscription_updated("cus_TESTlate")
    async with receiving(pool) as rx:
        for event in (early, linking, after):
            assert (await send(http, rx.url, event)).status == 200
        alias = await rx.event_log.read_customer("stripe:cus_TESTlate", 0, 10)
        account = await rx.event_log.read_customer("001xx00000LATEAAA", 0, 10)

    assert [(r.source, r.type) for r in alias] == [
        ("stripe", "invoice.paid"),
        ("sfstripe", "sfstripe.link"),
    ]
    assert [(r.source, r.type) for r in account] == [
        ("sfstripe", "sfstripe.link"),
        ("stripe", "customer.updated"),
        ("stripe", "customer.subscription.updated"),
    ]
    assert json.loads(account[0].payload)["alias_last_seq"] == alias[-1].seq


# --- at-least-once delivery: duplicates ------------------------------------------------------


async def test_a_redelivery_is_acknowledged_as_duplicate_and_stored_once(
    pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    event = sp.invoice_payment_failed("cus_TESTdup")
    body = encode(event)
    duplicates_before = metric("sfstripe_webhook_accepted_total", {"outcome": "duplicate"})
    async with receiving(pool) as rx:
        first = await deliver(http, rx.url, body, headers(body))
        again = await deliver(http, rx.url, body, headers(body))
        # Stripe signs every attempt anew: another timestamp, same body
        resigned = await deliver(http, rx.url, body, headers(body, timestamp=int(time.time()) - 5))
        rows = await all_rows(rx.event_log)

    assert first.status == again.status == resigned.status == 200
    assert first.body == {"received": True, "duplicate": False}
    assert again.body == resigned.body == {"received": True, "duplicate": True}
    assert [r.source_event_id for r in rows] == [event["id"]]
    duplicates_after = metric("sfstripe_webhook_accepted_total", {"outcome": "duplicate"})
    assert duplicates_after - duplicates_before == 2


async def test_simultaneous_redeliveries_store_one_row(
    pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    gated = ControlledLog(pool)
    gated.gate = anyio.Event()  # hold the writer so the copies meet in one batch
    event = sp.invoice_paid("cus_TESTsimul")
    body = encode(event)
    answers: list[Answer] = []
    async with receiving(pool, event_log=gated) as rx:

        async def one() -> None:
            answers.append(await deliver(http, rx.url, body, headers(body)))

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for _ in range(5):
                    tg.start_soon(one)
                await arrived(rx, gated, 5)
                gated.gate.set()
        rows = await all_rows(rx.event_log)

    assert [a.status for a in answers] == [200] * 5
    assert sorted(a.body["duplicate"] for a in answers) == [False, True, True, True, True]
    assert len(rows) == 1


@pytest.mark.parametrize("same_log", [True, False], ids=["same-log", "other-log-instance"])
async def test_an_event_appended_by_another_path_is_stored_once(
    pool: asyncpg.Pool, http: aiohttp.ClientSession, same_log: bool
) -> None:
    polled = sp.invoice_finalized("cus_TESTpoll")  # first read by the poller
    pushed = sp.invoice_paid("cus_TESTpoll")  # first delivered by webhook
    event_log = EventLog(pool)
    other_path = event_log if same_log else EventLog(pool)  # another process's memory
    async with receiving(pool, event_log=event_log) as rx:
        first = await other_path.append([route(encode(polled))[0]])
        answer = await send(http, rx.url, polled)
        assert (await send(http, rx.url, pushed)).body == {"received": True, "duplicate": False}
        later = await other_path.append([route(encode(pushed))[0]])
        rows = await all_rows(rx.event_log)

    assert len(first.stored) == 1
    assert answer.status == 200
    assert answer.body == {"received": True, "duplicate": True}
    assert later.outcomes == [None]
    assert [r.source_event_id for r in rows] == [polled["id"], pushed["id"]]


# --- signatures -------------------------------------------------------------------------------


async def test_either_secret_verifies_during_rotation(
    pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    old, new, unknown = SECRET, OTHER_SECRET, "whsec_test_not_configured_anywhere"
    events = [sp.customer_updated("cus_TESTrot") for _ in range(4)]
    bodies = [encode(e) for e in events]
    now = int(time.time())
    both = sp.signature(bodies[2], old, timestamp=now)
    both += "," + sp.signature(bodies[2], new, timestamp=now).split(",")[1]
    mixed = sp.signature(bodies[3], unknown, timestamp=now)
    mixed += "," + sp.signature(bodies[3], new, timestamp=now).split(",")[1]
    async with receiving(pool, secrets=[old, new]) as rx:
        answers = [
            await deliver(http, rx.url, bodies[0], headers(bodies[0], old)),
            await deliver(http, rx.url, bodies[1], headers(bodies[1], new)),
            await deliver(http, rx.url, bodies[2], {"Stripe-Signature": both}),
            await deliver(http, rx.url, bodies[3], {"Stripe-Signature": mixed}),
        ]
        stray = sp.customer_updated("cus_TESTrot")
        refused = await send(http, rx.url, stray, secret=unknown)
        rows = await all_rows(rx.event_log)

    assert [a.status for a in answers] == [200, 200, 200, 200]
    assert refused.status == 400
    assert [r.source_event_id for r in rows] == [e["id"] for e in events]


async def test_a_timestamp_inside_the_tolerance_is_accepted(
    pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    event = sp.invoice_created("cus_TESTrecent")
    async with receiving(pool, tolerance_s=300) as rx:
        answer = await send(http, rx.url, event, timestamp=int(time.time()) - 280)
        rows = await all_rows(rx.event_log)
    assert answer.status == 200
    assert len(rows) == 1


async def test_the_signature_covers_the_exact_utf8_bytes(
    pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    event = sp.customer_updated("cus_TESTutf8")
    event["data"]["object"]["name"] = "Müller & Søn — Straße 7 ✓"
    body = encode(event, ensure_ascii=False)
    assert not body.isascii()
    async with receiving(pool) as rx:
        answer = await deliver(http, rx.url, body, headers(body))
        # the same event re-encoded with escapes is other bytes: the old signature fails
        escaped = encode(event, ensure_ascii=True)
        refused = await deliver(
            http, rx.url, escaped, {"Stripe-Signature": headers(body)["Stripe-Signature"]}
        )
        rows = await all_rows(rx.event_log)
    assert answer.status == 200
    assert refused.status == 400
    assert json.loads(rows[0].payload)["data"]["object"]["name"] == "Müller & Søn — Straße 7 ✓"


# --- refused at the door -------------------------------------------------------------------


def _padded(size: int) -> bytes:
    """A signed-able, valid event body of exactly `size` bytes."""
    event = sp.customer_updated("cus_TESTbig")
    event["data"]["object"]["metadata"]["padding"] = ""
    bare = len(encode(event))
    event["data"]["object"]["metadata"]["padding"] = "x" * (size - bare)
    body = encode(event)
    assert len(body) == size
    return body


def _tampered() -> tuple[bytes, dict[str, str]]:
    body = encode(sp.invoice_paid("cus_TESTtamper"))
    head = headers(body)
    tampered = body.replace(b'"amount_paid": 12000', b'"amount_paid": 12')
    assert tampered != body
    return tampered, head


def _signed(body: bytes, **kw: Any) -> tuple[bytes, dict[str, str]]:
    return body, headers(body, **kw)


def _event_body() -> bytes:
    return encode(sp.customer_updated(sp.new_id("cus")))


def _unsigned_header(value: str) -> tuple[bytes, dict[str, str]]:
    body = _event_body()
    return body, {"Content-Type": "application/json", "Stripe-Signature": value}


def _chunks(body: bytes) -> Callable[[], AsyncIterator[bytes]]:
    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    return stream


def _chunked(body: bytes) -> tuple[Callable[[], AsyncIterator[bytes]], dict[str, str]]:
    """Validly signed, sent without Content-Length (Transfer-Encoding: chunked)."""
    return _chunks(body), headers(body)


def _non_utf8() -> tuple[bytes, dict[str, str]]:
    body = _event_body().replace(b"Globex", b"Glob\xe9x")  # latin-1, not UTF-8
    signature = sp.signature(_event_body())  # any well-formed header: the body fails first
    return body, {"Stripe-Signature": signature}


REASONS = (
    "bad_signature",
    "stale_timestamp",
    "missing_signature",
    "malformed_signature",
    "too_large",
    "invalid_json",
    "not_an_event",
    "not_utf8",
)

REFUSALS: list[Any] = [
    pytest.param(_tampered, 400, "bad_signature", id="tampered-body"),
    pytest.param(
        lambda: _signed(_event_body(), secret="whsec_test_wrong"),
        400,
        "bad_signature",
        id="wrong-secret",
    ),
    pytest.param(
        lambda: _signed(_event_body(), timestamp=int(time.time()) - 301),
        400,
        "stale_timestamp",
        id="stale-timestamp",
    ),
    pytest.param(
        lambda: (_event_body(), {"Content-Type": "application/json"}),
        400,
        "missing_signature",
        id="missing-header",
    ),
    pytest.param(
        lambda: _unsigned_header("garbage"), 400, "malformed_signature", id="malformed-garbage"
    ),
    pytest.param(
        lambda: _unsigned_header("t=soon,v1=" + "0" * 64),
        400,
        "malformed_signature",
        id="malformed-timestamp",
    ),
    pytest.param(
        lambda: _unsigned_header("v1=" + "0" * 64), 400, "malformed_signature", id="malformed-no-t"
    ),
    pytest.param(
        lambda: _unsigned_header(f"t={int(time.time())}"),
        400,
        "malformed_signature",
        id="malformed-no-v1",
    ),
    pytest.param(
        lambda: _signed(_padded(MAX_BODY + 1)), 413, "too_large", id="too-large-content-length"
    ),
    pytest.param(
        lambda: _chunked(_padded(MAX_BODY + 1)),
        413,
        "too_large",
        id="too-large-chunked",
    ),
    pytest.param(
        lambda: _signed(b'{"id": "evt_1", "object": "event",'),
        400,
        "invalid_json",
        id="invalid-json",
    ),
    pytest.param(
        lambda: _signed(b'{"object": "list", "data": [], "has_more": false}'),
        400,
        "not_an_event",
        id="json-list-object",
    ),
    pytest.param(lambda: _signed(b"[1, 2, 3]"), 400, "not_an_event", id="json-array"),
    pytest.param(
        lambda: _signed(
            json.dumps(
                {
                    "id": "evt_TESTthin",
                    "object": "v2.core.event",
                    "type": "v1.billing.meter.error_report_triggered",
                    "created": 1750000000,
                    "data": {"object": {}},
                }
            ).encode()
        ),
        400,
        "not_an_event",
        id="thin-event",
    ),
    pytest.param(_non_utf8, 400, "not_utf8", id="not-utf8"),
]


@pytest.mark.parametrize(("make", "status", "reason"), REFUSALS)
async def test_bad_input_is_refused_and_nothing_is_stored(
    pool: asyncpg.Pool,
    http: aiohttp.ClientSession,
    make: Callable[[], tuple[Any, dict[str, str]]],
    status: int,
    reason: str,
) -> None:
    body, head = make()
    before = rejections(reason)
    all_before = sum(rejections(r) for r in REASONS)
    async with receiving(pool) as rx:
        answer = await deliver(http, rx.url, body, head)
        rows = await all_rows(rx.event_log)

    assert answer.status == status, answer.body
    assert "error" in answer.body
    assert rows == []
    assert rejections(reason) - before == 1
    assert sum(rejections(r) for r in REASONS) - all_before == 1  # and under no other reason


async def test_a_body_of_exactly_one_mebibyte_is_accepted(
    pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    body = _padded(MAX_BODY)
    async with receiving(pool) as rx:
        answer = await deliver(http, rx.url, body, headers(body))
        answer_chunked = await deliver(http, rx.url, *_chunked(_padded(MAX_BODY)))
        rows = await all_rows(rx.event_log)
    assert answer.status == 200
    assert answer_chunked.status == 200
    assert len(rows) == 2


# --- deferred: 503 + Retry-After, Stripe redelivers ------------------------------------------


def assert_deferred(answer: Answer) -> None:
    assert answer.status == 503, answer.body
    assert int(answer.headers["Retry-After"]) > 0
    assert "error" in answer.body


async def test_database_unavailable_defers_and_stores_nothing(
    pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    watch = DatabaseWatch(pool)  # not running: only what it is told
    watch.report_failure(OSError("connection refused"))
    event = sp.invoice_paid("cus_TESTdown")
    before = deferrals("database_unavailable")
    async with receiving(pool, watch=watch) as rx:
        answer = await send(http, rx.url, event)
        rows = await all_rows(rx.event_log)
        assert await watch.probe()  # the database is back
        retried = await send(http, rx.url, event)
        rows_after = await all_rows(rx.event_log)

    assert_deferred(answer)
    assert deferrals("database_unavailable") - before == 1
    assert rows == []
    assert retried.status == 200
    assert retried.body == {"received": True, "duplicate": False}
    assert [r.source_event_id for r in rows_after] == [event["id"]]


async def test_a_busy_log_defers_and_the_redelivery_is_not_doubled(
    pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    gated = ControlledLog(pool)
    gated.gate = anyio.Event()
    event = sp.invoice_paid("cus_TESTbusy")
    before = deferrals("log_busy")
    async with receiving(pool, event_log=gated, commit_wait_s=0.2) as rx:
        started = time.monotonic()
        answer = await send(http, rx.url, event)
        waited = time.monotonic() - started
        gated.gate.set()
        retried = await send(http, rx.url, event)
        rows = await all_rows(rx.event_log)

    assert_deferred(answer)
    assert 0.2 <= waited < 3
    assert deferrals("log_busy") - before == 1
    # the deferred copy was already queued and committed once the log caught up: at most one row
    assert retried.status == 200
    assert len(rows) == 1
    assert rows[0].source_event_id == event["id"]


async def test_shutting_down_defers(pool: asyncpg.Pool, http: aiohttp.ClientSession) -> None:
    before = deferrals("shutting_down")
    async with receiving(pool) as rx:
        rx.intake.close()
        answer = await send(http, rx.url, sp.invoice_paid("cus_TESTbye"))
        rows = await all_rows(rx.event_log)
    assert_deferred(answer)
    assert deferrals("shutting_down") - before == 1
    assert rows == []


# --- group commit ---------------------------------------------------------------------------


@pytest.mark.parametrize("held", [True, False], ids=["writer-held", "slow-commits"])
async def test_concurrent_deliveries_share_transactions(
    pool: asyncpg.Pool, http: aiohttp.ClientSession, held: bool
) -> None:
    # held: the first commit waits until all 40 are in (deterministic); slow-commits: every
    # commit takes 50 ms, and whatever arrives meanwhile joins the next one
    gated = ControlledLog(pool, delay=0.0 if held else 0.05)
    if held:
        gated.gate = anyio.Event()
    events = [sp.invoice_paid(f"cus_TESTcc{n % 7}") for n in range(40)]
    answers: list[Answer] = []
    async with receiving(pool, event_log=gated) as rx:

        async def one(event: Json) -> None:
            answers.append(await send(http, rx.url, event))

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for event in events:
                    tg.start_soon(one, event)
                if held:
                    await arrived(rx, gated, 40)
                    gated.gate.set()
        rows = await all_rows(rx.event_log)

    assert [a.status for a in answers] == [200] * 40
    assert not any(a.body["duplicate"] for a in answers)
    assert sorted(r.source_event_id for r in rows) == sorted(e["id"] for e in events)
    assert gated.transactions < 40
    if held:
        assert gated.transactions <= 2


# --- an event the log cannot store ---------------------------------------------------------


async def test_an_event_postgres_cannot_store_is_kept_aside_and_acknowledged(
    pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    """jsonb refuses \\u0000: the event is kept raw in rejected_events with the reason and
    acknowledged (it is ours now), and the neighbours committed with it are still stored."""
    gated = ControlledLog(pool)
    gated.gate = anyio.Event()
    poison = sp.customer_updated("cus_TESTnul")
    poison["data"]["object"]["description"] = "nul \u0000 byte"
    good = [sp.invoice_paid("cus_TESTnul") for _ in range(2)]
    answers: dict[str, Answer] = {}
    async with receiving(pool, event_log=gated) as rx:

        async def one(event: Json) -> None:
            answers[event["id"]] = await send(http, rx.url, event)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for event in [good[0], poison, good[1]]:
                    tg.start_soon(one, event)
                await arrived(rx, gated, 3)
                gated.gate.set()
        rows = await all_rows(rx.event_log)

    assert answers[poison["id"]].status == 200
    assert answers[poison["id"]].body == {"received": True, "kept_aside": True}
    assert [answers[e["id"]].status for e in good] == [200, 200]
    assert sorted(r.source_event_id for r in rows) == sorted(e["id"] for e in good)
    assert await EventLog(pool).rejected_count() == 1
