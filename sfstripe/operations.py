"""What the ops commands show and do besides replays: the runtime's part of `status`, and dead
letters (`dlq list|retry|skip`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from state.control import notify_control
from state.dead_letters import DeadLetter, DeadLetters
from state.leadership import leadership_sessions
from state.log import EventLog, marker
from state.runtime_status import handler_status, parked_lanes

DLQ_SKIP_TYPE = "sfstripe.dlq_skip"
SHOWN_PARKED = 50


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


async def runtime_report(pool: asyncpg.Pool, head: int) -> dict[str, Any]:
    """Per-handler lag, parked customers, dead letters and who leads, for `status`."""
    handlers = [
        {
            "name": h.handler,
            "start_offset": h.start_offset,
            "low_water_offset": h.low_water,
            "lag_events": max(0, head - h.low_water),
            "parked_customers": h.parked,
            "retrying_customers": h.retrying,
            "dead_letters": h.dead_letters,
            "updated_at": _iso(h.updated_at),
        }
        for h in await handler_status(pool)
    ]
    parked = [
        {
            "handler": p.handler,
            "customer": p.customer,
            "dead_letter_id": p.dead_letter_id,
            "seq": p.seq,
            "since": _iso(p.since),
        }
        for p in await parked_lanes(pool, SHOWN_PARKED)
    ]
    sessions = await leadership_sessions(pool)
    leader = next((s for s in sessions if s.leader), None)
    return {
        "handlers": handlers,
        "parked": parked,
        "leadership": {
            "leader": (
                {"instance": leader.instance, "role": leader.role, "since": _iso(leader.started_at)}
                if leader
                else None
            ),
            "standbys": [s.instance for s in sessions if not s.leader and s.role == "standby"],
        },
    }


def dead_letter_json(dead: DeadLetter) -> dict[str, Any]:
    body: dict[str, Any] = msgspec.to_builtins(dead)
    return body


async def retry(
    pool: asyncpg.Pool, dead_letter_id: int | None, customer: str | None
) -> list[DeadLetter]:
    """Unpark and tell a running leader; the lane re-runs from the dead letter."""
    retried = await DeadLetters(pool).retry(dead_letter_id, customer)
    if retried:
        await notify_control(pool, "dlq")
    return retried


async def skip(pool: asyncpg.Pool, dead_letter_id: int, reason: str) -> DeadLetter | None:
    """Move the lane past the dead letter, record it in the customer's stream, tell the leader."""
    skipped = await DeadLetters(pool).skip(dead_letter_id, reason)
    if skipped is None:
        return None
    body = {
        "dead_letter_id": skipped.id,
        "handler": skipped.handler,
        "seq": skipped.seq,
        "offset": skipped.offset,
        "source_event_id": skipped.source_event_id,
        "reason": reason,
    }
    await EventLog(pool).append(
        [marker(skipped.customer, f"dlq-skip:{skipped.id}", DLQ_SKIP_TYPE, body)]
    )
    await notify_control(pool, "dlq")
    return skipped
