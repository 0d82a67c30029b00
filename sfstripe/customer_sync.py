"""The two-way customer sync as the daemon and the CLI run it: its handlers, built from settings
and the database, and the start-up check that keeps a live Stripe account away from a sandbox org
(and a test account away from production)."""

from __future__ import annotations

from typing import Any

import asyncpg
import structlog

from handlers.api import Handler
from handlers.clients import SalesforceApi
from handlers.customers.composite import CompositeWriter
from handlers.customers.mapping import load
from handlers.customers.to_salesforce import SalesforceBilling
from handlers.customers.to_stripe import StripeCustomers
from sfstripe.config import Settings, env_name
from state.log import EventLog
from state.sync_state import SyncState

log = structlog.get_logger(__name__)

LIVE_PREFIXES = ("sk_live_", "rk_live_")
# Orgs that hold no production data although Salesforce does not call them sandboxes.
NON_PRODUCTION_TYPES = frozenset({"Developer Edition"})


class MixedModes(Exception):
    """A live Stripe key with a sandbox org, or a test key with a production org (or the org
    type could not be read to tell)."""


def sync_handlers(settings: Settings, pool: asyncpg.Pool) -> list[Handler]:
    if not settings.customer_sync_enabled:
        return []
    mapping = load(settings.mapping_file)
    state, event_log = SyncState(pool), EventLog(pool)
    log.info("customer_sync_on", mapping=mapping.origin, fields=len(mapping.fields))
    return [
        StripeCustomers(mapping, state, event_log, settings.sf_client_tag),
        SalesforceBilling(mapping, state, event_log, CompositeWriter()),
    ]


def org_is_production(organization: dict[str, Any]) -> bool:
    if organization.get("IsSandbox"):
        return False
    return organization.get("OrganizationType") not in NON_PRODUCTION_TYPES


async def check_modes(settings: Settings, salesforce: SalesforceApi) -> None:
    """Refuse a live Stripe key with a non-production org, and a test key with production."""
    if not settings.customer_sync_enabled or settings.stripe_api_key is None:
        return
    live = settings.stripe_api_key.reveal().startswith(LIVE_PREFIXES)
    soql = "SELECT Id, IsSandbox, OrganizationType FROM Organization"
    try:
        page = await salesforce.request("GET", "query", params={"q": soql})
        organization = page["records"][0]
    except Exception as exc:  # fail closed: an unchecked pairing could bill real customers
        raise MixedModes(
            f"cannot read the Salesforce org type to check it against the Stripe key"
            f" ({type(exc).__name__}: {exc}); sfstripe does not start the sync unchecked"
        ) from exc
    production = org_is_production(organization)
    if live == production:
        return
    described = (
        f"a live Stripe key with a {'sandbox' if organization.get('IsSandbox') else 'test'} org"
        if live
        else f"a Stripe test key with a production org ({organization.get('OrganizationType')})"
    )
    if settings.allow_mixed_modes:
        log.warning("mixed_modes_allowed", pairing=described, setting=env_name("allow_mixed_modes"))
        return
    raise MixedModes(
        f"refusing to sync {described}; set {env_name('allow_mixed_modes')}=true if this is meant"
    )
