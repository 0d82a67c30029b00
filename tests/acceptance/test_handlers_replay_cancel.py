"""Cancelling a replay the leader runs: Ctrl-C in the CLI that follows it, and
`sfstripe replay cancel ID` from another shell. The replay stops between handler calls and the
request ends `cancelled` with how far it got; the CLI prints that and exits 1."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.acceptance.handler_daemons import (
    append,
    calls,
    fetch,
    handler_environment,
    last_json,
    wait_for,
)
from tests.acceptance.support import Daemon, run_cli, start_cli

EVENTS = 30


def _finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    stdout, stderr = process.communicate(timeout=30)
    return process.returncode, stdout, stderr


def _requests(dsn: str) -> list[dict[str, Any]]:
    return fetch(dsn, "SELECT id, status, processed, result::text AS result FROM replay_requests")


def _replayed(record: Path, what: str = "done") -> list[dict[str, Any]]:
    return calls(record, what, replay=True)


def _check_stopped_between_calls(record: Path, summary: dict[str, Any]) -> None:
    assert summary["cancelled"] is True and summary["executed_by"] == "leader", summary
    assert 0 < summary["applied"] < EVENTS, summary
    # Every replayed call that started finished: it stopped between calls, not in one.
    assert len(_replayed(record, "start")) == len(_replayed(record)) == summary["applied"]


def test_ctrl_c_and_replay_cancel_stop_a_replay_the_leader_runs(
    fresh_dsn: str, daemons: Callable[..., Daemon], workdir: Path
) -> None:
    record = workdir / "record.jsonl"
    env = handler_environment(fresh_dsn, record, SFSTRIPE_TEST_DELAY="0.15")
    daemon = daemons(env)
    daemon.wait_ready()
    append(fresh_dsn, *[f"e{i}@00{i % 2}" for i in range(EVENTS)])
    wait_for(lambda: len(calls(record)) == EVENTS, timeout=30, what="dispatched")

    # Ctrl-C in the CLI that asked: the leader stops at its next safe point.
    asker = start_cli("replay", "--from-offset", "1", env=env, cwd=workdir)
    wait_for(lambda: len(_replayed(record)) >= 4, what="the replay under way")
    asker.send_signal(signal.SIGINT)
    code, stdout, stderr = _finish(asker)
    assert code == 1, stderr
    summary = last_json(stdout)
    _check_stopped_between_calls(record, summary)
    assert "cancelled:" in stderr and "replay_requested" in stderr, stderr
    (request,) = _requests(fresh_dsn)
    assert request["status"] == "cancelled"
    assert json.loads(request["result"])["applied"] == summary["applied"]
    assert request["processed"] == summary["events"]

    # `replay cancel ID` from another shell stops a request that a CLI follows.
    before = len(_replayed(record))
    follower = start_cli("replay", "--from-offset", "1", env=env, cwd=workdir)
    wait_for(lambda: len(_replayed(record)) >= before + 4, what="the second replay under way")
    running = [r for r in _requests(fresh_dsn) if r["status"] == "running"]
    assert len(running) == 1, running
    cancelled = run_cli("replay", "cancel", str(running[0]["id"]), env=env, cwd=workdir)
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout.strip())["cancelled"] is True
    assert f"replay request {running[0]['id']} cancelled" in cancelled.stderr
    code, stdout, stderr = _finish(follower)
    assert code == 1, stderr
    assert last_json(stdout)["cancelled"] is True
    assert len(_replayed(record, "start")) == len(_replayed(record))

    again = run_cli("replay", "cancel", str(running[0]["id"]), env=env, cwd=workdir)
    assert again.returncode == 1 and "already ended: cancelled" in again.stderr, again
    unknown = run_cli("replay", "cancel", "999", env=env, cwd=workdir)
    assert unknown.returncode == 1 and "no replay request 999" in unknown.stderr, unknown
    mixed = run_cli("replay", "--from-offset", "1", "cancel", "1", env=env, cwd=workdir)
    assert mixed.returncode == 2, mixed
    metrics = daemon.metrics()
    assert 'sfstripe_replays_total{kind="log",outcome="cancelled"} 2.0' in metrics, metrics
    assert daemon.stop() == 0, daemon.describe()
