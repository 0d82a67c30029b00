"""What the Salesforce tests share: a server per test and the integration user's OAuth settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from stream.salesforce.auth import OAuthSettings
from tests.sfserver_fixture import (
    API_VERSION,
    CLIENT_ID,
    CLIENT_SECRET,
    INTEGRATION_PASSWORD,
    INTEGRATION_USERNAME,
    SalesforceServer,
)


@pytest_asyncio.fixture
async def sf(tmp_path: Path) -> AsyncIterator[SalesforceServer]:
    """A fresh org per test; short long-polls so that reconnections are quick."""
    async with SalesforceServer(tmp_path / "org.json", poll_timeout=2) as server:
        yield server


def password_flow(server: SalesforceServer) -> OAuthSettings:
    return OAuthSettings(
        login_url=server.base_url,
        flow="password",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        username=INTEGRATION_USERNAME,
        password=INTEGRATION_PASSWORD,
    )


def salesforce_variables(server: SalesforceServer) -> dict[str, str]:
    """The integration user's settings for a daemon subprocess: password flow, Account and
    Contact channels, every retained event."""
    return {
        "SFSTRIPE_SF_LOGIN_URL": server.base_url,
        "SFSTRIPE_SF_AUTH_FLOW": "password",
        "SFSTRIPE_SF_CLIENT_ID": CLIENT_ID,
        "SFSTRIPE_SF_CLIENT_SECRET": CLIENT_SECRET,
        "SFSTRIPE_SF_USERNAME": INTEGRATION_USERNAME,
        "SFSTRIPE_SF_PASSWORD": INTEGRATION_PASSWORD,
        "SFSTRIPE_SF_API_VERSION": API_VERSION,
        "SFSTRIPE_SF_CHANNELS": "/data/AccountChangeEvent,/data/ContactChangeEvent",
        "SFSTRIPE_SF_INITIAL_REPLAY": "-2",
    }
