"""Salesforce billing countries as the ISO 3166-1 alpha-2 codes Stripe addresses take.

Orgs with state and country picklists carry `BillingCountryCode`, which is used as is. Otherwise the
free-text country is looked up in ISO 3166 (names, official and common names, alpha-2/3 codes)
plus the labels of Salesforce's country picklist and a few everyday names that differ from ISO.
"""

from __future__ import annotations

import pycountry

# Salesforce picklist labels and common names that ISO 3166 (as pycountry spells it) does not know.
ALIASES = {
    "uk": "GB",
    "great britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "u.k.": "GB",
    "u.s.": "US",
    "u.s.a.": "US",
    "united states of america": "US",
    "america": "US",
    "russia": "RU",
    "turkey": "TR",
    "ivory coast": "CI",
    "cote d'ivoire": "CI",
    "macedonia": "MK",
    "macedonia, the former yugoslav republic of": "MK",
    "holland": "NL",
    "vatican": "VA",
    "holy see (vatican city state)": "VA",
    "congo, the democratic republic of the": "CD",
    "democratic republic of the congo": "CD",
    "republic of the congo": "CG",
    "czech republic": "CZ",
    "swaziland": "SZ",
    "burma": "MM",
    "cape verde": "CV",
    "east timor": "TL",
    "palestine": "PS",
    "laos": "LA",
    "syria": "SY",
    "brunei": "BN",
    "micronesia": "FM",
    "moldova": "MD",
    "tanzania": "TZ",
    "venezuela": "VE",
}


class UnknownCountry(ValueError):
    """The value names no ISO 3166 country: a permanent error for the event that carries it."""


def alpha2(value: str) -> str:
    """The alpha-2 code of a country name or code."""
    text = " ".join(value.split())
    if not text:
        raise UnknownCountry("the country is empty")
    alias = ALIASES.get(text.casefold())
    if alias is not None:
        return alias
    try:
        country = pycountry.countries.lookup(text)
    except LookupError:
        raise UnknownCountry(f"{value!r} is not an ISO 3166 country name or code") from None
    code: str = country.alpha_2
    return code
