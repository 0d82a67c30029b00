"""Unit tests for `state.sql`: named queries and numbered migrations from package files."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from types import SimpleNamespace

import pytest

from state import sql

QUERY_NAMES = sorted(
    entry.name.removesuffix(".sql")
    for entry in resources.files("state").joinpath("queries").iterdir()
    if entry.name.endswith(".sql")
)


def test_there_are_queries_to_check() -> None:
    assert len(QUERY_NAMES) > 0


@pytest.mark.parametrize("name", QUERY_NAMES)
def test_every_query_file_loads_and_is_not_blank(name: str) -> None:
    text = sql.query(name)
    assert text.strip()
    on_disk = resources.files("state").joinpath("queries", f"{name}.sql").read_text("utf-8")
    assert text == on_disk


@pytest.mark.parametrize("name", QUERY_NAMES)
def test_every_query_has_sql_beyond_comments(name: str) -> None:
    lines = [line.strip() for line in sql.query(name).splitlines()]
    assert any(line and not line.startswith("--") for line in lines)


def test_query_returns_the_named_file_not_another() -> None:
    assert len(QUERY_NAMES) >= 2
    assert sql.query(QUERY_NAMES[0]) != sql.query(QUERY_NAMES[1])


@pytest.mark.parametrize("name", ["no_such_query", "", "ping.sql", "PING_NOT_THERE"])
def test_unknown_query_name_fails_loudly(name: str) -> None:
    with pytest.raises((FileNotFoundError, ValueError)):
        sql.query(name)


def test_unknown_query_keeps_failing_on_repeat() -> None:
    for _ in range(2):
        with pytest.raises(FileNotFoundError):
            sql.query("no_such_query")


def test_query_name_cannot_escape_the_queries_folder() -> None:
    with pytest.raises((FileNotFoundError, ValueError)):
        sql.query("../schema")


def test_real_migrations_are_numbered_in_order_and_unique() -> None:
    found = sql.migrations()
    assert found, "no migrations found"
    numbers = [number for number, _, _ in found]
    assert numbers == sorted(numbers)
    assert len(set(numbers)) == len(numbers)
    for number, name, text in found:
        assert name.endswith(".sql")
        assert int(name.split("_", 1)[0]) == number
        assert text.strip()


def test_real_migrations_cover_every_sql_file() -> None:
    folder = resources.files("state").joinpath("migrations")
    on_disk = sorted(e.name for e in folder.iterdir() if e.name.endswith(".sql"))
    assert sorted(name for _, name, _ in sql.migrations()) == on_disk


def test_real_migrations_start_at_one_without_gaps() -> None:
    numbers = [number for number, _, _ in sql.migrations()]
    assert numbers == list(range(1, len(numbers) + 1))


def fake_package(monkeypatch: pytest.MonkeyPatch, root: Path, files: dict[str, str]) -> None:
    folder = root / "migrations"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text, "utf-8")
    monkeypatch.setattr(sql, "resources", SimpleNamespace(files=lambda package: root))


def test_migrations_sort_numerically_not_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_package(
        monkeypatch,
        tmp_path,
        {"10_ten.sql": "SELECT 10;", "9_nine.sql": "SELECT 9;", "0002_two.sql": "SELECT 2;"},
    )
    assert sql.migrations() == [
        (2, "0002_two.sql", "SELECT 2;"),
        (9, "9_nine.sql", "SELECT 9;"),
        (10, "10_ten.sql", "SELECT 10;"),
    ]


def test_migrations_ignore_non_sql_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_package(monkeypatch, tmp_path, {"0001_a.sql": "SELECT 1;", "README.md": "notes"})
    assert [name for _, name, _ in sql.migrations()] == ["0001_a.sql"]


def test_duplicate_migration_numbers_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_package(
        monkeypatch,
        tmp_path,
        {"0001_a.sql": "SELECT 1;", "0002_b.sql": "SELECT 2;", "2_c.sql": "SELECT 3;"},
    )
    with pytest.raises(RuntimeError, match="share a number"):
        sql.migrations()


def test_declared_schema_is_not_blank() -> None:
    assert sql.declared_schema().strip()
