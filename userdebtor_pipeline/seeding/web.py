"""The web's rows: roles, customers, users and sign-ups, and the facts the two databases hand each other by COPY."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from userdebtor_pipeline.seeding.model import MATCH_FIRST, MATCH_LAST, SeedSettings
from userdebtor_pipeline.seeding.pools import STORE_DOMAIN, cash_account_email
from userdebtor_pipeline.seeding.session import run, seed_sql, stream


def match_users_wanted(users: int) -> int:
    """How many user numbers 1..users fall in the 'e-mail of a debtor' share."""
    hundreds, rest = divmod(users, 100)
    per_hundred = MATCH_LAST - MATCH_FIRST + 1
    return hundreds * per_hundred + max(0, min(rest, MATCH_LAST) - MATCH_FIRST + 1)


def hand_erp_facts_to_web(erp: Connection, web: Connection, s: SeedSettings) -> None:
    run(erp, "collect_trade_accounts")
    run(erp, "collect_match_debtors", {"seed": s.seed, "master_type": s.master_type,
                                       "wanted": match_users_wanted(s.users)})  # fmt: skip
    stream(erp, "COPY seed_trade_account TO STDOUT", web, "COPY seed_trade_account FROM STDIN")
    stream(erp, "COPY seed_match_debtor TO STDOUT", web, "COPY seed_match_debtor FROM STDIN")
    run(web, "analyze_erp_facts")


def insert_roles(web: Connection) -> None:
    with web.begin():
        web.execute(
            sa.text(seed_sql("insert_roles"))
        )


def insert_customers(web: Connection, s: SeedSettings) -> None:
    """The cash account and the trade accounts that are on the web; two of them approve new users."""
    with web.begin():
        web.execute(
            sa.text(seed_sql("insert_cash_customer")),
            {"code": s.cash_code, "email": cash_account_email(), "updated": s.as_of - timedelta(days=3 * 365)},
        )
    run(web, "insert_trade_customers")


def insert_users(web: Connection, params: Mapping[str, Any]) -> None:
    trade_accounts = web.execute(sa.text(seed_sql("count_trade_accounts"))).scalar_one()
    web.commit()
    params = {**params, "trade_accounts": trade_accounts}
    run(web, "insert_users", params)
    run(web, "advance_user_ids")
    run(web, "insert_user_customers", params)
    run(web, "insert_favourites", params)


def hand_user_emails_to_erp(web: Connection, erp: Connection) -> int:
    run(web, "collect_user_emails")
    stream(web, "COPY seed_user_email TO STDOUT", erp, "COPY seed_user_email FROM STDIN")
    run(erp, "analyze_user_emails")
    count = erp.execute(sa.text(seed_sql("count_user_emails"))).scalar_one()
    erp.commit()
    return count


def insert_registration_requests(erp: Connection, web: Connection, s: SeedSettings) -> None:
    """A handful of pending sign-ups, one of each way the decision can go."""
    trade_contacts = erp.execute(
        sa.text(seed_sql("trade_contacts_for_sign_ups"))
    ).all()
    erp.rollback()
    requests: list[tuple[str, str | None]] = []
    if trade_contacts:
        requests.append((trade_contacts[0][0], None))  # an active trade contact: approved
    if len(trade_contacts) > 1:
        requests.append(tuple(trade_contacts[1]))  # the same, naming their account: approved
    requests += [
        (cash_account_email(), None),  # only the cash account has it: rejected
        ("someone.new@unknown.example", None),  # nobody in the ERP: rejected
        ("not an email", None),  # malformed: rejected
    ]
    if s.excluded_codes:
        requests.append((f"sam.staffer@{STORE_DOMAIN}", None))  # only an excluded account: rejected
    rows = [
        {"email": email, "code": code, "at": s.as_of - timedelta(hours=len(requests) - number)}
        for number, (email, code) in enumerate(requests)
    ]
    with web.begin():
        web.execute(
            sa.text(seed_sql("insert_registration_requests")),
            rows,
        )
