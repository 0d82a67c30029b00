"""The Salesforce-compatible test server behaves like Salesforce where sfstripe depends on it.

OAuth flows, REST (CRUD, upsert, collections, SOQL paging, injected errors), CDC emission,
raw Bayeux exchanges for exact error texts, and real CometD sessions with aiosfstream-ng:
live events, replay after reconnect, stale replay ids, dropped sessions, token revocation and a
server restart mid-stream.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosfstream_ng.client as sf_client_module
import pytest
from aiosfstream_ng.auth import AuthenticatorBase, PasswordAuthenticator
from aiosfstream_ng.client import Client
from aiosfstream_ng.exceptions import ServerError
from aiosfstream_ng.replay import ReplayMarker, ReplayOption

from tests.sfserver_fixture import (
    ADMIN_USER_ID,
    CLIENT_ID,
    CLIENT_SECRET,
    INTEGRATION_PASSWORD,
    INTEGRATION_USER_ID,
    INTEGRATION_USERNAME,
    ORG_ID,
    SalesforceServer,
    generate_rsa_keypair,
    sign_jwt,
)

BAD_REPLAY = (
    "400::The replayId {{{}}} you provided was invalid. Please provide a valid ID, "
    "-2 to replay all events, or -1 to replay only new events."
)
CALL_OPTIONS = {"Sforce-Call-Options": "client=sfstripe-test"}
ORIGIN = "com/salesforce/api/rest/64.0;client=sfstripe-test"
RECEIVE_TIMEOUT = 15


# ---- OAuth ---------------------------------------------------------------------------------


def password_form(**overrides: str) -> dict[str, str]:
    form = {
        "grant_type": "password",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "username": INTEGRATION_USERNAME,
        "password": INTEGRATION_PASSWORD,
    }
    form.update(overrides)
    return form


async def test_password_flow_returns_salesforce_token_response(
    salesforce_server: SalesforceServer,
) -> None:
    sf = salesforce_server
    status, body = await sf.oauth_token(password_form())
    assert status == 200
    assert set(body) == {
        "access_token",
        "signature",
        "scope",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
    }
    assert body["instance_url"] == sf.base_url
    assert body["id"] == f"{sf.base_url}/id/{ORG_ID}/{INTEGRATION_USER_ID}"
    assert body["token_type"] == "Bearer"
    assert body["issued_at"].isdigit() and abs(int(body["issued_at"]) - time.time() * 1000) < 60_000
    expected = hmac.new(
        CLIENT_SECRET.encode(), (body["id"] + body["issued_at"]).encode(), hashlib.sha256
    ).digest()
    assert base64.b64decode(body["signature"]) == expected

    async with sf.http.get(
        body["id"], headers={"Authorization": f"Bearer {body['access_token']}"}
    ) as r:
        identity = await r.json()
    assert identity["user_id"] == INTEGRATION_USER_ID
    assert identity["organization_id"] == ORG_ID


@pytest.mark.parametrize(
    ("form", "error", "description"),
    [
        (password_form(client_id="nope"), "invalid_client_id", "client identifier invalid"),
        (password_form(client_secret="nope"), "invalid_client", "invalid client credentials"),
        (password_form(password="nope"), "invalid_grant", "authentication failure"),
        (password_form(username="nobody@x.test"), "invalid_grant", "authentication failure"),
        (
            password_form(grant_type="authorization_code"),
            "unsupported_grant_type",
            "grant type not supported",
        ),
    ],
)
async def test_token_errors(
    salesforce_server: SalesforceServer, form: dict[str, str], error: str, description: str
) -> None:
    status, body = await salesforce_server.oauth_token(form)
    assert (status, body) == (400, {"error": error, "error_description": description})


async def test_password_flow_wants_security_token_appended(
    salesforce_server: SalesforceServer,
) -> None:
    sf = salesforce_server
    await sf.add_user("tok@sfstripe.test", "pw", securityToken="SECTOKEN")
    status, _ = await sf.oauth_token(password_form(username="tok@sfstripe.test", password="pw"))
    assert status == 400
    status, body = await sf.oauth_token(
        password_form(username="tok@sfstripe.test", password="pwSECTOKEN")
    )
    assert status == 200
    assert body["id"].endswith("/" + (await sf.control("GET", "users"))[-1]["id"])


async def test_client_credentials_runs_as_configured_user(
    salesforce_server: SalesforceServer,
) -> None:
    sf = salesforce_server
    form = {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    status, body = await sf.oauth_token(form)
    assert status == 200
    assert body["id"].endswith(INTEGRATION_USER_ID)
    await sf.add_client("no-run-as", clientSecret="s", runAs=None)
    status, body = await sf.oauth_token({**form, "client_id": "no-run-as", "client_secret": "s"})
    assert (status, body["error"]) == (400, "invalid_grant")


async def test_refresh_token_flow_with_and_without_rotation(
    salesforce_server: SalesforceServer,
) -> None:
    sf = salesforce_server
    refresh = await sf.refresh_token()
    form = {"grant_type": "refresh_token", "client_id": CLIENT_ID, "refresh_token": refresh}
    for _ in range(2):  # no rotation: reusable, no new refresh token, secret optional
        status, body = await sf.oauth_token(form)
        assert status == 200 and "refresh_token" not in body
    status, body = await sf.oauth_token({**form, "client_secret": "wrong"})
    assert (status, body["error"]) == (400, "invalid_client")

    await sf.add_client(CLIENT_ID, rotateRefreshTokens=True)
    status, body = await sf.oauth_token({**form, "client_secret": CLIENT_SECRET})
    assert status == 200
    rotated = body["refresh_token"]
    assert rotated != refresh
    status, body = await sf.oauth_token(form)
    assert (status, body) == (
        400,
        {"error": "invalid_grant", "error_description": "expired access/refresh token"},
    )
    status, _ = await sf.oauth_token({**form, "refresh_token": rotated})
    assert status == 200


def jwt_claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": CLIENT_ID,
        "sub": INTEGRATION_USERNAME,
        "aud": "https://login.salesforce.com",
        "exp": int(time.time()) + 180,
    }
    claims.update(overrides)
    return claims


JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


async def test_jwt_bearer_flow(salesforce_server: SalesforceServer) -> None:
    sf = salesforce_server
    private_pem, public_pem = generate_rsa_keypair()
    other_private, _ = generate_rsa_keypair()

    async def grant(assertion: str) -> tuple[int, dict[str, Any]]:
        return await sf.oauth_token({"grant_type": JWT_GRANT, "assertion": assertion})

    # No key registered yet for the connected app.
    status, body = await grant(sign_jwt(private_pem, jwt_claims()))
    assert (status, body["error"]) == (400, "invalid_grant")

    await sf.add_client(CLIENT_ID, publicKey=public_pem)
    status, body = await grant(sign_jwt(private_pem, jwt_claims()))
    assert status == 200, body
    assert body["id"].endswith(INTEGRATION_USER_ID)
    assert "refresh_token" not in body

    failures = {
        "wrong key": (sign_jwt(other_private, jwt_claims()), "invalid_grant", "invalid assertion"),
        "audience": (
            sign_jwt(private_pem, jwt_claims(aud="https://test.salesforce.com")),
            "invalid_grant",
            "audience is invalid",
        ),
        "expired": (
            sign_jwt(private_pem, jwt_claims(exp=int(time.time()) - 5)),
            "invalid_grant",
            None,
        ),
        "unknown user": (
            sign_jwt(private_pem, jwt_claims(sub="ghost@x.test")),
            "invalid_grant",
            None,
        ),
        "unknown app": (sign_jwt(private_pem, jwt_claims(iss="nope")), "invalid_client_id", None),
        "garbage": ("not.a.jwt", "invalid_grant", "invalid assertion"),
    }
    for name, (assertion, error, description) in failures.items():
        status, body = await grant(assertion)
        assert (status, body["error"]) == (400, error), name
        if description:
            assert body["error_description"] == description, name

    # The audience is configurable (sandbox / My Domain login URLs).
    await sf.set_config(audience=["https://test.salesforce.com"])
    status, _ = await grant(sign_jwt(private_pem, jwt_claims(aud="https://test.salesforce.com")))
    assert status == 200


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
async def test_jwt_bearer_with_x509_certificate(
    salesforce_server: SalesforceServer, tmp_path: Path
) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    args = [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=sfstripe-test",
        "-days",
        "1",
    ]
    args += ["-keyout", str(key), "-out", str(cert)]
    await asyncio.to_thread(subprocess.run, ["openssl", *args], check=True, capture_output=True)
    await salesforce_server.add_client(CLIENT_ID, publicKey=cert.read_text())
    assertion = sign_jwt(key.read_text(), jwt_claims())
    status, body = await salesforce_server.oauth_token(
        {"grant_type": JWT_GRANT, "assertion": assertion}
    )
    assert status == 200, body


async def test_jwt_signed_by_pyjwt(salesforce_server: SalesforceServer) -> None:
    jwt = pytest.importorskip("jwt")
    pytest.importorskip("cryptography")
    private_pem, public_pem = generate_rsa_keypair()
    await salesforce_server.add_client(CLIENT_ID, publicKey=public_pem)
    assertion = jwt.encode(jwt_claims(), private_pem, algorithm="RS256")
    status, body = await salesforce_server.oauth_token(
        {"grant_type": JWT_GRANT, "assertion": assertion}
    )
    assert status == 200, body


# ---- REST ----------------------------------------------------------------------------------


@pytest.fixture
async def token(salesforce_server: SalesforceServer) -> str:
    return await salesforce_server.access_token()


def header_of(event: Mapping[str, Any]) -> dict[str, Any]:
    return dict(event["payload"]["ChangeEventHeader"])


async def test_rest_crud_emits_cdc_events(salesforce_server: SalesforceServer, token: str) -> None:
    sf = salesforce_server
    status, body, headers = await sf.rest(
        "POST",
        "sobjects/Account",
        token=token,
        headers=CALL_OPTIONS,
        json_body={
            "Name": "Globex",
            "Phone": "+1 555 0100",
            "Website": "https://globex.test",
            "BillingCity": "Springfield",
            "BillingPostalCode": "62701",
            "Stripe_Customer_Id__c": None,
        },
    )
    assert status == 201
    account_id = body["id"]
    assert body == {"id": account_id, "success": True, "errors": []}
    assert len(account_id) == 18 and account_id.startswith("001")
    assert headers["Sforce-Limit-Info"] == "api-usage=1/15000"

    status, record, _ = await sf.rest(
        "GET", f"sobjects/Account/{account_id}?fields=Name,BillingCity,Phone", token=token
    )
    assert status == 200
    assert record == {
        "attributes": {
            "type": "Account",
            "url": f"/services/data/v64.0/sobjects/Account/{account_id}",
        },
        "Name": "Globex",
        "BillingCity": "Springfield",
        "Phone": "+1 555 0100",
    }

    status, body, _ = await sf.rest(
        "PATCH",
        f"sobjects/Account/{account_id}",
        token=token,
        headers=CALL_OPTIONS,
        json_body={
            "Phone": "+1 555 0199",
            "Website": None,
            "BillingCity": "Shelbyville",
            "Name": "Globex",
        },
    )
    assert (status, body) == (204, None)
    status, body, _ = await sf.rest("DELETE", f"sobjects/Account/{account_id}", token=token)
    assert status == 204
    status, body, _ = await sf.rest("GET", f"sobjects/Account/{account_id}", token=token)
    assert (status, body[0]["errorCode"]) == (404, "ENTITY_IS_DELETED")

    create, update, delete = await sf.published("Account")
    h = header_of(create)
    assert h["changeType"] == "CREATE" and h["recordIds"] == [account_id]
    assert h["changeOrigin"] == ORIGIN and h["commitUser"] == INTEGRATION_USER_ID
    assert h["changedFields"] == [] and h["sequenceNumber"] == 1
    body_fields = {k: v for k, v in create["payload"].items() if k != "ChangeEventHeader"}
    assert body_fields["BillingAddress"] == {"City": "Springfield", "PostalCode": "62701"}
    assert "Stripe_Customer_Id__c" not in body_fields  # empty fields are not sent on CREATE
    assert {"OwnerId", "CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById"} <= set(
        body_fields
    )
    assert "Id" not in body_fields and "IsDeleted" not in body_fields

    h = header_of(update)
    assert h["changeType"] == "UPDATE"
    assert h["changedFields"] == ["Phone", "Website", "BillingAddress.City", "LastModifiedDate"]
    assert {
        k: v
        for k, v in update["payload"].items()
        if k not in ("ChangeEventHeader", "LastModifiedDate")
    } == {
        "Phone": "+1 555 0199",
        "Website": None,
        "BillingAddress": {"City": "Shelbyville"},
    }
    assert h["transactionKey"] != header_of(create)["transactionKey"]

    h = header_of(delete)
    assert h["changeType"] == "DELETE"
    assert set(delete["payload"]) == {"ChangeEventHeader"}
    assert h["changeOrigin"] == "com/salesforce/api/rest/64.0"  # no Sforce-Call-Options

    # Same change, one replay id per channel, each channel with its own increasing sequence.
    ids = [e["replayIds"] for e in (create, update, delete)]
    for channel in ("/data/ChangeEvents", "/data/AccountChangeEvent"):
        assert ids[0][channel] < ids[1][channel] < ids[2][channel]
    assert ids[0]["/data/ChangeEvents"] != ids[0]["/data/AccountChangeEvent"]


async def test_contact_name_compound_and_modifier_change(
    salesforce_server: SalesforceServer, token: str
) -> None:
    sf = salesforce_server
    created = await sf.edit_record(
        "Contact", {"FirstName": "Maria", "LastName": "Rivera", "Email": "m@x.test"}
    )
    status, _, _ = await sf.rest(
        "PATCH",
        f"sobjects/Contact/{created['id']}",
        token=token,
        headers=CALL_OPTIONS,
        json_body={"LastName": "Rivera-Okafor", "Email": "m.ro@x.test"},
    )
    assert status == 204
    ui_create, api_update = await sf.published("Contact")
    assert header_of(ui_create)["changeOrigin"] == ""
    assert header_of(ui_create)["commitUser"] == ADMIN_USER_ID
    assert ui_create["payload"]["Name"] == {"FirstName": "Maria", "LastName": "Rivera"}
    # As in the reference sample: the modifier changed, so LastModifiedById is listed too.
    assert header_of(api_update)["changedFields"] == [
        "Name.LastName",
        "Email",
        "LastModifiedDate",
        "LastModifiedById",
    ]
    assert api_update["payload"]["Name"] == {"LastName": "Rivera-Okafor"}
    assert api_update["payload"]["LastModifiedById"] == INTEGRATION_USER_ID
    status, record, _ = await sf.rest(
        "GET", f"sobjects/Contact/{created['id']}?fields=Name", token=token
    )
    assert record["Name"] == "Maria Rivera-Okafor"


async def test_rest_validation_errors(salesforce_server: SalesforceServer, token: str) -> None:
    sf = salesforce_server
    cases = [
        ("POST", "sobjects/Account", {"Phone": "1"}, 400, "REQUIRED_FIELD_MISSING"),
        (
            "POST",
            "sobjects/Account",
            {"Name": "x", "BillingAddress": {}},
            400,
            "INVALID_FIELD_FOR_INSERT_UPDATE",
        ),
        ("POST", "sobjects/NoSuchThing", {"Name": "x"}, 404, "NOT_FOUND"),
        ("PATCH", "sobjects/Account/001xx000000zzzzAAA", {"Name": "x"}, 404, "NOT_FOUND"),
        ("GET", "query?q=SELEKT+Id+FROM+Account", None, 400, "MALFORMED_QUERY"),
        ("GET", "query?q=SELECT+Id+FROM+Nope", None, 400, "INVALID_TYPE"),
    ]
    for method, path, body, status, code in cases:
        got_status, got, _ = await sf.rest(method, path, token=token, json_body=body)
        assert (got_status, got[0]["errorCode"]) == (status, code), path
        assert set(got[0]) == {"message", "errorCode", "fields"}
    await sf.set_config(fields={"Account": ["Name", "Phone"]})
    status, got, _ = await sf.rest(
        "POST", "sobjects/Account", token=token, json_body={"Name": "x", "Fax": "1"}
    )
    assert (status, got) == (
        400,
        [
            {
                "message": "No such column 'Fax' on sobject of type Account",
                "errorCode": "INVALID_FIELD",
                "fields": ["Fax"],
            }
        ],
    )

    status, got, _ = await sf.rest("GET", "limits", token="00Dxx0000000001!expired")
    assert (status, got) == (
        401,
        [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}],
    )
    assert await sf.published() == []


async def test_upsert_by_external_id(salesforce_server: SalesforceServer, token: str) -> None:
    sf = salesforce_server
    path = "sobjects/Account/Stripe_Customer_Id__c/cus_TEST123"
    status, body, _ = await sf.rest("PATCH", path, token=token, json_body={"Name": "Initech"})
    assert status == 201 and body["created"] is True and body["success"] is True
    account_id = body["id"]
    status, body, _ = await sf.rest("PATCH", path, token=token, json_body={"Name": "Initech Ltd"})
    assert (status, body) == (
        200,
        {"id": account_id, "success": True, "errors": [], "created": False},
    )
    status, record, _ = await sf.rest("GET", path, token=token)
    assert (record["Id"], record["Name"], record["Stripe_Customer_Id__c"]) == (
        account_id,
        "Initech Ltd",
        "cus_TEST123",
    )

    status, body, _ = await sf.rest(
        "PATCH", "sobjects/Account/Phone/123", token=token, json_body={"Name": "x"}
    )
    assert (status, body[0]["errorCode"]) == (404, "NOT_FOUND")
    status, body, _ = await sf.rest(
        "PATCH",
        "sobjects/Account/Stripe_Customer_Id__c/cus_NEW?updateOnly=true",
        token=token,
        json_body={"Name": "x"},
    )
    assert status == 404

    await sf.edit_record("Account", {"Name": "Dup", "Stripe_Customer_Id__c": "cus_TEST123"})
    status, body, _ = await sf.rest("PATCH", path, token=token, json_body={"Name": "x"})
    assert status == 300 and len(body) == 2

    changes = [header_of(e)["changeType"] for e in await sf.published("Account")]
    assert changes == ["CREATE", "UPDATE", "CREATE"]


async def test_collections_are_one_transaction(
    salesforce_server: SalesforceServer, token: str
) -> None:
    sf = salesforce_server
    records = [{"attributes": {"type": "Account"}, "Name": f"A{i}"} for i in range(3)]
    records.append({"attributes": {"type": "Contact"}, "LastName": "C"})
    status, results, headers = await sf.rest(
        "POST",
        "composite/sobjects",
        token=token,
        headers=CALL_OPTIONS,
        json_body={"allOrNone": False, "records": records},
    )
    assert status == 200 and all(r["success"] for r in results) and len(results) == 4
    assert headers["Sforce-Limit-Info"] == "api-usage=1/15000"  # one call
    events = await sf.published()
    assert len({header_of(e)["transactionKey"] for e in events}) == 1
    assert [header_of(e)["sequenceNumber"] for e in events] == [1, 2, 3, 4]
    assert [header_of(e)["entityName"] for e in events] == ["Account"] * 3 + ["Contact"]
    assert len({header_of(e)["commitNumber"] for e in events}) == 1

    ids = [r["id"] for r in results]
    updates = [{"attributes": {"type": "Account"}, "Id": i, "Phone": "9"} for i in ids[:3]]
    status, results, _ = await sf.rest(
        "PATCH",
        "composite/sobjects",
        token=token,
        json_body={"allOrNone": True, "records": updates},
    )
    assert [r["success"] for r in results] == [True] * 3
    status, results, _ = await sf.rest(
        "DELETE", f"composite/sobjects?ids={ids[3]},001xx000000zzzzAAA&allOrNone=false", token=token
    )
    assert [r["success"] for r in results] == [True, False]
    assert results[1]["errors"][0]["statusCode"] == "INVALID_CROSS_REFERENCE_KEY"

    upserts = [
        {"attributes": {"type": "Account"}, "Stripe_Customer_Id__c": "cus_1", "Name": "U1"},
        {"attributes": {"type": "Account"}, "Stripe_Customer_Id__c": "cus_2", "Name": "U2"},
    ]
    status, results, _ = await sf.rest(
        "PATCH",
        "composite/sobjects/Account/Stripe_Customer_Id__c",
        token=token,
        json_body={"allOrNone": False, "records": upserts},
    )
    assert [r["created"] for r in results] == [True, True]
    upserts[0]["Name"] = "U1 renamed"
    status, results, _ = await sf.rest(
        "PATCH",
        "composite/sobjects/Account/Stripe_Customer_Id__c",
        token=token,
        json_body={"allOrNone": False, "records": upserts},
    )
    assert [r["created"] for r in results] == [False, False]
    last = (await sf.published())[-2:]
    assert [header_of(e)["changedFields"] for e in last] == [
        ["Name", "LastModifiedDate"],
        ["LastModifiedDate"],
    ]

    status, body, _ = await sf.rest(
        "POST",
        "composite/sobjects",
        token=token,
        json_body={"records": [{"attributes": {"type": "Account"}, "Name": "x"}] * 201},
    )
    assert (status, body[0]["errorCode"]) == (400, "EXCEEDED_ID_LIMIT")


async def test_collections_all_or_none_rolls_back(
    salesforce_server: SalesforceServer, token: str
) -> None:
    sf = salesforce_server
    records = [
        {"attributes": {"type": "Account"}, "Name": "ok"},
        {"attributes": {"type": "Account"}, "Phone": "missing name"},
    ]
    status, results, _ = await sf.rest(
        "POST", "composite/sobjects", token=token, json_body={"allOrNone": True, "records": records}
    )
    assert status == 200
    assert results[0] == {
        "success": False,
        "errors": [
            {
                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "message": "Record rolled back because not all records were valid "
                "and the request was using AllOrNone header",
                "fields": [],
            }
        ],
    }
    assert results[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert await sf.records("Account") == [] and await sf.published() == []

    status, results, _ = await sf.rest(
        "POST",
        "composite/sobjects",
        token=token,
        json_body={"allOrNone": False, "records": records},
    )
    assert [r["success"] for r in results] == [True, False]
    assert len(await sf.records("Account")) == 1 and len(await sf.published()) == 1


async def test_query_with_paging_and_filters(
    salesforce_server: SalesforceServer, token: str
) -> None:
    sf = salesforce_server
    await sf.set_config(queryPageSize=2)
    account = await sf.edit_record("Account", {"Name": "Parent Co"})
    for i in range(5):
        await sf.edit_record(
            "Contact",
            {
                "LastName": f"L{i}",
                "Email": f"c{i}@x.test",
                "AccountId": account["id"],
                "Level__c": i % 2,
            },
        )
    status, page, _ = await sf.rest("GET", "query?q=SELECT Id, LastName FROM Contact", token=token)
    assert status == 200 and page["totalSize"] == 5 and page["done"] is False
    names = [r["LastName"] for r in page["records"]]
    while not page["done"]:
        status, page, _ = await sf.rest("GET", page["nextRecordsUrl"], token=token)
        assert status == 200 and page["totalSize"] == 5
        names += [r["LastName"] for r in page["records"]]
    assert names == [f"L{i}" for i in range(5)]
    assert "nextRecordsUrl" not in page

    q = (
        "SELECT Id, Email, Account.Name FROM Contact"
        " WHERE Level__c = 1 AND Email != 'c1@x.test' LIMIT 5"
    )
    _, page, _ = await sf.rest("GET", f"query?q={q}", token=token)
    assert [r["Email"] for r in page["records"]] == ["c3@x.test"]
    assert page["records"][0]["Account"]["Name"] == "Parent Co"
    _, page, _ = await sf.rest(
        "GET", "query?q=select email from contact where LASTNAME = 'l4'", token=token
    )
    assert page["records"][0]["Email"] == "c4@x.test"  # SOQL: case-insensitive names and text
    _, page, _ = await sf.rest(
        "GET", "query?q=SELECT COUNT() FROM Contact WHERE Level__c IN (0)", token=token
    )
    assert (page["totalSize"], page["records"]) == (3, [])
    _, page, _ = await sf.rest(
        "GET", "query?q=SELECT Id FROM Contact ORDER BY LastName DESC LIMIT 1", token=token
    )
    contact_id = page["records"][0]["Id"]

    await sf.rest("DELETE", f"sobjects/Contact/{contact_id}", token=token)
    _, page, _ = await sf.rest("GET", "query?q=SELECT Id FROM Contact", token=token)
    assert page["totalSize"] == 4
    _, page, _ = await sf.rest(
        "GET", "queryAll?q=SELECT Id, IsDeleted FROM Contact WHERE IsDeleted = true", token=token
    )
    assert [r["Id"] for r in page["records"]] == [contact_id]

    _, page, _ = await sf.rest(
        "GET", "query?q=SELECT IsSandbox, OrganizationType FROM Organization", token=token
    )
    assert page["records"][0]["IsSandbox"] is False
    assert page["records"][0]["OrganizationType"] == "Developer Edition"
    status, page, _ = await sf.rest("GET", "query/01gxx0000000000999AAA-2", token=token)
    assert (status, page[0]["errorCode"]) == (400, "INVALID_QUERY_LOCATOR")


async def test_injected_rest_failures_and_limits(
    salesforce_server: SalesforceServer, token: str
) -> None:
    sf = salesforce_server
    account = await sf.edit_record("Account", {"Name": "Lock me"})
    path = f"sobjects/Account/{account['id']}"

    await sf.fail_next_rest("UNABLE_TO_LOCK_ROW", count=2, method="PATCH")
    for _ in range(2):
        status, body, _ = await sf.rest("PATCH", path, token=token, json_body={"Phone": "1"})
        assert (status, body[0]["errorCode"]) == (400, "UNABLE_TO_LOCK_ROW")
    status, _, _ = await sf.rest("GET", path, token=token)  # GETs were not targeted
    assert status == 200
    status, _, _ = await sf.rest("PATCH", path, token=token, json_body={"Phone": "1"})
    assert status == 204

    await sf.fail_next_rest("REQUEST_LIMIT_EXCEEDED")
    status, body, _ = await sf.rest("GET", path, token=token)
    assert (status, body[0]["errorCode"], body[0]["message"]) == (
        403,
        "REQUEST_LIMIT_EXCEEDED",
        "TotalRequests Limit exceeded.",
    )
    await sf.fail_next_rest("SERVER_UNAVAILABLE")
    status, _, _ = await sf.rest("GET", path, token=token)
    assert status == 503

    await sf.fail_next_rest(
        "FIELD_CUSTOM_VALIDATION_EXCEPTION", per_record=True, message="Phone must be E.164"
    )
    records = [{"attributes": {"type": "Account"}, "Name": n} for n in ("v1", "v2")]
    status, results, _ = await sf.rest(
        "POST",
        "composite/sobjects",
        token=token,
        json_body={"allOrNone": False, "records": records},
    )
    assert results[0] == {
        "success": False,
        "errors": [
            {
                "statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                "message": "Phone must be E.164",
                "fields": [],
            }
        ],
    }
    assert results[1]["success"] is True

    status, limits, headers = await sf.rest("GET", "limits", token=token)
    used = int(headers["Sforce-Limit-Info"].split("=")[1].split("/")[0])
    assert limits["DailyApiRequests"] == {"Max": 15000, "Remaining": 15000 - used}
    await sf.set_config(apiMax=used + 1)
    status, _, _ = await sf.rest("GET", "limits", token=token)
    assert status == 200
    status, body, headers = await sf.rest("GET", "limits", token=token)
    assert (status, body[0]["errorCode"]) == (403, "REQUEST_LIMIT_EXCEEDED")
    assert headers["Sforce-Limit-Info"] == f"api-usage={used + 2}/{used + 1}"


async def test_state_survives_a_kill(salesforce_server: SalesforceServer, token: str) -> None:
    sf = salesforce_server
    status, body, _ = await sf.rest(
        "POST", "sobjects/Account", token=token, json_body={"Name": "Durable"}
    )
    first = (await sf.published())[0]["replayIds"]
    port = sf.port
    await sf.restart()  # SIGKILL, same port, same state file
    assert sf.port == port
    status, record, _ = await sf.rest(
        "GET", f"sobjects/Account/{body['id']}", token=token
    )  # token survived
    assert (status, record["Name"]) == (200, "Durable")
    await sf.rest(
        "PATCH", f"sobjects/Account/{body['id']}", token=token, json_body={"Name": "Still"}
    )
    second = (await sf.published())[1]["replayIds"]
    assert all(second[c] > first[c] for c in first)
    retained = await sf.events("/data/AccountChangeEvent")
    assert [e["data"]["event"]["replayId"] for e in retained["events"]] == [
        first["/data/AccountChangeEvent"],
        second["/data/AccountChangeEvent"],
    ]


# ---- Bayeux, raw: exact wire texts --------------------------------------------------------


class Bayeux:
    """A bare long-polling client, to look at exact responses."""

    def __init__(self, sf: SalesforceServer, token: str | None, version: str = "64.0") -> None:
        self.sf = sf
        self.url = f"{sf.base_url}/cometd/{version}"
        self.token = token
        self.client_id: str | None = None
        self.next_id = 0

    async def send(self, *messages: dict[str, Any]) -> list[dict[str, Any]]:
        for m in messages:
            self.next_id += 1
            m.setdefault("id", str(self.next_id))
            if self.client_id and m["channel"] != "/meta/handshake":
                m.setdefault("clientId", self.client_id)
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with self.sf.http.post(self.url, json=list(messages), headers=headers) as r:
            assert r.status == 200
            return list(await r.json())

    async def handshake(self) -> dict[str, Any]:
        (reply,) = await self.send(
            {
                "channel": "/meta/handshake",
                "version": "1.0",
                "supportedConnectionTypes": ["long-polling"],
            }
        )
        if reply["successful"]:
            self.client_id = reply["clientId"]
        return reply

    async def connect(self) -> list[dict[str, Any]]:
        # advice.timeout 0: answer now with whatever is queued instead of holding the poll.
        return await self.send(
            {"channel": "/meta/connect", "connectionType": "long-polling", "advice": {"timeout": 0}}
        )

    async def subscribe(self, channel: str, replay: int | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"channel": "/meta/subscribe", "subscription": channel}
        if replay is not None:
            message["ext"] = {"replay": {channel: replay}}
        (reply,) = await self.send(message)
        return reply


def events_in(replies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in replies if not r["channel"].startswith("/meta/")]


async def test_bayeux_handshake_and_auth_errors(
    salesforce_server: SalesforceServer, token: str
) -> None:
    sf = salesforce_server
    for bad in (None, "00Dxx0000000001!bogus"):
        reply = await Bayeux(sf, bad).handshake()
        assert reply["successful"] is False
        assert reply["error"] == "403::Handshake denied"
        assert reply["ext"] == {"sfdc": {"failureReason": "401::Authentication invalid"}}

    b = Bayeux(sf, token)
    reply = await b.handshake()
    assert reply["successful"] is True
    assert reply["supportedConnectionTypes"] == ["long-polling"]
    assert reply["ext"] == {"replay": True, "payload.format": True}
    (connected,) = await b.connect()
    assert connected["successful"] is True and connected["advice"]["reconnect"] == "retry"

    b.token = "00Dxx0000000001!bogus"
    (reply,) = await b.connect()
    assert (reply["successful"], reply["error"], reply["advice"]) == (
        False,
        "401::Authentication invalid",
        {"reconnect": "none"},
    )

    # Revoked: the old token is invalid, and a new token cannot revive the old session.
    b.token = token
    assert await sf.revoke_tokens() >= 1
    (reply,) = await b.connect()
    assert reply["error"] == "401::Authentication invalid"
    b.token = await sf.access_token()
    (reply,) = await b.connect()
    assert (reply["error"], reply["advice"]["reconnect"]) == ("403::Unknown client", "handshake")


async def test_bayeux_replay_and_subscribe_errors(
    salesforce_server: SalesforceServer, token: str
) -> None:
    sf = salesforce_server
    published = [
        await sf.publish("Account", "UPDATE", ["001xx000003DGb2AAG"], {"Phone": str(i)}, ["Phone"])
        for i in range(4)
    ]
    account_ids = [p["replayIds"]["/data/AccountChangeEvent"] for p in published]
    all_ids = [p["replayIds"]["/data/ChangeEvents"] for p in published]

    b = Bayeux(sf, token)
    await b.handshake()
    await b.connect()
    reply = await b.subscribe("/data/NoSuchChangeEvent")
    assert (reply["successful"], reply["error"]) == (
        False,
        "400::The channel you requested to subscribe to doesn't exist",
    )
    reply = await b.subscribe("/data/AccountChangeEvent", account_ids[0] - 1_000_000)
    assert reply["error"] == BAD_REPLAY.format(account_ids[0] - 1_000_000)

    assert (await b.subscribe("/data/AccountChangeEvent", account_ids[1]))["successful"] is True
    assert (await b.subscribe("/data/ChangeEvents", -2))["successful"] is True
    delivered = events_in(await b.connect())
    per_channel = {
        ch: [e["data"]["event"]["replayId"] for e in delivered if e["channel"] == ch]
        for ch in ("/data/AccountChangeEvent", "/data/ChangeEvents")
    }
    assert per_channel == {
        "/data/AccountChangeEvent": account_ids[2:],
        "/data/ChangeEvents": all_ids,
    }
    sample = delivered[0]
    assert set(sample) == {"channel", "data"} and set(sample["data"]) == {
        "schema",
        "payload",
        "event",
    }

    # Live events after the backlog, on both channels.
    live = await sf.publish(
        "Account", "UPDATE", ["001xx000003DGb2AAG"], {"Phone": "live"}, ["Phone"]
    )
    delivered = events_in(await b.connect())
    assert sorted(e["data"]["event"]["replayId"] for e in delivered) == sorted(
        live["replayIds"].values()
    )

    # Expired events: ids before the retention floor are invalid; the floor itself is fine.
    await sf.expire_until(account_ids[2], "/data/AccountChangeEvent")
    b2 = Bayeux(sf, token)
    await b2.handshake()
    await b2.connect()
    reply = await b2.subscribe("/data/AccountChangeEvent", account_ids[1])
    assert reply["error"] == BAD_REPLAY.format(account_ids[1])
    assert (await b2.subscribe("/data/AccountChangeEvent", account_ids[2]))["successful"] is True
    assert [e["data"]["event"]["replayId"] for e in events_in(await b2.connect())] == [
        account_ids[3],
        live["replayIds"]["/data/AccountChangeEvent"],
    ]

    # A reset stream (sandbox refresh, org migration) invalidates every stored id.
    await sf.reset_stream()
    b3 = Bayeux(sf, token)
    await b3.handshake()
    await b3.connect()
    reply = await b3.subscribe("/data/ChangeEvents", all_ids[-1])
    assert reply["error"] == BAD_REPLAY.format(all_ids[-1])


async def test_bayeux_session_drop_and_injected_errors(
    salesforce_server: SalesforceServer, token: str
) -> None:
    sf = salesforce_server
    b = Bayeux(sf, token)
    await b.handshake()
    await b.connect()
    assert await sf.drop_sessions() == 1
    (reply,) = await b.connect()
    assert (reply["successful"], reply["error"], reply["advice"]) == (
        False,
        "403::Unknown client",
        {"reconnect": "handshake", "interval": 0},
    )

    await b.handshake()
    await b.connect()
    await sf.limit_exceeded(count=1, on=["subscribe"])
    reply = await b.subscribe("/data/AccountChangeEvent")
    assert reply["error"] == "403::Organization total events daily limit exceeded"
    await sf.limit_exceeded(count=1, on=["connect"])
    (reply,) = await b.connect()
    assert (reply["error"], reply["advice"]) == (
        "403::Organization total events daily limit exceeded",
        {"reconnect": "none"},
    )

    await sf.too_busy(count=1, on=["handshake"])
    reply = await Bayeux(sf, token).handshake()
    assert reply["error"] == "403::Handshake denied"
    assert (
        reply["ext"]["sfdc"]["failureReason"]
        == "503::Server is too busy. Please try your request again later."
    )

    # Silent failure: successful reply, but nothing subscribed.
    await sf.fail_next_subscribes(1, mode="silent")
    assert (await b.subscribe("/data/AccountChangeEvent"))["successful"] is True
    assert (await sf.cometd_clients())[0]["subscriptions"] == []
    await sf.fail_next_subscribes(1, mode="error", error="403::Restricted channel")
    assert (await b.subscribe("/data/AccountChangeEvent"))["error"] == "403::Restricted channel"
    assert (await b.subscribe("/data/AccountChangeEvent"))["successful"] is True
    assert (await sf.cometd_clients())[0]["subscriptions"] == ["/data/AccountChangeEvent"]


# ---- aiosfstream-ng against the server -----------------------------------------------------


class LocalPasswordAuthenticator(PasswordAuthenticator):
    """aiosfstream posts to login.salesforce.com; point it at the test server."""

    def __init__(self, token_url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._local_token_url = token_url

    @property
    def _token_url(self) -> str:
        return self._local_token_url


class JwtBearerAuthenticator(AuthenticatorBase):
    """aiosfstream ships no JWT authenticator; this is the shape sfstripe would use."""

    def __init__(self, token_url: str, private_key_pem: str) -> None:
        super().__init__()
        self._local_token_url = token_url
        self._key = private_key_pem
        self.token_requests = 0

    async def _authenticate(self) -> tuple[int, dict[str, Any]]:
        import aiohttp

        self.token_requests += 1
        assertion = await asyncio.to_thread(sign_jwt, self._key, jwt_claims())
        async with aiohttp.ClientSession() as session:
            data = {"grant_type": JWT_GRANT, "assertion": assertion}
            async with session.post(self._local_token_url, data=data) as response:
                return response.status, await response.json()


@pytest.fixture(autouse=True)
def cometd_version(monkeypatch: pytest.MonkeyPatch) -> None:
    # aiosfstream-ng hardcodes API 45.0; the server serves any version, use the current one.
    monkeypatch.setattr(sf_client_module, "API_VERSION", "64.0")


@asynccontextmanager
async def streaming_client(
    sf: SalesforceServer, *, auth: AuthenticatorBase | None = None, **kwargs: Any
) -> AsyncIterator[Client]:
    auth = auth or LocalPasswordAuthenticator(
        sf.token_url,
        consumer_key=CLIENT_ID,
        consumer_secret=CLIENT_SECRET,
        username=INTEGRATION_USERNAME,
        password=INTEGRATION_PASSWORD,
    )
    # connection_timeout=0 works around aiocometd-ng calling asyncio.wait_for(..., loop=)
    # (TypeError on Python >= 3.10) whenever the transport is reconnecting: with the default
    # 10 s, receive() raises TransportTimeoutError at once instead of waiting.
    # The client is created here, inside the running loop (its __init__ grabs the loop).
    client = Client(auth, connection_timeout=0, **kwargs)
    await client.open()
    try:
        yield client
    finally:
        await client.close()


async def receive(client: Client) -> dict[str, Any]:
    async with asyncio.timeout(RECEIVE_TIMEOUT):
        return dict(await client.receive())


def replay_id(message: Mapping[str, Any]) -> int:
    return int(message["data"]["event"]["replayId"])


async def create_account(sf: SalesforceServer, token: str, name: str) -> str:
    status, body, _ = await sf.rest(
        "POST", "sobjects/Account", token=token, headers=CALL_OPTIONS, json_body={"Name": name}
    )
    assert status == 201
    return str(body["id"])


async def test_aiosfstream_receives_cdc_for_rest_create(
    salesforce_server: SalesforceServer, token: str
) -> None:
    sf = salesforce_server
    async with streaming_client(sf) as client:
        await client.subscribe("/data/AccountChangeEvent")
        account_id = await create_account(sf, token, "Streamed")
        message = await receive(client)
    assert message["channel"] == "/data/AccountChangeEvent"
    header = message["data"]["payload"]["ChangeEventHeader"]
    assert header["entityName"] == "Account" and header["changeType"] == "CREATE"
    assert header["recordIds"] == [account_id]
    assert header["changeOrigin"] == ORIGIN and header["commitUser"] == INTEGRATION_USER_ID
    assert message["data"]["payload"]["Name"] == "Streamed"
    assert replay_id(message) == (await sf.published())[0]["replayIds"]["/data/AccountChangeEvent"]


async def test_aiosfstream_with_jwt_authenticator(
    salesforce_server: SalesforceServer, token: str
) -> None:
    sf = salesforce_server
    private_pem, public_pem = generate_rsa_keypair()
    await sf.add_client(CLIENT_ID, publicKey=public_pem)
    auth = JwtBearerAuthenticator(sf.token_url, private_pem)
    async with streaming_client(sf, auth=auth) as client:
        await client.subscribe("/data/ChangeEvents")
        await create_account(sf, token, "Via JWT")
        message = await receive(client)
    assert message["data"]["payload"]["Name"] == "Via JWT"


async def test_aiosfstream_replays_from_stored_id_after_reconnect(
    salesforce_server: SalesforceServer, token: str
) -> None:
    sf = salesforce_server
    storage: dict[str, ReplayMarker] = {}
    channel = "/data/AccountChangeEvent"
    async with streaming_client(sf, replay=storage) as client:
        await client.subscribe(channel)
        await create_account(sf, token, "one")
        first = await receive(client)
    assert storage[channel].replay_id == replay_id(first)

    await create_account(sf, token, "two")  # while nobody listens
    await create_account(sf, token, "three")
    async with streaming_client(sf, replay=storage) as client:
        await client.subscribe(channel)
        replayed = [await receive(client) for _ in range(2)]
        await create_account(sf, token, "four")
        live = await receive(client)
    names = [m["data"]["payload"]["Name"] for m in [*replayed, live]]
    assert names == ["two", "three", "four"]  # the stored one is not redelivered
    assert storage[channel].replay_id == replay_id(live)


async def test_aiosfstream_stale_replay_id(salesforce_server: SalesforceServer, token: str) -> None:
    sf = salesforce_server
    channel = "/data/AccountChangeEvent"
    for name in ("a", "b", "c"):
        await create_account(sf, token, name)
    ids = [p["replayIds"][channel] for p in await sf.published()]
    await sf.expire_until(ids[1], channel)
    stale = {channel: ReplayMarker(date="0", replay_id=ids[0])}

    async with streaming_client(sf, replay=dict(stale)) as client:
        with pytest.raises(ServerError) as failure:
            await client.subscribe(channel)
    assert failure.value.response is not None
    assert failure.value.response["error"] == BAD_REPLAY.format(ids[0])
    assert failure.value.error_code == 400

    # The library's fallback resubscribes with -2: everything still retained.
    async with streaming_client(
        sf, replay=dict(stale), replay_fallback=ReplayOption.ALL_EVENTS
    ) as client:
        await client.subscribe(channel)
        message = await receive(client)
    assert replay_id(message) == ids[2]


async def test_aiosfstream_resubscribes_after_session_drop(
    salesforce_server: SalesforceServer, token: str
) -> None:
    sf = salesforce_server
    storage: dict[str, ReplayMarker] = {}
    async with streaming_client(sf, replay=storage) as client:
        await client.subscribe("/data/AccountChangeEvent")
        await create_account(sf, token, "before")
        assert (await receive(client))["data"]["payload"]["Name"] == "before"
        old_client_id = (await sf.cometd_clients())[0]["clientId"]

        # 403::Unknown client on the next connect -> handshake -> resubscribe with the stored id.
        assert await sf.drop_sessions() == 1
        await create_account(sf, token, "while dropped")
        assert (await receive(client))["data"]["payload"]["Name"] == "while dropped"
        sessions = await sf.cometd_clients()
        assert [s["subscriptions"] for s in sessions] == [["/data/AccountChangeEvent"]]
        assert sessions[0]["clientId"] != old_client_id


async def test_aiosfstream_reauthenticates_after_token_revocation(
    salesforce_server: SalesforceServer, token: str
) -> None:
    sf = salesforce_server
    storage: dict[str, ReplayMarker] = {}
    async with streaming_client(sf, replay=storage) as client:
        await client.subscribe("/data/ChangeEvents")
        await create_account(sf, token, "before revoke")  # gives the client a stored replay id
        assert (await receive(client))["data"]["payload"]["Name"] == "before revoke"
        await sf.revoke_tokens()
        # 401::Authentication invalid -> new token -> 403::Unknown client -> handshake.
        fresh = await sf.access_token()
        await create_account(sf, fresh, "after revoke")
        assert (await receive(client))["data"]["payload"]["Name"] == "after revoke"
        assert (await sf.cometd_clients())[0]["revoked"] is False


async def test_aiosfstream_survives_server_restart_mid_stream(
    salesforce_server: SalesforceServer, token: str
) -> None:
    sf = salesforce_server
    storage: dict[str, ReplayMarker] = {}
    async with streaming_client(sf, replay=storage) as client:
        await client.subscribe("/data/AccountChangeEvent")
        await create_account(sf, token, "before restart")
        assert (await receive(client))["data"]["payload"]["Name"] == "before restart"

        await sf.restart()  # SIGKILL; sessions are gone, retained events and tokens persist
        await create_account(sf, token, "after restart")
        message = await receive(client)
    # Delivered once, via replay from the stored id or live, whichever came first.
    assert message["data"]["payload"]["Name"] == "after restart"
    assert replay_id(message) == (await sf.published())[-1]["replayIds"]["/data/AccountChangeEvent"]


async def test_aiosfstream_sees_daily_limit_errors(
    salesforce_server: SalesforceServer, token: str
) -> None:
    sf = salesforce_server
    limit = "403::Organization total events daily limit exceeded"
    async with streaming_client(sf) as client:
        # aiocometd treats any 401/403 as an auth problem: it re-authenticates and resends once,
        # so an injected 403 must last two requests for the client to see it.
        await sf.limit_exceeded(count=2, on=["subscribe"])
        with pytest.raises(ServerError) as failure:
            await client.subscribe("/data/AccountChangeEvent")
        assert failure.value.error == limit
        await client.subscribe("/data/AccountChangeEvent")

        # On connect (advice reconnect: none) the client stops; receive() reports it once the
        # event that answered the held poll has been consumed.
        await sf.limit_exceeded(count=2, on=["connect"])
        await create_account(sf, token, "last one")
        assert (await receive(client))["data"]["payload"]["Name"] == "last one"
        with pytest.raises(ServerError) as failure:
            await receive(client)
        assert failure.value.response is not None
        assert failure.value.response["error"] == limit


async def test_key_prefixes_custom_objects_and_sequence_gaps(
    salesforce_server: SalesforceServer, token: str
) -> None:
    sf = salesforce_server
    product = await create(sf, token, "Product2", {"Name": "Seat"})
    pricebook = await create(sf, token, "Pricebook2", {"Name": "Standard"})
    entry = await create(
        sf,
        token,
        "PricebookEntry",
        {"Pricebook2Id": pricebook, "Product2Id": product, "UnitPrice": 10},
    )
    assert [product[:3], pricebook[:3], entry[:3]] == ["01t", "01s", "01u"]

    # Custom objects: no events until selected for CDC; then /data/<Name>__ChangeEvent.
    await create(sf, token, "Employee__c", {"Name": "quiet"})
    assert await sf.published("Employee__c") == []
    config = await sf.control("GET", "config")
    await sf.set_config(cdcEntities=[*config["cdcEntities"], "Employee__c"])
    employee = await create(sf, token, "Employee__c", {"Name": "loud"})
    (event,) = await sf.published("Employee__c")
    assert set(event["replayIds"]) == {"/data/ChangeEvents", "/data/Employee__ChangeEvent"}
    assert header_of(event)["recordIds"] == [employee]

    # Objects not selected for CDC leave gaps in the transaction's sequence numbers.
    records = [
        {"attributes": {"type": "Account"}, "Name": "A"},
        {
            "attributes": {"type": "Opportunity"},
            "Name": "O",
            "StageName": "New",
            "CloseDate": "2026-01-01",
        },
        {"attributes": {"type": "Contact"}, "LastName": "C"},
    ]
    status, results, _ = await sf.rest(
        "POST", "composite/sobjects", token=token, json_body={"records": records}
    )
    assert status == 200 and all(r["success"] for r in results)
    assert results[1]["id"].startswith("006")
    last_two = (await sf.published())[-2:]
    assert [header_of(e)["sequenceNumber"] for e in last_two] == [1, 3]


async def create(sf: SalesforceServer, token: str, sobject: str, fields: dict[str, Any]) -> str:
    status, body, _ = await sf.rest("POST", f"sobjects/{sobject}", token=token, json_body=fields)
    assert status == 201, body
    return str(body["id"])
