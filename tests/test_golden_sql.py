"""Every golden SQL case of every plan (tests/golden.py), each in a transaction rolled back on one database."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.golden import GoldenCase, discover, run_case
from userdebtor_pipeline.schema import init_databases

CASES = discover()


@pytest.fixture(scope="module")
def golden_db(pg_urls: Callable[[], str]) -> Iterator[Engine]:
    """One database with the project's own erp, web and state schemas, for every case."""
    engine = sa.create_engine(pg_urls())
    init_databases(engine, engine)
    yield engine
    engine.dispose()


def test_every_plan_has_golden_cases():
    """A plan of each rule has its cases: a moved or renamed plan file cannot leave its cases unrun."""
    plans = {case.sql_file for case in CASES}
    assert plans >= {
        "user_debtor/plan_debtors_to_create.sql",
        "user_debtor/plan_users_to_create.sql",
        "user_debtor/plan_field_changes.sql",
        "user_debtor/plan_link_exits.sql",
        "contacts/plan_contact_links.sql",
        "contacts/plan_customer_mirror.sql",
        "orders/plan_order_history.sql",
        "instant_accounts/plan_registrations.sql",
        "instant_accounts/plan_logins.sql",
        "conversions/apply_conversion_wave.sql",
    }


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_golden_case(golden_db: Engine, case: GoldenCase):
    with golden_db.connect() as conn:
        transaction = conn.begin()
        try:
            compared = run_case(conn, case)
        finally:
            transaction.rollback()
    for table, (actual, expected) in compared.items():
        assert actual == expected, f"{case.id}: {table}"
