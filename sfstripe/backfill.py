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
from handlers.customers.mapping import API_NAME, Mapping, Scalar
from handlers.customers.salesforce_records import SalesforceRecords, query_all, soql_literal
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
        if not sep or not API_NAME.match(name.strip()):
            raise ValueError(f"--where {pair!r}: expected FIELD=VALUE with a field's API name")
        lowered = value.strip().casefold()
        conditions[name.strip()] = lowered == "true" if lowered in ("true", "false") else value
    return conditions


async def backfill(
    mapping: Mapping,
    event_log: EventLog,
    salesforce: SalesforceApi,
    stripe: StripeApi,
    where: dict[str, Scalar],
    *,
    create_matched: bool = False,
) -> dict[str, Any]:
    """Append the snapshots; an account that an unlinked Stripe customer matches by email is
    held back (a person decides whether to adopt that customer) unless `create_matched`."""
    records = SalesforceRecords(mapping)
    accounts = await records.query_accounts(salesforce, where)
    matches = await _unlinked_matches(records, salesforce, stripe, {a["Id"] for a in accounts})
    held = set() if create_matched else {match["account"] for match in matches}
    chosen = [record for record in accounts if record["Id"] not in held]
    stored = duplicates = 0
    for start in range(0, len(chosen), BATCH):
        events = [
            snapshot_event(record, f"backfill:{record.get('LastModifiedDate')}", "backfill")
            for record in chosen[start : start + BATCH]
        ]
        result = await event_log.append(events)
        stored += len(result.stored)
        duplicates += result.duplicates
    log.info(
        "backfill_appended",
        accounts=len(accounts),
        stored=stored,
        duplicates=duplicates,
        held_back=len(held),
    )
    return {
        "object": "Account",
        "accounts": len(accounts),
        "snapshots_stored": stored,
        "already_stored": duplicates,
        "held_back": sorted(held),
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
        rows = await query_all(
            salesforce, f"SELECT AccountId FROM Contact WHERE Email IN ({chunk})"
        )
        candidates |= {r["AccountId"] for r in rows if r.get("AccountId") in account_ids}
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
                note="not linked, and the account is held back from the backfill: set the"
                " customer's metadata.sf_account_id to adopt it, or backfill with"
                " --create-matched",
            )
    return matches
