"""Handler `stripe-customers`: Salesforce Accounts and their billing contacts -> Stripe customers.

- The first event of an Account that is not linked yet (its CREATE, a change, a snapshot) finds the
  Stripe customer carrying `metadata.sf_account_id` (a crash or a replay never makes a second one)
  or creates it, links `stripe:<cus>` to the account's stream and writes `Stripe_Customer_Id__c`.
- An UPDATE sends only the changed Salesforce-owned fields; a change that is sfstripe's own write
  coming back (same value as sfstripe last wrote) is an echo: counted, not re-applied.
- Whole re-reads (GAP_*, UNDELETE, large-field diffs, snapshots) compare with the Stripe customer
  and send only what differs; an overflow event becomes one snapshot per recently modified account.
- Deletion never deletes billing data: a deleted Account marks its customer with
  `metadata.sf_account_deleted`, and an UNDELETE clears the mark and syncs the account again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import stripe as stripe_sdk  # the name `stripe` is the API client here

from handlers.api import HandlerContext
from handlers.clients import SalesforceApi, StripeApi
from handlers.customers import fields as account_fields
from handlers.customers.mapping import (
    FieldRule,
    InvalidValue,
    Mapping,
    stripe_params,
    stripe_value,
)
from handlers.customers.salesforce_records import (
    SalesforceRecords,
    flat_fields,
    flat_names,
    query_all,
    record_gone,
    soql_literal,
)
from handlers.customers.snapshots import (
    SNAPSHOT_TYPE,
    adopted_event,
    decode_snapshot,
    snapshot_event,
)
from handlers.errors import PermanentError, RetryableError
from metrics.instruments import ECHOES_SUPPRESSED, SYNC_CUSTOMERS, SYNC_FIELDS_WRITTEN
from state.log import EventLog
from state.records import LoggedEvent
from state.sync_state import SyncState
from stream.salesforce.cdc_events import record_fields
from stream.salesforce.ids import id15, id18
from stream.salesforce.rest import SalesforceError

NAME = "stripe-customers"
DELETED_MARK = "sf_account_deleted"
OVERFLOW_MARGIN = timedelta(minutes=5)
WHOLE_READS = ("UNDELETE", "GAP_CREATE", "GAP_UPDATE", "GAP_UNDELETE")
ADDRESS = "address."


class _Change(msgspec.Struct):
    change_type: str
    changed_fields: list[str] = []
    reread: str | None = None
    change_origin: str | None = None
    commit_timestamp: int = 0
    raw: dict[str, Any] = {}


def is_account_id(value: str) -> bool:
    return value.startswith("001") and len(value) in (15, 18)


def whole_address(targets: set[str], every: Iterable[str]) -> set[str]:
    """Stripe takes an address whole (a part sent alone clears the others): with one address
    part, every mapped one."""
    if any(target.startswith(ADDRESS) for target in targets):
        return targets | {target for target in every if target.startswith(ADDRESS)}
    return targets


class StripeCustomers:
    name = NAME

    def __init__(self, mapping: Mapping, state: SyncState, event_log: EventLog, client_tag: str):
        self._mapping = mapping
        self._state = state
        self._log = event_log
        self._tag = f"client={client_tag}"
        self._records = SalesforceRecords(mapping)
        self._account_rules = mapping.owned_by("salesforce", "Account")
        self._contact_rules = mapping.owned_by("salesforce", "BillingContact")
        self._account_reads = {name for rule in self._account_rules for name in rule.reads()}
        self._contact_reads = {rule.field for rule in self._contact_rules}
        self._stripe_owned = {rule.field for rule in mapping.owned_by("stripe")}
        self._sfstripe_writes = self._stripe_owned | set(account_fields.WRITTEN)

    def wants(self, event: LoggedEvent) -> bool:
        if event.source == "sfstripe":
            return event.type == SNAPSHOT_TYPE
        return event.source == "salesforce" and event.object_type in ("Account", "Contact")

    async def handle(self, event: LoggedEvent, ctx: HandlerContext) -> None:
        sf, stripe = ctx.salesforce, ctx.stripe
        if sf is None or stripe is None:
            raise PermanentError("the customer sync needs both Salesforce and Stripe")
        if event.source == "sfstripe":
            # A snapshot says which account to look at; the record as it is now says what it
            # holds (a change applied since the snapshot was taken must not be undone).
            account_id = str(decode_snapshot(event.payload).record["Id"])
            await self._sync_account(ctx, sf, stripe, account_id)
            return
        change = msgspec.json.decode(event.payload, type=_Change)
        if change.reread == "entity":
            await self._overflow(ctx, sf, event, change)
        elif event.object_type == "Account":
            await self._account(ctx, sf, stripe, event, change)
        else:
            await self._contact(ctx, sf, stripe, event, change)

    # ---- Accounts ---------------------------------------------------------------------------

    async def _account(
        self,
        ctx: HandlerContext,
        sf: SalesforceApi,
        stripe: StripeApi,
        event: LoggedEvent,
        change: _Change,
    ) -> None:
        account_id = str(event.object_id)
        kind = change.change_type
        if kind in ("DELETE", "GAP_DELETE"):
            await self._mark_deleted(ctx, stripe, account_id, deleted=True)
            return
        if kind.endswith("UNDELETE"):
            await self._mark_deleted(ctx, stripe, account_id, deleted=False)
        values = flat_fields(record_fields({"raw": change.raw}))
        changed = list(values) if kind == "CREATE" else flat_names(change.changed_fields)
        changed = await self._without_echoes(
            ctx, "Account", account_id, values=values, changed=changed, change=change
        )
        linked = await self._state.linked_stripe_customers(account_id)
        whole = kind in WHOLE_READS or kind == "CREATE" or change.reread is not None
        # The record as it is now decides when the customer is still to be found or made, when
        # the account may have come into the filter, when the event is incomplete (gaps, diffs)
        # and in a replay (an old event's values must not undo later changes).
        if whole or ctx.replay or not linked or self._filter_touched(changed):
            await self._sync_account(ctx, sf, stripe, account_id)
            return
        customer = linked[0]
        lookup = self._mapping.billing_contact.lookup_field
        relevant = [name for name in changed if name in self._account_reads]
        contact_changed = bool(lookup) and lookup in changed
        if not (relevant or contact_changed):
            return
        touched = {r.stripe for r in self._account_rules if any(n in relevant for n in r.reads())}
        targets = whole_address(touched, (rule.stripe for rule in self._account_rules))
        rules = [rule for rule in self._account_rules if rule.stripe in targets]
        found = await self._changed_values(ctx, sf, account_id, values, rules)
        if found is None:
            return
        values, wanted = found
        if contact_changed:
            contact = await self._records.billing_contact(sf, {**values, "Id": account_id})
            wanted.update(self._contact_values(contact))
        await self._update(ctx, stripe, customer, wanted)

    async def _changed_values(
        self,
        ctx: HandlerContext,
        sf: SalesforceApi,
        account_id: str,
        values: dict[str, Any],
        rules: list[FieldRule],
    ) -> tuple[dict[str, Any], dict[str, str]] | None:
        """The Stripe values of the changed rules; None when the account does not sync.

        The record as it is now decides when the payload lacks a value (a person account's
        compound Name comes in parts) or holds one Stripe refuses: a dead letter retried after
        the value was fixed in Salesforce then goes through.
        """
        record = None
        if self._mapping.account_where or any(rule.field not in values for rule in rules):
            record = await self._records.account(sf, account_id)
            if record is None or not self._selected(ctx, record):
                return None
            values = {**values, **record}
        try:
            return values, {rule.stripe: rule.to_stripe(values) for rule in rules}
        except InvalidValue:
            if record is not None:
                raise
            record = await self._records.account(sf, account_id)
            if record is None:
                return None
            values = {**values, **record}
            return values, {rule.stripe: rule.to_stripe(values) for rule in rules}

    def _filter_touched(self, changed: list[str]) -> bool:
        return any(name in self._mapping.account_where for name in changed)

    def _selected(self, ctx: HandlerContext, record: dict[str, Any]) -> bool:
        if self._mapping.account_selected(record):
            return True
        ctx.log.info("account_not_selected", account=record.get("Id"), where=self._mapping.origin)
        return False

    async def _sync_account(
        self, ctx: HandlerContext, sf: SalesforceApi, stripe: StripeApi, account_id: str
    ) -> None:
        record = await self._records.account(sf, account_id)
        if record is None:
            ctx.log.info("account_gone", account=account_id)
            return
        await self._sync_whole(ctx, sf, stripe, record)

    async def _sync_whole(
        self, ctx: HandlerContext, sf: SalesforceApi, stripe: StripeApi, record: dict[str, Any]
    ) -> None:
        """Make the Stripe customer match the whole Account: find or create it, then send what
        differs from it."""
        account_id = str(record["Id"])
        if not self._selected(ctx, record):
            return
        contact = await self._records.billing_contact(sf, record)
        wanted = {rule.stripe: rule.to_stripe(record) for rule in self._account_rules}
        wanted.update(self._contact_values(contact))
        customer = await self._linked(ctx, stripe, account_id)
        if customer is None:
            await self._create(ctx, sf, stripe, account_id, wanted)
            return
        current = await stripe.request("GET", f"/v1/customers/{customer}")
        if current.get("deleted"):
            raise PermanentError(f"Stripe customer {customer} of {account_id} is deleted")
        differing = {
            target
            for target, value in wanted.items()
            if (stripe_value(current, target) or "") != value
        }
        sent = whole_address(differing, wanted)
        await self._update(ctx, stripe, customer, {t: v for t, v in wanted.items() if t in sent})
        await self._write_customer_id(ctx, sf, account_id, customer)

    def _contact_values(self, contact: dict[str, Any] | None) -> dict[str, str]:
        return {rule.stripe: rule.to_stripe(contact or {}) for rule in self._contact_rules}

    async def _linked(self, ctx: HandlerContext, stripe: StripeApi, account_id: str) -> str | None:
        """The account's Stripe customer: linked in the log, else found by its metadata."""
        linked = await self._state.linked_stripe_customers(account_id)
        if linked:
            return linked[0]
        hits = await _customers_with_account(stripe, account_id)
        if not hits:
            return None
        customer = str(hits[0]["id"])
        await self._log.link(f"stripe:{customer}", account_id)
        await self._log.append([adopted_event(account_id, customer)])
        SYNC_CUSTOMERS.labels("found").inc()
        ctx.log.info("customer_found", account=account_id, stripe_customer=customer)
        return customer

    async def _create(
        self,
        ctx: HandlerContext,
        sf: SalesforceApi,
        stripe: StripeApi,
        account_id: str,
        wanted: dict[str, str],
    ) -> None:
        present = {target: value for target, value in wanted.items() if value != ""}
        params = stripe_params(present)
        params.setdefault("metadata", {})["sf_account_id"] = account_id
        key = f"{ctx.idempotency_key}:create"
        try:
            created = await stripe.request("POST", "/v1/customers", params, key)
        except stripe_sdk.IdempotencyError as exc:
            # Created before a crash, with values that have changed since: Stripe's search
            # (eventually consistent) finds it on a later attempt, so wait rather than fail.
            raise RetryableError(f"customer of {account_id} created before, not found yet") from exc
        if not created:  # shadow mode: nothing was sent
            return
        customer = str(created["id"])
        await self._log.link(f"stripe:{customer}", account_id)
        await self._state.record_written("stripe", customer, present)
        SYNC_CUSTOMERS.labels("created").inc()
        SYNC_FIELDS_WRITTEN.labels("stripe", "customer").inc(len(present))
        ctx.log.info("customer_created", account=account_id, stripe_customer=customer)
        await self._write_customer_id(ctx, sf, account_id, customer)

    async def _update(
        self,
        ctx: HandlerContext,
        stripe: StripeApi,
        customer: str,
        wanted: dict[str, str],
        purpose: str = "update",
    ) -> None:
        if not wanted:
            return
        # The key names the content: a retry that reads newer values sends them under another
        # key (Stripe refuses a key reused with other parameters, and replays a stored 500).
        params = stripe_params(wanted)
        digest = hashlib.sha256(msgspec.json.encode(params, order="sorted")).hexdigest()[:16]
        key = f"{ctx.idempotency_key}:{purpose}:{customer}:{digest}"
        answer = await stripe.request("POST", f"/v1/customers/{customer}", params, key)
        if not answer:
            return
        await self._state.record_written("stripe", customer, wanted)
        SYNC_FIELDS_WRITTEN.labels("stripe", "customer").inc(len(wanted))
        ctx.log.info("customer_updated", stripe_customer=customer, fields=sorted(wanted))

    async def _write_customer_id(
        self, ctx: HandlerContext, sf: SalesforceApi, account_id: str, customer: str
    ) -> None:
        field = account_fields.CUSTOMER_ID
        if not await self._state.unwritten("salesforce", account_id, {field: customer}):
            return
        try:
            answer = await sf.request(
                "PATCH", f"sobjects/Account/{account_id}", json={field: customer}
            )
        except SalesforceError as exc:
            if exc.status != 404 and not record_gone(exc):
                raise
            ctx.log.info("account_gone", account=account_id, stripe_customer=customer)
            return
        if answer is None and ctx.writes_enabled:
            await self._state.record_written("salesforce", account_id, {field: customer})
            SYNC_FIELDS_WRITTEN.labels("salesforce", "Account").inc()

    async def _mark_deleted(
        self, ctx: HandlerContext, stripe: StripeApi, account_id: str, *, deleted: bool
    ) -> None:
        """Never delete billing data: mark the customer, so people and reports can see it."""
        for customer in await self._state.linked_stripe_customers(account_id):
            mark = {f"metadata.{DELETED_MARK}": "true" if deleted else ""}
            await self._update(ctx, stripe, customer, mark, "mark")
            ctx.log.warning(
                "account_deleted" if deleted else "account_undeleted",
                account=account_id,
                stripe_customer=customer,
                note="the Stripe customer is kept; metadata.sf_account_deleted marks it",
            )

    async def _without_echoes(
        self,
        ctx: HandlerContext,
        sobject: str,
        record_id: str,
        *,
        values: dict[str, Any],
        changed: list[str],
        change: _Change,
    ) -> list[str]:
        """`changed` minus sfstripe's own writes coming back: a field whose new value is what
        sfstripe last wrote there, or a field only sfstripe writes changed by a request carrying
        its client tag (the change event can come before the write's answer was recorded)."""
        tagged = self._tag in (change.change_origin or "")
        new = {name: values.get(name) for name in changed}
        fresh = await self._state.unwritten("salesforce", record_id, new)
        echoes = [
            name
            for name in changed
            if name not in fresh or (tagged and name in self._sfstripe_writes)
        ]
        if echoes:
            ECHOES_SUPPRESSED.labels("salesforce", sobject).inc(len(echoes))
            ctx.log.info(
                "echo_suppressed",
                record=record_id,
                fields=echoes,
                own_client=tagged,
            )
        ignored = [n for n in changed if n in self._stripe_owned and n not in echoes]
        if ignored:
            ctx.log.info("stripe_owned_change_ignored", record=record_id, fields=ignored)
        return [name for name in changed if name not in echoes and name not in ignored]

    # ---- Contacts ---------------------------------------------------------------------------

    async def _contact(
        self,
        ctx: HandlerContext,
        sf: SalesforceApi,
        stripe: StripeApi,
        event: LoggedEvent,
        change: _Change,
    ) -> None:
        """A Contact matters to every account it is (or stops being) the billing contact of:
        the account its stream belongs to (where it was), its account now, and the accounts
        whose billing contact lookup names it."""
        contact_id = str(event.object_id)
        values = flat_fields(record_fields({"raw": change.raw}))
        changed = flat_names(change.changed_fields) if change.change_type == "UPDATE" else None
        if changed is not None and not (
            set(changed) & (self._contact_reads | {"AccountId"})
            or self._contact_rule_touched(changed)
        ):
            return
        accounts = {event.customer} if is_account_id(event.customer) else set()
        contact = await self._records.contact(sf, contact_id)
        now = (contact or {}).get("AccountId") or values.get("AccountId")
        if isinstance(now, str) and now:
            accounts.add(now)
        lookup = self._mapping.billing_contact.lookup_field
        if lookup:
            soql = f"SELECT Id FROM Account WHERE {lookup} = {soql_literal(contact_id)}"
            accounts |= {str(r["Id"]) for r in await query_all(sf, soql)}
        if not accounts:
            ctx.log.info("contact_without_account", contact=contact_id)
        for account_id in sorted(accounts):
            await self._billing_contact_of(ctx, sf, stripe, account_id)

    async def _billing_contact_of(
        self, ctx: HandlerContext, sf: SalesforceApi, stripe: StripeApi, account_id: str
    ) -> None:
        """Send the account's billing contact's values where they differ from the last sent."""
        customer = await self._state.linked_stripe_customers(account_id)
        if not customer:
            return  # the account's own first sync reads its billing contact
        account = await self._records.account(sf, account_id)
        if account is None or not self._selected(ctx, account):
            return
        billing = await self._records.billing_contact(sf, account)
        wanted = self._contact_values(billing)
        differing = await self._state.unwritten("stripe", customer[0], wanted)
        await self._update(ctx, stripe, customer[0], differing)

    def _contact_rule_touched(self, changed: list[str]) -> bool:
        rule = self._mapping.billing_contact
        return any(name in rule.where or name == rule.order_by for name in changed)

    # ---- Overflow ---------------------------------------------------------------------------

    async def _overflow(
        self, ctx: HandlerContext, sf: SalesforceApi, event: LoggedEvent, change: _Change
    ) -> None:
        """Changes too many to list: snapshot every account modified since shortly before."""
        since = datetime.fromtimestamp(change.commit_timestamp / 1000, UTC) - OVERFLOW_MARGIN
        stamp = since.strftime("%Y-%m-%dT%H:%M:%SZ")
        if event.object_type == "Contact" or event.type.startswith("Contact."):
            soql = f"SELECT AccountId FROM Contact WHERE LastModifiedDate >= {stamp}"
            rows = await query_all(sf, soql)
            account_ids = sorted({r["AccountId"] for r in rows if r.get("AccountId")})
            records = [await self._records.account(sf, account_id) for account_id in account_ids]
            accounts = [record for record in records if record is not None]
        else:
            accounts = await self._records.query_accounts(sf, {}, since=stamp)
        snapshots = [
            snapshot_event(record, f"overflow:{event.source_event_id}", "overflow")
            for record in accounts
        ]
        if snapshots:
            await self._log.append(snapshots)
        ctx.log.warning("overflow_resynced", entity=event.object_type, accounts=len(snapshots))


async def _customers_with_account(stripe: StripeApi, account_id: str) -> list[dict[str, Any]]:
    """Stripe customers whose `metadata.sf_account_id` is the account (in its 18- or
    15-character form: people paste the latter), oldest first.

    Search is Stripe's way; a Stripe-compatible server without it (localstripe) is listed page by
    page instead.
    """
    terms = [
        "metadata['sf_account_id']:'{}'".format(form.replace("\\", "\\\\").replace("'", "\\'"))
        for form in dict.fromkeys((account_id, id15(account_id)))
    ]
    try:
        query = {"query": " OR ".join(terms)}
        hits = (await stripe.request("GET", "/v1/customers/search", query)).get("data", [])
    except stripe_sdk.StripeError as exc:
        if exc.http_status not in (400, 403, 404):  # no search here (or not for this key)
            raise
        hits = []
        params: dict[str, Any] = {"limit": 100}
        while True:
            page = await stripe.request("GET", "/v1/customers", params)
            data = page.get("data", [])
            hits += [customer for customer in data if id18(_account_of(customer)) == account_id]
            if not page.get("has_more") or not data:
                break
            params = {"limit": 100, "starting_after": data[-1]["id"]}
    return sorted(hits, key=lambda c: (c.get("created", 0), c["id"]))


def _account_of(customer: dict[str, Any]) -> str:
    return str((customer.get("metadata") or {}).get("sf_account_id") or "")
