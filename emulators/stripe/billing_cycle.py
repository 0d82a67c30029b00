"""The test clock's work: everything that comes due while time is advanced, in time order.

Due things are trial-ending notices (3 days ahead), period ends (renewal, trial end,
cancellation at period end), `cancel_at`, drafts to finalise (created + `finalize_delay`),
payment retries (`next_payment_attempt`, from the dunning schedule) and incomplete subscriptions
to expire (23 hours). The clock is set to each one's instant before it runs, so events carry the
time they would have on Stripe; all of them have `request.id` null.
"""

from __future__ import annotations

from collections.abc import Callable

from emulators.stripe import invoices, subscriptions
from emulators.stripe.account import Account
from emulators.stripe.routing import AUTOMATIC, Obj

Due = tuple[int, int, str, Callable[[], None]]


def _due(account: Account) -> list[Due]:
    found: list[Due] = []
    for subscription in account.all("subscription"):
        status = subscription["status"]
        if status in subscriptions.ENDED:
            continue
        if status == "incomplete":
            found.append(
                (
                    subscription["created"] + subscriptions.INCOMPLETE_EXPIRY_S,
                    0,
                    subscription["id"],
                    _bind(subscriptions.expire_incomplete, account, subscription),
                )
            )
            continue
        if status == "trialing" and not subscription["_trial_notice_sent"]:
            found.append(
                (
                    subscription["trial_end"] - subscriptions.TRIAL_NOTICE_S,
                    1,
                    subscription["id"],
                    _bind(_trial_notice, account, subscription),
                )
            )
        cancel_at = subscription["cancel_at"]
        if cancel_at is not None and cancel_at <= subscription["_period_end"]:
            found.append(
                (cancel_at, 2, subscription["id"], _bind(_cancel_at, account, subscription))
            )
            continue
        found.append(
            (
                subscription["_period_end"],
                3,
                subscription["id"],
                _bind(subscriptions.renew, account, subscription),
            )
        )
    for invoice in account.all("invoice"):
        if invoice["status"] == "draft" and invoice["_finalize_at"] is not None:
            found.append(
                (invoice["_finalize_at"], 4, invoice["id"], _bind(_finalize, account, invoice))
            )
        elif invoice["status"] == "open" and invoice["next_payment_attempt"] is not None:
            found.append(
                (invoice["next_payment_attempt"], 5, invoice["id"], _bind(_retry, account, invoice))
            )
    return found


def _bind(
    function: Callable[[Account, Obj], object], account: Account, obj: Obj
) -> Callable[[], None]:
    def run() -> None:
        function(account, obj)

    return run


def _trial_notice(account: Account, subscription: Obj) -> None:
    subscription["_trial_notice_sent"] = True
    account.emit("customer.subscription.trial_will_end", subscription, AUTOMATIC)


def _cancel_at(account: Account, subscription: Obj) -> None:
    subscriptions.cancel_now(account, subscription, AUTOMATIC)


def _finalize(account: Account, invoice: Obj) -> None:
    invoices.finalize_and_collect(account, invoice, AUTOMATIC)


def _retry(account: Account, invoice: Obj) -> None:
    invoices.attempt(account, invoice, AUTOMATIC, automatic=True)


def advance_to(account: Account, target: int) -> None:
    """Run everything due up to `target` in time order, then leave the clock at `target`."""
    for _ in range(100_000):  # a bound against a runaway schedule
        due = [item for item in _due(account) if item[0] <= target]
        if not due:
            break
        instant, _, _, run = min(due, key=lambda item: item[:3])
        account.clock.set(instant)
        run()
    account.clock.set(target)
