"""`sfstripe backfill`: Accounts that existed before sfstripe was connected get their Stripe
customers, through the log like every other change (one snapshot event per Account, applied in
order by the `stripe-customers` handler of the running daemon).

It also reports Stripe customers that carry no `sf_account_id` but whose email is an Account's
billing contact's: probably the same customer, created before sfstripe. They are not linked
(a person decides: putting the Account Id into the customer's `sf_account_id` metadata before the
backfill makes sfstripe adopt it instead of creating a second customer).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog

from handlers.clients import SalesforceApi, StripeApi
from handlers.customers.mapping import Mapping, Scalar
from handlers.customers.salesforce_records import SalesforceRecords, soql_literal
from handlers.customers.snapshots import snapshot_event
from state.log import EventLog

log = structlog.get_logger(__name__)

BATCH = 500
EMAILS_PER_QUERY = 100


def where_conditions(pairs: tuple[str, ...]) -> dict[str, Scalar]:
    """`FIELD=VALUE` options; `true`/`false` are checkbox values."""
    conditions: dict[str, Scalar] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--where {pair!r}: expected FIELD=VALUE")
        lowered = value.strip().casefold()
        conditions[name.strip()] = lowered == "true" if lowered in ("true", "false") else value
    return conditions


async def backfill(
    mapping: Mapping,
    event_log: EventLog,
    salesforce: SalesforceApi,
    stripe: StripeApi,
    where: dict[str, Scalar],
) -> dict[str, Any]:
    records = SalesforceRecords(mapping)
    accounts = await records.query_accounts(salesforce, where)
    stored = duplicates = 0
    for start in range(0, len(accounts), BATCH):
        events = [
            snapshot_event(record, f"backfill:{record.get('LastModifiedDate')}", "backfill")
            for record in accounts[start : start + BATCH]
        ]
        result = await event_log.append(events)
        stored += len(result.stored)
        duplicates += result.duplicates
    log.info("backfill_appended", accounts=len(accounts), stored=stored, duplicates=duplicates)
    matches = await _unlinked_matches(records, salesforce, stripe, {a["Id"] for a in accounts})
    return {
        "object": "Account",
        "accounts": len(accounts),
        "snapshots_stored": stored,
        "already_stored": duplicates,
        "finished_at": datetime.now(UTC).isoformat(),
        "unlinked_stripe_customers": matches,
    }


async def _stripe_customers_without_account(stripe: StripeApi) -> dict[str, list[str]]:
    """Email (case-folded) -> ids of Stripe customers that have no `sf_account_id`."""
    found: dict[str, list[str]] = {}
    params: dict[str, Any] = {"limit": 100}
    while True:
        page = await stripe.request("GET", "/v1/customers", params)
        for customer in page.get("data", []):
            email = customer.get("email")
            if email and not (customer.get("metadata") or {}).get("sf_account_id"):
                found.setdefault(str(email).casefold(), []).append(str(customer["id"]))
        if not page.get("has_more") or not page.get("data"):
            return found
        params = {"limit": 100, "starting_after": page["data"][-1]["id"]}


async def _unlinked_matches(
    records: SalesforceRecords,
    salesforce: SalesforceApi,
    stripe: StripeApi,
    account_ids: set[str],
) -> list[dict[str, str]]:
    by_email = await _stripe_customers_without_account(stripe)
    emails = sorted(by_email)
    candidates: set[str] = set()
    for start in range(0, len(emails), EMAILS_PER_QUERY):
        chunk = ", ".join(soql_literal(email) for email in emails[start : start + EMAILS_PER_QUERY])
        page = await salesforce.request(
            "GET", "query", params={"q": f"SELECT AccountId FROM Contact WHERE Email IN ({chunk})"}
        )
        candidates |= {r["AccountId"] for r in page["records"] if r.get("AccountId") in account_ids}
    matches = []
    for account_id in sorted(candidates):
        account = await records.account(salesforce, account_id)
        contact = await records.billing_contact(salesforce, account) if account else None
        email = str((contact or {}).get("Email") or "").casefold()
        for customer in by_email.get(email, []):
            matches.append({"stripe_customer": customer, "email": email, "account": account_id})
            log.warning(
                "unlinked_stripe_customer",
                stripe_customer=customer,
                account=account_id,
                note="not linked: set its metadata.sf_account_id to adopt it",
            )
    return matches
