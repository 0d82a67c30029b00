"""`sfstripe mapping check` validates the field mapping; a broken SFSTRIPE_MAPPING_FILE stops
`sfstripe run` before anything starts: exit code 2, one line per problem."""

from __future__ import annotations

from pathlib import Path

from tests.acceptance.support import base_environment, run_cli

VALID = """\
version = 1

[accounts]
where = { Type = "Customer - Direct" }

[billing_contact]
lookup_field = ""
where = { Title = "Accounts Payable" }
order_by = "CreatedDate"

[[fields]]
stripe = "name"
salesforce = "Account.Name"

[[fields]]
stripe = "address.country"
salesforce = "Account.BillingCountry"

[[fields]]
stripe = "email"
salesforce = "BillingContact.Email"

[[fields]]
stripe = "metadata.portal_phone"
salesforce = "Account.Portal_Phone__c"
owner = "stripe"
"""

# Six problems, each on its own line of the output.
BROKEN = """\
version = 2
colour = "red"

[billing_contact]
order_by = "Created Date"

[[fields]]
stripe = "nickname"
salesforce = "Account.Name"

[[fields]]
stripe = "email"
salesforce = "BillingContact.Email"
owner = "stripe"

[[fields]]
stripe = "metadata.sf_account_id"
salesforce = "Account.Id"
"""
BROKEN_WHERE = [
    "unknown key 'colour'",
    "version: 2 is not supported",
    "fields[0].stripe: 'nickname'",
    "fields[1].owner: Stripe-owned fields are written to the Account",
    "fields[2].stripe: metadata.sf_account_id",
    "billing_contact.order_by: 'Created Date'",
]


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def assert_lists_valid(stdout: str, origin: str) -> None:
    *rules, summary = lines(stdout)
    assert summary == f"{origin}: 4 fields, ok"
    assert [line.split() for line in rules] == [
        ["Account.Name", "->", "name", "owner", "salesforce"],
        ["Account.BillingCountry", "->", "address.country", "owner", "salesforce"],
        ["BillingContact.Email", "->", "email", "owner", "salesforce"],
        ["Account.Portal_Phone__c", "->", "metadata.portal_phone", "owner", "stripe"],
    ]


def assert_every_problem(stderr: str, origin: str, prefix: str) -> None:
    problems = lines(stderr)
    assert len(problems) == len(BROKEN_WHERE), stderr
    for where in BROKEN_WHERE:
        hits = [line for line in problems if line.startswith(f"{prefix}{origin}: {where}")]
        assert len(hits) == 1, (where, stderr)
    assert "Traceback" not in stderr


def test_the_built_in_mapping_is_listed(workdir: Path) -> None:
    result = run_cli("mapping", "check", env=base_environment(), cwd=workdir)

    assert result.returncode == 0, result
    *rules, summary = lines(result.stdout)
    assert summary == "built-in mapping: 11 fields, ok"
    assert len(rules) == 11
    assert rules[0].split() == ["Account.Name", "->", "name", "owner", "salesforce"]
    assert ["Account.BillingCountry", "->", "address.country", "owner", "salesforce"] in [
        rule.split() for rule in rules
    ]
    assert rules[-1].split() == [
        "BillingContact.Name",
        "->",
        "individual_name",
        "owner",
        "salesforce",
    ]
    assert result.stderr == ""


def test_a_valid_file_given_as_argument(workdir: Path) -> None:
    path = workdir / "mapping.toml"
    path.write_text(VALID)
    # The argument wins over the variable.
    env = base_environment(SFSTRIPE_MAPPING_FILE=str(workdir / "missing.toml"))
    result = run_cli("mapping", "check", str(path), env=env, cwd=workdir)

    assert result.returncode == 0, result
    assert_lists_valid(result.stdout, str(path))


def test_a_valid_file_named_by_the_variable(workdir: Path) -> None:
    path = workdir / "mapping.toml"
    path.write_text(VALID)
    env = base_environment(SFSTRIPE_MAPPING_FILE=str(path))
    result = run_cli("mapping", "check", env=env, cwd=workdir)

    assert result.returncode == 0, result
    assert_lists_valid(result.stdout, str(path))


def test_a_broken_file_exits_2_with_every_problem_on_its_own_line(workdir: Path) -> None:
    path = workdir / "broken.toml"
    path.write_text(BROKEN)
    for args, env in [
        ((str(path),), base_environment()),
        ((), base_environment(SFSTRIPE_MAPPING_FILE=str(path))),
    ]:
        result = run_cli("mapping", "check", *args, env=env, cwd=workdir)

        assert result.returncode == 2, result
        assert result.stdout == ""
        assert_every_problem(result.stderr, str(path), "mapping error: ")


def test_a_file_that_is_not_toml_or_not_there(workdir: Path) -> None:
    path = workdir / "broken.toml"
    path.write_text('version = 1\n[[fields]\nstripe = "name"\n')
    result = run_cli("mapping", "check", str(path), env=base_environment(), cwd=workdir)
    assert result.returncode == 2, result
    [line] = lines(result.stderr)
    assert line.startswith(f"mapping error: {path}: not valid TOML")

    missing = workdir / "missing.toml"
    result = run_cli("mapping", "check", str(missing), env=base_environment(), cwd=workdir)
    assert result.returncode == 2, result
    [line] = lines(result.stderr)
    assert line.startswith(f"mapping error: {missing}: cannot read it")


def test_the_daemon_does_not_start_with_a_broken_mapping_file(workdir: Path) -> None:
    path = workdir / "broken.toml"
    path.write_text(BROKEN)
    # No database and no source is configured: the configuration is checked before either.
    env = base_environment(SFSTRIPE_MAPPING_FILE=str(path))
    result = run_cli("run", env=env, cwd=workdir)

    assert result.returncode == 2, result
    assert result.stdout == ""
    assert_every_problem(result.stderr, str(path), "configuration error: SFSTRIPE_MAPPING_FILE: ")
