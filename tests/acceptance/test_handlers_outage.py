"""A database outage while handlers run: the dispatcher pauses (calls in flight finish, nothing
new starts), is not restarted, and resumes where it was once the database is back."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tests.acceptance.handler_daemons import append, calls, fetch, handler_environment, wait_for
from tests.acceptance.support import Daemon
from tests.pgproxy import PgProxy

CUSTOMERS = ("001A", "002", "003")
PAUSED = "\nsfstripe_dispatch_paused 1.0\n"
RUNNING = "\nsfstripe_dispatch_paused 0.0\n"


def _events(first: int, last: int) -> list[str]:
    """`e<n>-<customer>@<customer>` for n in first..last, customers interleaved."""
    return [f"e{n}-{c}@{c}" for n in range(first, last + 1) for c in CUSTOMERS]


def _checkpoints(dsn: str) -> dict[str, int]:
    rows = fetch(dsn, "SELECT customer, last_seq FROM handler_checkpoints")
    return {row["customer"]: row["last_seq"] for row in rows}


def test_an_outage_pauses_dispatch_and_it_resumes_from_where_it_was(
    fresh_dsn: str, daemons: Callable[..., Daemon], workdir: Path
) -> None:
    record = workdir / "record.jsonl"
    with PgProxy.for_dsn(fresh_dsn) as proxy:
        env = handler_environment(proxy.dsn(fresh_dsn), record, SFSTRIPE_TEST_DELAY="0.4")
        daemon = daemons(env)
        daemon.wait_ready()
        wait_for(lambda: daemon.logged("dispatcher_started"), what="dispatcher_started")
        assert RUNNING in daemon.metrics()
        append(fresh_dsn, *_events(1, 6))  # straight to the database, not through the proxy
        wait_for(lambda: len(calls(record)) >= len(CUSTOMERS), what="dispatching")

        proxy.cut()
        wait_for(lambda: PAUSED in daemon.metrics(), timeout=8, what="paused metric 1")
        # The calls in flight finish; then nothing new starts while the database is away.
        wait_for(
            lambda: len(calls(record, "start")) == len(calls(record)),
            timeout=5,
            what="calls in flight finished",
        )
        started = len(calls(record, "start"))
        time.sleep(1.5)  # several call durations: a lane still taking work would show
        assert len(calls(record, "start")) == started, "a call started during the outage"
        assert started < 18, "the outage came too late to test anything"
        assert PAUSED in daemon.metrics()
        assert daemon.process is not None and daemon.process.poll() is None
        append(fresh_dsn, *_events(7, 7))  # committed meanwhile: read once it is back

        proxy.restore()
        wait_for(lambda: RUNNING in daemon.metrics(), timeout=10, what="paused metric 0")
        wait_for(lambda: len(calls(record)) == 21, timeout=20, what="every event applied")
        # Exactly once, in seq order, per customer: nothing lost, nothing applied twice.
        for customer in CUSTOMERS:
            done = calls(record, customer=customer)
            assert [c["seq"] for c in done] == list(range(1, 8)), (customer, done)
            assert [c["seq"] for c in calls(record, "start", customer=customer)] == list(
                range(1, 8)
            )
        # The checkpoints reached during the outage were written once it was back (not only
        # at shutdown).
        wait_for(
            lambda: _checkpoints(fresh_dsn) == dict.fromkeys(CUSTOMERS, 7),
            what="checkpoints written",
        )
        append(fresh_dsn, "after@002")
        wait_for(lambda: len(calls(record)) == 22, what="new events after the outage")

        # One pause, one resume; the dispatcher was never restarted and leadership kept.
        (paused,) = daemon.logged("dispatch_paused")
        assert paused["level"] == "warning" and paused["reason"], paused
        assert len(daemon.logged("dispatch_resumed")) == 1, daemon.describe()
        assert len(daemon.logged("dispatcher_started")) == 1, daemon.describe()
        assert not daemon.logged("component_crashed"), daemon.describe()
        assert not daemon.logged("leadership_lost"), daemon.describe()
        assert len(daemon.logged("leader")) == 1, daemon.describe()
        metrics = daemon.metrics()
        assert "sfstripe_component_restarts_total{" not in metrics, metrics
        assert RUNNING in metrics
        assert daemon.stop() == 0, daemon.describe()
    assert {c["pid"] for c in calls(record)} == {daemon.pid}
