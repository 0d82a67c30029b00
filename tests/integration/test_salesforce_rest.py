"""OAuth flows and the REST client against the Salesforce-compatible test server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import aiohttp
import asyncpg
import pytest

from state.credentials import StoredCredential
from stream.salesforce.auth import AuthError, OAuthSettings, SalesforceAuth
from stream.salesforce.rest import SalesforceError, SalesforceRest
from tests.salesforce_support import password_flow
from tests.sfserver_fixture import (
    API_VERSION,
    CLIENT_ID,
    CLIENT_SECRET,
    INTEGRATION_USER_ID,
    INTEGRATION_USERNAME,
    SalesforceServer,
    generate_rsa_keypair,
)


@asynccontextmanager
async def rest_client(
    server: SalesforceServer, settings: OAuthSettings | None = None, store: Any = None
) -> AsyncIterator[tuple[SalesforceAuth, SalesforceRest]]:
    async with aiohttp.ClientSession() as session:
        auth = SalesforceAuth(settings or password_flow(server), session, store)
        yield auth, SalesforceRest(auth, session, api_version=API_VERSION, client_tag="sfstripe")


async def test_jwt_bearer_flow(sf: SalesforceServer) -> None:
    private_key, public_key = generate_rsa_keypair()
    await sf.add_client(CLIENT_ID, publicKey=public_key)
    settings = OAuthSettings(
        login_url=sf.base_url,
        flow="jwt",
        client_id=CLIENT_ID,
        username=INTEGRATION_USERNAME,
        private_key=private_key,
    )
    async with rest_client(sf, settings) as (auth, rest):
        token = await auth.current()
        assert token.user_id == INTEGRATION_USER_ID
        assert token.instance_url == sf.base_url
        assert await rest.create("Account", {"Name": "Via JWT"})
        wrong_audience = replace(settings, audience="https://test.salesforce.com")
    async with rest_client(sf, wrong_audience) as (auth, _):
        with pytest.raises(AuthError) as refused:
            await auth.current()
        assert not refused.value.retryable


async def test_client_credentials_flow(sf: SalesforceServer) -> None:
    settings = OAuthSettings(
        login_url=sf.base_url,
        flow="client_credentials",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
    )
    async with rest_client(sf, settings) as (auth, _):
        assert (await auth.current()).user_id == INTEGRATION_USER_ID


async def test_a_rotated_refresh_token_is_kept_and_used(
    sf: SalesforceServer, pool: asyncpg.Pool
) -> None:
    await sf.add_client(CLIENT_ID, rotateRefreshTokens=True)
    first = await sf.refresh_token(CLIENT_ID, INTEGRATION_USERNAME)
    store = StoredCredential(pool, "salesforce_refresh_token")
    settings = OAuthSettings(
        login_url=sf.base_url,
        flow="refresh_token",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        refresh_token=first,
    )
    async with rest_client(sf, settings, store) as (auth, _):
        token = await auth.current()
        second = await store.load()
        assert second is not None
        assert second != first
        await auth.refresh(token)  # only works with the rotated token: the first is spent
        assert await store.load() not in (None, first, second)
    # A restart reads the newest token from PostgreSQL, not the configured (spent) one.
    async with rest_client(sf, settings, store) as (auth, _):
        assert (await auth.current()).user_id == INTEGRATION_USER_ID


async def test_bad_credentials_are_a_permanent_auth_error(sf: SalesforceServer) -> None:
    async with rest_client(sf, replace(password_flow(sf), password="wrong")) as (auth, _):
        with pytest.raises(AuthError) as refused:
            await auth.current()
        assert not refused.value.retryable
        assert "authentication failure" in str(refused.value)


async def test_sobject_life_cycle_and_upsert(sf: SalesforceServer) -> None:
    async with rest_client(sf) as (_, rest):
        account = await rest.create("Account", {"Name": "Initech", "Phone": "1"})
        await rest.update("Account", account, {"Phone": "2"})
        record = await rest.get("Account", account, ["Name", "Phone"])
        assert (record["Name"], record["Phone"]) == ("Initech", "2")
        created_id, created = await rest.upsert(
            "Account", "Stripe_Customer_Id__c", "cus_1", {"Name": "Upserted"}
        )
        again_id, again = await rest.upsert(
            "Account", "Stripe_Customer_Id__c", "cus_1", {"Name": "Upserted again"}
        )
        assert (created, again) == (True, False)
        assert created_id == again_id
        await rest.delete("Account", account)
        with pytest.raises(SalesforceError) as missing:
            await rest.get("Account", account)
        assert missing.value.status == 404
        assert not missing.value.retryable


async def test_collections_fail_per_record_when_not_all_or_none(sf: SalesforceServer) -> None:
    async with rest_client(sf) as (_, rest):
        results = await rest.save_collection(
            "POST",
            [
                {"attributes": {"type": "Account"}, "Name": "Fine"},
                {"attributes": {"type": "Account"}},  # Name is required
            ],
            all_or_none=False,
        )
        assert [r["success"] for r in results] == [True, False]
        assert results[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
        with pytest.raises(ValueError, match="200"):
            await rest.save_collection("POST", [{}] * 201, all_or_none=False)


async def test_query_follows_pages(sf: SalesforceServer) -> None:
    await sf.set_config(queryPageSize=2)
    async with rest_client(sf) as (_, rest):
        for n in range(5):
            await rest.create("Account", {"Name": f"Paged {n}"})
        names = [r["Name"] async for r in rest.query("SELECT Id, Name FROM Account")]
        assert sorted(names) == [f"Paged {n}" for n in range(5)]


@pytest.mark.parametrize(
    ("kind", "retryable"),
    [
        ("UNABLE_TO_LOCK_ROW", True),
        ("REQUEST_LIMIT_EXCEEDED", True),
        ("SERVER_UNAVAILABLE", True),
        ("FIELD_CUSTOM_VALIDATION_EXCEPTION", False),
    ],
)
async def test_errors_are_classified_from_salesforce_bodies(
    sf: SalesforceServer, kind: str, retryable: bool
) -> None:
    async with rest_client(sf) as (_, rest):
        await sf.fail_next_rest(kind)
        with pytest.raises(SalesforceError) as failed:
            await rest.create("Account", {"Name": "X"})
        assert failed.value.retryable is retryable
        assert kind in str(failed.value) or failed.value.status == 503


async def test_an_expired_session_is_renewed_once_transparently(sf: SalesforceServer) -> None:
    async with rest_client(sf) as (auth, rest):
        before = await auth.current()
        await sf.revoke_tokens()
        assert await rest.create("Account", {"Name": "After revoke"})
        assert (await auth.current()) is not before
