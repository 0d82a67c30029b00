"""`sfstripe run` against a configured database: health, readiness, metrics, clean shutdown."""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.acceptance.support import MIGRATIONS, Daemon, base_environment, run_cli
from tests.pgproxy import free_port

BUILD_INFO = re.compile(r'^sfstripe_build_info\{version="[^"]+"\} 1\.0$', re.MULTILINE)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_run_serves_health_and_metrics_and_stops_cleanly(
    sig: signal.Signals, fresh_dsn: str, daemons: Callable[..., Daemon]
) -> None:
    daemon = daemons(base_environment(SFSTRIPE_DATABASE_URL=fresh_dsn, SFSTRIPE_SHUTDOWN_GRACE="3"))
    daemon.wait_ready()

    healthz = daemon.get("/healthz")
    assert healthz is not None and healthz.status == 200, healthz
    readyz = daemon.get("/readyz")
    assert readyz is not None and readyz.status == 200, readyz
    assert readyz.json()["status"] == "ready"

    metrics = daemon.metrics()
    assert BUILD_INFO.search(metrics), metrics
    # The database gauge is exported by a loop that starts with the daemon: allow it a moment.
    deadline = time.monotonic() + 5
    while "\nsfstripe_database_up 1.0\n" not in metrics and time.monotonic() < deadline:
        time.sleep(0.2)
        metrics = daemon.metrics()
    assert "\nsfstripe_database_up 1.0\n" in metrics, metrics
    assert "# TYPE sfstripe_database_up gauge" in metrics

    started = time.monotonic()
    code = daemon.stop(sig)
    took = time.monotonic() - started
    assert code == 0, daemon.describe()
    assert took < daemon.grace + 5

    events = [record["event"] for record in daemon.log_events()]
    assert "daemon_started" in events
    assert "shutdown_requested" in events
    assert events[-1] == "daemon_stopped", daemon.describe()
    assert daemon.logged("shutdown_requested")[0]["signal"] == sig.name
    # Every stderr line is one JSON object (SFSTRIPE_LOG_FORMAT=json).
    for line in daemon.stderr().splitlines():
        assert isinstance(json.loads(line), dict), line

    # Nothing answers any more.
    assert daemon.get("/healthz") is None


def test_run_migrates_an_empty_database(empty_dsn: str, daemons: Callable[..., Daemon]) -> None:
    daemon = daemons(base_environment(SFSTRIPE_DATABASE_URL=empty_dsn))
    daemon.wait_ready()
    assert [r["migration"] for r in daemon.logged("migration_applied")] == MIGRATIONS
    assert daemon.stop() == 0, daemon.describe()


def test_run_without_a_reachable_database_fails_with_a_message(workdir: Path) -> None:
    env = base_environment(
        SFSTRIPE_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/nothing",
        SFSTRIPE_HTTP_PORT=str(free_port()),
        SFSTRIPE_METRICS_PORT=str(free_port()),
    )
    result = run_cli("run", env=env, cwd=workdir)
    assert result.returncode == 1, result
    assert "database" in result.stderr
    assert "Traceback" not in result.stderr
