"""`sfstripe log` and `sfstripe status` read a database's log, positions and head."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from state.database import open_pool
from state.log import EventLog
from state.records import NewEvent, SourcePosition
from tests.acceptance.support import base_environment, json_lines, run_cli
from tests.postgres import Databases

ACCOUNT_A = "001A000000000001"
ACCOUNT_B = "001B000000000002"
EVENT_KEYS = {
    "offset",
    "customer",
    "seq",
    "source",
    "source_event_id",
    "type",
    "object",
    "occurred_at",
}
BASE = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

# (customer, source, source_event_id, type, object_type, object_id) in log order.
EVENTS = [
    (ACCOUNT_A, "salesforce", "sf-1", "account.updated", "Account", ACCOUNT_A),
    (ACCOUNT_B, "stripe", "evt_1", "customer.updated", "customer", "cus_B"),
    (ACCOUNT_A, "stripe", "evt_2", "invoice.paid", "invoice", "in_1"),
    (ACCOUNT_B, "salesforce", "sf-2", "contact.updated", None, None),
    (ACCOUNT_A, "sfstripe", "marker-1", "sfstripe.gap", None, None),
]
STRIPE_CURSOR = SourcePosition("stripe", "events", "evt_2")
SF_POSITION = SourcePosition("salesforce", "/data/ChangeEvents", "18734")


def occurred(index: int) -> datetime:
    # Not in UTC, to see that the instant survives (whatever the session time zone is).
    return (BASE + timedelta(minutes=index)).astimezone(timezone(timedelta(hours=-5)))


@pytest_asyncio.fixture
async def log_dsn(databases: Databases) -> str:
    dsn = await databases.fresh()
    pool = await open_pool(dsn, max_size=2)
    try:
        event_log = EventLog(pool)
        batches = [EVENTS[:3], EVENTS[3:]]
        positions = [[STRIPE_CURSOR], [SF_POSITION]]
        index = 0
        for batch, batch_positions in zip(batches, positions, strict=True):
            events = []
            for customer, source, event_id, type_, object_type, object_id in batch:
                events.append(
                    NewEvent(
                        customer=customer,
                        source=source,  # type: ignore[arg-type]
                        source_event_id=event_id,
                        type=type_,
                        occurred_at=occurred(index),
                        payload=json.dumps({"id": event_id, "n": index}),
                        object_type=object_type,
                        object_id=object_id,
                    )
                )
                index += 1
            result = await event_log.append(events, positions=batch_positions)
            assert not result.duplicates
    finally:
        await pool.close()
    return dsn


def cli_json(*args: str, dsn: str, cwd: Path) -> list[dict[str, Any]]:
    result = run_cli(*args, "--json", env=base_environment(SFSTRIPE_DATABASE_URL=dsn), cwd=cwd)
    assert result.returncode == 0, result.stderr
    return json_lines(result.stdout)


def test_log_shows_every_event_in_log_order(log_dsn: str, workdir: Path) -> None:
    lines = cli_json("log", dsn=log_dsn, cwd=workdir)

    assert [line["offset"] for line in lines] == [1, 2, 3, 4, 5]
    seqs: dict[str, int] = {}
    for index, (line, expected) in enumerate(zip(lines, EVENTS, strict=True)):
        assert set(line) == EVENT_KEYS, line
        customer, source, event_id, type_, object_type, object_id = expected
        seqs[customer] = seqs.get(customer, 0) + 1
        assert line["customer"] == customer
        assert line["seq"] == seqs[customer]
        assert line["source"] == source
        assert line["source_event_id"] == event_id
        assert line["type"] == type_
        if object_type is None:
            assert line["object"] is None
        else:
            assert line["object"] == {"type": object_type, "id": object_id}
        assert datetime.fromisoformat(line["occurred_at"]) == occurred(index)


def test_log_of_one_customer(log_dsn: str, workdir: Path) -> None:
    lines = cli_json("log", "--customer", ACCOUNT_A, dsn=log_dsn, cwd=workdir)
    assert [(line["offset"], line["seq"]) for line in lines] == [(1, 1), (3, 2), (5, 3)]
    assert {line["customer"] for line in lines} == {ACCOUNT_A}

    lines = cli_json("log", "--customer", ACCOUNT_B, dsn=log_dsn, cwd=workdir)
    assert [(line["offset"], line["seq"]) for line in lines] == [(2, 1), (4, 2)]

    assert cli_json("log", "--customer", "001-nobody", dsn=log_dsn, cwd=workdir) == []


@pytest.mark.parametrize(
    ("args", "offsets"),
    [
        (("--from-offset", "3"), [3, 4, 5]),
        (("--from-offset", "1"), [1, 2, 3, 4, 5]),
        (("--from-offset", "5"), [5]),
        (("--from-offset", "6"), []),
        (("--limit", "2"), [1, 2]),
        (("--from-offset", "2", "--limit", "2"), [2, 3]),
        (("--customer", ACCOUNT_A, "--from-offset", "3"), [3, 5]),
        (("--customer", ACCOUNT_A, "--from-offset", "2", "--limit", "1"), [3]),
        (("--customer", ACCOUNT_B, "--from-offset", "5"), []),
    ],
    ids=lambda value: "_".join(value) if isinstance(value, tuple) else None,
)
def test_log_window(args: tuple[str, ...], offsets: list[int], log_dsn: str, workdir: Path) -> None:
    lines = cli_json("log", *args, dsn=log_dsn, cwd=workdir)
    assert [line["offset"] for line in lines] == offsets


@pytest.mark.parametrize("args", [("--from-offset", "0"), ("--limit", "0"), ("--limit", "x")])
def test_log_rejects_bad_options(args: tuple[str, ...], log_dsn: str, workdir: Path) -> None:
    env = base_environment(SFSTRIPE_DATABASE_URL=log_dsn)
    result = run_cli("log", *args, env=env, cwd=workdir)
    assert result.returncode == 2, result
    assert args[0] in result.stderr
    assert "Traceback" not in result.stderr


def test_log_as_text(log_dsn: str, workdir: Path) -> None:
    env = base_environment(SFSTRIPE_DATABASE_URL=log_dsn)
    result = run_cli("log", env=env, cwd=workdir)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(EVENTS)
    for line, (_, _, event_id, type_, _, _) in zip(lines, EVENTS, strict=True):
        assert event_id in line
        assert type_ in line


def test_status_shows_head_and_positions(log_dsn: str, workdir: Path) -> None:
    (report,) = cli_json("status", dsn=log_dsn, cwd=workdir)

    assert report["log"]["head_offset"] == len(EVENTS)
    assert report["log"]["last_ingested_at"] is not None
    assert datetime.fromisoformat(report["log"]["last_ingested_at"]).tzinfo is not None
    assert report["handlers"] == []
    assert report["database"] == "configured"
    positions = {(p["source"], p["channel"]): p for p in report["positions"]}
    assert set(positions) == {("stripe", "events"), ("salesforce", "/data/ChangeEvents")}
    assert positions["stripe", "events"]["position"] == STRIPE_CURSOR.position
    assert positions["salesforce", "/data/ChangeEvents"]["position"] == SF_POSITION.position
    for position in positions.values():
        assert datetime.fromisoformat(position["updated_at"]).tzinfo is not None


def test_status_as_text(log_dsn: str, workdir: Path) -> None:
    env = base_environment(SFSTRIPE_DATABASE_URL=log_dsn)
    result = run_cli("status", env=env, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "offset 5" in result.stdout
    assert STRIPE_CURSOR.position in result.stdout
    assert SF_POSITION.position in result.stdout


def test_status_of_an_empty_log(fresh_dsn: str, workdir: Path) -> None:
    (report,) = cli_json("status", dsn=fresh_dsn, cwd=workdir)
    assert report["log"] == {"head_offset": 0, "last_ingested_at": None}
    assert report["positions"] == []
    assert report["handlers"] == []


@pytest.mark.parametrize("command", [("log", "--json"), ("status", "--json"), ("log",)])
def test_without_the_schema_commands_say_to_migrate(
    command: tuple[str, ...], empty_dsn: str, workdir: Path
) -> None:
    env = base_environment(SFSTRIPE_DATABASE_URL=empty_dsn)
    result = run_cli(*command, env=env, cwd=workdir)
    assert result.returncode == 1, result
    assert "sfstripe migrate" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
