"""The event log: batch appends with dedupe and per-customer seq, reads, links, positions.

Appends take the `log_head` row lock first and hold it until commit. That one lock makes offsets
commit-ordered (a reader that saw offset N never later finds a new row at or below N), makes
duplicate detection exact and lets seq be gapless per customer. A small batch (a group commit of
webhooks) is one call of the `append_events` function, one round trip in all; a large one is
planned in Python under the lock and its rows go in with binary COPY, the cheapest way into
PostgreSQL when the rows rather than the round trips are the cost. Batching keeps the lock's cost
per event small.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

import asyncpg
import msgspec
import structlog
from asyncpg.pool import PoolConnectionProxy

from state.records import AppendResult, Link, LoggedEvent, NewEvent, SourcePosition, Stored
from state.sql import query

log = structlog.get_logger(__name__)

NOTIFY_CHANNEL = "sfstripe_log"
MARKER_SOURCE: Final = "sfstripe"
ALIAS_SEPARATOR = ":"

_COPY_COLUMNS = (
    "log_offset",
    "customer",
    "seq",
    "source",
    "source_event_id",
    "type",
    "object_type",
    "object_id",
    "occurred_at",
    "payload",
)

# Batches up to this size are one call of `append_events`; larger ones are planned here and
# copied. Both keep the same rules (see the function in the migrations).
ONE_STATEMENT_MAX_EVENTS = 200
# Raised by append_events, before it writes anything, when a link needs more than a new
# identity_links row (markers, or a refusal to log): the general path does those.
_NEEDS_GENERAL_PATH = "SFS01"

Key = tuple[str, str]
Connection = asyncpg.Connection | PoolConnectionProxy


class AliasConflict(ValueError):
    """An alias is already linked to another customer; relinking would rewrite history."""


class _Memory:
    """What this process knows from its own commits, so appends skip most look-ups.

    `last_seq` is trusted only while the log head is the one this process left behind (nobody
    else appended since); `stored` keys and `linked` aliases stay true forever (events are
    never deleted, links never change), so they answer most duplicate and routing questions
    without the database. All are bounded.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.head: int | None = None
        self.last_seq: OrderedDict[str, int] = OrderedDict()
        self.stored: OrderedDict[Key, None] = OrderedDict()
        self.linked: OrderedDict[str, str] = OrderedDict()

    def remember(self, head: int, plan: _Plan) -> None:
        self.head = head
        for customer, seq in plan.seqs.items():
            self.last_seq[customer] = seq
            self.last_seq.move_to_end(customer)
        for key in plan.keys:
            self.stored[key] = None
        self.linked.update(plan.linked)
        for memory in (self.last_seq, self.stored, self.linked):
            while len(memory) > self.capacity:
                memory.popitem(last=False)


class _Plan:
    """One append worked out under the head lock: the rows to copy, what each input became,
    and every touched customer's last seq once it commits."""

    def __init__(self) -> None:
        self.records: list[tuple[object, ...]] = []
        self.outcomes: list[Stored | None] = []
        self.seqs: dict[str, int] = {}
        self.keys: list[Key] = []
        self.linked: dict[str, str] = {}


def _key(event: NewEvent) -> Key:
    return (event.source, event.source_event_id)


def _plan(
    events: Sequence[NewEvent],
    head: int,
    known: set[Key],
    resolved: dict[str, str],
    last_seq: dict[str, int],
) -> _Plan:
    plan = _Plan()
    plan.seqs = dict(last_seq)
    seen = set(known)
    offset = head
    for e in events:
        key = _key(e)
        if key in seen:
            plan.outcomes.append(None)
            continue
        seen.add(key)
        customer = resolved.get(e.customer, e.customer)
        offset += 1
        seq = plan.seqs[customer] = plan.seqs[customer] + 1
        plan.outcomes.append(Stored(offset, customer, seq))
        plan.keys.append(key)
        plan.records.append(
            (
                offset,
                customer,
                seq,
                e.source,
                e.source_event_id,
                e.type,
                e.object_type,
                e.object_id,
                e.occurred_at,
                e.payload,
            )
        )
    return plan


async def _last_seqs(conn: Connection, customers: list[str]) -> dict[str, int]:
    rows = await conn.fetch(query("last_seqs"), customers)
    return {row["customer"]: row["last_seq"] for row in rows}


async def _append_locked(
    conn: Connection,
    events: Sequence[NewEvent],
    positions: Sequence[SourcePosition],
    memory: _Memory,
    links: Sequence[Link] = (),
    *,
    probe: bool = False,
) -> tuple[_Plan, int]:
    """Under the head lock, link, plan and copy. Keys this process has not stored are trusted
    to be new (the COPY fails on a duplicate and the caller retries with `probe`), so the
    common case costs no look-up of keys."""
    head: int = await conn.fetchval(query("lock_head"))
    aliases = {e.customer for e in events if ALIAS_SEPARATOR in e.customer}
    aliases |= {link.alias for link in links}
    resolved = {alias: memory.linked[alias] for alias in aliases if alias in memory.linked}
    unknown = [alias for alias in aliases if alias not in resolved]
    if unknown:
        rows = await conn.fetch(query("resolve_aliases"), unknown)
        resolved.update({row["alias"]: row["customer"] for row in rows})
    if links:
        status, marked = await _link_locked(conn, links, resolved)
        for alias, linked in status.items():
            if linked is None:
                log.warning("relink_refused", alias=alias)
            elif linked:
                resolved[alias] = next(k.customer for k in links if k.alias == alias)
        if marked:
            head = await conn.fetchval(query("lock_head"))  # the markers moved it
    customers = {resolved.get(e.customer, e.customer) for e in events}
    if memory.head != head:
        memory.last_seq.clear()  # someone else appended since: every remembered seq is suspect
    last_seq = {c: memory.last_seq[c] for c in customers if c in memory.last_seq}
    missing = [c for c in customers if c not in last_seq]
    if missing:
        last_seq.update(await _last_seqs(conn, missing))
    known: set[Key] = {key for e in events if (key := _key(e)) in memory.stored}
    if probe:
        candidates = [_key(e) for e in events if _key(e) not in known]
        rows = await conn.fetch(
            query("stored_keys"),
            [source for source, _ in candidates],
            [event_id for _, event_id in candidates],
        )
        known |= {(row["source"], row["source_event_id"]) for row in rows}
    plan = _plan(events, head, known, resolved, last_seq)
    plan.linked = resolved  # remembered only once this transaction commits
    if plan.records:
        await conn.copy_records_to_table("events", records=plan.records, columns=_COPY_COLUMNS)
    latest = {(p.source, p.channel): p.position for p in positions}
    new_head = head + len(plan.records)
    await conn.execute(
        query("finish_append"),
        new_head,
        [source for source, _ in latest],
        [channel for _, channel in latest],
        list(latest.values()),
        head,
    )
    return plan, new_head


async def _link_locked(
    conn: Connection, links: Sequence[Link], current: dict[str, str]
) -> tuple[dict[str, bool | None], bool]:
    """Link under the head lock, knowing the aliases' `current` customers. Per alias: True when
    linked now, False when it already was, None when it belongs to another customer (relinking
    would rewrite history). Also says whether marker events were appended.

    A batch costs one look-up and one insert; only an alias that already has its own stream
    needs the marker pair (see `EventLog.link`).
    """
    wanted: dict[str, str] = {}
    status: dict[str, bool | None] = {}
    for link in links:
        if ALIAS_SEPARATOR not in link.alias:
            raise ValueError(f"an alias has a kind prefix such as 'stripe:': {link.alias!r}")
        if wanted.setdefault(link.alias, link.customer) != link.customer:
            status[link.alias] = None
    for alias in [alias for alias in wanted if alias in current]:
        same = wanted.pop(alias) == current[alias]
        status[alias] = False if same and alias not in status else None
    if not wanted:
        return status, False
    seqs = await _last_seqs(conn, list(wanted))
    plain = [alias for alias in wanted if not seqs[alias]]
    await conn.execute(query("link_aliases"), plain, [wanted[alias] for alias in plain])
    memory = _Memory(0)  # links with history are rare: plan from the database alone
    with_history = [alias for alias in wanted if seqs[alias]]
    for alias in with_history:
        customer = wanted[alias]
        body = {"alias": alias, "customer": customer, "alias_last_seq": seqs[alias] + 1}
        closing = marker(alias, f"link:{alias}:closed", "sfstripe.link", body)
        await _append_locked(conn, [closing], (), memory, probe=True)
        await conn.execute(query("link_aliases"), [alias], [customer])
        joined = marker(customer, f"link:{alias}:joined", "sfstripe.link", body)
        await _append_locked(conn, [joined], (), memory, probe=True)
    status.update(dict.fromkeys(wanted, True))
    return status, bool(with_history)


def marker(customer: str, marker_id: str, type_: str, body: object) -> NewEvent:
    """An event sfstripe writes itself (link, gap, replay...): source `sfstripe`."""
    return NewEvent(
        customer=customer,
        source=MARKER_SOURCE,
        source_event_id=marker_id,
        type=type_,
        occurred_at=datetime.now(UTC),
        payload=msgspec.json.encode(body).decode(),
    )


def logged_event(row: asyncpg.Record) -> LoggedEvent:
    """A row of the events table (as the read queries select it) as a LoggedEvent."""
    return LoggedEvent(
        offset=row["log_offset"],
        customer=row["customer"],
        seq=row["seq"],
        source=row["source"],
        source_event_id=row["source_event_id"],
        type=row["type"],
        object_type=row["object_type"],
        object_id=row["object_id"],
        occurred_at=row["occurred_at"],
        ingested_at=row["ingested_at"],
        payload=row["payload"],
    )


class EventLog:
    """The log's API over a connection pool."""

    def __init__(self, pool: asyncpg.Pool, *, memory_capacity: int = 200_000) -> None:
        self._pool = pool
        self._memory = _Memory(memory_capacity)

    async def append(
        self,
        events: Sequence[NewEvent],
        positions: Sequence[SourcePosition] = (),
        links: Sequence[Link] = (),
    ) -> AppendResult:
        """Append a batch, in order, and the positions it covers, in one transaction.

        Inputs already stored (by any path, in any stream) are reported as None and cost no row.
        `links` are made first, in the same transaction (see `link`), so the batch's events
        already follow them; a link that would move an alias to another customer is refused
        and logged, and its events stay where the alias points.
        """
        if len(events) <= ONE_STATEMENT_MAX_EVENTS:
            try:
                return await self._append_one_statement(events, positions, links)
            except asyncpg.PostgresError as exc:
                if exc.sqlstate != _NEEDS_GENERAL_PATH:
                    raise
        try:
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    plan, new_head = await _append_locked(
                        conn, events, positions, self._memory, links
                    )
            except asyncpg.UniqueViolationError:
                # Something this process has not seen is stored already: the transaction is
                # void, so do it again, this time asking which keys exist before copying.
                async with self._pool.acquire() as conn, conn.transaction():
                    plan, new_head = await _append_locked(
                        conn, events, positions, self._memory, links, probe=True
                    )
        except BaseException:
            self._memory.head = None  # the commit's fate is unknown: trust nothing cached
            raise
        self._memory.remember(new_head, plan)
        return AppendResult(plan.outcomes)

    async def _append_one_statement(
        self,
        events: Sequence[NewEvent],
        positions: Sequence[SourcePosition],
        links: Sequence[Link],
    ) -> AppendResult:
        """A small batch in one round trip: `append_events` does what `_append_locked` does.
        The pooled connection is outside any transaction block, so the call is its own
        transaction and its answer arrives only after the commit."""
        for link in links:
            if ALIAS_SEPARATOR not in link.alias:
                raise ValueError(f"an alias has a kind prefix such as 'stripe:': {link.alias!r}")
        latest = {(p.source, p.channel): p.position for p in positions}
        self._memory.head = None  # the head moves without this process's cached seqs
        async with self._pool.acquire() as conn:
            if conn.is_in_transaction():
                raise RuntimeError("append_events must run as its own transaction")
            rows = await conn.fetch(
                query("append_events"),
                [e.customer for e in events],
                [e.source for e in events],
                [e.source_event_id for e in events],
                [e.type for e in events],
                [e.object_type for e in events],
                [e.object_id for e in events],
                [e.occurred_at for e in events],
                [e.payload for e in events],
                [link.alias for link in links],
                [link.customer for link in links],
                [source for source, _ in latest],
                [channel for _, channel in latest],
                list(latest.values()),
            )
        outcomes: list[Stored | None] = [None] * len(events)
        for row in rows:
            outcomes[row["input_ord"] - 1] = Stored(
                row["stored_offset"], row["stored_customer"], row["stored_seq"]
            )
        return AppendResult(outcomes)

    async def link(self, alias: str, customer: str) -> bool:
        """Send an alias's future events (e.g. `stripe:cus_...`) to `customer`'s stream.

        When the alias already has a stream, a `sfstripe.link` marker closes it and another, in the
        customer's stream, names the closing marker's seq: a handler on the customer's stream
        finishes the alias stream through that seq before going past the marker.
        Returns False when the alias was already linked to this customer.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(query("lock_head"))
            rows = await conn.fetch(query("resolve_aliases"), [alias])
            current = {row["alias"]: row["customer"] for row in rows}
            status, _ = await _link_locked(conn, [Link(alias, customer)], current)
            linked = status[alias]
        self._memory.head = None
        if linked is None:
            raise AliasConflict(f"{alias} is linked to {current.get(alias)}, not {customer}")
        return linked

    async def reject(self, event: NewEvent, reason: str) -> None:
        """Keep an event the log cannot store (raw, with why), so that nothing is lost."""
        async with self._pool.acquire() as conn:
            await conn.execute(
                query("reject_event"),
                event.source,
                event.source_event_id,
                event.customer,
                event.type,
                reason,
                event.payload.replace("\x00", ""),
            )

    async def rejected_count(self) -> int:
        async with self._pool.acquire() as conn:
            count: int = await conn.fetchval(query("count_rejected_events"))
            return count

    async def resolve_many(self, aliases: Sequence[str]) -> dict[str, str]:
        """The customers of those aliases that are linked, in one look-up."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(query("resolve_aliases"), list(aliases))
        return {row["alias"]: row["customer"] for row in rows}

    async def resolve(self, alias: str) -> str | None:
        async with self._pool.acquire() as conn:
            customer: str | None = await conn.fetchval(query("resolve_alias"), alias)
            return customer

    async def read(
        self, after_offset: int, limit: int, to_offset: int | None = None
    ) -> list[LoggedEvent]:
        """Events with `after_offset < offset <= to_offset`, in offset order."""
        upper = to_offset if to_offset is not None else 2**63 - 1
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(query("read_from_offset"), after_offset, upper, limit)
        return [logged_event(row) for row in rows]

    async def read_customer(self, customer: str, after_seq: int, limit: int) -> list[LoggedEvent]:
        """One customer's events with seq > `after_seq`, in seq order."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(query("read_customer"), customer, after_seq, limit)
        return [logged_event(row) for row in rows]

    async def read_customer_after_offset(
        self, customer: str, after_offset: int, limit: int
    ) -> list[LoggedEvent]:
        """One customer's events with offset > `after_offset`, in order."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                query("read_customer_from_offset"), customer, after_offset, limit
            )
        return [logged_event(row) for row in rows]

    async def summary(self) -> tuple[int, datetime | None]:
        """The head offset and when the newest event was committed."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(query("log_summary"))
        assert row is not None
        return row["head"], row["last_ingested_at"]

    async def position(self, source: str, channel: str) -> str | None:
        async with self._pool.acquire() as conn:
            value: str | None = await conn.fetchval(query("get_position"), source, channel)
            return value

    async def positions(self) -> list[tuple[SourcePosition, datetime]]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(query("list_positions"))
        return [
            (SourcePosition(r["source"], r["channel"], r["position"]), r["updated_at"])
            for r in rows
        ]
