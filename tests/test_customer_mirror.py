"""M3 and the shared customer mirror: every CSS account (or account with an active user-debtor link) has an
up-to-date web.customer row; one that leaves the scope or the ERP becomes Inactive, never deleted."""

import pytest
import sqlalchemy as sa

from tests.support import add_debtor, digest, erp_change, one, rows, write_settings
from tests.support import synced_clean as synced
from userdebtor_pipeline.defs.contacts.customer_mirror import RETIRE_SQL, mirror_customers

CUSTOMER_COLUMNS = "customer_code, name, order_email_address, address1, postcode, phone_number, status," \
                   " is_debtor_customer, is_cash_account"


def customer(web, code: str) -> dict | None:
    found = rows(web, f"SELECT {CUSTOMER_COLUMNS} FROM web.customer WHERE customer_code = :c", c=code)  # noqa: S608
    return found[0] if found else None


@pytest.fixture
def dbs(pipeline_env, settings_path):
    return pipeline_env


# ---------------------------------------------------------------- the shared SQL, called by U1/U2/I1 with codes
def test_mirror_customers_by_code_upserts_only_what_changed(engines):
    """mirror_customers(codes): the function U1/U2/I1 call still creates, refreshes and skips unchanged rows."""
    with engines.web.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO userdebtor.erp_debtor (dr_cust_code, dr_cust_name, dr_cust_type, dr_email, dr_postcode,"
            " dr_account_status, dr_date_created, dr_date_last_changed, change_seq) VALUES"
            " ('C1', 'First', 'TRADE', 'one@trade.example', '2000', 'A', now(), now(), 1),"
            " ('C2', 'Second', 'TRADE', NULL, NULL, 'C', now(), now(), 2),"
            " ('CASH', 'Cash sales', 'CASH', NULL, NULL, 'A', now(), now(), 3)"))
    with engines.web.begin() as conn:
        assert mirror_customers(conn, ["C1", "C2", "CASH", "NOT_STAGED"], "CASH") == 3
        assert mirror_customers(conn, [], "CASH") == 0
    assert customer(engines.web, "C1") == {
        "customer_code": "C1", "name": "First", "order_email_address": "one@trade.example", "address1": None,
        "postcode": "2000", "phone_number": None, "status": "Active", "is_debtor_customer": True,
        "is_cash_account": False}
    assert customer(engines.web, "C2")["status"] == "Inactive", "a closed account shows as Inactive"
    assert customer(engines.web, "CASH")["is_cash_account"] is True
    assert customer(engines.web, "NOT_STAGED") is None

    def row_version(code: str) -> tuple[str, str]:  # a row locked or written gets a new xmax or xmin
        return tuple(rows(engines.web, "SELECT xmin::text, xmax::text FROM web.customer WHERE customer_code = :c",
                          c=code)[0].values())

    before = row_version("C1")
    with engines.web.begin() as conn:
        assert mirror_customers(conn, ["C1", "C2"], "CASH") == 0, "unchanged rows are not written again"
    assert row_version("C1") == before, "nor locked: a full reconcile lists every kept account"
    with engines.web.begin() as conn:
        conn.execute(sa.text("UPDATE userdebtor.erp_debtor SET dr_cust_name = 'First, renamed'"
                             " WHERE dr_cust_code = 'C1'"))
        assert mirror_customers(conn, ["C1", "C2"], "CASH") == 1
    assert customer(engines.web, "C1")["name"] == "First, renamed"


def test_m3_a_kept_code_whose_web_row_went_is_let_go_by_the_run_that_sees_it_go(engines):
    """M3: a kept code whose web row is gone is no longer M3's to keep. A changed-since run looks only at the codes
    staging saw go since its window (not at every kept code, a second a run at a million); the full reconcile at
    every kept code, also one whose row went unseen."""
    with engines.web.begin() as conn:
        conn.execute(sa.text("INSERT INTO web.customer (customer_code, name) VALUES ('KEPT', 'Kept')"))
        conn.execute(sa.text("INSERT INTO userdebtor.css_customer (customer_code)"
                             " VALUES ('KEPT'), ('GONE'), ('UNSEEN')"))
        conn.execute(sa.text("INSERT INTO userdebtor.web_customer_gone (customer_code, change_seq)"
                             " VALUES ('GONE', 100)"))

    def kept_after(full: bool) -> set[str]:
        with engines.web.begin() as conn:
            RETIRE_SQL.run(conn, {"full": full, "since": 50})
        return {r["customer_code"] for r in rows(engines.web, "SELECT customer_code FROM userdebtor.css_customer")}

    assert kept_after(full=False) == {"KEPT", "UNSEEN"}
    assert kept_after(full=True) == {"KEPT"}


# ---------------------------------------------------------------- M3 through the sync job
def test_m3_css_accounts_created_updated_and_inactive_when_out_of_scope_or_deleted(dbs):
    """M3: create for CSS accounts only; ERP changes follow; out of scope or deleted -> Inactive, row kept."""
    add_debtor(dbs.erp, "T1", "accounts@one.example", name="Trade One", cust_type="TRADE", dr_postcode="2000")
    add_debtor(dbs.erp, "T2", None, name="Trade Two", cust_type="TRADE")
    add_debtor(dbs.erp, "T3", None, name="Trade Three", cust_type="TRADE")
    add_debtor(dbs.erp, "R1", None, name="Retail One", cust_type="RETAIL")  # outside css_customer_filter

    first = synced()

    assert customer(dbs.web, "T1") == {
        "customer_code": "T1", "name": "Trade One", "order_email_address": "accounts@one.example",
        "address1": None, "postcode": "2000", "phone_number": None, "status": "Active",
        "is_debtor_customer": True, "is_cash_account": False}
    assert customer(dbs.web, "R1") is None, "an account outside the CSS filter is not mirrored"
    assert first.materializations["customer_mirror"]["customers_written"] == 3

    erp_change(dbs.erp, "T1", dr_cust_name="Trade One Pty Ltd", dr_phone="02 9999 0000")
    erp_change(dbs.erp, "T2", dr_cust_type="RETAIL")
    with dbs.erp.begin() as conn:
        conn.execute(sa.text("DELETE FROM erp.deb_master WHERE dr_cust_code = 'T3'"))
    second = synced()

    assert (customer(dbs.web, "T1")["name"], customer(dbs.web, "T1")["phone_number"]) == (
        "Trade One Pty Ltd", "02 9999 0000")
    assert customer(dbs.web, "T2")["status"] == "Inactive", "left the CSS scope"
    assert customer(dbs.web, "T3")["status"] == "Inactive", "deleted in the ERP: Inactive, never deleted"
    plan = second.materializations["customer_mirror_plan"]
    assert (plan["customers_to_create"], plan["customers_to_refresh"], plan["customers_to_inactivate"]) == (0, 1, 2), \
        "incremental: only what changed since the last run"

    erp_change(dbs.erp, "T2", dr_cust_type="TRADE")
    synced()
    assert customer(dbs.web, "T2")["status"] == "Active", "back in scope: active again"


def test_m3_rerun_changes_nothing_and_full_run_refreshes_all(dbs):
    """M3: a rerun plans nothing; --full reconciles every CSS account (and repairs a hand-edited row)."""
    add_debtor(dbs.erp, "T1", None, name="Trade One", cust_type="TRADE")
    add_debtor(dbs.erp, "T2", None, name="Trade Two", cust_type="TRADE")
    synced()
    state = digest(dbs.web, f"SELECT {CUSTOMER_COLUMNS} FROM web.customer ORDER BY 1")  # noqa: S608

    again = synced()
    assert digest(dbs.web, f"SELECT {CUSTOMER_COLUMNS} FROM web.customer ORDER BY 1") == state  # noqa: S608
    assert again.materializations["customer_mirror_plan"]["customers_to_refresh"] == 0
    assert again.materializations["customer_mirror"]["customers_written"] == 0

    with dbs.web.begin() as conn:
        conn.execute(sa.text("UPDATE web.customer SET name = 'edited by hand' WHERE customer_code = 'T2'"))
    full = synced(full=True)
    assert full.materializations["customer_mirror_plan"]["customers_to_refresh"] == 2
    assert customer(dbs.web, "T2")["name"] == "Trade Two"


def test_m3_account_with_an_active_user_debtor_link_stays_mirrored(dbs, settings_path):
    """M3: an account outside the CSS filter but linked to a user (U2) is mirrored and never set Inactive."""
    write_settings(settings_path, user_debtor={"css_customer_filter": 'dr-cust-type = "TRADE"'})
    add_debtor(dbs.erp, "WEB_000001", "linked@shop.example", name="Linked Buyer")  # master scope only
    synced()
    assert one(dbs.web, "SELECT state FROM userdebtor.user_debtor_link WHERE dr_cust_code = 'WEB_000001'") == "active"

    erp_change(dbs.erp, "WEB_000001", dr_addr_1="1 New Street")
    synced()

    row = customer(dbs.web, "WEB_000001")
    assert (row["status"], row["address1"], row["is_debtor_customer"]) == ("Active", "1 New Street", True)


def test_m3_leaves_accounts_other_rules_put_on_the_web(dbs):
    """M3: a debtor account M3 never mirrored (e.g. one I1 or the website added) is not M3's to retire."""
    add_debtor(dbs.erp, "R1", None, name="Retail One", cust_type="RETAIL")
    with dbs.web.begin() as conn:
        conn.execute(sa.text("INSERT INTO web.customer (customer_code, name, status, is_debtor_customer)"
                             " VALUES ('R1', 'Retail One', 'Active', true), ('SITE', 'Site made', 'Active', false)"))

    synced()

    assert customer(dbs.web, "R1")["status"] == "Active"
    assert customer(dbs.web, "SITE")["status"] == "Active"


def test_m3_dry_run_writes_nothing(dbs):
    """M3 dry run: the plan is reported, web.customer is untouched."""
    add_debtor(dbs.erp, "T1", None, name="Trade One", cust_type="TRADE")

    outcome = synced(dry_run=True)

    assert one(dbs.web, "SELECT count(*) FROM web.customer") == 0
    mirrored = outcome.materializations["customer_mirror"]
    assert (mirrored["dry_run"], mirrored["would_customers_to_create"]) == (True, 1)
    assert "T1" in mirrored["customer_plan_sample"]
