"""Handler `salesforce-billing`: Stripe customer, invoice, subscription and payment-method events ->
the Account's billing fields (see `handlers.customers.fields`).

Each event updates what sfstripe knows of its Stripe object by the monotonic rules of
`billing_rules` (out-of-order and tied events never move an object backwards); the Account's fields
are then derived from everything known of the customer and only the fields that differ from what
sfstripe last wrote are sent, batched with other lanes' through `CompositeWriter`. So a retried or
replayed event writes nothing new, and a quiet system makes no writes at all.

A `customer.updated` caused by sfstripe's own request (its idempotency key starts with `sfstripe:`)
is an echo: counted and not applied to Salesforce. Invoices and payments that follow sfstripe's own
requests are outcomes, not echoes, and always apply.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import msgspec
import stripe as stripe_sdk  # the name `stripe` is the API client here

from handlers.api import HandlerContext
from handlers.clients import StripeApi
from handlers.customers.billing_rules import (
    Decision,
    Kind,
    Tracked,
    account_fields,
    decide,
    kind_of,
    resolve_refetched,
    tracked,
)
from handlers.customers.composite import CompositeWriter
from handlers.customers.mapping import Mapping
from handlers.customers.salesforce_records import record_gone
from handlers.customers.snapshots import ADOPTED_TYPE, decode_adopted
from handlers.customers.to_stripe import is_account_id
from handlers.errors import PermanentError
from metrics.instruments import ECHOES_SUPPRESSED, STRIPE_STALE_EVENTS, SYNC_FIELDS_WRITTEN
from state.log import EventLog
from state.records import LoggedEvent
from state.sync_state import StoredObject, SyncState
from stream.salesforce.ids import id18
from stream.salesforce.rest import SalesforceError

NAME = "salesforce-billing"
OWN_KEY_PREFIX = "sfstripe:"
PATHS: dict[Kind, str] = {
    "invoice": "/v1/invoices",
    "subscription": "/v1/subscriptions",
    "customer": "/v1/customers",
    "payment_method": "/v1/payment_methods",
}


class _Request(msgspec.Struct):
    id: str | None = None
    idempotency_key: str | None = None


class _Data(msgspec.Struct):
    object: dict[str, Any]
    previous_attributes: dict[str, Any] | None = None


class _Event(msgspec.Struct):
    id: str
    type: str
    created: int
    data: _Data
    request: _Request | None = None


def _tracked(stored: StoredObject | None) -> Tracked | None:
    """The same fields on both sides of the state boundary (state imports nothing of ours)."""
    return None if stored is None else Tracked(**msgspec.structs.asdict(stored))


def _stored(item: Tracked) -> StoredObject:
    return StoredObject(**msgspec.structs.asdict(item))


def _fetched(kind: Kind, obj: dict[str, Any], created: int, customer: str) -> Tracked | None:
    """An object as Stripe has it now, dated `created` (it is at least as new as that)."""
    deleted = "customer.deleted" if obj.get("deleted") else ""
    return tracked(kind, obj, created, event_type=deleted, previous_customer=customer)


def _json_ready(value: Any) -> Any:
    """Salesforce numbers as JSON numbers (an amount is a Decimal in major units)."""
    return float(value) if isinstance(value, Decimal) else value


class SalesforceBilling:
    name = NAME

    def __init__(
        self, mapping: Mapping, state: SyncState, event_log: EventLog, writer: CompositeWriter
    ) -> None:
        self._stripe_owned = mapping.owned_by("stripe")
        self._state = state
        self._log = event_log
        self._writer = writer

    def wants(self, event: LoggedEvent) -> bool:
        if event.source == "sfstripe":
            return event.type == ADOPTED_TYPE
        return event.source == "stripe" and kind_of(event.object_type or "") is not None

    async def handle(self, event: LoggedEvent, ctx: HandlerContext) -> None:
        sf, stripe = ctx.salesforce, ctx.stripe
        if sf is None or stripe is None:
            raise PermanentError("the billing status sync needs both Salesforce and Stripe")
        if event.source == "sfstripe":
            await self._adopted(ctx, stripe, event)
            return
        kind = kind_of(event.object_type or "")
        assert kind is not None  # wants() saw to it
        stripe_event = msgspec.json.decode(event.payload, type=_Event)
        previous = stripe_event.data.previous_attributes or {}
        incoming = tracked(
            kind,
            stripe_event.data.object,
            stripe_event.created,
            event_type=stripe_event.type,
            previous_customer=previous.get("customer"),
        )
        if incoming is None:
            return
        # The Account's values come from everything stored, never from this event alone, and
        # only what differs from sfstripe's last write is sent: so a stale event, an echo, a
        # retry after a failed write or a replay after shadow mode all end in the same writes.
        await self._apply(ctx, stripe, incoming)
        self._count_own_echo(ctx, stripe_event, kind)
        account = await self._account(ctx, stripe, event, incoming.stripe_customer)
        if account is None or not await self._primary(ctx, account, incoming.stripe_customer):
            return
        values = await self._account_values(stripe, incoming.stripe_customer, stripe_event.created)
        await self._write(ctx, account, values)

    async def _adopted(self, ctx: HandlerContext, stripe: StripeApi, event: LoggedEvent) -> None:
        """Read an adopted customer's billing so far: its subscriptions and latest invoices."""
        customer = decode_adopted(event.payload).stripe_customer
        now = int(time.time())  # what is fetched now is at least as new as any event before
        found = [await stripe.request("GET", f"/v1/customers/{customer}")]
        for path, params in (
            ("/v1/subscriptions", {"customer": customer, "status": "all", "limit": 100}),
            ("/v1/invoices", {"customer": customer, "limit": 10}),
        ):
            found += (await stripe.request("GET", path, params)).get("data", [])
        for obj in found:
            kind = kind_of(str(obj.get("object")))
            fetched = _fetched(kind, obj, now, customer) if kind else None
            if fetched is not None:
                await self._apply(ctx, stripe, fetched, fetched=True)
        account = event.customer
        if is_account_id(account) and await self._primary(ctx, account, customer):
            await self._write(ctx, account, await self._account_values(stripe, customer, now))

    async def _primary(self, ctx: HandlerContext, account: str, customer: str) -> bool:
        """Only the account's first linked Stripe customer writes its billing fields; another
        one (a copied `sf_account_id`) would make them flip between the two."""
        linked = await self._state.linked_stripe_customers(account)
        if not linked or linked[0] == customer:
            return True
        ctx.log.warning(
            "secondary_stripe_customer",
            account=account,
            stripe_customer=customer,
            primary=linked[0],
            note="its billing is not written to the Account",
        )
        return False

    async def _apply(
        self, ctx: HandlerContext, stripe: StripeApi, incoming: Tracked, *, fetched: bool = False
    ) -> None:
        """Store the object's new state if the monotonic rules take it (an event's state, or
        one `fetched` from Stripe)."""
        stored = _tracked(await self._state.stripe_object(incoming.object_id))
        decision = resolve_refetched(stored, incoming) if fetched else decide(stored, incoming)
        if decision is Decision.REFETCH:
            STRIPE_STALE_EVENTS.labels(incoming.kind, decision.value).inc()
            current = await self._fetch(stripe, incoming.kind, incoming.object_id, incoming)
            if current is None:
                return
            incoming = current
            decision = resolve_refetched(stored, incoming)
        if decision is not Decision.APPLY:
            if decision is not Decision.SAME:
                STRIPE_STALE_EVENTS.labels(incoming.kind, decision.value).inc()
                ctx.log.info(
                    "stripe_event_not_applied", object=incoming.object_id, decision=decision.value
                )
            return
        await self._state.save_stripe_object(_stored(incoming))

    async def _fetch(
        self, stripe: StripeApi, kind: Kind, object_id: str, like: Tracked
    ) -> Tracked | None:
        """The object as Stripe has it now; None when it is gone (a deleted draft invoice)."""
        try:
            obj = await stripe.request("GET", f"{PATHS[kind]}/{object_id}")
        except stripe_sdk.InvalidRequestError as exc:
            if exc.http_status != 404:
                raise
            return None
        return _fetched(kind, obj, like.event_created, like.stripe_customer)

    def _count_own_echo(self, ctx: HandlerContext, stripe_event: _Event, kind: Kind) -> None:
        """A customer change sfstripe itself asked for changes no Stripe-owned field (ownership
        sees to it), so it writes nothing back: counted as an echo."""
        request = stripe_event.request
        own = request is not None and (request.idempotency_key or "").startswith(OWN_KEY_PREFIX)
        if not (own and kind == "customer" and stripe_event.type == "customer.updated"):
            return
        changed = sorted((stripe_event.data.previous_attributes or {}).keys())
        ECHOES_SUPPRESSED.labels("stripe", "customer").inc(len(changed))
        ctx.log.info("echo_suppressed", stripe_event=stripe_event.id, fields=changed)

    async def _account(
        self, ctx: HandlerContext, stripe: StripeApi, event: LoggedEvent, customer: str
    ) -> str | None:
        """The Account of a Stripe customer: the stream it is in, its link, or its metadata."""
        if is_account_id(event.customer):
            return event.customer
        linked = await self._log.resolve(f"stripe:{customer}")
        if linked is not None and is_account_id(linked):
            return linked
        known = await self._state.stripe_object(customer)
        if known is None:
            fetched = await self._fetch(stripe, "customer", customer, _placeholder(customer))
            if fetched is not None:
                await self._state.save_stripe_object(_stored(fetched))
                known = _stored(fetched)
        metadata = (known.body.get("metadata") or {}) if known is not None else {}
        account = id18(str(metadata.get("sf_account_id") or ""))
        if is_account_id(account):
            await self._log.link(f"stripe:{customer}", account)
            return account
        ctx.log.info("stripe_customer_without_account", stripe_customer=customer)
        return None

    async def _account_values(
        self, stripe: StripeApi, customer_id: str, created: int
    ) -> dict[str, Any]:
        objects = [_tracked(row) for row in await self._state.stripe_objects(customer_id)]
        by_kind: dict[str, list[Tracked]] = {}
        for item in objects:
            if item is not None:
                by_kind.setdefault(item.kind, []).append(item)
        customers = by_kind.get("customer", [])
        customer = customers[0] if customers else None
        payment_method = None
        default = customer.body.get("default_payment_method") if customer else None
        if isinstance(default, str):
            known = {item.object_id: item for item in by_kind.get("payment_method", [])}
            payment_method = known.get(default)
            if payment_method is None:
                payment_method = await self._fetch(
                    stripe, "payment_method", default, _placeholder(customer_id, created)
                )
                if payment_method is not None:
                    await self._state.save_stripe_object(_stored(payment_method))
        values = account_fields(
            customer_id,
            customer,
            by_kind.get("invoice", []),
            by_kind.get("subscription", []),
            payment_method,
        )
        if customer is not None:
            for rule in self._stripe_owned:
                values[rule.field] = rule.to_salesforce(customer.body)
        return {name: _json_ready(value) for name, value in values.items()}

    async def _write(self, ctx: HandlerContext, account: str, values: dict[str, Any]) -> None:
        differing = await self._state.unwritten("salesforce", account, values)
        if not differing:
            return
        sf = ctx.salesforce
        assert sf is not None
        try:
            await self._writer.update(
                sf, "Account", account, differing, writes_enabled=ctx.writes_enabled
            )
        except SalesforceError as exc:
            if not record_gone(exc):
                raise
            # A deleted Account takes no writes; an undelete syncs it again, and the next
            # Stripe event writes what differs.
            ctx.log.info("account_gone", account=account, fields=sorted(differing))
            return
        if ctx.writes_enabled:
            await self._state.record_written("salesforce", account, differing)
            SYNC_FIELDS_WRITTEN.labels("salesforce", "Account").inc(len(differing))
        ctx.log.info("account_billing_written", account=account, fields=sorted(differing))


def _placeholder(customer: str, created: int = 0) -> Tracked:
    """What a re-fetch without an event is dated by (a fetched object is at least this new)."""
    return Tracked(customer, "customer", customer, created, None, {})
