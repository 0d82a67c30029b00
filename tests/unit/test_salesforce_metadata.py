"""The SFDX metadata in `salesforce/` agrees with `handlers/customers/fields.py`, the single
source of truth for the Account field names: a name that drifts on either side fails here."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from handlers.customers import fields
from sfstripe.config import Settings

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "salesforce"
DEFAULT = PROJECT / "force-app" / "main" / "default"
FIELDS_DIR = DEFAULT / "objects" / "Account" / "fields"
PERMISSION_SET = DEFAULT / "permissionsets" / "sfstripe_Integration.permissionset-meta.xml"
NS = {"sf": "http://soap.sforce.com/2006/04/metadata"}
SUFFIX = ".field-meta.xml"

# The type (and its size) of each field, keyed by the names in fields.py.
EXPECTED_TYPES: dict[str, dict[str, str]] = {
    fields.CUSTOMER_ID: {"type": "Text", "length": "255"},
    fields.BILLING_STATUS: {"type": "Picklist"},
    fields.INVOICE_NUMBER: {"type": "Text", "length": "64"},
    fields.INVOICE_STATUS: {"type": "Picklist"},
    fields.INVOICE_AMOUNT_DUE: {"type": "Number", "precision": "16", "scale": "2"},
    fields.INVOICE_CURRENCY: {"type": "Text", "length": "3"},
    fields.INVOICE_URL: {"type": "Url"},
    fields.INVOICE_PDF_URL: {"type": "Url"},
    fields.DUNNING_ATTEMPTS: {"type": "Number", "precision": "4", "scale": "0"},
    fields.NEXT_PAYMENT_ATTEMPT: {"type": "DateTime"},
    fields.PAYMENT_METHOD_BRAND: {"type": "Text", "length": "32"},
    fields.PAYMENT_METHOD_LAST4: {"type": "Text", "length": "4"},
    fields.PAYMENT_METHOD_EXPIRY: {"type": "Text", "length": "7"},
    fields.BILLING_CONTACT: {"type": "Lookup", "referenceTo": "Contact"},
    fields.TAX_EXEMPT: {"type": "Checkbox", "defaultValue": "false"},
}
# Standard fields the default mapping and the Contact routing read. A user with a minimal profile
# (say *Minimum Access - API Only Integrations*) has no field-level access to them otherwise, and
# change events leave out the fields their subscriber cannot read. Names are always readable.
STANDARD_READ = {
    "Account.Phone",
    "Account.BillingStreet",
    "Account.BillingCity",
    "Account.BillingState",
    "Account.BillingPostalCode",
    "Account.BillingCountry",
    "Contact.AccountId",
    "Contact.Email",
}
PICKLISTS = {
    fields.BILLING_STATUS: fields.BILLING_STATUSES,
    fields.INVOICE_STATUS: fields.INVOICE_STATUSES,
}


def _text(element: ET.Element, tag: str) -> str | None:
    return element.findtext(f"sf:{tag}", namespaces=NS)


def _field(name: str) -> ET.Element:
    return ET.parse(FIELDS_DIR / f"{name}{SUFFIX}").getroot()


def test_sets_in_fields_py_are_consistent() -> None:
    names = fields.WRITTEN + fields.READ
    assert len(set(names)) == len(names)
    assert set(EXPECTED_TYPES) == set(names)
    assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*__c", name) for name in names)


def test_every_field_has_a_file_and_no_file_is_extra() -> None:
    files = {path.name.removesuffix(SUFFIX) for path in FIELDS_DIR.glob(f"*{SUFFIX}")}
    assert files == set(fields.WRITTEN + fields.READ)
    assert set(path.name for path in FIELDS_DIR.iterdir()) == {f + SUFFIX for f in files}


@pytest.mark.parametrize("name", fields.WRITTEN + fields.READ)
def test_field_file(name: str) -> None:
    root = _field(name)
    assert root.tag == f"{{{NS['sf']}}}CustomField"
    assert _text(root, "fullName") == name
    assert _text(root, "label")
    description = _text(root, "description") or ""
    if name in fields.WRITTEN:
        assert "Written by sfstripe" in description
    else:
        assert "Read by sfstripe" in description
    for tag, value in EXPECTED_TYPES[name].items():
        assert _text(root, tag) == value, (name, tag)


def test_customer_id_is_a_unique_external_id() -> None:
    root = _field(fields.CUSTOMER_ID)
    assert _text(root, "externalId") == "true"
    assert _text(root, "unique") == "true"
    assert _text(root, "caseSensitive") == "false"


def test_billing_contact_lookup() -> None:
    root = _field(fields.BILLING_CONTACT)
    assert _text(root, "deleteConstraint") == "SetNull"
    assert _text(root, "relationshipName")


@pytest.mark.parametrize("name", list(PICKLISTS))
def test_picklist_values_equal_fields_py(name: str) -> None:
    definition = _field(name).find("sf:valueSet/sf:valueSetDefinition", NS)
    assert definition is not None
    values = tuple(_text(value, "fullName") for value in definition.findall("sf:value", NS))
    assert values == PICKLISTS[name]
    assert all(_text(value, "label") for value in definition.findall("sf:value", NS))


def test_permission_set_grants_the_fields_and_nothing_broad() -> None:
    root = ET.parse(PERMISSION_SET).getroot()
    assert root.tag == f"{{{NS['sf']}}}PermissionSet"
    assert _text(root, "label")
    assert len(_text(root, "description") or "") <= 255
    granted = {
        _text(perm, "field"): (_text(perm, "readable"), _text(perm, "editable"))
        for perm in root.findall("sf:fieldPermissions", NS)
    }
    expected = {f"Account.{name}": ("true", "true") for name in fields.WRITTEN}
    expected |= {f"Account.{name}": ("true", "false") for name in fields.READ}
    expected |= {name: ("true", "false") for name in STANDARD_READ}
    assert granted == expected

    objects = {_text(perm, "object"): perm for perm in root.findall("sf:objectPermissions", NS)}
    assert set(objects) == {"Account", "Contact"}
    for name, edit in (("Account", "true"), ("Contact", "false")):
        perm = objects[name]
        assert _text(perm, "allowRead") == "true"
        assert _text(perm, "allowEdit") == edit
        assert _text(perm, "allowCreate") == "false"
        assert _text(perm, "allowDelete") == "false"
        assert _text(perm, "modifyAllRecords") == "false"
        # Change Data Capture delivers an object's events only with View All Records on it.
        assert _text(perm, "viewAllRecords") == "true"

    user = {
        _text(perm, "name"): _text(perm, "enabled")
        for perm in root.findall("sf:userPermissions", NS)
    }
    assert user.get("ApiEnabled") == "true"
    assert not {"ModifyAllData", "ViewAllData"} & {k for k, v in user.items() if v == "true"}


def test_sfdx_project() -> None:
    project = json.loads((PROJECT / "sfdx-project.json").read_text())
    paths = [directory["path"] for directory in project["packageDirectories"]]
    assert "force-app" in paths
    assert (PROJECT / "force-app").is_dir()
    # The metadata is written for the API version sfstripe talks by default.
    assert project["sourceApiVersion"] == Settings().sf_api_version


def test_readme_names_every_field() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in fields.WRITTEN + fields.READ if f"`{name}`" not in readme]
    assert not missing
