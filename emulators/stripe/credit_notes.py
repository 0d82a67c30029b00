"""Credit notes on open invoices (pre-payment: lowers what is due) and paid invoices
(post-payment: credits the customer balance, or out of band); void; list; preview.

Refunds are not emulated (there are no charges): `refund_amount` is recorded only.
"""

from __future__ import annotations

from emulators.stripe import customers, invoices
from emulators.stripe.account import Account, public, renders
from emulators.stripe.errors import invalid, missing_param
from emulators.stripe.lists import page
from emulators.stripe.params import (
    Params,
    apply_metadata,
    array,
    choice,
    integer,
    required_text,
    text,
)
from emulators.stripe.routing import Call, Obj, Origin, Router

router = Router()
REASONS = ("duplicate", "fraudulent", "order_change", "product_unsatisfactory")


@renders("credit_note")
def render_credit_note(account: Account, note: Obj) -> Obj:
    shown = public(note)
    shown["lines"] = {
        "object": "list",
        "data": [dict(line) for line in note["_lines"]],
        "has_more": False,
        "total_count": len(note["_lines"]),
        "url": f"/v1/credit_notes/{note['id']}/lines",
    }
    return shown


def _lines(account: Account, invoice: Obj, params: Params) -> list[Obj]:
    given = array(params, "lines")
    amount = integer(params, "amount")
    if not given:
        if amount is None:
            raise missing_param("amount")
        return [
            {"type": "custom_line_item", "amount": amount, "description": "Credit", "quantity": 1}
        ]
    lines = []
    for index, spec in enumerate(given):
        kind = choice(spec, "type", ("invoice_line_item", "custom_line_item"), None)
        if kind == "invoice_line_item":
            line_id = required_text(spec, "invoice_line_item")
            line = next((found for found in invoice["_lines"] if found["id"] == line_id), None)
            if line is None:
                raise invalid(f"No such invoice line item: '{line_id}'", f"lines[{index}]")
            value = integer(spec, "amount")
            if value is None:
                quantity = integer(spec, "quantity", line["quantity"]) or 1
                value = line["amount"] * quantity // max(line["quantity"], 1)
            lines.append(
                {
                    "type": kind,
                    "amount": value,
                    "description": line["description"],
                    "quantity": 1,
                    "invoice_line_item": line_id,
                }
            )
        elif kind == "custom_line_item":
            unit = integer(spec, "unit_amount")
            if unit is None:
                raise missing_param(f"lines[{index}][unit_amount]")
            quantity = integer(spec, "quantity", 1) or 1
            lines.append(
                {
                    "type": kind,
                    "amount": unit * quantity,
                    "description": text(spec, "description"),
                    "quantity": quantity,
                }
            )
        else:
            raise missing_param(f"lines[{index}][type]")
    return lines


def _build(account: Account, params: Params) -> tuple[Obj, Obj]:
    invoice = account.get("invoice", required_text(params, "invoice"), "invoice")
    if invoice["status"] not in ("open", "paid"):
        raise invalid(
            f"You can only create credit notes on open or paid invoices; this one is "
            f"{invoice['status']}.",
            "invoice",
        )
    lines = _lines(account, invoice, params)
    total = sum(line["amount"] for line in lines)
    pre = invoice["status"] == "open"
    ceiling = (
        invoice["amount_remaining"]
        if pre
        else invoice["amount_paid"] - invoice["post_payment_credit_notes_amount"]
    )
    if total <= 0 or total > ceiling:
        raise invalid(
            f"The credit note total ({total}) must be positive and at most {ceiling}.", "amount"
        )
    refund = integer(params, "refund_amount", 0) or 0
    out_of_band = integer(params, "out_of_band_amount", 0) or 0
    credit = integer(params, "credit_amount")
    if not pre and credit is None:
        credit = total - refund - out_of_band
    count = len(account.all("credit_note", lambda note: note["invoice"] == invoice["id"])) + 1
    now = account.now()
    note: Obj = {
        "id": account.new_id("cn", 24),
        "object": "credit_note",
        "amount": total,
        "amount_shipping": 0,
        "created": now,
        "currency": invoice["currency"],
        "customer": invoice["customer"],
        "customer_balance_transaction": None,
        "discount_amount": 0,
        "discount_amounts": [],
        "effective_at": now,
        "invoice": invoice["id"],
        "livemode": False,
        "memo": text(params, "memo"),
        "metadata": {},
        "number": f"{invoice['number']}-CN-{count:02d}",
        "out_of_band_amount": out_of_band or None,
        "pdf": f"{account.base_url}/_emulator/invoices/{invoice['id']}/pdf",
        "post_payment_amount": 0 if pre else total,
        "pre_payment_amount": total if pre else 0,
        "reason": choice(params, "reason", REASONS, None),
        "refunds": [],
        "status": "issued",
        "subtotal": total,
        "subtotal_excluding_tax": total,
        "total": total,
        "total_excluding_tax": total,
        "total_taxes": [],
        "type": "pre_payment" if pre else "post_payment",
        "voided_at": None,
        "_credit_amount": 0 if pre else (credit or 0),
        "_lines": [
            {
                "id": account.new_id("cnli", 24),
                "object": "credit_note_line_item",
                "amount": line["amount"],
                "description": line["description"],
                "discount_amount": 0,
                "discount_amounts": [],
                "invoice_line_item": line.get("invoice_line_item"),
                "livemode": False,
                "quantity": line["quantity"],
                "type": line["type"],
                "unit_amount": line["amount"] // max(line["quantity"], 1),
                "unit_amount_decimal": str(line["amount"] // max(line["quantity"], 1)),
            }
            for line in lines
        ],
    }
    apply_metadata(note["metadata"], params)
    return note, invoice


def _apply(account: Account, note: Obj, invoice: Obj, origin: Origin, sign: int) -> None:
    total = note["total"] * sign
    if note["type"] == "pre_payment":
        with account.updating(invoice, origin):
            invoice["pre_payment_credit_notes_amount"] += total
            invoice["amount_remaining"] -= total
            invoice["amount_due"] -= total
        if sign > 0 and invoice["status"] == "open" and invoice["amount_remaining"] == 0:
            invoices.mark_paid(account, invoice, origin, charged=False)
    else:
        with account.updating(invoice, origin):
            invoice["post_payment_credit_notes_amount"] += total
        customer = account.get("customer", note["customer"])
        customers.adjust_balance(account, customer, -sign * note["_credit_amount"], origin)


@router.post("/v1/credit_notes")
def create(call: Call) -> Obj:
    account = call.account
    note, invoice = _build(account, call.params)
    account.created(note, call.origin)
    _apply(account, note, invoice, call.origin, 1)
    return account.render(note)


@router.get("/v1/credit_notes/preview")
def preview(call: Call) -> Obj:
    account = call.account
    with account.dry_run():
        note, _ = _build(account, call.params)
        shown = render_credit_note(account, note)
    return shown


@router.get("/v1/credit_notes/{id}")
def retrieve(call: Call) -> Obj:
    return call.account.render(call.account.get("credit_note", call.path["id"]))


@router.post("/v1/credit_notes/{id}/void")
def void(call: Call) -> Obj:
    account = call.account
    note = account.get("credit_note", call.path["id"])
    if note["status"] == "void":
        raise invalid("This credit note is already voided.")
    invoice = account.get("invoice", note["invoice"])
    note["status"] = "void"
    note["voided_at"] = account.now()
    account.emit("credit_note.voided", note, call.origin)
    _apply(account, note, invoice, call.origin, -1)
    return account.render(note)


@router.get("/v1/credit_notes")
def list_notes(call: Call) -> Obj:
    account, params = call.account, call.params
    invoice = text(params, "invoice")
    customer = text(params, "customer")
    found = account.all(
        "credit_note",
        lambda note: (
            (invoice is None or note["invoice"] == invoice)
            and (customer is None or note["customer"] == customer)
        ),
    )
    return page(found, params, "/v1/credit_notes", account.render, label="credit note")
