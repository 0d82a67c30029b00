"""The field mapping: a versioned TOML file (`SFSTRIPE_MAPPING_FILE`, else `default_mapping.toml`).

It says which Salesforce fields feed which Stripe customer fields and which side owns each (an
owned field is only ever written from its owner's changes, so the two sides cannot ping-pong),
which Accounts sync at all, and how the billing contact is chosen. `load` reports every problem of
a file at once, each on its own line, as `sfstripe mapping check` prints them.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import msgspec

from handlers.customers.countries import UnknownCountry, alpha2

VERSION = 1
API_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")
METADATA_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")
RESERVED_METADATA = "sf_account_id"
TEXT_TARGETS = frozenset(
    {"name", "email", "phone", "description", "individual_name", "business_name"}
)
ADDRESS_TARGETS = frozenset(
    {"address.line1", "address.line2", "address.city", "address.state", "address.postal_code"}
)
COUNTRY = "address.country"
TAX_EXEMPT = "tax_exempt"
TAX_EXEMPT_VALUES = ("none", "exempt", "reverse")
OBJECTS = ("Account", "BillingContact")
Scalar = str | bool | int | float

Owner = Literal["salesforce", "stripe"]


class MappingError(Exception):
    """The mapping file cannot be used; `problems` lists every reason, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class InvalidValue(ValueError):
    """A Salesforce value that its Stripe field cannot take (a permanent error for its event)."""


class _FieldSpec(msgspec.Struct, forbid_unknown_fields=True):
    stripe: str
    salesforce: str
    owner: Owner = "salesforce"


class _AccountsSpec(msgspec.Struct, forbid_unknown_fields=True):
    where: dict[str, Scalar] = {}


class _ContactSpec(msgspec.Struct, forbid_unknown_fields=True):
    lookup_field: str = ""
    where: dict[str, Scalar] = {}
    order_by: str = "CreatedDate"


class _FileSpec(msgspec.Struct, forbid_unknown_fields=True):
    version: int
    fields: list[_FieldSpec]
    accounts: _AccountsSpec = msgspec.field(default_factory=_AccountsSpec)
    billing_contact: _ContactSpec = msgspec.field(default_factory=_ContactSpec)


@dataclass(frozen=True, slots=True)
class FieldRule:
    """One Stripe customer field and the Salesforce field it mirrors."""

    stripe: str
    object: Literal["Account", "BillingContact"]
    field: str
    owner: Owner

    @property
    def source(self) -> str:
        return f"{self.object}.{self.field}"

    def reads(self) -> tuple[str, ...]:
        """The Salesforce fields this rule needs: a country also reads its code sibling."""
        code = country_code_field(self.field) if self.stripe == COUNTRY else None
        return (self.field, code) if code else (self.field,)

    def to_stripe(self, record: dict[str, Any]) -> str:
        """The Stripe parameter value for a record's flat fields ("" clears a Stripe field)."""
        value = record.get(self.field)
        if self.stripe == COUNTRY:
            return self._country(record, value)
        if self.stripe == TAX_EXEMPT:
            return _tax_exempt(self.source, value)
        if self.stripe in ("address.line1", "address.line2") and self.field.endswith("Street"):
            # A Salesforce street holds every line: its first is line1, the rest line2.
            lines = [line.strip() for line in str(value or "").splitlines() if line.strip()]
            if self.stripe == "address.line1":
                return lines[0] if lines else ""
            return ", ".join(lines[1:])
        return _text(value)

    def _country(self, record: dict[str, Any], value: Any) -> str:
        code_field = country_code_field(self.field)
        code = record.get(code_field) if code_field else None
        if isinstance(code, str) and code.strip():
            return code.strip().upper()
        if value is None or not str(value).strip():
            return ""
        try:
            return alpha2(str(value))
        except UnknownCountry as exc:
            raise InvalidValue(f"{self.source}: {exc}") from None

    def to_salesforce(self, customer: dict[str, Any]) -> Any:
        """The Account field value for a Stripe customer (for Stripe-owned fields)."""
        value = stripe_value(customer, self.stripe)
        if self.stripe == TAX_EXEMPT:
            return value in ("exempt", "reverse")
        return value if value != "" else None


@dataclass(frozen=True, slots=True)
class BillingContactRule:
    lookup_field: str
    where: dict[str, Scalar]
    order_by: str


@dataclass(frozen=True, slots=True)
class Mapping:
    fields: tuple[FieldRule, ...]
    account_where: dict[str, Scalar]
    billing_contact: BillingContactRule
    origin: str

    def owned_by(self, owner: Owner, obj: str | None = None) -> tuple[FieldRule, ...]:
        return tuple(
            rule
            for rule in self.fields
            if rule.owner == owner and (obj is None or rule.object == obj)
        )

    def account_reads(self) -> tuple[str, ...]:
        """Every Account field a sync decision needs, in a stable order."""
        names = [name for rule in self.owned_by("salesforce", "Account") for name in rule.reads()]
        names += list(self.account_where)
        if self.billing_contact.lookup_field:
            names.append(self.billing_contact.lookup_field)
        return tuple(dict.fromkeys(["Id", *names]))

    def contact_reads(self) -> tuple[str, ...]:
        names = [rule.field for rule in self.owned_by("salesforce", "BillingContact")]
        return tuple(dict.fromkeys(["Id", "AccountId", *names]))

    def account_selected(self, record: dict[str, Any]) -> bool:
        """Whether an Account (its flat fields, including every `where` field) syncs."""
        return all(_same(record.get(name), want) for name, want in self.account_where.items())


def country_code_field(field: str) -> str | None:
    """`BillingCountry` -> `BillingCountryCode`: the picklist code Salesforce keeps beside it."""
    return f"{field}Code" if field.endswith("Country") else None


def stripe_value(customer: dict[str, Any], target: str) -> Any:
    """A Stripe customer's value at a mapping target (`address.city`, `metadata.key`)."""
    # Targets have two levels at most, and a metadata key may itself hold dots.
    head, _, rest = target.partition(".")
    node = customer.get(head)
    if not rest:
        return node
    return node.get(rest) if isinstance(node, dict) else None


def stripe_params(values: dict[str, str]) -> dict[str, Any]:
    """Mapping targets and values as the nested parameters of a customer create or update."""
    params: dict[str, Any] = {}
    for target, value in values.items():
        head, _, rest = target.partition(".")
        if rest:
            params.setdefault(head, {})[rest] = value
        else:
            params[head] = value
    return params


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(Decimal(repr(value)).normalize(), "f")
    return str(value)


def _tax_exempt(source: str, value: Any) -> str:
    if value is None or value is False or (isinstance(value, str) and not value.strip()):
        return "none"
    if value is True:
        return "exempt"
    text = str(value).strip().casefold()
    if text in TAX_EXEMPT_VALUES:
        return text
    if text in ("true", "false"):
        return "exempt" if text == "true" else "none"
    raise InvalidValue(
        f"{source}: {value!r} is not a tax-exempt flag (a checkbox or none/exempt/reverse)"
    )


def _same(actual: Any, want: Scalar) -> bool:
    if isinstance(want, bool) or isinstance(actual, bool):
        return actual is want or str(actual).casefold() == str(want).casefold()
    # As SOQL's `=`, which the backfill selects with: text compares without case.
    return actual == want or (actual is not None and str(actual).casefold() == str(want).casefold())


def _target_problem(target: str) -> str | None:
    if target in TEXT_TARGETS or target in ADDRESS_TARGETS or target in (COUNTRY, TAX_EXEMPT):
        return None
    if target.startswith("metadata."):
        key = target.removeprefix("metadata.")
        if key == RESERVED_METADATA:
            return f"metadata.{RESERVED_METADATA} is sfstripe's own link to the Account"
        if not METADATA_KEY.match(key):
            return f"metadata key {key!r}: use up to 40 letters, digits, _ . -"
        return None
    allowed = sorted([*TEXT_TARGETS, *ADDRESS_TARGETS, COUNTRY, TAX_EXEMPT, "metadata.<key>"])
    return f"{target!r} is not a Stripe customer field sfstripe writes ({', '.join(allowed)})"


def _rule(index: int, spec: _FieldSpec) -> tuple[FieldRule | None, list[str]]:
    where = f"fields[{index}]"
    problems = []
    if (problem := _target_problem(spec.stripe)) is not None:
        problems.append(f"{where}.stripe: {problem}")
    obj, _, field = spec.salesforce.partition(".")
    if obj not in OBJECTS or not API_NAME.match(field):
        problems.append(
            f"{where}.salesforce: {spec.salesforce!r} must be Account.<Field> or"
            " BillingContact.<Field> (an API name such as Account.Name or BillingContact.Email)"
        )
    if spec.owner == "stripe":
        if obj != "Account":
            problems.append(
                f"{where}.owner: Stripe-owned fields are written to the Account; map"
                f" {spec.stripe} to an Account field"
            )
        if spec.stripe.startswith("address.") and spec.stripe != COUNTRY:
            problems.append(
                f"{where}.owner: address parts cannot be Stripe-owned (a Salesforce street holds"
                " two Stripe lines)"
            )
        if spec.stripe == COUNTRY and not field.endswith("CountryCode"):
            problems.append(
                f"{where}.owner: a Stripe-owned country is an alpha-2 code: map it to a"
                " *CountryCode field"
            )
    if spec.stripe == COUNTRY and spec.owner == "salesforce" and not field.endswith("Country"):
        problems.append(
            f"{where}.salesforce: map address.country to a country name field such as"
            " Account.BillingCountry (its BillingCountryCode is preferred when the org has one)"
        )
    if problems:
        return None, problems
    return FieldRule(spec.stripe, obj, field, spec.owner), []  # type: ignore[arg-type]


def _names(section: str, names: dict[str, Scalar] | list[str]) -> list[str]:
    return [
        f"{section}: {name!r} is not a Salesforce API field name"
        for name in names
        if not API_NAME.match(name)
    ]


def _known(where: str, table: dict[str, Any], struct: Any, problems: list[str]) -> dict[str, Any]:
    """`table` without the keys `struct` does not have, each reported (not only the first)."""
    names: tuple[str, ...] = struct.__struct_fields__
    prefix = f"{where}: " if where else ""
    problems += [
        f"{prefix}unknown key {key!r} (expected one of {', '.join(names)})"
        for key in table
        if key not in names
    ]
    return {key: value for key, value in table.items() if key in names}


def _convert(raw: Any, struct: Any, where: str, problems: list[str]) -> Any:
    """`raw` as `struct`, or None with the problem (and where it is) reported."""
    try:
        return msgspec.convert(raw, struct)
    except msgspec.ValidationError as exc:
        message, at, path = str(exc).rpartition(" - at `$")
        if not at:
            message, path = str(exc), "`"
        located = (where + path.removesuffix("`")).lstrip(".")
        problems.append(f"{located}: {message}" if located else message)
        return None


def _structure(raw: dict[str, Any], problems: list[str]) -> tuple[_FileSpec | None, list[Any]]:
    """The file as specs, each field and section checked on its own so every problem is found."""
    top = _known("", raw, _FileSpec, problems)
    field_specs: list[_FieldSpec | None] = []
    if isinstance(top.get("fields"), list):
        for index, item in enumerate(top["fields"]):
            where = f"fields[{index}]"
            known = _known(where, item, _FieldSpec, problems) if isinstance(item, dict) else item
            field_specs.append(_convert(known, _FieldSpec, where, problems))
        top["fields"] = []
    sections = {}
    for section, struct in (("accounts", _AccountsSpec), ("billing_contact", _ContactSpec)):
        if section in top:
            table = top.pop(section)
            known = _known(section, table, struct, problems) if isinstance(table, dict) else table
            sections[section] = _convert(known, struct, section, problems)
    spec = _convert(top, _FileSpec, "", problems)
    if spec is None or None in sections.values():
        return None, field_specs
    return msgspec.structs.replace(spec, **sections), field_specs


def _ownership_problems(rules: list[FieldRule]) -> list[str]:
    """A Salesforce field that Stripe writes cannot also feed Stripe, nor be written twice."""
    problems = []
    for index, rule in enumerate(rules):
        if rule.owner != "stripe":
            continue
        others = [
            other.stripe
            for other_index, other in enumerate(rules)
            if other_index != index
            and not (other.owner == "stripe" and other_index > index)  # one line per pair
            and other.object == rule.object
            and rule.field in other.reads()
        ]
        if others:
            problems.append(
                f"fields: {rule.source} is written from Stripe's {rule.stripe} (owner stripe)"
                f" and also mapped to {', '.join(others)}: a field has one owner"
            )
    return problems


def parse(text: str, origin: str) -> Mapping:
    """A mapping from TOML text; `origin` names it in messages."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MappingError([f"{origin}: not valid TOML: {exc}"]) from None
    problems: list[str] = []
    spec, field_specs = _structure(raw, problems)
    if spec is not None and spec.version != VERSION:
        problems.append(f"version: {spec.version} is not supported (this sfstripe reads {VERSION})")
    if raw.get("fields") == []:
        problems.append("fields: map at least one field")
    rules: list[FieldRule] = []
    for index, field_spec in enumerate(field_specs):
        if field_spec is None:
            continue
        rule, found = _rule(index, field_spec)
        problems += found
        if rule is not None:
            rules.append(rule)
    targets = [rule.stripe for rule in rules]
    for target in sorted({t for t in targets if targets.count(t) > 1}):
        problems.append(f"fields: {target} is mapped more than once")
    problems += _ownership_problems(rules)
    if spec is None:
        raise MappingError([f"{origin}: {problem}" for problem in problems])
    contact = spec.billing_contact
    problems += _names("accounts.where", spec.accounts.where)
    problems += _names("billing_contact.where", contact.where)
    problems += _names("billing_contact.lookup_field", [n for n in (contact.lookup_field,) if n])
    problems += _names("billing_contact.order_by", [contact.order_by])
    if problems:
        raise MappingError([f"{origin}: {problem}" for problem in problems])
    return Mapping(
        fields=tuple(rules),
        account_where=dict(spec.accounts.where),
        billing_contact=BillingContactRule(
            contact.lookup_field, dict(contact.where), contact.order_by
        ),
        origin=origin,
    )


def load(path: Path | None) -> Mapping:
    """The mapping in `path`, or the built-in default."""
    if path is None:
        text = resources.files("handlers.customers").joinpath("default_mapping.toml").read_text()
        return parse(text, "built-in mapping")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MappingError([f"{path}: cannot read it: {exc.strerror or exc}"]) from None
    return parse(text, str(path))
