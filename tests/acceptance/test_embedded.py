"""With no SFSTRIPE_DATABASE_URL, `sfstripe run` starts its own PostgreSQL in the data folder,
and the other commands join it while the daemon runs."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.acceptance.support import (
    CLI_TIMEOUT,
    MIGRATED,
    Daemon,
    base_environment,
    eventually,
    postmaster_pid,
    run_cli,
    start_cli,
    stop_postmaster,
)

DEFAULT_DATA_DIR = ".sfstripe"


@pytest.fixture
def data_dir(workdir: Path) -> Iterator[Path]:
    path = workdir / "d"
    yield path
    stop_postmaster(path)  # only if a test left it running


@pytest.fixture
def default_data_dir(workdir: Path) -> Iterator[Path]:
    path = workdir / DEFAULT_DATA_DIR
    yield path
    stop_postmaster(path)


def check_embedded_daemon(daemon: Daemon, env: dict[str, str], data_dir: Path) -> None:
    daemon.wait_ready(timeout=90)
    embedded = daemon.logged("embedded_database")
    assert embedded, daemon.describe()
    assert embedded[0]["data_dir"] == str(data_dir.resolve())
    assert postmaster_pid(data_dir) is not None, "no PostgreSQL runs in the data folder"

    status = run_cli("status", "--json", env=env, cwd=daemon.cwd)
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["log"]["head_offset"] == 0
    assert report["log"]["last_ingested_at"] is None
    assert report["handlers"] == []
    assert report["positions"] == []
    assert "embedded" in report["database"]

    log = run_cli("log", "--json", env=env, cwd=daemon.cwd)
    assert log.returncode == 0, log.stderr
    assert log.stdout == ""

    # The commands left the daemon's database alone: it still runs and is ready.
    readyz = daemon.get("/readyz")
    assert readyz is not None and readyz.status == 200, readyz

    assert daemon.stop(signal.SIGTERM) == 0, daemon.describe()
    assert daemon.logged("daemon_stopped"), daemon.describe()
    # The last user of the embedded server is gone: the server stops too.
    eventually(
        lambda: postmaster_pid(data_dir) is None, timeout=15, what="embedded PostgreSQL stopped"
    )


def test_embedded_database_in_the_configured_data_dir(
    data_dir: Path, workdir: Path, daemons: Callable[..., Daemon]
) -> None:
    env = base_environment(SFSTRIPE_DATA_DIR=str(data_dir))
    daemon = daemons(env, cwd=workdir)
    check_embedded_daemon(daemon, env, data_dir)


def test_embedded_database_in_the_default_data_dir(
    default_data_dir: Path, workdir: Path, daemons: Callable[..., Daemon]
) -> None:
    env = base_environment()
    daemon = daemons(env, cwd=workdir)
    check_embedded_daemon(daemon, env, default_data_dir)


def test_embedded_database_survives_a_restart(
    default_data_dir: Path, workdir: Path, daemons: Callable[..., Daemon]
) -> None:
    env = base_environment()
    first = daemons(env, cwd=workdir)
    first.wait_ready(timeout=90)
    assert first.logged("migration_applied")
    assert first.stop() == 0, first.describe()

    second = daemons(env, cwd=workdir)
    second.wait_ready(timeout=90)
    assert not second.logged("migration_applied"), "the schema was applied a second time"
    assert second.stop() == 0, second.describe()


def test_two_migrates_at_once_share_one_embedded_database(data_dir: Path, workdir: Path) -> None:
    env = base_environment(SFSTRIPE_DATA_DIR=str(data_dir))
    processes = [start_cli("migrate", env=env, cwd=workdir) for _ in range(2)]
    try:
        outputs = [process.communicate(timeout=CLI_TIMEOUT + 30) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)

    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
    assert sorted(stdout.strip() for stdout, _ in outputs) == [
        "applied 0 migration(s)",
        MIGRATED,
    ]
    # Both users are gone: the embedded server stopped.
    eventually(
        lambda: postmaster_pid(data_dir) is None, timeout=15, what="embedded PostgreSQL stopped"
    )
