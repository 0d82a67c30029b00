"""Named SQL statements, loaded from this package's `.sql` files so no SQL is built from strings."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def query(name: str) -> str:
    """The text of `queries/<name>.sql`; a missing name fails loudly at first use."""
    if not name.isidentifier():
        raise ValueError(f"not a query name: {name!r}")
    return resources.files(__package__).joinpath("queries", f"{name}.sql").read_text("utf-8")


def migrations() -> list[tuple[int, str, str]]:
    """All migrations as (number, file name, SQL) in numeric order."""
    folder = resources.files(__package__).joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            number = int(entry.name.split("_", 1)[0])
            found.append((number, entry.name, entry.read_text("utf-8")))
    found.sort()
    numbers = [number for number, _, _ in found]
    if len(set(numbers)) != len(numbers):
        raise RuntimeError(f"two migrations share a number: {numbers}")
    return found


def declared_schema() -> str:
    """The schema all migrations together must build; tests hold the two to each other."""
    return resources.files(__package__).joinpath("schema.sql").read_text("utf-8")
