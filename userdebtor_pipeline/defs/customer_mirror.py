"""The web's copy of ERP accounts (web.customer), written from the staged debtors; one SQL for every caller."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from userdebtor_pipeline.paths import read_sql


def _mirror(conn: Connection, *, codes: Sequence[str], from_m3_plan: bool, cash_account_code: str) -> int:
    return conn.execute(
        sa.text(read_sql("contacts/mirror_customers.sql")),
        {"codes": list(codes), "from_m3_plan": from_m3_plan, "cash_account_code": cash_account_code},
    ).rowcount


def mirror_customers(conn: Connection, codes: Sequence[str], cash_account_code: str) -> int:
    """Create or refresh the web.customer rows of these debtor codes; returns the rows written."""
    if not codes:
        return 0
    return _mirror(conn, codes=codes, from_m3_plan=False, cash_account_code=cash_account_code)


def mirror_planned_customers(conn: Connection, cash_account_code: str) -> int:
    """Create or refresh every account the M3 plan (userdebtor.plan_customer_mirror) lists, in one statement.

    Set-based for any number of accounts: the codes never travel through Python.
    """
    return _mirror(conn, codes=(), from_m3_plan=True, cash_account_code=cash_account_code)
