"""Per data type record builders: the fields each catalogue type carries, with plausible values.

Field names and types follow Codat's Lending spec, so the conformance tests can check them.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime
from typing import Any

from airflow_provider_codat.simulator.randomness import (
    CURRENCIES,
    WORDS,
    amount,
    company_name,
    day,
    integer,
    new_id,
    pick,
)


def _lines(rng: random.Random, count: int = 2) -> tuple[list[dict], float, float]:
    lines, sub, tax = [], 0.0, 0.0
    for _ in range(count):
        unit, quantity = amount(rng, 5, 800), integer(rng, 1, 5)
        line_sub = round(unit * quantity, 2)
        line_tax = round(line_sub * 0.2, 2)
        sub, tax = sub + line_sub, tax + line_tax
        lines.append(
            {
                "description": f"{pick(rng, WORDS)} service",
                "unitAmount": unit,
                "quantity": quantity,
                "subTotal": line_sub,
                "taxAmount": line_tax,
                "totalAmount": round(line_sub + line_tax, 2),
                "accountRef": {"id": new_id(rng), "name": "Sales"},
            }
        )
    return lines, round(sub, 2), round(tax, 2)


def _invoice_like(rng: random.Random, anchor: datetime, number_key: str, party: str) -> dict:
    lines, sub, tax = _lines(rng)
    total = round(sub + tax, 2)
    return {
        number_key: f"INV-{integer(rng, 1000, 99999)}",
        party: {
            "id": new_id(rng),
            ("companyName" if party == "customerRef" else "supplierName"): company_name(rng),
        },
        "issueDate": day(rng, anchor),
        "dueDate": day(rng, anchor, 30),
        "currency": pick(rng, CURRENCIES),
        "currencyRate": 1,
        "lineItems": lines,
        "paymentAllocations": [],
        "withholdingTax": [],
        "subTotal": sub,
        "totalAmount": total,
        "amountDue": round(total * pick(rng, (0, 0.5, 1)), 2),
        "note": "",
    }


def _invoice(rng: random.Random, anchor: datetime) -> dict:
    record = _invoice_like(rng, anchor, "invoiceNumber", "customerRef")
    record.update(
        salesOrderRefs=[],
        totalTaxAmount=round(record["totalAmount"] - record["subTotal"], 2),
        totalDiscount=0,
        discountPercentage=0,
        additionalTaxAmount=0,
        additionalTaxPercentage=0,
        status=pick(rng, ("Draft", "Submitted", "PartiallyPaid", "Paid", "Void")),
    )
    return record


def _bill(rng: random.Random, anchor: datetime) -> dict:
    record = _invoice_like(rng, anchor, "reference", "supplierRef")
    record.update(
        purchaseOrderRefs=[],
        taxAmount=round(record["totalAmount"] - record["subTotal"], 2),
        status=pick(rng, ("Open", "PartiallyPaid", "Paid", "Void", "Draft")),
    )
    return record


def _credit_note(rng: random.Random, anchor: datetime, number_key: str, party: str) -> dict:
    record = _invoice_like(rng, anchor, number_key, party)
    record.pop("dueDate")
    record.pop("amountDue")
    record.update(
        totalDiscount=0,
        discountPercentage=0,
        totalTaxAmount=round(record["totalAmount"] - record["subTotal"], 2),
        remainingCredit=0,
        status=pick(rng, ("Draft", "Submitted", "Paid", "Void")),
    )
    return record


def _contact(rng: random.Random, name_key: str) -> dict:
    name = company_name(rng)
    return {
        name_key: name,
        "contactName": f"{pick(rng, WORDS)} Smith",
        "emailAddress": f"accounts@{name.split()[0].lower()}.example",
        "phone": f"+44 20 {integer(rng, 1000, 9999)} {integer(rng, 1000, 9999)}",
        "defaultCurrency": pick(rng, CURRENCIES),
        "addresses": [],
        "status": pick(rng, ("Active", "Active", "Archived")),
    }


def _payment(rng: random.Random, anchor: datetime, party: str) -> dict:
    return {
        party: {
            "id": new_id(rng),
            ("companyName" if party == "customerRef" else "supplierName"): company_name(rng),
        },
        "accountRef": {"id": new_id(rng), "name": "Business Current Account"},
        "totalAmount": amount(rng),
        "currency": pick(rng, CURRENCIES),
        "currencyRate": 1,
        "date": day(rng, anchor),
        "note": "",
        "lines": [],
        "reference": f"PAY-{integer(rng, 1000, 99999)}",
    }


def _journal_entry(rng: random.Random, anchor: datetime) -> dict:
    value = amount(rng)
    posted = day(rng, anchor)
    return {
        "description": "Month-end accrual",
        "postedOn": posted,
        "createdOn": posted,
        "updatedOn": posted,
        "journalRef": {"id": new_id(rng)},
        "journalLines": [
            {"netAmount": value, "currency": "GBP", "accountRef": {"id": new_id(rng)}},
            {"netAmount": -value, "currency": "GBP", "accountRef": {"id": new_id(rng)}},
        ],
    }


def _account(rng: random.Random, anchor: datetime) -> dict:
    kind = pick(rng, ("Asset", "Expense", "Income", "Liability", "Equity"))
    return {
        "nominalCode": str(integer(rng, 100, 9999)),
        "name": f"{pick(rng, WORDS)} {kind.lower()}",
        "description": "",
        "fullyQualifiedCategory": f"{kind}.Current",
        "fullyQualifiedName": f"{kind}.Current.{pick(rng, WORDS)}",
        "currency": "GBP",
        "currentBalance": amount(rng, -2000, 20000),
        "type": kind,
        "status": "Active",
        "isBankAccount": False,
        "validDatatypeLinks": [],
    }


def _bank_account(rng: random.Random, anchor: datetime) -> dict:
    return {
        "accountName": f"{pick(rng, WORDS)} current account",
        "accountType": pick(rng, ("Credit", "Debit")),
        "nominalCode": str(integer(rng, 1000, 1999)),
        "sortCode": f"{integer(rng, 10, 99)}-{integer(rng, 10, 99)}-{integer(rng, 10, 99)}",
        "accountNumber": str(integer(rng, 10_000_000, 99_999_999)),
        "currency": "GBP",
        "balance": amount(rng, -500, 50000),
        "availableBalance": amount(rng, 0, 50000),
        "institution": "Simulated Bank",
        "status": "Active",
    }


def _simple(**fields: Callable[[random.Random, datetime], Any]) -> Callable[[random.Random, datetime], dict]:
    def build(rng: random.Random, anchor: datetime) -> dict:
        return {key: make(rng, anchor) for key, make in fields.items()}

    return build


def _choice(*values: Any) -> Callable[[random.Random, datetime], Any]:
    return lambda rng, anchor: pick(rng, values)


_name_f = lambda rng, anchor: company_name(rng)  # noqa: E731
_amount_f = lambda rng, anchor: amount(rng)  # noqa: E731
_day_f = lambda rng, anchor: day(rng, anchor)  # noqa: E731
_currency_f = _choice(*CURRENCIES)
_ref_f = lambda rng, anchor: {"id": new_id(rng), "name": company_name(rng)}  # noqa: E731

BUILDERS: dict[str, Callable[[random.Random, datetime], dict]] = {
    "invoices": _invoice,
    "bills": _bill,
    "customers": lambda rng, anchor: _contact(rng, "customerName"),
    "suppliers": lambda rng, anchor: _contact(rng, "supplierName"),
    "journalEntries": _journal_entry,
    "journals": _simple(
        journalCode=lambda rng, anchor: f"J{integer(rng, 1, 99)}",
        name=_name_f,
        type=_choice("Sales", "Purchases"),
        hasChildren=_choice(False),
        createdOn=_day_f,
        status=_choice("Active", "Archived"),
    ),
    "payments": lambda rng, anchor: _payment(rng, anchor, "customerRef"),
    "billPayments": lambda rng, anchor: _payment(rng, anchor, "supplierRef"),
    "creditNotes": lambda rng, anchor: _credit_note(rng, anchor, "creditNoteNumber", "customerRef"),
    "billCreditNotes": lambda rng, anchor: _credit_note(rng, anchor, "billCreditNoteNumber", "supplierRef"),
    "taxRates": _simple(
        name=_choice("Standard 20%", "Reduced 5%", "Zero rated"),
        code=_choice("T1", "T5", "T0"),
        effectiveTaxRate=_choice(20.0, 5.0, 0.0),
        totalTaxRate=_choice(20.0, 5.0, 0.0),
        status=_choice("Active"),
    ),
    "items": _simple(
        name=_name_f,
        code=lambda rng, anchor: f"SKU-{integer(rng, 100, 9999)}",
        itemStatus=_choice("Active"),
        type=_choice("Inventory", "NonInventory", "Service"),
        isBillItem=_choice(True, False),
        isInvoiceItem=_choice(True),
    ),
    "paymentMethods": _simple(
        name=_choice("Card", "Bank transfer", "Cash"),
        type=_choice("Card", "BankTransfer", "Cash"),
        status=_choice("Active"),
    ),
    "purchaseOrders": _simple(
        purchaseOrderNumber=lambda rng, anchor: f"PO-{integer(rng, 100, 9999)}",
        supplierRef=_ref_f,
        issueDate=_day_f,
        currency=_currency_f,
        totalAmount=_amount_f,
        status=_choice("Open", "Closed", "Draft"),
    ),
    "salesOrders": _simple(
        salesOrderNumber=lambda rng, anchor: f"SO-{integer(rng, 100, 9999)}",
        customerRef=_ref_f,
        issueDate=_day_f,
        currency=_currency_f,
        totalAmount=_amount_f,
        status=_choice("Draft", "ReadyToInvoice", "Closed"),
    ),
    "trackingCategories": _simple(name=_name_f, hasChildren=_choice(False), status=_choice("Active")),
    "chartOfAccounts": _account,
    "bankAccounts": _bank_account,
    "accountTransactions": _simple(
        transactionId=lambda rng, anchor: new_id(rng),
        note=_choice(""),
        date=_day_f,
        currency=_currency_f,
        currencyRate=_choice(1),
        status=_choice("Unreconciled", "Reconciled"),
        totalAmount=_amount_f,
        lines=_choice([]),
        bankAccountRef=_ref_f,
    ),
    "directCosts": lambda rng, anchor: _direct(rng, anchor),
    "directIncomes": lambda rng, anchor: _direct(rng, anchor),
    "transfers": _simple(
        description=_choice("Move to savings", "Top-up"),
        date=_day_f,
        status=_choice("Unreconciled", "Reconciled"),
        trackingCategoryRefs=_choice([]),
        depositedRecordRefs=_choice([]),
        **{
            "from": lambda rng, anchor: {
                "accountRef": {"id": new_id(rng)},
                "currency": "GBP",
                "amount": amount(rng),
            },
            "to": lambda rng, anchor: {
                "accountRef": {"id": new_id(rng)},
                "currency": "GBP",
                "amount": amount(rng),
            },
        },
    ),
    "itemReceipts": _simple(
        reference=lambda rng, anchor: f"IR-{integer(rng, 100, 9999)}",
        supplierRef=_ref_f,
        date=_day_f,
        currency=_currency_f,
        totalAmount=_amount_f,
    ),
    "bankTransactions": _simple(
        clearedOnDate=_day_f,
        description=_choice("Card payment", "Direct debit", "Transfer in"),
        reconciled=_choice(True, False),
        amount=lambda rng, anchor: amount(rng, -3000, 3000),
        balance=_amount_f,
        transactionType=_choice("Credit", "Debit", "Fee", "Pos"),
    ),
    "banking-accounts": _simple(
        name=lambda rng, anchor: f"{pick(rng, WORDS)} account",
        informalName=_choice("Everyday"),
        holder=_name_f,
        type=_choice("Credit", "Debit"),
        currency=_choice("GBP"),
        balance=lambda rng, anchor: {"available": amount(rng), "current": amount(rng), "limit": 0},
        identifiers=lambda rng, anchor: {
            "type": "Account",
            "number": str(integer(rng, 10_000_000, 99_999_999)),
        },
        institution=lambda rng, anchor: {"id": "sim-bank", "name": "Simulated Bank"},
    ),
    "banking-transactions": _simple(
        accountId=lambda rng, anchor: new_id(rng),
        description=_choice("Card payment", "Salary", "Rent"),
        amount=lambda rng, anchor: amount(rng, -3000, 3000),
        currency=_choice("GBP"),
        postedDate=_day_f,
        authorizedDate=_day_f,
        code=_choice("Payment", "Fee", "Transfer"),
        merchantName=_name_f,
    ),
    "banking-accountBalances": _simple(
        accountId=lambda rng, anchor: new_id(rng),
        date=_day_f,
        balance=lambda rng, anchor: {"available": amount(rng), "current": amount(rng), "limit": 0},
    ),
    "banking-transactionCategories": _simple(
        name=_choice("Travel", "Utilities", "Payroll"), hasChildren=_choice(False), status=_choice("Active")
    ),
    "commerce-customers": _simple(
        customerName=_name_f,
        emailAddress=_choice("buyer@example.com"),
        phone=_choice("+44 20 7946 0000"),
        addresses=_choice([]),
        note=_choice(""),
        createdDate=_day_f,
    ),
    "commerce-disputes": _simple(
        currency=_currency_f,
        totalAmount=_amount_f,
        status=_choice("Won", "Lost", "Processing"),
        reason=_choice("Fraudulent"),
        dueDate=_day_f,
        createdDate=_day_f,
        disputedTransactions=_choice([]),
    ),
    "commerce-locations": _simple(name=lambda rng, anchor: f"{pick(rng, WORDS)} store"),
    "commerce-orders": _simple(
        orderNumber=lambda rng, anchor: f"ORD-{integer(rng, 1000, 99999)}",
        country=_choice("GBR", "USA"),
        currency=_currency_f,
        closedDate=_day_f,
        totalAmount=_amount_f,
        totalRefund=_choice(0),
        totalTaxAmount=_amount_f,
        totalDiscount=_choice(0),
        totalGratuity=_choice(0),
        orderLineItems=_choice([]),
        payments=_choice([]),
        serviceCharges=_choice([]),
        createdDate=_day_f,
    ),
    "commerce-paymentMethods": _simple(name=_choice("Card", "Cash"), status=_choice("Active")),
    "commerce-payments": _simple(
        amount=_amount_f,
        currency=_currency_f,
        status=_choice("Paid", "Pending"),
        paymentProvider=_choice("Stripe"),
        dueDate=_day_f,
        createdDate=_day_f,
    ),
    "commerce-productCategories": _simple(
        name=_choice("Clothing", "Food", "Hardware"), ancestorRefs=_choice([]), hasChildren=_choice(False)
    ),
    "commerce-products": _simple(
        name=_name_f,
        description=_choice("A product"),
        categorization=_choice("Hardware"),
        isGiftCard=_choice(False),
        variants=_choice([]),
    ),
    "commerce-transactions": _simple(
        totalAmount=_amount_f,
        currency=_currency_f,
        type=_choice("Payment", "Refund", "Payout"),
        subType=_choice("Card"),
        createdDate=_day_f,
        sourceCreatedDate=_day_f,
    ),
}


def _direct(rng: random.Random, anchor: datetime) -> dict:
    lines, sub, tax = _lines(rng, 1)
    return {
        "reference": f"DC-{integer(rng, 100, 9999)}",
        "note": "",
        "contactRef": {"id": new_id(rng), "dataType": "suppliers"},
        "issueDate": day(rng, anchor),
        "currency": pick(rng, CURRENCIES),
        "currencyRate": 1,
        "lineItems": lines,
        "paymentAllocations": [],
        "subTotal": sub,
        "taxAmount": tax,
        "totalAmount": round(sub + tax, 2),
    }
