"""`userdebtor seed`: deterministic, realistic, every edge case present, refuses filled tables."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from userdebtor_pipeline.schema import init_databases
from userdebtor_pipeline.seed import (
    SeedError,
    SeedReport,
    final_codes,
    plan_conversions,
    seed_databases,
)

DEBTORS = USERS = 300


@dataclass
class Seeded:
    erp: Engine
    web: Engine
    report: SeedReport


@pytest.fixture(scope="module")
def seeded(pg_urls: Callable[[], str]) -> Iterator[Seeded]:
    """One demo-sized seed (erp and web in one database), read by every test that only looks."""
    engine = sa.create_engine(pg_urls())
    init_databases(engine, engine)
    report = seed_databases(engine, engine, debtors=DEBTORS, users=USERS, seed=42)
    yield Seeded(erp=engine, web=engine, report=report)
    engine.dispose()


def scalar(engine: Engine, sql: str, **params: object) -> object:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


def column(engine: Engine, sql: str, **params: object) -> list:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(sql), params).scalars())


# A fingerprint of each table's rows, independent of the order they were written in.
FINGERPRINTS = {
    "erp.deb_master": "SELECT md5(string_agg(r::text, '|' ORDER BY r::text)) FROM erp.deb_master AS r",
    "erp.crm_contact": "SELECT md5(string_agg(r::text, '|' ORDER BY r::text)) FROM erp.crm_contact AS r",
    "erp.crm_contact_account": (
        "SELECT md5(string_agg(r::text, '|' ORDER BY r::text)) FROM erp.crm_contact_account AS r"
    ),
    "erp.deb_conversion": "SELECT md5(string_agg(r::text, '|' ORDER BY r::text)) FROM erp.deb_conversion AS r",
    "erp.sales_order": "SELECT md5(string_agg(r::text, '|' ORDER BY r::text)) FROM erp.sales_order AS r",
    "web.app_user": "SELECT md5(string_agg(r::text, '|' ORDER BY r::text)) FROM web.app_user AS r",
    "web.customer": "SELECT md5(string_agg(r::text, '|' ORDER BY r::text)) FROM web.customer AS r",
    "web.user_customer": "SELECT md5(string_agg(r::text, '|' ORDER BY r::text)) FROM web.user_customer AS r",
    "web.favourite": "SELECT md5(string_agg(r::text, '|' ORDER BY r::text)) FROM web.favourite AS r",
    "web.registration_request": (
        "SELECT md5(string_agg(r::text, '|' ORDER BY r::text)) FROM web.registration_request AS r"
    ),
}


def fingerprints(erp: Engine, web: Engine) -> dict[str, str]:
    return {table: scalar(erp if table.startswith("erp.") else web, sql) for table, sql in FINGERPRINTS.items()}


# ---------------------------------------------------------------------------------------------
# Determinism, two databases, refusal
# ---------------------------------------------------------------------------------------------


def test_same_seed_in_two_separate_databases_gives_identical_rows(seeded: Seeded, two_databases) -> None:
    report = seed_databases(two_databases.erp, two_databases.web, debtors=DEBTORS, users=USERS, seed=42)

    assert report.counts == seeded.report.counts
    assert fingerprints(two_databases.erp, two_databases.web) == fingerprints(seeded.erp, seeded.web)
    assert all(report.counts[table] > 0 for table in FINGERPRINTS)


def test_another_seed_gives_other_rows(seeded: Seeded, engines) -> None:
    seed_databases(engines.erp, engines.web, debtors=DEBTORS, users=USERS, seed=7)

    theirs, ours = fingerprints(engines.erp, engines.web), fingerprints(seeded.erp, seeded.web)
    assert theirs["erp.deb_master"] != ours["erp.deb_master"]
    assert theirs["web.app_user"] != ours["web.app_user"]


def test_report_counts_the_rows_of_each_table(seeded: Seeded) -> None:
    counts = seeded.report.counts
    assert counts["erp.deb_master"] == scalar(seeded.erp, "SELECT count(*) FROM erp.deb_master")
    assert counts["web.app_user"] == USERS
    assert counts["erp.sales_order"] == 5 * DEBTORS
    assert counts["erp.crm_contact"] == round(1.5 * DEBTORS) + 2  # and the cash and staff contacts
    assert seeded.report.seconds > 0


def test_refuses_tables_that_already_have_rows(engines) -> None:
    with engines.web.begin() as conn:
        conn.execute(sa.text("INSERT INTO web.app_user (email_address, role) VALUES ('a@b.example', 'B2C')"))

    with pytest.raises(SeedError, match=r"seed only fills empty tables; web\.app_user already has rows"):
        seed_databases(engines.erp, engines.web, debtors=20, users=20)
    assert scalar(engines.erp, "SELECT count(*) FROM erp.deb_master") == 0


def test_a_second_seed_names_every_filled_table(engines) -> None:
    seed_databases(engines.erp, engines.web, debtors=20, users=20)

    with pytest.raises(SeedError) as refused:
        seed_databases(engines.erp, engines.web, debtors=20, users=20)
    for table in ("erp.deb_master", "erp.crm_contact", "erp.sales_order", "web.app_user"):
        assert table in str(refused.value)


def test_settings_name_the_house_accounts(engines) -> None:
    seed_databases(
        engines.erp, engines.web, debtors=40, users=40, prefix="ONL", width=4, template_code="TMPL",
        cash_code="CASHSALE", excluded_codes=("STAFF", "EMPLOYEE"), master_type="ONLINE", conversions=0,
    )  # fmt: skip

    codes = set(column(engines.erp, "SELECT dr_cust_code FROM erp.deb_master WHERE dr_cust_code !~ '^C1'"))
    assert codes == {"TMPL", "CASHSALE", "STAFF", "EMPLOYEE", "ONL0001", "ONL0002", "ONL0003", "ONL0004", "ONL0005"}
    assert scalar(engines.erp, "SELECT count(*) FROM erp.deb_master WHERE dr_cust_type = 'ONLINE'") > 5
    assert scalar(engines.web, "SELECT is_cash_account FROM web.customer WHERE customer_code = 'CASHSALE'")
    assert scalar(engines.erp, "SELECT count(*) FROM erp.deb_conversion") == 0


def test_bad_arguments_are_refused(engines) -> None:
    with pytest.raises(SeedError, match="debtors"):
        seed_databases(engines.erp, engines.web, debtors=-1)
    with pytest.raises(SeedError, match="width"):
        seed_databases(engines.erp, engines.web, width=0)


# ---------------------------------------------------------------------------------------------
# ERP edge cases
# ---------------------------------------------------------------------------------------------

ERP_FACTS = {
    "the template has every commercial setting a new debtor copies": """
        SELECT dr_cust_type = 'WEB_' AND dr_price_code IS NOT NULL AND dr_tax_code IS NOT NULL
               AND dr_territory IS NOT NULL AND dr_credit_limit IS NOT NULL
        FROM erp.deb_master WHERE dr_cust_code = 'TEMPLATE'""",
    "the cash account": "SELECT dr_cust_type = 'CASH' FROM erp.deb_master WHERE dr_cust_code = 'CASH'",
    "the excluded staff account": "SELECT count(*) = 1 FROM erp.deb_master WHERE dr_cust_code = 'STAFF'",
    "web-prefixed codes the ERP made itself": """
        SELECT array_agg(dr_cust_code ORDER BY dr_cust_code)
               = ARRAY['WEB_000001', 'WEB_000002', 'WEB_000003', 'WEB_000004', 'WEB_000005']
        FROM erp.deb_master WHERE dr_cust_code LIKE 'WEB\\_%'""",
    "about 60% WEB_, 30% TRADE, the rest RETAIL and GOVT": """
        SELECT avg((dr_cust_type = 'WEB_')::int) BETWEEN 0.5 AND 0.7
               AND avg((dr_cust_type = 'TRADE')::int) BETWEEN 0.2 AND 0.4
               AND bool_or(dr_cust_type = 'RETAIL') AND bool_or(dr_cust_type = 'GOVT')
        FROM erp.deb_master WHERE dr_cust_code ~ '^C[0-9]+$'""",
    "at least three e-mails shared by two or three debtors": """
        SELECT count(*) >= 3 FROM (
            SELECT lower(dr_email) FROM erp.deb_master WHERE dr_email IS NOT NULL
            GROUP BY 1 HAVING count(*) BETWEEN 2 AND 3) AS shared""",
    "no e-mail shared by more than three debtors": """
        SELECT coalesce(max(n), 0) <= 3 FROM (
            SELECT count(*) AS n FROM erp.deb_master WHERE dr_email IS NOT NULL GROUP BY lower(dr_email)) AS g""",
    "about 3% of debtors without e-mail": """
        SELECT avg((dr_email IS NULL)::int) BETWEEN 0.01 AND 0.06
        FROM erp.deb_master WHERE dr_cust_code ~ '^C[0-9]+$'""",
    "an e-mail without an at sign": "SELECT bool_or(position('@' in dr_email) = 0) FROM erp.deb_master",
    "an e-mail like a@b": "SELECT bool_or(dr_email ~ '^[a-z]+@[a-z]+$') FROM erp.deb_master",
    "an e-mail with two at signs": "SELECT bool_or(dr_email LIKE '%@@%') FROM erp.deb_master",
    "an e-mail with a space": "SELECT bool_or(dr_email LIKE '% %') FROM erp.deb_master",
    "e-mails mostly lower case, some mixed": """
        SELECT avg((dr_email = lower(dr_email))::int) > 0.9 AND bool_or(dr_email <> lower(dr_email))
        FROM erp.deb_master WHERE dr_email IS NOT NULL""",
    "closed and stop-credit accounts": """
        SELECT bool_or(dr_account_status = 'C') AND bool_or(dr_account_status = 'S')
               AND bool_and(dr_account_status IN ('A', 'S', 'C'))
        FROM erp.deb_master""",
    "created over the last 3 years, changed since, all in the past": """
        SELECT min(dr_date_created) >= now() - interval '3 years 2 days'
               AND max(dr_date_created) - min(dr_date_created) > interval '2 years'
               AND bool_and(dr_date_last_changed >= dr_date_created) AND max(dr_date_last_changed) <= now()
        FROM erp.deb_master""",
    "Australian mobiles, 4-digit postcodes, states": """
        SELECT bool_and(dr_phone ~ '^04[0-9]{2} [0-9]{3} [0-9]{3}$') AND bool_and(dr_postcode ~ '^[0-9]{4}$')
               AND bool_and(dr_addr_3 IN ('NSW', 'VIC', 'QLD', 'WA', 'SA', 'TAS', 'ACT', 'NT'))
        FROM erp.deb_master WHERE dr_cust_code ~ '^C[0-9]+$'""",
    "businesses have 11-digit ABNs": """
        SELECT bool_and(dr_abn ~ '^[0-9]{11}$') FROM erp.deb_master WHERE dr_cust_type IN ('TRADE', 'GOVT')""",
    "about 1.5 contacts per debtor": """
        SELECT (SELECT count(*) FROM erp.crm_contact)::numeric / (SELECT count(*) FROM erp.deb_master)
               BETWEEN 1.3 AND 1.7""",
    "contacts acting for 2 to 4 accounts, never more": """
        SELECT count(*) FILTER (WHERE n BETWEEN 2 AND 4) >= 3 AND max(n) <= 4
        FROM (SELECT count(*) AS n FROM erp.crm_contact_account GROUP BY contact_id) AS links""",
    "contacts act mostly for TRADE and WEB_ accounts": """
        SELECT avg((d.dr_cust_type IN ('TRADE', 'WEB_'))::int) > 0.8
        FROM erp.crm_contact_account AS a JOIN erp.deb_master AS d USING (dr_cust_code)""",
    "at least three e-mails shared by two or three contacts": """
        SELECT count(*) >= 3 FROM (
            SELECT contact_email FROM erp.crm_contact WHERE contact_email IS NOT NULL
            GROUP BY 1 HAVING count(*) BETWEEN 2 AND 3) AS shared""",
    "inactive contacts and contacts without e-mail": """
        SELECT bool_or(NOT contact_active) AND bool_or(contact_email IS NULL) FROM erp.crm_contact""",
    "one contact on the cash account and one on the staff account": """
        SELECT count(*) FILTER (WHERE dr_cust_code = 'CASH') = 1 AND count(*) FILTER (WHERE dr_cust_code = 'STAFF') = 1
        FROM erp.crm_contact_account""",
    "every contact acts for an existing debtor": """
        SELECT NOT EXISTS (SELECT 1 FROM erp.crm_contact_account AS a
                           WHERE NOT EXISTS (SELECT 1 FROM erp.deb_master AS d WHERE d.dr_cust_code = a.dr_cust_code))
               AND NOT EXISTS (SELECT 1 FROM erp.crm_contact AS c
                               WHERE NOT EXISTS (SELECT 1 FROM erp.crm_contact_account AS a
                                                 WHERE a.contact_id = c.contact_id))""",
    "orders from the web, the phone and the shop": """
        SELECT array_agg(DISTINCT so_source ORDER BY so_source) = ARRAY['PHONE', 'POS', 'WEB'] FROM erp.sales_order""",
    "order statuses, some 61 (hidden online)": """
        SELECT bool_and(so_order_status IN ('10', '30', '50', '60', '61', '70'))
               AND count(*) FILTER (WHERE so_order_status = '61') > 0
               AND count(DISTINCT so_order_status) >= 5
        FROM erp.sales_order""",
    "orders over the last two years, some older than a year": """
        SELECT min(so_order_date) >= now() - interval '2 years 1 day' AND max(so_order_date) <= now()
               AND bool_or(so_order_date < now() - interval '365 days')
               AND bool_and(so_date_stamp >= so_order_date AND so_date_stamp <= now())
        FROM erp.sales_order""",
    "order numbers like SO0000001, positive totals": """
        SELECT bool_and(so_order_no ~ '^SO[0-9]{7}$') AND bool_and(so_order_total > 0) FROM erp.sales_order""",
    "every order charges an existing debtor": """
        SELECT NOT EXISTS (
            SELECT 1 FROM erp.sales_order AS o
            WHERE NOT EXISTS (SELECT 1 FROM erp.deb_master AS d WHERE d.dr_cust_code = o.so_cust_code))""",
    "in-store cash orders with and without an e-mail": """
        SELECT bool_or(so_email IS NULL) AND bool_or(so_email IS NOT NULL)
        FROM erp.sales_order WHERE so_cust_code = 'CASH' AND so_source = 'POS'""",
    "only in-store cash orders quote an e-mail": """
        SELECT bool_and(so_cust_code = 'CASH' AND so_source = 'POS') FROM erp.sales_order WHERE so_email IS NOT NULL""",
}


@pytest.mark.parametrize("fact", list(ERP_FACTS))
def test_erp_holds(seeded: Seeded, fact: str) -> None:
    assert scalar(seeded.erp, ERP_FACTS[fact]) is True, fact


def abn_is_valid(abn: str) -> bool:
    weights = (10, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19)
    digits = [int(d) for d in abn]
    digits[0] -= 1
    return sum(w * d for w, d in zip(weights, digits, strict=True)) % 89 == 0


def test_abns_pass_the_abn_check_sum(seeded: Seeded) -> None:
    abns = column(seeded.erp, "SELECT dr_abn FROM erp.deb_master WHERE dr_abn IS NOT NULL")
    assert abns and all(abn_is_valid(abn) for abn in abns)


# ---------------------------------------------------------------------------------------------
# Conversions: the ERP is as it is after them
# ---------------------------------------------------------------------------------------------


def conversions(seeded: Seeded) -> list[tuple[int, str, str, datetime]]:
    with seeded.erp.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.text("SELECT * FROM erp.deb_conversion ORDER BY 1"))]


def test_conversions_hold_a_chain_a_merge_and_renames(seeded: Seeded) -> None:
    rows = conversions(seeded)
    debtors = set(column(seeded.erp, "SELECT dr_cust_code FROM erp.deb_master"))
    olds = {old for _, old, _, _ in rows}

    assert len(rows) == 6  # 0.5% of 300 is less than the minimum of 6
    chains = [(a, b) for a in rows for b in rows if a[2] == b[1] and a[0] < b[0]]
    assert chains, "a chain A to B, then B to C"
    first_new_code = f"C{100001 + DEBTORS}"  # codes from here on did not exist before the conversions
    merges = [new for _, _, new, _ in rows if new < first_new_code]
    assert merges and set(merges) <= debtors - olds, "a merge into an account the ERP already had"
    assert sum(1 for _, _, new, _ in rows if new >= first_new_code) >= 3, "renames to new codes"


def test_conversions_are_recent_and_in_order(seeded: Seeded) -> None:
    rows = conversions(seeded)
    dates = [at for _, _, _, at in rows]
    assert dates == sorted(dates)
    assert all(datetime.now(UTC) - timedelta(days=31) < at < datetime.now(UTC) for at in dates)


def test_the_erp_no_longer_has_any_old_code(seeded: Seeded) -> None:
    olds = [old for _, old, _, _ in conversions(seeded)]
    for table_check in (
        "SELECT count(*) FROM erp.deb_master WHERE dr_cust_code = ANY(:olds)",
        "SELECT count(*) FROM erp.crm_contact_account WHERE dr_cust_code = ANY(:olds)",
        "SELECT count(*) FROM erp.sales_order WHERE so_cust_code = ANY(:olds)",
    ):
        assert scalar(seeded.erp, table_check, olds=olds) == 0, table_check


def test_each_code_converted_to_last_exists_with_its_orders(seeded: Seeded) -> None:
    rows = conversions(seeded)
    olds = {old for _, old, _, _ in rows}
    finals = [new for _, _, new, _ in rows if new not in olds]
    assert scalar(seeded.erp, "SELECT count(*) FROM erp.deb_master WHERE dr_cust_code = ANY(:c)", c=finals) == len(
        set(finals)
    )
    assert scalar(seeded.erp, "SELECT count(*) FROM erp.sales_order WHERE so_cust_code = ANY(:c)", c=finals) > 0


def test_the_web_still_holds_the_codes_before_conversion(seeded: Seeded) -> None:
    """So that the sync converts and merges rather than skips."""
    rows = conversions(seeded)
    news = {new for _, _, new, _ in rows}
    first_olds = [old for _, old, _, _ in rows if old not in news]
    on_web = set(column(seeded.web, "SELECT customer_code FROM web.customer"))
    assert set(first_olds) <= on_web
    users_on_old = "SELECT count(*) FROM web.app_user WHERE default_customer_code = ANY(:c)"
    assert scalar(seeded.web, users_on_old, c=first_olds) > 0


def test_plan_conversions_chains_merges_and_renames() -> None:
    as_of = datetime(2025, 1, 31, tzinfo=UTC)
    plan = plan_conversions([f"C1000{n:02d}" for n in range(1, 40)], 12, 100500, as_of)

    assert [c.seq for c in plan] == list(range(1, 13))
    assert [(c.old_code, c.new_code) for c in plan[:3]] == [
        ("C100001", "C100500"),  # a chain's first step
        ("C100002", "C100003"),  # a merge into an existing account
        ("C100500", "C100501"),  # the chain's second step
    ]
    final = final_codes(plan)
    assert final["C100001"][0] == "C100501"
    assert "C100500" not in final
    assert all(as_of - timedelta(days=30) < c.converted_at < as_of for c in plan)
    assert len({c.old_code for c in plan}) == len(plan)


def test_plan_conversions_stops_when_candidates_run_out() -> None:
    plan = plan_conversions(["C100001", "C100002"], 6, 100500, datetime(2025, 1, 31, tzinfo=UTC))
    assert 1 <= len(plan) <= 3


# ---------------------------------------------------------------------------------------------
# Web edge cases
# ---------------------------------------------------------------------------------------------

WEB_FACTS = {
    "roles B2C and B2B": """
        SELECT count(*) = 2 FROM web.role WHERE (role_name, is_b2c) IN (('B2C', true), ('B2B', false))""",
    "about half the users are B2C without an account yet": """
        SELECT avg((role = 'B2C' AND default_customer_code IS NULL)::int) BETWEEN 0.5 AND 0.65 FROM web.app_user""",
    "about 40% B2B users on an account, each with a user_customer link to it": """
        SELECT avg((role = 'B2B')::int) BETWEEN 0.3 AND 0.45
               AND bool_and(default_customer_code IS NOT NULL) FILTER (WHERE role = 'B2B')
               AND bool_and(EXISTS (SELECT 1 FROM web.user_customer AS l
                                    WHERE l.user_id = u.user_id AND l.customer_code = u.default_customer_code))
                   FILTER (WHERE role = 'B2B')
        FROM web.app_user AS u""",
    "some B2B users act for a second account": """
        SELECT count(*) > 0 FROM (SELECT user_id FROM web.user_customer GROUP BY 1 HAVING count(*) > 1) AS more""",
    "malformed-looking user e-mails, never null": """
        SELECT bool_or(email_address LIKE '% %') AND bool_or(position('@' in email_address) = 0)
               AND bool_and(email_address IS NOT NULL)
        FROM web.app_user""",
    "mostly Active, a few PendingApproval": """
        SELECT avg((status = 'Active')::int) > 0.9 AND bool_or(status = 'PendingApproval')
        FROM web.app_user""",
    "user dates in the past": """
        SELECT max(updated_at) < now() AND bool_and(updated_at >= created_at) FROM web.app_user""",
    "the next user gets a number after the seeded ones": """
        SELECT nextval(pg_get_serial_sequence('web.app_user', 'user_id')) > max(user_id) FROM web.app_user""",
    "the cash account is on the web": """
        SELECT is_cash_account AND is_debtor_customer FROM web.customer WHERE customer_code = 'CASH'""",
    "trade accounts on the web, one or two approving new users": """
        SELECT count(*) FILTER (WHERE is_debtor_customer AND NOT is_cash_account) > 10
               AND count(*) FILTER (WHERE auto_part_registration) BETWEEN 1 AND 2
        FROM web.customer""",
    "a few favourites per B2B user, none for others": """
        SELECT max(n) <= 4 AND bool_and(role = 'B2B') AND count(*) > 10
        FROM (SELECT user_id, count(*) AS n FROM web.favourite GROUP BY 1) AS f JOIN web.app_user USING (user_id)""",
    "pending sign-ups: the cash account's e-mail, an unknown one, a malformed one": """
        SELECT bool_and(status = 'pending')
               AND bool_or(email_address = 'counter.sales@store.example')
               AND bool_or(email_address LIKE '%@unknown.example')
               AND bool_or(position('@' in email_address) = 0)
        FROM web.registration_request""",
}


@pytest.mark.parametrize("fact", list(WEB_FACTS))
def test_web_holds(seeded: Seeded, fact: str) -> None:
    assert scalar(seeded.web, WEB_FACTS[fact]) is True, fact


def test_b2c_users_with_the_email_of_an_in_scope_debtor(seeded: Seeded) -> None:
    well_formed = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    debtor_emails = "SELECT dr_email FROM erp.deb_master WHERE dr_cust_type = 'WEB_' AND dr_email IS NOT NULL"
    web_debtor_emails = {e.lower() for e in column(seeded.erp, debtor_emails)}
    unlinked = "SELECT email_address FROM web.app_user WHERE role = 'B2C' AND default_customer_code IS NULL"
    b2c = column(seeded.web, unlinked)
    matching = [e for e in b2c if e.lower() in web_debtor_emails]
    assert len(matching) >= 10
    assert all(well_formed.match(e) for e in matching)


def test_b2b_users_act_for_trade_accounts_or_codes_converted_since(seeded: Seeded) -> None:
    trade = set(column(seeded.erp, "SELECT dr_cust_code FROM erp.deb_master WHERE dr_cust_type = 'TRADE'"))
    converted = set(column(seeded.erp, "SELECT old_cust_code FROM erp.deb_conversion"))
    codes = set(column(seeded.web, "SELECT customer_code FROM web.user_customer"))
    assert codes <= trade | converted


def test_in_store_emails_match_users_some_in_another_case_some_nobody(seeded: Seeded) -> None:
    users = {e.lower(): e for e in column(seeded.web, "SELECT email_address FROM web.app_user")}
    quoted = column(seeded.erp, "SELECT so_email FROM erp.sales_order WHERE so_email IS NOT NULL")
    matched = [e for e in quoted if e.lower() in users]
    assert matched, "some match a web user"
    assert any(users[e.lower()] != e for e in matched), "some in another case"
    assert any(e.lower() not in users for e in quoted), "some match nobody"


def test_a_sign_up_from_an_active_trade_contact(seeded: Seeded) -> None:
    requested = column(seeded.web, "SELECT email_address FROM web.registration_request")
    trade_contacts = column(
        seeded.erp,
        "SELECT c.contact_email FROM erp.crm_contact AS c JOIN erp.crm_contact_account USING (contact_id)"
        " JOIN erp.deb_master AS d USING (dr_cust_code)"
        " WHERE c.contact_active AND d.dr_cust_type = 'TRADE' AND d.dr_account_status = 'A'",
    )
    assert set(requested) & set(trade_contacts)
