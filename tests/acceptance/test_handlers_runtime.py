"""The handler runtime through the daemon and the CLI: dispatch, status, dead letters, replays,
upstream positions, shadow mode, and `promtool check metrics` on a live `/metrics`."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.acceptance.handler_daemons import (
    append,
    calls,
    cli_json,
    handler_environment,
    last_json,
    status,
    wait_for,
)
from tests.acceptance.support import Daemon, run_cli


def test_daemon_dispatches_and_status_reports_it(
    fresh_dsn: str, daemons: Callable[..., Daemon], workdir: Path
) -> None:
    record = workdir / "record.jsonl"
    env = handler_environment(fresh_dsn, record)
    daemon = daemons(env)
    daemon.wait_ready()
    wait_for(lambda: daemon.logged("dispatcher_started"), what="dispatcher_started")
    append(fresh_dsn, "e1", "e2@002", "e3")
    wait_for(lambda: len(calls(record)) == 3, what="3 events applied")
    assert [c["id"] for c in calls(record, customer="001A")] == ["e1", "e3"]
    assert {c["pid"] for c in calls(record)} == {daemon.pid}

    def caught_up() -> dict[str, object] | None:
        report = status(env, workdir)
        handlers = report["handlers"]
        return report if handlers and handlers[0]["lag_events"] == 0 else None

    report = wait_for(caught_up, what="lag 0")
    (handler,) = report["handlers"]
    assert handler["name"] == "recorder"
    assert handler["low_water_offset"] == 3
    assert handler["parked_customers"] == 0
    leader = report["leadership"]["leader"]
    assert leader["instance"].endswith(f":{daemon.pid}") and leader["role"] == "leader"
    assert report["leadership"]["standbys"] == []
    text = run_cli("status", env=env, cwd=workdir)
    assert "recorder: lag 0 events" in text.stdout
    assert f":{daemon.pid} (leader" in text.stdout

    metrics = daemon.metrics()
    assert "\nsfstripe_leader 1.0\n" in metrics
    assert 'sfstripe_handler_events_total{handler="recorder",outcome="ok"} 3.0' in metrics
    assert daemon.stop() == 0, daemon.describe()


def test_dead_letters_through_the_cli(
    fresh_dsn: str, daemons: Callable[..., Daemon], workdir: Path
) -> None:
    record = workdir / "record.jsonl"
    env = handler_environment(fresh_dsn, record, SFSTRIPE_HANDLER_MAX_ATTEMPTS="1")
    daemon = daemons(env)
    daemon.wait_ready()
    append(fresh_dsn, "a1", "flaky-2", "a3", "fail-4@002", "b5@002", "c6@003")
    wait_for(lambda: len(run_cli("dlq", "list", env=env, cwd=workdir).stdout.splitlines()) == 2)
    wait_for(lambda: calls(record, customer="003"), what="others go on")
    listed = cli_json(env, workdir, "dlq", "list", "--json")  # the last line: the newest
    result = run_cli("dlq", "list", "--json", env=env, cwd=workdir)
    letters = [json.loads(line) for line in result.stdout.splitlines()]
    assert {(d["customer"], d["source_event_id"], d["status"]) for d in letters} == {
        ("001A", "flaky-2", "parked"),
        ("002", "fail-4", "parked"),
    }
    assert listed in letters
    report = status(env, workdir)
    assert report["handlers"][0]["parked_customers"] == 2
    assert {p["customer"] for p in report["parked"]} == {"001A", "002"}
    assert [c["id"] for c in calls(record, customer="001A")] == ["a1"]

    flaky = next(d for d in letters if d["customer"] == "001A")
    retried = run_cli("dlq", "retry", str(flaky["id"]), env=env, cwd=workdir)
    assert retried.returncode == 0, retried.stderr
    wait_for(lambda: [c["id"] for c in calls(record, customer="001A")] == ["a1", "flaky-2", "a3"])

    failed = next(d for d in letters if d["customer"] == "002")
    skipped = run_cli(
        "dlq", "skip", str(failed["id"]), "--reason", "bad data", env=env, cwd=workdir
    )
    assert skipped.returncode == 0, skipped.stderr
    wait_for(lambda: [c["id"] for c in calls(record, customer="002")] == ["b5"])
    marker = [e for e in _log(env, workdir) if e["type"] == "sfstripe.dlq_skip"]
    assert [(m["customer"], m["source_event_id"]) for m in marker] == [
        ("002", f"dlq-skip:{failed['id']}")
    ]

    again = run_cli("dlq", "skip", str(failed["id"]), "--reason", "again", env=env, cwd=workdir)
    assert again.returncode == 1 and "no parked dead letter" in again.stderr
    assert run_cli("dlq", "list", env=env, cwd=workdir).stdout.strip() == "no parked dead letters"
    assert len(run_cli("dlq", "list", "--all", env=env, cwd=workdir).stdout.splitlines()) == 2
    usage = run_cli("dlq", "retry", env=env, cwd=workdir)
    assert usage.returncode == 2
    assert daemon.stop() == 0, daemon.describe()


def _log(env: dict[str, str], cwd: Path) -> list[dict[str, object]]:
    result = run_cli("log", "--json", env=env, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_replay_by_the_leader_and_by_the_cli(
    fresh_dsn: str, daemons: Callable[..., Daemon], workdir: Path
) -> None:
    record = workdir / "record.jsonl"
    env = handler_environment(fresh_dsn, record)
    # No daemon: the CLI holds the leader lock and replays itself (nothing was applied yet).
    append(fresh_dsn, "e1", "e2@002", "e3")
    local = run_cli("replay", "--from-offset", "1", "--dry-run", env=env, cwd=workdir)
    assert local.returncode == 0, local.stderr
    summary = last_json(local.stdout)
    assert (summary["executed_by"], summary["applied"], summary["dry_run"]) == ("cli", 3, True)
    assert all(c["replay"] and not c["writes"] for c in calls(record))

    daemon = daemons(env)
    daemon.wait_ready()
    wait_for(lambda: daemon.logged("dispatcher_started"), what="dispatcher_started")
    asked = run_cli("replay", "--from-offset", "2", "--customer", "002", env=env, cwd=workdir)
    assert asked.returncode == 0, asked.stderr
    summary = last_json(asked.stdout)
    assert (summary["executed_by"], summary["applied"], summary["events"]) == ("leader", 1, 1)
    assert "replay_requested" in asked.stderr
    replayed = calls(record, replay=True, writes=True)
    assert [(c["id"], c["pid"]) for c in replayed] == [("e2", daemon.pid)]
    markers = [e for e in _log(env, workdir) if e["type"] == "sfstripe.replay"]
    assert [m["customer"] for m in markers] == ["sfstripe:ops", "sfstripe:ops"]

    unknown = run_cli("replay", "--from-offset", "1", "--handler", "nope", env=env, cwd=workdir)
    assert unknown.returncode == 1 and "no handler named 'nope'" in unknown.stderr
    for wrong in (("replay",), ("replay", "--from-offset", "3", "--to-offset", "2")):
        result = run_cli(*wrong, env=env, cwd=workdir)
        assert result.returncode == 2, result
    assert daemon.stop() == 0, daemon.describe()


def test_moving_upstream_positions(
    fresh_dsn: str, daemons: Callable[..., Daemon], workdir: Path
) -> None:
    env = handler_environment(fresh_dsn, workdir / "record.jsonl")
    refused = run_cli(
        "replay", "--source", "stripe", "--after-event", "evt_1", env=env, cwd=workdir
    )
    assert refused.returncode == 2 and "--yes" in refused.stderr
    local = run_cli(
        "replay",
        "--source",
        "salesforce",
        "--channel",
        "/data/ChangeEvents",
        "--replay-id",
        "4242",
        "--yes",
        env=env,
        cwd=workdir,
    )
    assert local.returncode == 0, local.stderr
    assert last_json(local.stdout)["executed_by"] == "cli"

    daemon = daemons(env)
    daemon.wait_ready()
    wait_for(lambda: daemon.logged("leader"), what="leader")
    moved = run_cli(
        "replay", "--source", "stripe", "--after-event", "evt_9", "--yes", env=env, cwd=workdir
    )
    assert moved.returncode == 0, moved.stderr
    assert last_json(moved.stdout) == {
        "source": "stripe",
        "channel": "events",
        "moved": True,
        "executed_by": "leader",
    }
    positions = {
        (p["source"], p["channel"]): p["position"] for p in status(env, workdir)["positions"]
    }
    assert positions["salesforce", "/data/ChangeEvents"] == "4242"
    assert json.loads(positions["stripe", "events"]) == {
        "id": "evt_9",
        "created": None,
        "floor": None,
    }
    assert len([e for e in _log(env, workdir) if e["type"] == "sfstripe.replay"]) == 2
    assert daemon.stop() == 0, daemon.describe()


def test_shadow_mode_and_promtool_on_live_metrics(
    fresh_dsn: str, daemons: Callable[..., Daemon], workdir: Path
) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: install the Debian package `prometheus`")
    record = workdir / "record.jsonl"
    env = handler_environment(
        fresh_dsn,
        record,
        SFSTRIPE_WRITES="off",
        SFSTRIPE_STRIPE_API_KEY="sk_test_shadow",
        SFSTRIPE_STRIPE_MODE="webhook",
        SFSTRIPE_STRIPE_WEBHOOK_SECRETS="whsec_test",
        SFSTRIPE_STRIPE_API_BASE="http://127.0.0.1:9",  # nothing may be sent there
        SFSTRIPE_HANDLER_MAX_ATTEMPTS="2",
    )
    daemon = daemons(env)
    daemon.wait_ready()
    append(fresh_dsn, "e1", "flaky-2", "e3@002", "fail-4@003")
    wait_for(lambda: len(calls(record)) == 3, what="3 applied")
    assert all(c["writes"] is False for c in calls(record))
    skipped = daemon.logged("write_skipped")
    assert len(skipped) == 3 and skipped[0]["method"] == "POST", daemon.describe()
    assert daemon.logged("shadow_mode")

    def flushed_metrics() -> str | None:
        text = daemon.metrics()
        return text if 'sfstripe_parked_customers{handler="recorder"} 1.0' in text else None

    metrics = wait_for(flushed_metrics, what="the dead letter in the metrics")
    assert 'sfstripe_writes_skipped_total{api="stripe",method="POST"} 3.0' in metrics
    assert 'sfstripe_dead_letters_total{handler="recorder"} 1.0' in metrics
    assert 'sfstripe_handler_retries_total{handler="recorder"} 1.0' in metrics
    for name in (
        "sfstripe_handler_duration_seconds_bucket",
        "sfstripe_handler_start_delay_seconds_bucket",
        "sfstripe_handler_backlog_events",
        "sfstripe_dispatch_buffer_fill_ratio",
        "sfstripe_leader",
    ):
        assert name in metrics, name
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=metrics, capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == "" and checked.stderr.strip() == "", checked
    assert daemon.stop() == 0, daemon.describe()
