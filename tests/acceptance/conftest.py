from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
import pytest_asyncio

from tests.acceptance.support import Daemon
from tests.postgres import Databases


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/acceptance/" in item.nodeid:
            item.add_marker(pytest.mark.acceptance)


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short scratch folder (unix socket paths must stay under ~100 characters).

    Every CLI subprocess runs in it, so a default `.sfstripe` data folder can never land in the
    repository.
    """
    path = Path(tempfile.mkdtemp(prefix="sfs-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemons(workdir: Path, tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """Start `sfstripe run` subprocesses; any still running at the end is killed."""
    started: list[Daemon] = []

    def start(env: Mapping[str, str], cwd: Path | None = None, command: str = "run") -> Daemon:
        daemon = Daemon(env, cwd or workdir, tmp_path / "logs", command)
        started.append(daemon)
        return daemon.start()

    yield start
    for daemon in started:
        daemon.kill()


@pytest_asyncio.fixture
async def fresh_dsn(databases: Databases) -> str:
    """A new database with the schema applied."""
    return await databases.fresh()


@pytest_asyncio.fixture
async def empty_dsn(databases: Databases) -> str:
    """A new database without any schema."""
    return await databases.fresh(migrated=False)
