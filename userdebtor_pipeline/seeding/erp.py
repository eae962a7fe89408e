"""The ERP's rows: house accounts, debtors, CRM contacts, sales orders and code conversions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from userdebtor_pipeline.seeding.model import FIRST_DEBTOR_NUMBER, Conversion, SeedSettings
from userdebtor_pipeline.seeding.pools import PERSONAL_DOMAINS, STORE_DOMAIN, Pools, cash_account_email, slug
from userdebtor_pipeline.seeding.session import run, run_script, seed_sql


def insert_house_accounts(erp: Connection, s: SeedSettings, pools: Pools) -> None:
    """The template, the cash account, the excluded accounts, and codes the ERP itself gave the web prefix."""
    three_years_ago = s.as_of - timedelta(days=3 * 365)
    base = {
        "dr_phone": "02 9000 0000", "dr_addr_1": "1 Market Street", "dr_addr_2": "Sydney", "dr_addr_3": "NSW",
        "dr_postcode": "2000", "dr_abn": None, "dr_industry_code": "RET", "dr_price_code": "WEB",
        "dr_tax_code": "GST", "dr_territory": "ONL", "dr_credit_limit": 0, "dr_account_status": "A",
        "dr_date_created": three_years_ago, "dr_date_last_changed": three_years_ago,
    }  # fmt: skip
    rows = [
        # Everything but the code and dates is copied from the template to each new web debtor, the customer
        # type included: so the template is of the web type, and new debtors match the customer master filter.
        base | {"dr_cust_code": s.template_code, "dr_cust_name": "Template - Web Customers",
                "dr_cust_type": s.master_type, "dr_email": None, "dr_credit_limit": 500},
        base | {"dr_cust_code": s.cash_code, "dr_cust_name": "Cash Sales - Retail Store", "dr_cust_type": "CASH",
                "dr_email": cash_account_email(), "dr_price_code": "RRP", "dr_territory": "NSW"},
    ]  # fmt: skip
    for number, code in enumerate(s.excluded_codes, start=1):
        staff_email = f"staff.purchases{number}@{STORE_DOMAIN}"
        rows.append(base | {"dr_cust_code": code, "dr_cust_name": "Staff Purchases", "dr_cust_type": "STAFF",
                            "dr_email": staff_email, "dr_price_code": "STF"})  # fmt: skip
    # The ERP made a few web-prefixed codes by hand: the pipeline's numbering must skip them.
    for number in range(1, 6):
        first, surname = pools.first_names[number], pools.surnames[number]
        rows.append(base | {
            "dr_cust_code": f"{s.prefix}{number:0{s.width}d}", "dr_cust_name": f"{first} {surname}",
            "dr_cust_type": s.master_type,
            "dr_email": f"{slug(first)}.{slug(surname)}.erp{number}@{PERSONAL_DOMAINS[number]}",
            "dr_phone": f"04{number}2 555 0{number}0", "dr_addr_1": f"{10 + number} {pools.streets[number]}",
            "dr_addr_2": pools.suburbs[number], "dr_addr_3": pools.states[number],
            "dr_postcode": pools.postcodes[number],
            "dr_date_created": s.as_of - timedelta(days=400 + number),
            "dr_date_last_changed": s.as_of - timedelta(days=200 + number),
        })  # fmt: skip
    with erp.begin():
        erp.execute(
            sa.text(seed_sql("insert_house_accounts")),
            rows,
        )


def insert_debtors(erp: Connection, params: Mapping[str, Any]) -> int:
    return run(erp, "insert_debtors", params)


def insert_contacts(erp: Connection, s: SeedSettings, params: Mapping[str, Any]) -> None:
    if s.contacts > 0 and s.debtors > 0:
        run(erp, "insert_contacts", params)
        run(erp, "insert_contact_accounts", params)
    insert_house_contacts(erp, s)


def house_contacts(s: SeedSettings) -> list[dict[str, Any]]:
    """One person at the shop counter on the cash account and one on the (first) staff account."""
    changed = s.as_of - timedelta(days=90)
    people = [(s.cash_code, "Pat", "Counter", f"pat.counter@{STORE_DOMAIN}")]
    if s.excluded_codes:
        people.append((s.excluded_codes[0], "Sam", "Staffer", f"sam.staffer@{STORE_DOMAIN}"))
    return [
        {"contact_id": s.contacts + number, "code": code, "first": first, "surname": surname, "email": email,
         "changed": changed}
        for number, (code, first, surname, email) in enumerate(people, start=1)
    ]  # fmt: skip


def insert_house_contacts(erp: Connection, s: SeedSettings) -> None:
    rows = house_contacts(s)
    with erp.begin():
        erp.execute(
            sa.text(seed_sql("insert_house_contacts")),
            rows,
        )
        erp.execute(
            sa.text(seed_sql("insert_house_contact_accounts")),
            rows,
        )


def insert_orders(erp: Connection, s: SeedSettings, params: Mapping[str, Any], user_emails: int) -> None:
    if s.orders == 0 or s.debtors == 0:
        return
    run(erp, "insert_orders", {**params, "user_emails": user_emails})


def default_conversions(debtors: int) -> int:
    return max(6, round(debtors * 0.005))


def plan_conversions(candidates: Sequence[str], wanted: int, next_number: int, as_of: datetime) -> list[Conversion]:
    """Renames, with a chain (A to B, later B to C) every tenth and a merge into another account every tenth.

    `candidates` are trade accounts the web already holds; each is used once, as an old code or as the
    account merged into. New codes continue the C-numbering after every existing debtor.
    """
    pairs: list[tuple[str, str]] = []
    chained_later: list[tuple[str, str]] = []
    pool = iter(candidates)
    for slot, old in enumerate(pool):
        room = wanted - len(pairs) - len(chained_later)
        if room <= 0:
            break
        if slot % 10 == 0 and room >= 2:
            middle, last = f"C{next_number}", f"C{next_number + 1}"
            next_number += 2
            pairs.append((old, middle))
            chained_later.append((middle, last))
            continue
        if slot % 10 == 1 and (target := next(pool, None)) is not None:
            pairs.append((old, target))
        else:
            pairs.append((old, f"C{next_number}"))
            next_number += 1
        # the second step of a chain comes one conversion after its first
        pairs += chained_later
        chained_later.clear()
    pairs += chained_later
    pairs = pairs[:wanted]
    step = timedelta(days=30) / (len(pairs) + 1)
    return [
        Conversion(seq, old, new, as_of - timedelta(days=30) + timedelta(seconds=int((step * seq).total_seconds())))
        for seq, (old, new) in enumerate(pairs, start=1)
    ]


def final_codes(conversions: Sequence[Conversion]) -> dict[str, tuple[str, datetime]]:
    """Each original code's code after every conversion (a chain ends at its last code), and when."""
    final: dict[str, tuple[str, datetime]] = {}
    for conversion in conversions:
        originals = [code for code, (now, _) in final.items() if now == conversion.old_code] or [conversion.old_code]
        for code in originals:
            final[code] = (conversion.new_code, conversion.converted_at)
    return final


def convert_codes(erp: Connection, s: SeedSettings) -> None:
    """Record conversions in deb_conversion and leave the ERP as it is after them."""
    if s.conversions == 0:
        return
    candidates = list(
        erp.execute(sa.text(seed_sql("conversion_candidates")), {"seed": s.seed, "limit": 2 * s.conversions}).scalars()
    )
    erp.rollback()
    conversions = plan_conversions(candidates, s.conversions, FIRST_DEBTOR_NUMBER + s.debtors, s.as_of)
    if not conversions:
        return
    final = final_codes(conversions)
    with erp.begin():
        erp.execute(
            sa.text(seed_sql("insert_conversions")),
            {
                "seqs": [c.seq for c in conversions],
                "olds": [c.old_code for c in conversions],
                "news": [c.new_code for c in conversions],
                "ats": [c.converted_at for c in conversions],
            },
        )
        change = {
            "olds": list(final),
            "news": [new for new, _ in final.values()],
            "ats": [at for _, at in final.values()],
        }
        erp.execute(sa.text(seed_sql("create_code_change")))
        erp.execute(sa.text(seed_sql("fill_code_change")), change)
        run_script(erp, "apply_conversions")
