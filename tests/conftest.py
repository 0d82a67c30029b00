from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

import state.log
from state.database import open_pool
from state.log import EventLog
from tests.postgres import Databases, server_dsn
from tests.salesforce_support import sf  # noqa: F401 - a fixture for every Salesforce test

SAMPLES = Path(__file__).parent / "samples"


@pytest_asyncio.fixture(scope="session")
async def databases() -> AsyncIterator[Databases]:
    # Not under pytest's basetemp: pytest prunes old basetemps, which may belong to another
    # session still running its server.
    scratch = Path(tempfile.mkdtemp(prefix="sfstripe-test-pg-"))
    server = await server_dsn(scratch)
    dbs = Databases(server)
    await dbs.prepare()
    yield dbs
    await dbs.drop_all()


@pytest_asyncio.fixture
async def dsn(databases: Databases) -> str:
    return await databases.fresh()


@pytest_asyncio.fixture
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await open_pool(dsn, max_size=8)
    yield pool
    await pool.close()


@pytest_asyncio.fixture
async def event_log(pool: asyncpg.Pool) -> EventLog:
    return EventLog(pool)


@pytest.fixture(params=["one statement", "general"])
def append_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test over both ways a batch is appended: the `append_events` function (small
    batches) and the planned COPY path (large batches, links that need markers)."""
    if request.param == "general":
        monkeypatch.setattr(state.log, "ONE_STATEMENT_MAX_EVENTS", 0)
    return str(request.param)
