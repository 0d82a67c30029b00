"""The field mapping of the customer sync: the built-in file, validation (every problem of a file at
once, one line each, naming where), how Salesforce values become Stripe parameters (ISO country
codes, street lines, tax-exempt flags) and back, the Account filter, and the flat field names of
CDC events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from handlers.customers.mapping import (
    FieldRule,
    InvalidValue,
    Mapping,
    MappingError,
    load,
    parse,
    stripe_params,
)
from handlers.customers.salesforce_records import flat_fields, flat_names, soql_literal, soql_where
from handlers.errors import classify
from stream.salesforce.cdc_events import record_fields, to_log_events
from tests.conftest import SAMPLES

ORIGIN = "m.toml"


def mapping_text(*fields: str, head: str = "version = 1\n", tail: str = "") -> str:
    """A mapping file: `head`, one `[[fields]]` table per entry (its key lines), then `tail`."""
    tables = "".join(f"\n[[fields]]\n{body}\n" for body in fields)
    return head + tables + tail


def rule(stripe: str, salesforce: str, owner: str = "salesforce") -> str:
    return f'stripe = "{stripe}"\nsalesforce = "{salesforce}"\nowner = "{owner}"'


def problems_of(text: str) -> list[str]:
    with pytest.raises(MappingError) as caught:
        parse(text, ORIGIN)
    return caught.value.problems


def only_rule(text: str) -> FieldRule:
    [found] = parse(text, ORIGIN).fields
    return found


def account_rule(stripe: str, field: str, owner: str = "salesforce") -> FieldRule:
    return only_rule(mapping_text(rule(stripe, f"Account.{field}", owner)))


# ---- The built-in mapping ---------------------------------------------------------------------


def test_the_built_in_mapping_loads_with_its_rules() -> None:
    mapping = load(None)
    assert mapping.origin == "built-in mapping"
    assert [(r.stripe, r.source, r.owner) for r in mapping.fields] == [
        ("name", "Account.Name", "salesforce"),
        ("phone", "Account.Phone", "salesforce"),
        ("address.line1", "Account.BillingStreet", "salesforce"),
        ("address.line2", "Account.BillingStreet", "salesforce"),
        ("address.city", "Account.BillingCity", "salesforce"),
        ("address.state", "Account.BillingState", "salesforce"),
        ("address.postal_code", "Account.BillingPostalCode", "salesforce"),
        ("address.country", "Account.BillingCountry", "salesforce"),
        ("tax_exempt", "Account.Tax_Exempt__c", "salesforce"),
        ("email", "BillingContact.Email", "salesforce"),
        ("individual_name", "BillingContact.Name", "salesforce"),
    ]
    assert mapping.owned_by("stripe") == ()
    assert [r.field for r in mapping.owned_by("salesforce", "BillingContact")] == ["Email", "Name"]
    assert mapping.account_where == {}
    rule = mapping.billing_contact
    assert (rule.lookup_field, rule.where, rule.order_by) == (
        "Billing_Contact__c",
        {},
        "CreatedDate",
    )


def test_the_built_in_mapping_reads_the_country_code_beside_the_country() -> None:
    mapping = load(None)
    assert mapping.account_reads() == (
        "Id",
        "Name",
        "Phone",
        "BillingStreet",
        "BillingCity",
        "BillingState",
        "BillingPostalCode",
        "BillingCountry",
        "BillingCountryCode",
        "Tax_Exempt__c",
        "Billing_Contact__c",
    )
    assert mapping.contact_reads() == ("Id", "AccountId", "Email", "Name")


def test_account_reads_add_the_filter_fields_and_leave_out_stripe_owned_ones() -> None:
    mapping = parse(
        mapping_text(
            rule("name", "Account.Name"),
            rule("metadata.portal_phone", "Account.Portal_Phone__c", "stripe"),
            head=(
                "version = 1\n[accounts]\nwhere = { Sync__c = true }\n"
                '[billing_contact]\nlookup_field = ""\n'
            ),
        ),
        ORIGIN,
    )
    assert mapping.account_reads() == ("Id", "Name", "Sync__c")
    assert [r.field for r in mapping.owned_by("stripe", "Account")] == ["Portal_Phone__c"]


def test_a_mapping_file_is_read_from_its_path(tmp_path: Path) -> None:
    path = tmp_path / "mapping.toml"
    path.write_text(mapping_text(rule("email", "BillingContact.Email")))
    mapping = load(path)
    assert mapping.origin == str(path)
    assert [r.source for r in mapping.fields] == ["BillingContact.Email"]


def test_an_unreadable_mapping_file_is_one_problem(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    with pytest.raises(MappingError) as caught:
        load(missing)
    [problem] = caught.value.problems
    assert problem.startswith(f"{missing}: cannot read it")


# ---- Validation --------------------------------------------------------------------------------

# Each broken file has exactly one problem; `where` starts the line after the file's name.
ONE_PROBLEM = {
    "bad-toml": ("version = 1\nfields = [", "not valid TOML"),
    "unknown-top-key": (
        mapping_text(rule("name", "Account.Name"), head='version = 1\ncolour = "red"\n'),
        "unknown key 'colour'",
    ),
    "unknown-field-key": (
        mapping_text(rule("name", "Account.Name") + "\nextra = 1"),
        "fields[0]: unknown key 'extra'",
    ),
    "unknown-section-key": (
        mapping_text(rule("name", "Account.Name"), tail="[accounts]\nfilter = 1\n"),
        "accounts: unknown key 'filter'",
    ),
    "unknown-owner": (mapping_text(rule("name", "Account.Name", "both")), "fields[0].owner:"),
    "field-without-salesforce": (
        mapping_text('stripe = "name"'),
        "fields[0]: Object missing required field `salesforce`",
    ),
    "version": (
        mapping_text(rule("name", "Account.Name"), head="version = 2\n"),
        "version: 2 is not supported",
    ),
    "version-type": (
        mapping_text(rule("name", "Account.Name"), head='version = "1"\n'),
        "version: Expected `int`",
    ),
    "unknown-target": (
        mapping_text(rule("nickname", "Account.Name")),
        "fields[0].stripe: 'nickname' is not a Stripe customer field",
    ),
    "reserved-metadata": (
        mapping_text(rule("metadata.sf_account_id", "Account.Id")),
        "fields[0].stripe: metadata.sf_account_id is sfstripe's own link",
    ),
    "bad-metadata-key": (
        mapping_text(rule("metadata.bad key", "Account.Name")),
        "fields[0].stripe: metadata key 'bad key'",
    ),
    "long-metadata-key": (
        mapping_text(rule("metadata." + "k" * 41, "Account.Name")),
        "fields[0].stripe: metadata key",
    ),
    "other-object": (
        mapping_text(rule("email", "Lead.Email")),
        "fields[0].salesforce: 'Lead.Email' must be Account.<Field>",
    ),
    "not-an-api-name": (
        mapping_text(rule("name", "Account.Account Name")),
        "fields[0].salesforce: 'Account.Account Name'",
    ),
    "no-field": (mapping_text(rule("name", "Account")), "fields[0].salesforce: 'Account'"),
    "duplicate-target": (
        mapping_text(rule("phone", "Account.Phone"), rule("phone", "Account.Fax")),
        "fields: phone is mapped more than once",
    ),
    "stripe-owned-contact-field": (
        mapping_text(rule("email", "BillingContact.Email", "stripe")),
        "fields[0].owner: Stripe-owned fields are written to the Account",
    ),
    "stripe-owned-address-part": (
        mapping_text(rule("address.city", "Account.BillingCity", "stripe")),
        "fields[0].owner: address parts cannot be Stripe-owned",
    ),
    "stripe-owned-country-name": (
        mapping_text(rule("address.country", "Account.BillingCountry", "stripe")),
        "fields[0].owner: a Stripe-owned country is an alpha-2 code",
    ),
    "country-to-a-non-country-field": (
        mapping_text(rule("address.country", "Account.BillingCity")),
        "fields[0].salesforce: map address.country to a country name field",
    ),
    "field-with-two-owners": (
        mapping_text(
            rule("description", "Account.Description"),
            rule("metadata.note", "Account.Description", "stripe"),
        ),
        "fields: Account.Description is written from Stripe's metadata.note",
    ),
    "bad-where-name": (
        mapping_text(rule("name", "Account.Name"), tail='[accounts]\nwhere = { "Bad Name" = 1 }\n'),
        "accounts.where: 'Bad Name' is not a Salesforce API field name",
    ),
    "bad-contact-where-name": (
        mapping_text(
            rule("name", "Account.Name"), tail='[billing_contact]\nwhere = { "x-y" = true }\n'
        ),
        "billing_contact.where: 'x-y'",
    ),
    "bad-lookup-name": (
        mapping_text(
            rule("name", "Account.Name"), tail='[billing_contact]\nlookup_field = "a b"\n'
        ),
        "billing_contact.lookup_field: 'a b'",
    ),
    "bad-order-by": (
        mapping_text(
            rule("name", "Account.Name"), tail='[billing_contact]\norder_by = "Name DESC"\n'
        ),
        "billing_contact.order_by: 'Name DESC'",
    ),
    "where-value-type": (
        mapping_text(rule("name", "Account.Name"), tail="[accounts]\nwhere = { Type = [1] }\n"),
        "accounts.where",
    ),
    "no-fields": ("version = 1\nfields = []\n", "fields: map at least one field"),
    "fields-missing": ("version = 1\n", "Object missing required field `fields`"),
}


@pytest.mark.parametrize(("text", "where"), ONE_PROBLEM.values(), ids=ONE_PROBLEM.keys())
def test_each_problem_is_one_line_naming_where(text: str, where: str) -> None:
    [problem] = problems_of(text)
    assert problem.startswith(f"{ORIGIN}: {where}"), problem


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    text = mapping_text(
        rule("nickname", "Account.Name"),
        rule("metadata.sf_account_id", "Account.Id"),
        rule("metadata.bad key", "Account.Site"),
        rule("email", "Lead.Email"),
        rule("phone", "Account.Phone"),
        rule("phone", "Account.Fax"),
        rule("name", "BillingContact.Name", "stripe"),
        rule("address.city", "Account.BillingCity", "stripe"),
        rule("address.country", "Account.BillingCity"),
        rule("description", "Account.Description", "both") + "\nextra = 1",
        head='version = 2\ncolour = "red"\n',
        tail=(
            '[accounts]\nwhere = { "Bad Name" = 1 }\nfilter = 1\n'
            '[billing_contact]\nlookup_field = "a b"\nwhere = { "x-y" = true }\norder_by = "C D"\n'
        ),
    )
    problems = problems_of(text)
    expected = [
        "unknown key 'colour'",
        "fields[9]: unknown key 'extra'",
        "fields[9].owner:",
        "accounts: unknown key 'filter'",
        "version: 2 is not supported",
        "fields[0].stripe:",
        "fields[1].stripe:",
        "fields[2].stripe:",
        "fields[3].salesforce:",
        "fields[6].owner: Stripe-owned fields are written to the Account",
        "fields[7].owner: address parts",
        "fields[8].salesforce: map address.country",
        "fields: phone is mapped more than once",
        "accounts.where: 'Bad Name'",
        "billing_contact.where: 'x-y'",
        "billing_contact.lookup_field: 'a b'",
        "billing_contact.order_by: 'C D'",
    ]
    assert len(problems) == len(expected), "\n".join(problems)
    for where in expected:
        hits = [p for p in problems if p.startswith(f"{ORIGIN}: {where}")]
        assert len(hits) == 1, (where, problems)
    assert all("\n" not in problem for problem in problems)


def test_the_error_message_is_the_problems_one_per_line() -> None:
    error = MappingError(["a: one", "b: two"])
    assert str(error) == "a: one\nb: two"


def test_a_street_may_feed_both_address_lines_and_a_code_field_may_be_stripe_owned() -> None:
    mapping = parse(
        mapping_text(
            rule("address.line1", "Account.BillingStreet"),
            rule("address.line2", "Account.BillingStreet"),
            rule("address.country", "Account.ShippingCountryCode", "stripe"),
            rule("metadata.plan.tier", "Account.Plan_Tier__c", "stripe"),
        ),
        ORIGIN,
    )
    assert [r.stripe for r in mapping.fields] == [
        "address.line1",
        "address.line2",
        "address.country",
        "metadata.plan.tier",
    ]


# ---- Salesforce values as Stripe parameters ------------------------------------------------------


def test_the_country_code_is_preferred_over_the_country_name() -> None:
    country = account_rule("address.country", "BillingCountry")
    assert country.reads() == ("BillingCountry", "BillingCountryCode")
    record = {"BillingCountry": "Germany", "BillingCountryCode": "fr"}
    assert country.to_stripe(record) == "FR"
    # Even a name that maps nowhere does not matter while the code is there.
    assert country.to_stripe({"BillingCountry": "Narnia", "BillingCountryCode": "NL"}) == "NL"


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("Germany", "DE"),
        ("germany", "DE"),
        ("  United   States ", "US"),
        ("DEU", "DE"),
        ("de", "DE"),
        ("Korea, Republic of", "KR"),
        ("Korea, Democratic People's Republic of", "KP"),
        ("Iran, Islamic Republic of", "IR"),
        ("Bolivia, Plurinational State of", "BO"),
        ("Virgin Islands, British", "VG"),
        ("Holy See (Vatican City State)", "VA"),
        ("Macedonia, the former Yugoslav Republic of", "MK"),
        ("Congo, the Democratic Republic of the", "CD"),
        ("Palestinian Territory, Occupied", "PS"),
        ("UK", "GB"),
        ("England", "GB"),
        ("USA", "US"),
        ("U.S.A.", "US"),
        ("Russia", "RU"),
        ("Czech Republic", "CZ"),
        ("Holland", "NL"),
        ("Ivory Coast", "CI"),
        ("Côte d'Ivoire", "CI"),
        ("Curacao", "CW"),
        ("Reunion", "RE"),
        ("Aland Islands", "AX"),
        ("The Netherlands", "NL"),
        ("the Gambia", "GM"),
    ],
)
def test_a_country_name_becomes_its_iso_code(name: str, code: str) -> None:
    country = account_rule("address.country", "BillingCountry")
    assert country.to_stripe({"BillingCountry": name}) == code
    assert country.to_stripe({"BillingCountry": name, "BillingCountryCode": ""}) == code
    assert country.to_stripe({"BillingCountry": name, "BillingCountryCode": None}) == code


@pytest.mark.parametrize("name", ["Narnia", "Atlantis", "The", "XX"])
def test_an_unknown_country_is_a_permanent_error_for_its_event(name: str) -> None:
    country = account_rule("address.country", "BillingCountry")
    with pytest.raises(InvalidValue) as caught:
        country.to_stripe({"Id": "001A", "BillingCountry": name})
    assert "Account.BillingCountry" in str(caught.value)
    assert repr(name) in str(caught.value)
    verdict = classify(caught.value)
    assert verdict.retryable is False
    assert "InvalidValue" in verdict.reason


@pytest.mark.parametrize("empty", [None, "", "   "])
def test_an_empty_country_clears_it(empty: str | None) -> None:
    country = account_rule("address.country", "BillingCountry")
    assert country.to_stripe({"BillingCountry": empty}) == ""
    assert country.to_stripe({}) == ""


def test_a_street_is_split_into_two_address_lines() -> None:
    line1 = account_rule("address.line1", "BillingStreet")
    line2 = account_rule("address.line2", "BillingStreet")
    street = {"BillingStreet": "100 Example Way\nSuite 5\r\n\n  Floor 2  "}
    assert line1.to_stripe(street) == "100 Example Way"
    assert line2.to_stripe(street) == "Suite 5, Floor 2"
    one_line = {"BillingStreet": "  100 Example Way "}
    assert (line1.to_stripe(one_line), line2.to_stripe(one_line)) == ("100 Example Way", "")
    for empty in ({}, {"BillingStreet": None}, {"BillingStreet": "\n \n"}):
        assert (line1.to_stripe(empty), line2.to_stripe(empty)) == ("", "")


def test_a_line_from_another_field_is_sent_as_it_is() -> None:
    line2 = account_rule("address.line2", "Suite__c")
    assert line2.to_stripe({"Suite__c": "Suite 5\nRear"}) == "Suite 5\nRear"


@pytest.mark.parametrize(
    ("value", "flag"),
    [
        (True, "exempt"),
        (False, "none"),
        (None, "none"),
        ("", "none"),
        ("exempt", "exempt"),
        ("Exempt", "exempt"),
        (" REVERSE ", "reverse"),
        ("None", "none"),
        ("true", "exempt"),
        ("False", "none"),
    ],
)
def test_tax_exempt_comes_from_a_checkbox_or_a_picklist(value: Any, flag: str) -> None:
    tax = account_rule("tax_exempt", "Tax_Exempt__c")
    assert tax.to_stripe({"Tax_Exempt__c": value}) == flag


@pytest.mark.parametrize("value", ["maybe", "yes", 1, "exempt-ish"])
def test_an_invalid_tax_exempt_value_is_a_permanent_error(value: Any) -> None:
    tax = account_rule("tax_exempt", "Tax_Exempt__c")
    with pytest.raises(InvalidValue) as caught:
        tax.to_stripe({"Tax_Exempt__c": value})
    assert str(caught.value).startswith("Account.Tax_Exempt__c: ")
    assert classify(caught.value).retryable is False


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("Globex", "Globex"),
        (42, "42"),
        (12.5, "12.5"),
        (3.0, "3"),
        (0.1, "0.1"),
        (1e20, "100000000000000000000"),
        (True, "true"),
        (False, "false"),
        (None, ""),
    ],
)
def test_other_values_are_sent_as_text(value: Any, text: str) -> None:
    assert (
        account_rule("metadata.employees", "NumberOfEmployees").to_stripe(
            {"NumberOfEmployees": value}
        )
        == text
    )


def test_a_billing_contact_rule_reads_the_contact_record() -> None:
    email = only_rule(mapping_text(rule("email", "BillingContact.Email")))
    assert (email.object, email.field, email.source) == (
        "BillingContact",
        "Email",
        "BillingContact.Email",
    )
    assert email.to_stripe({"Email": "ap@globex.test", "Name": "x"}) == "ap@globex.test"
    assert email.to_stripe({}) == ""


# ---- Stripe values for Stripe-owned fields ------------------------------------------------------


def test_stripe_owned_fields_become_account_values() -> None:
    customer = {
        "id": "cus_1",
        "phone": "+1 555 0100",
        "description": "",
        "tax_exempt": "reverse",
        "address": {"country": "DE", "city": "Berlin"},
        "metadata": {"tier": "gold", "plan.tier": "silver"},
    }
    assert (
        account_rule("phone", "Portal_Phone__c", "stripe").to_salesforce(customer) == "+1 555 0100"
    )
    # An empty Stripe value clears the Account field; so does a missing one.
    assert account_rule("description", "Description", "stripe").to_salesforce(customer) is None
    assert account_rule("name", "Portal_Name__c", "stripe").to_salesforce(customer) is None
    assert account_rule("metadata.tier", "Tier__c", "stripe").to_salesforce(customer) == "gold"
    assert (
        account_rule("metadata.plan.tier", "Tier__c", "stripe").to_salesforce(customer) == "silver"
    )
    assert account_rule("metadata.other", "Tier__c", "stripe").to_salesforce(customer) is None
    country = account_rule("address.country", "ShippingCountryCode", "stripe")
    assert country.to_salesforce(customer) == "DE"
    assert country.to_salesforce({"address": None}) is None
    tax = account_rule("tax_exempt", "Tax_Exempt__c", "stripe")
    assert tax.to_salesforce(customer) is True
    assert tax.to_salesforce({"tax_exempt": "exempt"}) is True
    assert tax.to_salesforce({"tax_exempt": "none"}) is False


def test_targets_become_nested_stripe_parameters() -> None:
    params = stripe_params(
        {
            "name": "Globex",
            "address.line1": "100 Example Way",
            "address.country": "US",
            "metadata.tier": "gold",
            "metadata.plan.tier": "silver",
            "tax_exempt": "none",
        }
    )
    assert params == {
        "name": "Globex",
        "address": {"line1": "100 Example Way", "country": "US"},
        "metadata": {"tier": "gold", "plan.tier": "silver"},
        "tax_exempt": "none",
    }
    assert stripe_params({}) == {}


# ---- Which Accounts sync -------------------------------------------------------------------------


def selecting(where: str) -> Mapping:
    return parse(
        mapping_text(rule("name", "Account.Name"), tail=f"[accounts]\nwhere = {where}\n"), ORIGIN
    )


def test_every_account_syncs_without_a_filter() -> None:
    assert load(None).account_selected({}) is True
    assert load(None).account_selected({"Type": "Prospect"}) is True


@pytest.mark.parametrize(
    ("record", "selected"),
    [
        ({"Type": "Customer - Direct", "Sync__c": True}, True),
        ({"Type": "Customer - Direct", "Sync__c": "true"}, True),
        ({"Type": "Customer - Direct", "Sync__c": "TRUE"}, True),
        ({"Type": "Customer - Direct", "Sync__c": False}, False),
        ({"Type": "Customer - Direct", "Sync__c": "false"}, False),
        ({"Type": "Customer - Direct", "Sync__c": None}, False),
        ({"Type": "Customer - Direct"}, False),
        ({"Type": "Prospect", "Sync__c": True}, False),
        ({"Type": None, "Sync__c": True}, False),
        ({"Sync__c": True}, False),
    ],
)
def test_an_account_syncs_when_every_where_field_matches(
    record: dict[str, Any], selected: bool
) -> None:
    mapping = selecting('{ Type = "Customer - Direct", Sync__c = true }')
    assert mapping.account_selected(record) is selected


def test_a_false_checkbox_condition_selects_unchecked_accounts() -> None:
    mapping = selecting("{ Exclude__c = false }")
    assert mapping.account_selected({"Exclude__c": False}) is True
    assert mapping.account_selected({"Exclude__c": "false"}) is True
    assert mapping.account_selected({"Exclude__c": True}) is False


def test_a_number_condition_matches_salesforce_numbers() -> None:
    mapping = selecting("{ Tier__c = 2 }")
    assert mapping.account_selected({"Tier__c": 2}) is True
    assert mapping.account_selected({"Tier__c": 2.0}) is True
    assert mapping.account_selected({"Tier__c": "2"}) is True
    assert mapping.account_selected({"Tier__c": 3}) is False
    assert mapping.account_selected({"Tier__c": None}) is False


# ---- CDC field names and SOQL ------------------------------------------------------------------


def cdc(name: str) -> tuple[dict[str, Any], list[str]]:
    """A captured CDC sample as the handler sees it: its record fields and changed fields."""
    [event], _ = to_log_events(json.loads((SAMPLES / f"{name}.json").read_text()))
    body = json.loads(event.payload)
    return record_fields(body), body["changed_fields"]


def test_a_created_account_has_flat_address_fields() -> None:
    fields, _ = cdc("sf_account_create_cometd")
    flat = flat_fields(fields)
    assert "BillingAddress" not in flat
    assert {name: flat[name] for name in flat if name.startswith("Billing")} == {
        "BillingStreet": "100 Example Way",
        "BillingCity": "Springfield",
        "BillingState": "IL",
        "BillingPostalCode": "62701",
        "BillingCountry": "United States",
    }
    assert flat["Name"] == "Globex Test Holdings"
    mapping = load(None)
    wanted = {
        rule.stripe: rule.to_stripe(flat) for rule in mapping.owned_by("salesforce", "Account")
    }
    assert wanted["address.country"] == "US"
    assert wanted["address.line1"] == "100 Example Way"
    assert wanted["tax_exempt"] == "none"


def test_an_account_update_names_flat_fields() -> None:
    fields, changed = cdc("sf_account_update_cometd")
    assert flat_names(changed) == [
        "Phone",
        "Website",
        "BillingCity",
        "BillingPostalCode",
        "LastModifiedDate",
    ]
    flat = flat_fields(fields)
    assert (flat["BillingCity"], flat["BillingPostalCode"]) == ("Shelbyville", "62565")
    assert flat["Website"] is None
    assert "BillingStreet" not in flat  # only the changed address parts are in an update


def test_a_contact_name_change_changes_its_name() -> None:
    fields, changed = cdc("sf_contact_update_cometd")
    names = flat_names(changed)
    assert names == ["LastName", "Name", "Email", "LastModifiedDate", "LastModifiedById"]
    # The built-in mapping reads the contact's Name: a renamed billing contact must reach Stripe.
    assert "Name" in set(names) & set(load(None).contact_reads())
    flat = flat_fields(fields)
    assert flat["LastName"] == "Rivera-Okafor"
    assert flat["Email"] == "m.rivera-okafor@globex.example.com"
    assert flat_names(["Name.FirstName", "Name.LastName"]) == ["FirstName", "Name", "LastName"]


def test_a_created_contact_has_its_name_parts() -> None:
    flat = flat_fields({"Name": {"Salutation": None, "FirstName": "Ada", "LastName": "Lovelace"}})
    assert flat == {"Salutation": None, "FirstName": "Ada", "LastName": "Lovelace"}
    assert flat_fields({"Name": "Globex"}) == {"Name": "Globex"}
    assert flat_fields({"ShippingAddress": {"CountryCode": "DE"}}) == {"ShippingCountryCode": "DE"}


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("Globex", "'Globex'"),
        ("O'Brien", r"'O\'Brien'"),
        ("a\\b", r"'a\\b'"),
        ("\\'", r"'\\\''"),  # the backslash is escaped before the quote it would otherwise hide
        ("' OR Name != '", r"'\' OR Name != \''"),
        (True, "true"),
        (False, "false"),
        (5, "5"),
        (2.5, "2.5"),
    ],
)
def test_soql_literals_are_escaped(value: Any, literal: str) -> None:
    assert soql_literal(value) == literal


def test_soql_where_joins_conditions() -> None:
    where = soql_where({"AccountId": "001A", "Is_Billing__c": True, "Title": "CFO's office"})
    assert where == r"AccountId = '001A' AND Is_Billing__c = true AND Title = 'CFO\'s office'"
    assert soql_where({}) == ""
