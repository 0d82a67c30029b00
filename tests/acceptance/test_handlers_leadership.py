"""One consumer per database (a standby takes over when the leader dies) and the SIGTERM drain
of handler calls in flight."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

from tests.acceptance.handler_daemons import (
    append,
    calls,
    fetch,
    handler_environment,
    status,
    wait_for,
)
from tests.acceptance.support import Daemon
from tests.pgproxy import PgProxy

TAKEOVER_WITHIN = 10.0


def test_a_standby_takes_over_when_the_leader_dies(
    fresh_dsn: str, daemons: Callable[..., Daemon], workdir: Path
) -> None:
    record = workdir / "record.jsonl"
    env = handler_environment(fresh_dsn, record)
    first = daemons(env)
    first.wait_ready()
    wait_for(lambda: first.logged("leader"), what="the first daemon leads")
    second = daemons(env)
    second.wait_ready()  # a standby is ready: it can accept and commit events
    wait_for(lambda: second.logged("standby"), what="the second daemon stands by")
    assert not second.logged("leader")
    assert "\nsfstripe_leader 0.0\n" in second.metrics()
    assert "\nsfstripe_leader 1.0\n" in first.metrics()
    report = status(env, workdir)
    assert report["leadership"]["leader"]["instance"].endswith(f":{first.pid}")
    assert [s.split(":")[-1] for s in report["leadership"]["standbys"]] == [str(second.pid)]

    append(fresh_dsn, "e1", "e2@002")
    wait_for(lambda: len(calls(record)) == 2, what="applied by the leader")
    assert {c["pid"] for c in calls(record)} == {first.pid}
    # Checkpoints are written every 0.2 s: a kill within that window would (rightly) have the
    # next leader apply those events again. Wait for them here, to see nothing applied twice.
    wait_for(lambda: status(env, workdir)["handlers"][0]["lag_events"] == 0, what="flushed")

    first.kill()  # SIGKILL: no goodbye, PostgreSQL ends its session and frees the lock
    killed_at = time.monotonic()
    wait_for(lambda: second.logged("leader"), timeout=TAKEOVER_WITHIN, what="takeover")
    took = time.monotonic() - killed_at
    append(fresh_dsn, "e3", "e4@003")
    wait_for(lambda: len(calls(record)) == 4, what="applied by the new leader")
    assert {c["pid"] for c in calls(record)[2:]} == {second.pid}
    assert took < TAKEOVER_WITHIN
    assert "\nsfstripe_leader 1.0\n" in second.metrics()
    report = status(env, workdir)
    assert report["leadership"]["leader"]["instance"].endswith(f":{second.pid}")
    # Nothing was applied twice: the new leader went on from the checkpoints.
    assert sorted(c["id"] for c in calls(record)) == ["e1", "e2", "e3", "e4"]
    assert second.stop() == 0, second.describe()


def test_sigterm_lets_handler_calls_finish_and_writes_checkpoints(
    fresh_dsn: str, daemons: Callable[..., Daemon], workdir: Path
) -> None:
    record = workdir / "record.jsonl"
    env = handler_environment(
        fresh_dsn, record, SFSTRIPE_TEST_DELAY="1.5", SFSTRIPE_SHUTDOWN_GRACE="6"
    )
    daemon = daemons(env)
    daemon.wait_ready()
    append(fresh_dsn, "e1", "e2@002", "e3")
    wait_for(lambda: len(calls(record, "start")) == 2, what="two calls in flight")
    started = time.monotonic()
    assert daemon.stop(signal.SIGTERM) == 0, daemon.describe()
    took = time.monotonic() - started
    assert took < 6, took
    # The calls in flight finished; nothing new was started once the signal came.
    assert sorted(c["id"] for c in calls(record)) == ["e1", "e2"]
    assert sorted(c["id"] for c in calls(record, "start")) == ["e1", "e2"]
    events = [r["event"] for r in daemon.log_events()]
    assert events.index("dispatcher_stopped") > events.index("shutdown_requested")
    assert events[-1] == "daemon_stopped"
    rows = fetch(fresh_dsn, "SELECT customer, last_seq FROM handler_checkpoints ORDER BY 1")
    assert [(r["customer"], r["last_seq"]) for r in rows] == [("001A", 1), ("002", 1)]
    # The next daemon applies what was left, and nothing twice.
    again = daemons(handler_environment(fresh_dsn, record))
    again.wait_ready()
    wait_for(lambda: len(calls(record)) == 3, what="the rest applied")
    assert sorted(c["id"] for c in calls(record)) == ["e1", "e2", "e3"]
    assert again.stop() == 0, again.describe()


def test_sigterm_past_the_grace_abandons_the_call_and_applies_it_again_later(
    fresh_dsn: str, daemons: Callable[..., Daemon], workdir: Path
) -> None:
    record = workdir / "record.jsonl"
    env = handler_environment(
        fresh_dsn, record, SFSTRIPE_TEST_DELAY="60", SFSTRIPE_SHUTDOWN_GRACE="1"
    )
    daemon = daemons(env)
    daemon.wait_ready()
    append(fresh_dsn, "e1")
    wait_for(lambda: calls(record, "start"), what="a call in flight")
    assert daemon.stop(signal.SIGTERM, timeout=5) == 0, daemon.describe()
    assert daemon.logged("shutdown_grace_exceeded")
    assert calls(record) == []
    assert fetch(fresh_dsn, "SELECT * FROM handler_checkpoints") == []
    again = daemons(handler_environment(fresh_dsn, record))
    again.wait_ready()
    wait_for(lambda: calls(record), what="applied after the restart")
    assert again.stop() == 0, again.describe()


def test_sigterm_while_the_database_stops_answering(
    fresh_dsn: str, daemons: Callable[..., Daemon], workdir: Path
) -> None:
    """The leader lock, the control channel, the wake-up and the dispatcher's pool all hold
    connections to a database that went silent: the shutdown still ends in time."""
    record = workdir / "record.jsonl"
    with PgProxy.for_dsn(fresh_dsn) as proxy:
        env = handler_environment(proxy.dsn(fresh_dsn), record, SFSTRIPE_SHUTDOWN_GRACE="2")
        daemon = daemons(env)
        daemon.wait_ready()
        append(fresh_dsn, "e1")
        wait_for(lambda: calls(record), what="dispatching")
        proxy.stall()
        started = time.monotonic()
        assert daemon.stop(signal.SIGTERM, timeout=daemon.grace + 5) == 0, daemon.describe()
        assert time.monotonic() - started < daemon.grace + 5
        proxy.resume()
