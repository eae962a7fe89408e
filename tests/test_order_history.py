"""Order history (O1, O2) end to end: ERP orders and web accounts in, the real Dagster job, web.order_history out.

Most accounts here have a customer type that neither filter selects, made integrated by a web.customer row
with is_debtor_customer (as M3 or an I1 approval would leave it), so each test sees the order rules alone.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.support import add_debtor, add_order, add_template, add_user, one, rows, write_settings
from tests.support import synced_clean as sync
from userdebtor_pipeline.defs.orders.assets import archive_cutoff

pytestmark = pytest.mark.slow

ACCOUNT_TYPE = "DEBTOR"  # matched by neither filter


# ------------------------------------------------------------------------------------------ helpers


def integrated_account(env, code: str, *, cash: bool = False) -> None:
    """An ERP account and its web.customer row from the ERP (is_debtor_customer)."""
    add_debtor(env.erp, code, None, name=f"Account {code}", cust_type="CASH" if cash else ACCOUNT_TYPE)
    with env.web.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO web.customer (customer_code, name, status, is_debtor_customer, is_cash_account)"
                    " VALUES (:c, :n, 'Active', true, :cash)"),
            {"c": code, "n": f"Account {code}", "cash": cash},
        )


def erp_order_change(erp: Engine, order_no: str, **columns: Any) -> None:
    """An ERP edit of an order: the ERP stamps so_date_stamp on every change."""
    sets = ", ".join(f"{k} = :{k}" for k in columns)
    with erp.begin() as conn:
        conn.execute(sa.text(f"UPDATE erp.sales_order SET {sets}, so_date_stamp = clock_timestamp()"  # noqa: S608
                             " WHERE so_order_no = :no"), {**columns, "no": order_no})


def history(web: Engine) -> dict[str, dict[str, Any]]:
    return {r["order_no"]: r for r in rows(web, "SELECT * FROM web.order_history ORDER BY order_no")}


def shown(web: Engine) -> dict[str, tuple[str, int | None]]:
    """order_no -> (customer_code, user_id), what the Order History page shows."""
    return {no: (r["customer_code"], r["user_id"]) for no, r in history(web).items()}


def shop(env) -> dict[str, int]:
    """Accounts, users and orders most tests start from; returns the user ids by first name."""
    integrated_account(env, "CASH", cash=True)
    integrated_account(env, "C100")
    integrated_account(env, "C200")
    add_debtor(env.erp, "C900", None, name="Not on the web", cust_type=ACCOUNT_TYPE)
    users = {
        # proven addresses (A1): in-store orders given with them are theirs to see
        "ann": add_user(env.web, "ann@acme.test", role="B2B", default_code="C100", email_verified=True),
        "bob": add_user(env.web, "bob@acme.test", role="B2B", default_code="C200", email_verified=True),
        "cat": add_user(env.web, "cat@acme.test", role="B2B", default_code="C200", email_verified=True),
    }
    add_order(env.erp, "SO1", "C100")
    add_order(env.erp, "SO2", "C100", status="61")
    add_order(env.erp, "SO3", "C100", days_old=400)
    add_order(env.erp, "SO4", "C200", total="250.50")
    add_order(env.erp, "SO5", "C900")
    add_order(env.erp, "POS1", "CASH", source="POS", email=" ANN@Acme.Test")
    add_order(env.erp, "POS2", "CASH", source="POS")
    add_order(env.erp, "POS3", "CASH", source="POS", email="stranger@example.test")
    return users


# ------------------------------------------------------------------------------------------ O1, O2


def test_o1_o2_orders_are_shown_to_the_users_they_belong_to(env):
    """O1: orders of integrated accounts are shown, with the account's only default user (none when two users
    share it); hidden statuses, archived orders and accounts not on the web are not. O2: an in-store order on the
    cash account is shown to the user whose email it carries (letter case differs); one without an email or with
    the email of no user is left alone."""
    users = shop(env)

    outcome = sync()

    assert shown(env.web) == {
        "SO1": ("C100", users["ann"]),
        "SO4": ("C200", None),
        "POS1": ("CASH", users["ann"]),
    }
    so4 = history(env.web)["SO4"]
    assert (so4["source"], so4["status"], str(so4["total"])) == ("WEB", "10", "250.50")
    plan = outcome.materializations["order_history_plan"]
    assert (plan["orders_to_add"], plan["in_store_orders_to_show"]) == (3, 1)
    assert outcome.check_metadata["order_history_plan:planned_orders_are_complete"]["rows_checked"] == 3


def test_o1_status_change_follows_and_a_hidden_status_takes_the_order_away(env):
    """O1: an ERP change of an order's status or total follows to the history; status 61 takes it away."""
    shop(env)
    sync()

    erp_order_change(env.erp, "SO1", so_order_status="20", so_order_total="120.00")
    sync()
    so1 = history(env.web)["SO1"]
    assert (so1["status"], str(so1["total"])) == ("20", "120.00")

    erp_order_change(env.erp, "SO1", so_order_status="61")
    outcome = sync()
    assert "SO1" not in history(env.web)
    assert outcome.materializations["order_history_synced"]["orders_removed"] == 1


def test_o1_order_deleted_in_the_erp_leaves_the_history_in_a_full_run(env):
    """O1: an order the ERP deletes leaves the history at a full reconcile, whatever a changed-since run saw (it
    sees deletes once the ERP server has published its count of them: test_one_run_final)."""
    shop(env)
    sync()
    with env.erp.begin() as conn:
        conn.execute(sa.text("DELETE FROM erp.sales_order WHERE so_order_no IN ('SO4', 'POS1')"))

    sync(full=True)
    assert set(history(env.web)) == {"SO1"}


def test_o1_full_reconcile_reads_every_erp_order_once_with_the_history_of_accounts_taken_away(env):
    """O1, full reconcile: every ERP order is looked at once, from the ERP's orders directly, and so is an order of
    an account no longer shown that the ERP has deleted meanwhile (from the history): both leave, nothing twice."""
    shop(env)
    add_order(env.erp, "SO6", "C200")
    sync()
    assert {"SO4", "SO6"} <= set(history(env.web))
    with env.erp.begin() as conn:
        conn.execute(sa.text("DELETE FROM erp.sales_order WHERE so_order_no = 'SO6'"))
    with env.web.begin() as conn:
        conn.execute(sa.text("UPDATE web.customer SET is_debtor_customer = false WHERE customer_code = 'C200'"))

    outcome = sync(full=True)

    assert set(history(env.web)) == {"SO1", "POS1"}
    plan = outcome.materializations["order_history_plan"]
    assert (plan["mode"], plan["orders_looked_at"], plan["orders_to_remove"]) == ("full", 8 + 1, 2)


def test_o1_order_that_ages_past_archive_days_leaves(env):
    """O1: an order that passes archive_days between two runs leaves, though nothing about it changed; a shorter
    archive_days takes older orders away at once."""
    shop(env)
    sync()
    cutoff = one(env.web, "SELECT value FROM userdebtor.watermark WHERE name = 'order_history'")
    # SO1 was dated inside the archive window of yesterday's run: by today's, the day has moved it out.
    yesterday = cutoff - timedelta(days=1)
    with env.web.begin() as conn:
        conn.execute(sa.text("UPDATE userdebtor.watermark SET value = :d WHERE name = 'order_history'"),
                     {"d": yesterday})
    _date_order(env, "SO1", cutoff - timedelta(hours=12))

    sync()
    assert "SO1" not in history(env.web)

    write_settings(env.settings_path, order_history={"archive_days": 5})
    sync()
    assert history(env.web) == {}


def test_o1_orders_age_out_at_midnight_so_the_runs_of_a_day_remove_none_by_age(env):
    """O1 and A3: the archive cut-off is the start of the day archive_days ago, so a run later the same day finds no
    order leaving by age alone and writes nothing; an order dated a millisecond inside the window stays."""
    shop(env)
    sync()
    cutoff = one(env.web, "SELECT value FROM userdebtor.watermark WHERE name = 'order_history'")
    assert (cutoff.hour, cutoff.minute, cutoff.second, cutoff.microsecond) == (0, 0, 0, 0)
    _date_order(env, "SO1", cutoff + timedelta(milliseconds=1))
    before = dict(history(env.web))

    outcome = sync()
    assert "SO1" in history(env.web) and history(env.web) == before
    assert outcome.materializations["order_history_synced"]["orders_removed"] == 0


@pytest.mark.parametrize(("now", "days", "expected"), [
    (datetime(2026, 12, 3, 23, 59, tzinfo=ZoneInfo("UTC")), 365, datetime(2025, 12, 3, tzinfo=ZoneInfo("UTC"))),
    # Sydney: midnight there, across the change to daylight saving (UTC+10 in July, UTC+11 in December)
    (datetime(2026, 12, 3, 0, 30, tzinfo=ZoneInfo("Australia/Sydney")), 150,
     datetime(2026, 7, 6, tzinfo=ZoneInfo("Australia/Sydney"))),
])
def test_o1_archive_cutoff_is_the_start_of_the_day_in_the_schedules_time_zone(now, days, expected):
    cutoff = archive_cutoff(now, days)
    assert cutoff == expected and cutoff.utcoffset() == expected.utcoffset()


def _date_order(env, order_no: str, when: datetime) -> None:
    """An order's date changed in the ERP and in the staged copy as it stands (not a change the ERP stamps)."""
    with env.erp.begin() as conn:
        conn.execute(sa.text("UPDATE erp.sales_order SET so_order_date = :d WHERE so_order_no = :o"),
                     {"d": when, "o": order_no})
    with env.web.begin() as conn:
        conn.execute(sa.text("UPDATE userdebtor.erp_sales_order SET so_order_date = :d WHERE so_order_no = :o"),
                     {"d": when, "o": order_no})


def test_o1_account_no_longer_integrated_takes_its_orders_away(env):
    """O1: when an account stops being an integrated web customer, its orders leave the history."""
    shop(env)
    sync()
    with env.web.begin() as conn:
        conn.execute(sa.text("UPDATE web.customer SET is_debtor_customer = false WHERE customer_code = 'C200'"))

    sync()

    assert "SO4" not in history(env.web)
    assert "SO1" in history(env.web)


def test_o1_orders_of_a_linked_account_belong_to_the_linked_user(env):
    """O1: the orders of an account with a user-debtor link (made by U2) are shown to the linked user, even when
    another user also has it as default account; they appear once the link exists."""
    add_template(env.erp)
    add_debtor(env.erp, "WEB_000001", "linked@acme.test", name="Linked Customer")
    add_order(env.erp, "SO10", "WEB_000001")
    sync()  # U2 makes the user, the link and the web customer
    linked = one(env.web, "SELECT user_id FROM userdebtor.user_debtor_link WHERE dr_cust_code = 'WEB_000001'")
    assert linked is not None
    add_user(env.web, "other@acme.test", role="B2B", default_code="WEB_000001")

    sync()

    assert shown(env.web) == {"SO10": ("WEB_000001", linked)}


def test_o1_orders_of_a_converted_account_keep_the_new_code(env):
    """O1 with C2: after the ERP converts an account's code, its orders stay in the history under the new code,
    run after run, even when the staged order still carries the old code."""
    users = shop(env)
    add_order(env.erp, "SO0", "C900", stamped_now=True)  # moves the extract's watermark well past SO1's stamp
    sync()
    with env.erp.begin() as conn:
        conn.execute(sa.text("UPDATE erp.deb_master SET dr_cust_code = 'C150', dr_date_last_changed = now()"
                             " WHERE dr_cust_code = 'C100'"))
        # The ERP rewrites its orders too, without stamping them: only a full read sees the new code.
        conn.execute(sa.text("UPDATE erp.sales_order SET so_cust_code = 'C150' WHERE so_cust_code = 'C100'"))
        conn.execute(sa.text("INSERT INTO erp.deb_conversion (conversion_seq, old_cust_code, new_cust_code)"
                             " VALUES (1, 'C100', 'C150')"))
    add_order(env.erp, "SO6", "C150", stamped_now=True)

    sync()
    assert one(env.web, "SELECT so_cust_code FROM userdebtor.erp_sales_order WHERE so_order_no = 'SO1'") == "C100"
    assert shown(env.web)["SO1"] == ("C150", users["ann"])
    assert shown(env.web)["SO6"] == ("C150", users["ann"])

    erp_order_change(env.erp, "SO1", so_order_status="20")
    sync()
    assert shown(env.web)["SO1"] == ("C150", users["ann"])
    assert history(env.web)["SO1"]["status"] == "20"

    outcome = sync(full=True)
    assert shown(env.web)["SO1"] == ("C150", users["ann"])
    assert outcome.materializations["order_history_synced"]["orders_written"] == 0


def test_o2_user_who_registers_later_sees_their_in_store_orders(env):
    """O2: an in-store order whose email is no user's is left alone until a user with that email appears."""
    shop(env)
    sync()
    assert "POS3" not in history(env.web)

    stranger = add_user(env.web, "Stranger@example.test", role="B2C", default_code="CASH", email_verified=True)
    sync()

    assert shown(env.web)["POS3"] == ("CASH", stranger)


def test_o2_in_store_order_whose_email_fits_several_users_is_left_alone_and_reported(env):
    """O2: when two web users carry the same email (a web database that does not enforce case-insensitive
    uniqueness), the in-store order is shown to neither and reported."""
    integrated_account(env, "CASH", cash=True)
    with env.web.begin() as conn:
        conn.execute(sa.text("DROP INDEX web.app_user_email_ci_key"))
    add_user(env.web, "sam@acme.test", role="B2B", email_verified=True)
    add_user(env.web, "SAM@acme.test", role="B2B", email_verified=True)
    add_order(env.erp, "POS9", "CASH", source="POS", email="Sam@Acme.test")

    outcome = sync()

    assert history(env.web) == {}
    assert outcome.materializations["order_history_synced"]["in_store_orders_ambiguous"] == 1
    problem = rows(env.web, "SELECT * FROM userdebtor.problem WHERE subject = 'order:POS9'")
    assert problem and problem[0]["rule"] == "O2" and "2 users" in problem[0]["detail"]


def test_o1_rerun_changes_nothing(env):
    """O1/O2: a second run, incremental or full, writes nothing: same rows, same updated_at."""
    shop(env)
    sync()
    before = history(env.web)

    again = sync()
    full = sync(full=True)

    assert history(env.web) == before
    for outcome in (again, full):
        synced = outcome.materializations["order_history_synced"]
        assert (synced["orders_written"], synced["orders_removed"]) == (0, 0)


def test_o1_dry_run_writes_nothing(env):
    """O1 with --dry-run: the planned orders are reported, web.order_history is not touched."""
    shop(env)

    outcome = sync(dry_run=True)

    assert history(env.web) == {}
    assert outcome.materializations["order_history_synced"]["would_add"] == 3


def test_o1_the_next_run_does_not_look_again_at_what_the_loads_before_the_plan_wrote(env):
    """O1 at scale: the user, link and customer row U2 and M3 made in the first run were seen by that run's order
    plan, which planned after them; the next run's plan starts from that plan's own mark and looks at no order,
    where it used to look again at the account's. An order changed after the mark is looked at."""
    add_template(env.erp)
    add_debtor(env.erp, "WEB_000001", "linked@acme.test", name="Linked Customer")
    add_order(env.erp, "SO10", "WEB_000001")
    first = sync()  # U2 makes the user, the link and the web customer; the order plan sees them
    assert first.materializations["order_history_plan"]["orders_to_add"] == 1

    again = sync()

    plan = again.materializations["order_history_plan"]
    assert plan["since_seq"] > again.materializations["change_window"]["since_seq"]  # its own mark
    assert plan["orders_looked_at"] == 0
    erp_order_change(env.erp, "SO10", so_order_total="99.00")
    changed = sync().materializations["order_history_plan"]
    assert (changed["orders_looked_at"], changed["orders_to_update"]) == (1, 1)
    assert str(history(env.web)["SO10"]["total"]) == "99.00"


def test_o1_the_only_user_of_an_account_is_read_from_an_index_alone(engines):
    """O1 at scale: the order plan asks, per account without a linked user, which user is the only one whose
    default account it is; the mirror's index of default accounts holds the user ids, so no user row is read
    (a full reconcile asks it of 340,000 accounts at a million)."""
    with engines.web.connect() as conn:
        conn.execute(sa.text("SET enable_seqscan = off"))
        conn.execute(sa.text("SET enable_bitmapscan = off"))
        plan = "\n".join(conn.execute(sa.text(
            "EXPLAIN SELECT min(u.user_id) FROM userdebtor.web_user u WHERE u.default_customer_code = 'C100'"
            " HAVING count(*) = 1")).scalars())
    assert "Index Only Scan" in plan, plan
