"""Salesforce records as the customer sync reads them: flat sObject field names (`BillingCity`),
whether they came nested in a CDC event (`BillingAddress.City`) or from REST.

Fields are read only if the org has them (one describe per object): `BillingCountryCode` exists only
with state and country picklists, and a mapped field that is missing is a clear permanent error
rather than a query that fails on every event.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from handlers.clients import SalesforceApi
from handlers.customers.mapping import Mapping, Scalar, country_code_field
from handlers.errors import PermanentError
from stream.salesforce.rest import SalesforceError

# CDC nests compound fields; REST and SOQL use flat names: BillingAddress.City -> BillingCity.
COMPOUND_PREFIX = {"BillingAddress": "Billing", "ShippingAddress": "Shipping"}
NAME_PARTS = ("Salutation", "FirstName", "LastName", "MiddleName", "Suffix")
GONE = frozenset({"NOT_FOUND", "ENTITY_IS_DELETED"})


def record_gone(exc: SalesforceError) -> bool:
    """Salesforce says the record is deleted or not there (also per record in a collection)."""
    return bool(GONE.intersection(str(error.get("errorCode")) for error in exc.errors))


def flat_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """A CDC event's record fields with compound fields flattened to sObject names."""
    flat: dict[str, Any] = {}
    for name, value in fields.items():
        prefix = COMPOUND_PREFIX.get(name)
        if prefix is not None and isinstance(value, dict):
            flat.update({prefix + part: part_value for part, part_value in value.items()})
        elif name == "Name" and isinstance(value, dict):
            flat.update({part: value.get(part) for part in NAME_PARTS if part in value})
        else:
            flat[name] = value
    return flat


def flat_names(changed: Iterable[str]) -> list[str]:
    """`changedFields` entries as sObject names (`BillingAddress.City` -> `BillingCity`).

    A changed name part (`Name.LastName`) changes the full `Name` too, which a mapping reads.
    """
    names = []
    for name in changed:
        compound, _, part = name.partition(".")
        if part and compound in COMPOUND_PREFIX:
            names.append(COMPOUND_PREFIX[compound] + part)
        elif part and compound == "Name":
            names += [part, "Name"]
        else:
            names.append(name)
    return list(dict.fromkeys(names))


def soql_literal(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def soql_where(conditions: dict[str, Scalar]) -> str:
    return " AND ".join(f"{name} = {soql_literal(value)}" for name, value in conditions.items())


class SalesforceRecords:
    """Reads Accounts and Contacts with the fields the mapping needs."""

    def __init__(self, mapping: Mapping) -> None:
        self._mapping = mapping
        self._fields: dict[str, frozenset[str]] = {}

    async def _existing(self, api: SalesforceApi, sobject: str) -> frozenset[str]:
        if sobject not in self._fields:
            described = await api.request("GET", f"sobjects/{sobject}/describe")
            self._fields[sobject] = frozenset(field["name"] for field in described["fields"])
        return self._fields[sobject]

    async def readable(self, api: SalesforceApi, sobject: str, wanted: Sequence[str]) -> list[str]:
        """`wanted` minus optional fields the org lacks; a missing mapped field is an error."""
        existing = await self._existing(api, sobject)
        optional = {country_code_field(name) for name in wanted} - {None}
        missing = [name for name in wanted if name not in existing and name not in optional]
        if missing:
            raise PermanentError(
                f"{sobject} has no field {', '.join(missing)} (mapping {self._mapping.origin});"
                " deploy salesforce/ or fix the mapping"
            )
        return [name for name in wanted if name in existing]

    async def account(self, api: SalesforceApi, account_id: str) -> dict[str, Any] | None:
        """The Account's mapped fields, or None once it is deleted."""
        fields = await self.readable(api, "Account", self._mapping.account_reads())
        return await _get(api, "Account", account_id, fields)

    async def contact(self, api: SalesforceApi, contact_id: str) -> dict[str, Any] | None:
        fields = await self.readable(api, "Contact", self._mapping.contact_reads())
        return await _get(api, "Contact", contact_id, fields)

    async def billing_contact(
        self, api: SalesforceApi, account: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The lookup field's Contact when set, else the first Contact the rule selects."""
        rule = self._mapping.billing_contact
        chosen = account.get(rule.lookup_field) if rule.lookup_field else None
        if isinstance(chosen, str) and chosen:
            found = await self.contact(api, chosen)
            if found is not None:
                return found
        fields = await self.readable(api, "Contact", self._mapping.contact_reads())
        conditions = {"AccountId": str(account["Id"]), **rule.where}
        soql = (
            f"SELECT {', '.join(fields)} FROM Contact WHERE {soql_where(conditions)}"
            f" ORDER BY {rule.order_by} ASC, Id ASC LIMIT 1"
        )
        page = await api.request("GET", "query", params={"q": soql})
        records: list[dict[str, Any]] = page["records"]
        return _plain(records[0]) if records else None

    async def query_accounts(
        self, api: SalesforceApi, where: dict[str, Scalar], since: str | None = None
    ) -> list[dict[str, Any]]:
        """Every Account matching `where` (and modified at or after `since`), paged."""
        reads = (*self._mapping.account_reads(), "LastModifiedDate")
        fields = await self.readable(api, "Account", tuple(dict.fromkeys(reads)))
        conditions = soql_where({**self._mapping.account_where, **where})
        if since is not None:
            modified = f"LastModifiedDate >= {since}"
            conditions = f"{conditions} AND {modified}" if conditions else modified
        soql = f"SELECT {', '.join(fields)} FROM Account"
        if conditions:
            soql += f" WHERE {conditions}"
        soql += " ORDER BY Id"
        return await query_all(api, soql)


async def query_all(api: SalesforceApi, soql: str) -> list[dict[str, Any]]:
    """Every record of a SOQL query, page after page (`nextRecordsUrl`)."""
    records: list[dict[str, Any]] = []
    page = await api.request("GET", "query", params={"q": soql})
    while True:
        records += [_plain(record) for record in page["records"]]
        next_url = page.get("nextRecordsUrl")
        if page.get("done", True) or not next_url:
            return records
        page = await api.request("GET", next_url)


def _plain(record: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in record.items() if name != "attributes"}


async def _get(
    api: SalesforceApi, sobject: str, record_id: str, fields: Sequence[str]
) -> dict[str, Any] | None:
    try:
        record = await api.request(
            "GET", f"sobjects/{sobject}/{record_id}", params={"fields": ",".join(fields)}
        )
    except SalesforceError as exc:
        if exc.status == 404 or record_gone(exc):
            return None
        raise
    return _plain(record) if isinstance(record, dict) else None
