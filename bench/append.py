"""Append throughput against the physical ceiling (COPY into a bare table), in one run.

Both sides get the same rows in the same batch sizes; rounds alternate between them so that
the machine's drift (checkpoints, cache warmth) falls on both alike.
"""

from __future__ import annotations

import argparse
import json
import time

import anyio
import asyncpg

from bench.database import scratch_database
from bench.payloads import events
from state.database import open_pool
from state.log import EventLog
from state.records import NewEvent

# The log's columns, defaults and payload compression (lz4 where the server has it), without its
# keys and indexes: what the log costs beyond storing the same bytes.
CEILING_TABLE = "CREATE TABLE ceiling (LIKE events INCLUDING DEFAULTS INCLUDING COMPRESSION)"
COLUMNS = (
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


async def _run(count: int, customers: int, batch: int, rounds: int) -> dict[str, float]:
    async with scratch_database() as dsn:
        pool = await open_pool(dsn, max_size=2)
        admin = await asyncpg.connect(dsn)
        try:
            await admin.execute(CEILING_TABLE)
            log = EventLog(pool)
            # Stripe customers are linked to their accounts, as in steady state.
            for n in range(customers):
                await log.link(f"stripe:cus_{n % customers:014d}", f"001xx{n:013d}")
            all_events = list(events(count, customers))
            per_round = -(-count // rounds)
            api_seconds = copy_seconds = 0.0
            offset = 0
            for r in range(rounds):
                chunk = all_events[r * per_round : (r + 1) * per_round]
                batches = [chunk[i : i + batch] for i in range(0, len(chunk), batch)]
                rows = [[_row(offset + i, e) for i, e in enumerate(b)] for b in batches]
                offset += len(chunk)
                started = time.perf_counter()
                for b in batches:
                    await log.append(b)
                api_seconds += time.perf_counter() - started
                started = time.perf_counter()
                for records in rows:
                    await admin.copy_records_to_table("ceiling", records=records, columns=COLUMNS)
                copy_seconds += time.perf_counter() - started
                print(f"round {r + 1}/{rounds}: {len(chunk)} events", flush=True)
            stored = await admin.fetchval("SELECT count(*) FROM events WHERE source <> 'sfstripe'")
            gaps = await admin.fetchval(
                "SELECT count(*) FROM (SELECT customer, max(seq) - count(*) AS gap"
                " FROM events GROUP BY customer) AS g WHERE gap <> 0"
            )
            if stored != count or gaps:
                raise SystemExit(f"invariant broken: stored={stored} of {count}, gappy={gaps}")
            print(f"stored {stored} events, seq gapless for every customer")
        finally:
            await admin.close()
            await pool.close()
    events_per_s = count / api_seconds
    copy_rows_per_s = count / copy_seconds
    return {
        "events_per_s": round(events_per_s),
        "copy_rows_per_s": round(copy_rows_per_s),
        "ratio": round(events_per_s / copy_rows_per_s, 3),
    }


def _row(offset: int, e: NewEvent) -> tuple[object, ...]:
    return (
        offset + 1,
        e.customer,
        offset + 1,
        e.source,
        e.source_event_id,
        e.type,
        e.object_type,
        e.object_id,
        e.occurred_at,
        e.payload,
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench append")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--customers", type=int, default=1_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args(argv)
    result = anyio.run(_run, args.events, args.customers, args.batch, args.rounds)
    print(json.dumps(result))
    return 0
