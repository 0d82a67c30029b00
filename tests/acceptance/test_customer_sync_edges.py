"""The customer sync's edges, each on its own, with `sfstripe run` as a subprocess against the
Salesforce-compatible test server, the Stripe Billing emulator and PostgreSQL: a Stripe-owned field,
deleted and undeleted Accounts, an unmappable country as a dead letter (on a create and on an
update), an overflow event, the billing contact lookup and the account filter."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import anyio.to_thread
from aiohttp import web

from handlers.customers import fields
from handlers.customers.mapping import load
from tests.acceptance.customer_sync_support import (
    ORG_FIELDS,
    SyncWorld,
    customer_settled,
    metric,
    settled,
    sync_world,
)
from tests.acceptance.support import Daemon, run_cli
from tests.pgproxy import free_port
from tests.sfserver_fixture import SalesforceServer
from tests.waiting import wait_until

HANDLER = "stripe-customers"
BILLING_EMAIL = "Billing_Email__c"
OVERFLOW_RECORD_ID = "000000000000000AAA"
HOP_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
SYSTEM_FIELDS = ("Id", "CreatedDate", "LastModifiedDate", "SystemModstamp", "IsDeleted")


# ---- helpers --------------------------------------------------------------------------------


def write_mapping(
    tmp_path: Path,
    *,
    drop: tuple[str, ...] = (),
    add: tuple[tuple[str, str, str], ...] = (),
    where: dict[str, str] | None = None,
) -> Path:
    """The built-in mapping as a file, without the Stripe targets in `drop`, with the
    (stripe, salesforce, owner) rules in `add` and `[accounts] where` set to `where`."""
    default = load(None)
    rules = [
        (rule.stripe, rule.source, rule.owner) for rule in default.fields if rule.stripe not in drop
    ]
    contact = default.billing_contact
    lines = ["version = 1", "", "[accounts]"]
    lines.append(f"where = {_inline(where or {})}")
    lines += [
        "",
        "[billing_contact]",
        f"lookup_field = {json.dumps(contact.lookup_field)}",
        f"where = {_inline({k: str(v) for k, v in contact.where.items()})}",
        f"order_by = {json.dumps(contact.order_by)}",
    ]
    for stripe, salesforce, owner in [*rules, *add]:
        lines += [
            "",
            "[[fields]]",
            f"stripe = {json.dumps(stripe)}",
            f"salesforce = {json.dumps(salesforce)}",
            f"owner = {json.dumps(owner)}",
        ]
    path = tmp_path / "mapping.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    load(path)  # a mistake here should fail here, not as a daemon that will not start
    return path


def _inline(table: dict[str, str]) -> str:
    return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in table.items()) + " }"


async def started(
    world: SyncWorld, daemons: Callable[..., Daemon], *, account_fields: tuple[str, ...] = ()
) -> Daemon:
    """Describe the org's fields (plus `account_fields` on Account), then start the daemon.

    The test server's describe lists only the configured fields and those of existing records,
    so before the first Contact exists it has no `Contact.Id`; a real org always describes its
    system fields, so they are configured here too."""
    await world.sf.set_config(
        fields={
            sobject: [*SYSTEM_FIELDS, *names, *(account_fields if sobject == "Account" else ())]
            for sobject, names in ORG_FIELDS.items()
        }
    )
    daemon = daemons(world.env)
    await anyio.to_thread.run_sync(daemon.wait_ready)
    return daemon


async def handled(
    daemon: Daemon, sf: SalesforceServer, sobject: str, values: dict[str, Any], **edit: Any
) -> str:
    """Make a change "in Salesforce" and wait until `stripe-customers` has applied or passed
    everything in the log up to its change event, so a test can tell "nothing happened" from
    "nothing happened yet". Returns the record id."""
    done = await sf.edit_record(sobject, values, **edit)
    channel = f"/data/{sobject}ChangeEvent"
    replay_id = done["replayIds"][channel]

    async def committed() -> bool:
        return metric(daemon, "sfstripe_salesforce_replay_id", channel=channel) >= replay_id

    await wait_until(committed, within=40)
    head = metric(daemon, "sfstripe_log_head_offset")

    async def caught_up() -> bool:
        return metric(daemon, "sfstripe_handler_low_water_offset", handler=HANDLER) >= head

    await wait_until(caught_up, within=40)
    return str(done["id"])


async def logged(daemon: Daemon, event: str, **expected: Any) -> dict[str, Any]:
    """Wait until the daemon logs `event` with `expected` values (a list value: contains it)."""

    def matches(record: dict[str, Any]) -> bool:
        for key, want in expected.items():
            got = record.get(key)
            if isinstance(got, list) and not isinstance(want, list):
                if want not in got:
                    return False
            elif got != want:
                return False
        return True

    async def seen() -> bool:
        return any(matches(r) for r in daemon.logged(event))

    await wait_until(seen, within=40)
    return next(r for r in daemon.logged(event) if matches(r))


def billing_email_events(daemon: Daemon, account: str) -> tuple[int, int]:
    """How many change events of the Account had `Billing_Email__c` taken as sfstripe's own echo,
    and how many had it ignored as a Stripe-owned field changed in Salesforce."""
    counts = []
    for event in ("echo_suppressed", "stripe_owned_change_ignored"):
        counts.append(
            sum(
                1
                for r in daemon.logged(event)
                if r.get("record") == account and BILLING_EMAIL in (r.get("fields") or [])
            )
        )
    return counts[0], counts[1]


async def own_write_handled(daemon: Daemon, account: str, count: int) -> None:
    """Wait until `count` change events carrying `Billing_Email__c` have been handled."""

    async def done() -> bool:
        return sum(billing_email_events(daemon, account)) >= count

    await wait_until(done, within=40)


class SlowWriteAnswers:
    """A reverse proxy in front of the test server that holds the answer of every sObject
    Collections write (`PATCH composite/sobjects`, how salesforce-billing writes) for `delay`
    seconds: the records change and their change events go out at once, the answer comes late,
    as from a busy org. The token answer's instance URL is rewritten to the proxy so that REST and
    CometD both go through it."""

    def __init__(self, upstream: str, delay: float) -> None:
        self.upstream = upstream.rstrip("/")
        self.delay = delay
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=await request.read(),
        ) as answer:
            body = await answer.read()
            status = answer.status
            kept = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_HEADERS}
        if request.path == "/services/oauth2/token":
            body = body.replace(self.upstream.encode(), self.url.encode())
        if request.method == "PATCH" and request.path.endswith("/composite/sobjects"):
            await asyncio.sleep(self.delay)
        return web.Response(body=body, status=status, headers=kept)

    async def __aenter__(self) -> SlowWriteAnswers:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()


def dead_letters(world: SyncWorld, workdir: Path) -> list[dict[str, Any]]:
    result = run_cli("dlq", "list", "--json", env=world.env, cwd=workdir)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


async def parked_letter(world: SyncWorld, workdir: Path, customer: str) -> dict[str, Any]:
    """Wait for the customer's lane to park on a dead letter: the only one there is."""

    async def parked() -> bool:
        letters = await anyio.to_thread.run_sync(dead_letters, world, workdir)
        return any(letter["customer"] == customer for letter in letters)

    await wait_until(parked, within=60)
    [letter] = await anyio.to_thread.run_sync(dead_letters, world, workdir)
    return letter


async def retry_dead_letter(world: SyncWorld, workdir: Path, letter: dict[str, Any]) -> None:
    retried = await anyio.to_thread.run_sync(
        lambda: run_cli("dlq", "retry", str(letter["id"]), env=world.env, cwd=workdir)
    )
    assert retried.returncode == 0, retried.stderr


async def new_account(world: SyncWorld, **values: Any) -> str:
    return str((await world.sf.edit_record("Account", values))["id"])


async def linked_customer(world: SyncWorld, account: str, **expected: Any) -> Any:
    """Wait until the account has its one Stripe customer showing `expected`, and the Account
    shows that customer's id."""
    customer = await customer_settled(world, account, **expected)
    await settled(world, account, **{fields.CUSTOMER_ID: customer.id})
    return customer


async def undelete(sf: SalesforceServer, sobject: str, record_id: str) -> None:
    """Take a record out of the recycle bin. The test server has no undelete, so: stop it, set
    the record live in its state file, start it again (same port, same state), then publish the
    UNDELETE change event Salesforce would send."""
    assert sf.state_file is not None
    await sf.kill()
    state = json.loads(sf.state_file.read_text())
    record = state["records"][sobject][record_id]
    record["IsDeleted"] = False
    sf.state_file.write_text(json.dumps(state))
    await sf.start()
    live = {k: v for k, v in record.items() if k not in ("Id", "IsDeleted", "SystemModstamp")}
    await sf.publish(sobject, "UNDELETE", record_ids=[record_id], fields=live)


# ---- tests ----------------------------------------------------------------------------------


async def test_a_stripe_owned_field_flows_only_from_stripe_and_echoes_are_counted(
    tmp_path: Path, workdir: Path, fresh_dsn: str, daemons: Callable[..., Daemon]
) -> None:
    mapping = write_mapping(
        tmp_path,
        drop=("email",),
        add=(("email", f"Account.{BILLING_EMAIL}", "stripe"),),
    )
    async with sync_world(tmp_path, fresh_dsn, SFSTRIPE_MAPPING_FILE=str(mapping)) as world:
        sf = world.sf
        daemon = await started(world, daemons, account_fields=(BILLING_EMAIL,))
        account = await new_account(world, Name="Initech", Phone="+1 555 0100")
        customer = await linked_customer(world, account, name="Initech", phone="+1 555 0100")

        # The customer changes its email in the customer portal: the Account follows.
        await world.stripe.v1.customers.update_async(
            customer.id, params={"email": "portal@initech.example"}
        )
        await settled(world, account, **{BILLING_EMAIL: "portal@initech.example"})
        # Its change event is handled (as an echo, or, see the test below, as an ignored
        # Stripe-owned change); either way nothing goes back to Stripe.
        await own_write_handled(daemon, account, 1)

        # A person edits the field in Salesforce: Stripe owns it, nothing is sent.
        await handled(
            daemon, sf, "Account", {BILLING_EMAIL: "sales@initech.example"}, record_id=account
        )
        await logged(daemon, "stripe_owned_change_ignored", record=account, fields=BILLING_EMAIL)
        unchanged = await world.customer_of(account)
        assert unchanged is not None
        assert unchanged.email == "portal@initech.example"

        # A Salesforce-owned field goes to Stripe; the customer.updated of sfstripe's own request
        # is an echo on the Stripe side.
        stripe_echoes = metric(daemon, "sfstripe_echoes_suppressed_total", source="stripe")
        await sf.edit_record("Account", {"Phone": "+1 555 0199"}, record_id=account)
        await customer_settled(world, account, phone="+1 555 0199")

        async def stripe_echo_counted() -> bool:
            now = metric(daemon, "sfstripe_echoes_suppressed_total", source="stripe")
            return now > stripe_echoes

        await wait_until(stripe_echo_counted, within=40)
        assert metric(daemon, "sfstripe_dead_letters_total") == 0
        assert await anyio.to_thread.run_sync(daemon.stop) == 0


async def test_the_echo_of_a_stripe_owned_write_is_counted_however_late_its_answer(
    tmp_path: Path, workdir: Path, fresh_dsn: str, daemons: Callable[..., Daemon]
) -> None:
    mapping = write_mapping(
        tmp_path,
        drop=("email",),
        add=(("email", f"Account.{BILLING_EMAIL}", "stripe"),),
    )
    async with (
        sync_world(tmp_path, fresh_dsn, SFSTRIPE_MAPPING_FILE=str(mapping)) as world,
        SlowWriteAnswers(world.sf.base_url, delay=1.5) as proxy,
    ):
        world.env["SFSTRIPE_SF_LOGIN_URL"] = proxy.url
        daemon = await started(world, daemons, account_fields=(BILLING_EMAIL,))
        account = await new_account(world, Name="Vandelay Industries")
        customer = await linked_customer(world, account, name="Vandelay Industries")
        email = "portal@vandelay.example"
        await world.stripe.v1.customers.update_async(customer.id, params={"email": email})
        await settled(world, account, **{BILLING_EMAIL: email})
        await own_write_handled(daemon, account, 1)
        assert billing_email_events(daemon, account) == (1, 0)  # an echo, not ignored
        assert await anyio.to_thread.run_sync(daemon.stop) == 0


async def test_a_deleted_account_marks_its_customer_and_an_undelete_clears_the_mark(
    tmp_path: Path, workdir: Path, fresh_dsn: str, daemons: Callable[..., Daemon]
) -> None:
    async with sync_world(tmp_path, fresh_dsn) as world:
        sf = world.sf
        daemon = await started(world, daemons)
        account = await new_account(world, Name="Hooli", Phone="+1 555 0200")
        customer = await linked_customer(world, account, name="Hooli")

        await sf.edit_record("Account", record_id=account, delete=True)
        marked = await customer_settled(world, account, **{"metadata.sf_account_deleted": "true"})
        assert marked.id == customer.id
        kept = await world.stripe.v1.customers.retrieve_async(customer.id)
        assert not kept.to_dict().get("deleted")
        everyone = await world.stripe.v1.customers.list_async(params={"limit": 100})
        assert [c.id for c in everyone.data] == [customer.id]

        await undelete(sf, "Account", account)
        await customer_settled(world, account, **{"metadata.sf_account_deleted": None})
        # The account syncs again as before.
        await sf.edit_record("Account", {"Phone": "+1 555 0299"}, record_id=account)
        back = await customer_settled(world, account, phone="+1 555 0299")
        assert back.id == customer.id
        assert metric(daemon, "sfstripe_dead_letters_total") == 0
        assert await anyio.to_thread.run_sync(daemon.stop) == 0


async def test_an_unmappable_country_is_a_dead_letter_until_fixed_and_retried(
    tmp_path: Path, workdir: Path, fresh_dsn: str, daemons: Callable[..., Daemon]
) -> None:
    async with sync_world(tmp_path, fresh_dsn) as world:
        sf = world.sf
        daemon = await started(world, daemons)
        lost = await new_account(world, Name="Lost City Ltd", BillingCountry="Atlantis")
        letter = await parked_letter(world, workdir, lost)
        assert letter["handler"] == HANDLER
        assert letter["status"] == "parked"
        assert "BillingCountry" in letter["reason"]
        assert "Atlantis" in letter["reason"]
        assert await world.customers_of(lost) == []

        # Other accounts keep syncing meanwhile.
        other = await new_account(world, Name="Good Co", BillingCountry="France")
        await linked_customer(world, other, name="Good Co", **{"address.country": "FR"})
        await sf.edit_record("Account", {"BillingCity": "Lyon"}, record_id=other)
        await customer_settled(world, other, **{"address.city": "Lyon"})

        # Someone fixes the country, then retries the dead letter: the account syncs.
        await sf.edit_record("Account", {"BillingCountry": "Portugal"}, record_id=lost)
        await retry_dead_letter(world, workdir, letter)
        await linked_customer(world, lost, name="Lost City Ltd", **{"address.country": "PT"})
        assert await anyio.to_thread.run_sync(dead_letters, world, workdir) == []
        assert metric(daemon, "sfstripe_dead_letters_total") == 1
        assert await anyio.to_thread.run_sync(daemon.stop) == 0


async def test_an_unmappable_country_on_an_update_syncs_once_fixed_and_retried(
    tmp_path: Path, workdir: Path, fresh_dsn: str, daemons: Callable[..., Daemon]
) -> None:
    async with sync_world(tmp_path, fresh_dsn) as world:
        sf = world.sf
        daemon = await started(world, daemons)
        account = await new_account(world, Name="Moving Co", BillingCountry="France")
        await linked_customer(world, account, **{"address.country": "FR"})

        await sf.edit_record("Account", {"BillingCountry": "Atlantis"}, record_id=account)
        letter = await parked_letter(world, workdir, account)
        assert "Atlantis" in letter["reason"]

        await sf.edit_record("Account", {"BillingCountry": "Spain"}, record_id=account)
        await retry_dead_letter(world, workdir, letter)
        await customer_settled(world, account, **{"address.country": "ES"})
        assert await anyio.to_thread.run_sync(dead_letters, world, workdir) == []
        assert await anyio.to_thread.run_sync(daemon.stop) == 0


async def test_an_overflow_event_rereads_recently_modified_accounts(
    tmp_path: Path, workdir: Path, fresh_dsn: str, daemons: Callable[..., Daemon]
) -> None:
    async with sync_world(tmp_path, fresh_dsn) as world:
        sf = world.sf
        daemon = await started(world, daemons)
        known = await new_account(world, Name="Known Inc", Phone="+1 555 0300")
        await linked_customer(world, known, phone="+1 555 0300")

        # Changes Salesforce could not list one by one: no change events for them.
        await sf.edit_record("Account", {"Phone": "+1 555 0399"}, record_id=known, emit=False)
        silent = str((await sf.edit_record("Account", {"Name": "Silent Corp"}, emit=False))["id"])
        await anyio.sleep(0.5)
        assert (await world.customer_of(known)).phone == "+1 555 0300"  # type: ignore[union-attr]
        assert await world.customers_of(silent) == []

        await sf.publish("Account", "GAP_OVERFLOW", record_ids=[OVERFLOW_RECORD_ID])
        await customer_settled(world, known, phone="+1 555 0399")
        await linked_customer(world, silent, name="Silent Corp")
        resynced = await logged(daemon, "overflow_resynced", entity="Account")
        assert resynced["accounts"] >= 2
        assert metric(daemon, "sfstripe_dead_letters_total") == 0
        assert await anyio.to_thread.run_sync(daemon.stop) == 0


async def test_the_billing_contact_lookup_chooses_the_email(
    tmp_path: Path, workdir: Path, fresh_dsn: str, daemons: Callable[..., Daemon]
) -> None:
    async with sync_world(tmp_path, fresh_dsn) as world:
        sf = world.sf
        daemon = await started(world, daemons)
        account = await new_account(world, Name="Umbrella Corp")
        first = (
            await sf.edit_record(
                "Contact",
                {
                    "FirstName": "Ada",
                    "LastName": "First",
                    "Email": "ada@umbrella.example",
                    "AccountId": account,
                },
            )
        )["id"]
        await linked_customer(world, account, email="ada@umbrella.example")
        second = (
            await sf.edit_record(
                "Contact",
                {
                    "FirstName": "Bob",
                    "LastName": "Second",
                    "Email": "bob@umbrella.example",
                    "AccountId": account,
                },
            )
        )["id"]

        # The lookup names the second contact: the email (and name) follow it.
        await handled(daemon, sf, "Account", {fields.BILLING_CONTACT: second}, record_id=account)
        await customer_settled(
            world, account, email="bob@umbrella.example", individual_name="Bob Second"
        )

        # Editing the contact that is not the billing contact changes nothing in Stripe.
        written = metric(daemon, "sfstripe_sync_fields_written_total", side="stripe")
        await handled(daemon, sf, "Contact", {"Email": "ada@new.example"}, record_id=first)
        customer = await world.customer_of(account)
        assert customer is not None
        assert customer.email == "bob@umbrella.example"
        assert metric(daemon, "sfstripe_sync_fields_written_total", side="stripe") == written

        # Editing the billing contact does.
        await sf.edit_record("Contact", {"Email": "bob@new.example"}, record_id=second)
        await customer_settled(world, account, email="bob@new.example")

        # Pointing the lookup back at the first contact switches the email again.
        await sf.edit_record("Account", {fields.BILLING_CONTACT: first}, record_id=account)
        await customer_settled(world, account, email="ada@new.example", individual_name="Ada First")
        assert metric(daemon, "sfstripe_dead_letters_total") == 0
        assert await anyio.to_thread.run_sync(daemon.stop) == 0


async def test_the_account_filter_leaves_prospects_out_until_they_become_customers(
    tmp_path: Path, workdir: Path, fresh_dsn: str, daemons: Callable[..., Daemon]
) -> None:
    mapping = write_mapping(tmp_path, where={"Type": "Customer"})
    async with sync_world(tmp_path, fresh_dsn, SFSTRIPE_MAPPING_FILE=str(mapping)) as world:
        sf = world.sf
        daemon = await started(world, daemons)
        prospect = await handled(daemon, sf, "Account", {"Name": "Maybe Ltd", "Type": "Prospect"})
        await logged(daemon, "account_not_selected", account=prospect)
        buyer = await new_account(world, Name="Sure Ltd", Type="Customer")
        await linked_customer(world, buyer, name="Sure Ltd")
        assert await world.customers_of(prospect) == []
        assert not (await world.account(prospect)).get(fields.CUSTOMER_ID)

        await sf.edit_record("Account", {"Type": "Customer"}, record_id=prospect)
        await linked_customer(world, prospect, name="Maybe Ltd")
        assert metric(daemon, "sfstripe_dead_letters_total") == 0
        assert await anyio.to_thread.run_sync(daemon.stop) == 0
