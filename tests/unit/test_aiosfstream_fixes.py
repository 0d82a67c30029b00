"""Each defect of aiosfstream-ng 0.7.5 / aiocometd-ng 0.5.6 that sfstripe works around, shown
on the library itself, next to the fix."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import anyio
import pytest
from aiocometd_ng.constants import TransportState
from aiosfstream_ng.client import Client
from aiosfstream_ng.replay import MappingStorage, ReplayMarker

from stream.salesforce.aiosfstream_fixes import (
    DurableReplay,
    StreamingClient,
    SubscriptionWatch,
    TokenAuthenticator,
    quiet_cancelled_connects,
)
from tests.conftest import SAMPLES

CHANNEL = "/data/AccountChangeEvent"


class OutageTransport:
    """A transport that loses its connection and never gets it back."""

    async def wait_for_state(self, state: TransportState) -> None:
        if state is TransportState.CONNECTING:
            return
        await anyio.sleep_forever()


async def _no_token() -> dict[str, Any]:
    raise AssertionError("not used")


def _client(api_version: str = "64.0") -> StreamingClient:
    return StreamingClient(
        TokenAuthenticator(_no_token),
        DurableReplay({}),
        SubscriptionWatch(),
        api_version=api_version,
        connection_timeout=0.05,
        max_pending_count=10,
    )


# The library's TypeError leaves the coroutine it built un-awaited: that warning is the defect.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
async def test_fix1_the_connection_timeout_wait_passes_loop_to_wait_for() -> None:
    client = _client()
    client._transport = OutageTransport()  # type: ignore[assignment]
    with pytest.raises(TypeError, match="loop"):
        await Client._wait_connection_timeout(client, 0.05)  # the library's own code
    with anyio.fail_after(2):
        await client._wait_connection_timeout(0.05)  # ours: returns once the timeout passed


async def test_fix3_a_failed_automatic_resubscribe_is_reported() -> None:
    watch = SubscriptionWatch()
    await watch.incoming(
        [{"channel": "/meta/subscribe", "subscription": CHANNEL, "successful": True}]
    )
    assert not watch.failed.is_set()
    await watch.incoming(
        [
            {
                "channel": "/meta/subscribe",
                "subscription": CHANNEL,
                "successful": False,
                "error": "403::Restricted channel",
            }
        ]
    )
    assert watch.failed.is_set()
    assert watch.failures == [(CHANNEL, "403::Restricted channel")]


async def test_fix4_receiving_a_message_stores_no_replay_id() -> None:
    message = json.loads((SAMPLES / "sf_account_update_cometd.json").read_text())
    library = MappingStorage({})
    await library.extract_replay_id(message)  # what the default policy does on receipt
    assert await library.get_replay_id(CHANNEL) == 18342977
    durable = DurableReplay({CHANNEL: 100})
    await durable.extract_replay_id(message)
    assert await durable.get_replay_id(CHANNEL) == 100  # only a commit moves it


async def test_fix5_a_replay_id_of_zero_is_sent() -> None:
    library_message = {"channel": "/meta/subscribe", "subscription": CHANNEL}
    await MappingStorage({CHANNEL: ReplayMarker("", 0)}).insert_replay_id(library_message)
    assert "ext" not in library_message  # the library silently subscribes for new events only
    message = {"channel": "/meta/subscribe", "subscription": CHANNEL}
    await DurableReplay({CHANNEL: 0}).insert_replay_id(message)
    assert message["ext"] == {"replay": {CHANNEL: 0}}


async def test_fix4_committed_ids_and_the_all_events_option_are_sent() -> None:
    replay = DurableReplay({CHANNEL: -2, "/data/ContactChangeEvent": 4711})
    for channel, expected in ((CHANNEL, -2), ("/data/ContactChangeEvent", 4711)):
        message = {"channel": "/meta/subscribe", "subscription": channel}
        await replay.insert_replay_id(message)
        assert message["ext"] == {"replay": {channel: expected}}
    unknown = {"channel": "/meta/subscribe", "subscription": "/data/LeadChangeEvent"}
    await replay.insert_replay_id(unknown)
    assert "ext" not in unknown


async def test_fix7_the_cometd_url_uses_the_configured_api_version() -> None:
    assert Client.get_cometd_url("https://x.my.salesforce.com").endswith("/cometd/45.0")
    url = _client("64.0").get_cometd_url("https://x.my.salesforce.com/")
    assert url == "https://x.my.salesforce.com/cometd/64.0"


async def test_the_authenticator_reports_a_refused_token_as_a_failed_login() -> None:
    async def refused() -> dict[str, Any]:
        raise RuntimeError("invalid_grant: authentication failure")

    status, body = await TokenAuthenticator(refused)._authenticate()
    assert status == 401
    assert "invalid_grant" in body["error_description"]


def test_fix8_only_the_cancelled_connect_report_is_filtered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    quiet_cancelled_connects()
    quiet_cancelled_connects()  # idempotent
    asyncio_log = logging.getLogger("asyncio")
    assert asyncio_log.filters.count(asyncio_log.filters[-1]) == 1
    cancelled = (asyncio.CancelledError, asyncio.CancelledError(), None)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        asyncio_log.error(
            "Exception in callback TransportBase._connect_done(<Task cancelled>)",
            exc_info=cancelled,
        )
        asyncio_log.error("Exception in callback something_else()", exc_info=cancelled)
        asyncio_log.error("Task exception was never retrieved: _connect_done")
    assert [r.getMessage() for r in caplog.records] == [
        "Exception in callback something_else()",
        "Task exception was never retrieved: _connect_done",
    ]
