"""Salesforce billing countries as the ISO 3166-1 alpha-2 codes Stripe addresses take.

Orgs with state and country picklists carry `BillingCountryCode`, which is used as is. Otherwise the
free-text country is looked up in ISO 3166 (names, official and common names, alpha-2/3 codes)
plus the labels of Salesforce's country picklist and a few everyday names that differ from ISO.
Names match without regard to case, accents ("Curacao", "Reunion") or a leading "The".
"""

from __future__ import annotations

import functools
import unicodedata

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
    "palestinian territory, occupied": "PS",
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
        code = _folded_names().get(_fold(text))
        if code is None:
            raise UnknownCountry(f"{value!r} is not an ISO 3166 country name or code") from None
        return code
    found: str = country.alpha_2
    return found


def _fold(name: str) -> str:
    """Lower case without accents or a leading "the": "The Côte" -> "cote"."""
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    plain = "".join(char for char in decomposed if not unicodedata.combining(char))
    return plain.removeprefix("the ").strip()


@functools.cache
def _folded_names() -> dict[str, str]:
    names: dict[str, str] = {}
    for country in pycountry.countries:
        for attribute in ("name", "official_name", "common_name"):
            name = getattr(country, attribute, None)
            if name:
                names.setdefault(_fold(name), country.alpha_2)
    names.update({_fold(alias): code for alias, code in ALIASES.items()})
    return names
