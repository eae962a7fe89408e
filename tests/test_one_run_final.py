"""A3: one run is final. Each test is the smallest world in which a rule used to see another's effect one run late.

Every test ends with the same proof: an immediate second run (changed-since and full) changes no table of
`erp` or `web` and queues no email.
"""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.support import (
    add_debtor,
    add_order,
    add_user,
    erp_change,
    one,
    synced,
    web_change,
    write_settings,
)
from tests.world import fingerprints

pytestmark = pytest.mark.slow


def assert_final(dbs) -> None:
    """A3: after a good run, a second one (with --full or without) writes nothing and queues no email."""
    before = fingerprints(dbs.erp, dbs.web)
    for full in (False, True):
        synced(full=full)
        after = fingerprints(dbs.erp, dbs.web)
        assert [t for t in before if before[t] != after[t]] == [], f"a second run (full={full}) wrote these tables"


def add_contact(erp: Engine, contact_id: int, email: str, *codes: str) -> None:
    with erp.begin() as conn:
        conn.execute(sa.text("INSERT INTO erp.crm_contact (contact_id, contact_email, contact_date_last_changed)"
                             " VALUES (:i, :e, now())"), {"i": contact_id, "e": email})
        for code in codes:
            conn.execute(sa.text("INSERT INTO erp.crm_contact_account VALUES (:i, :c)"), {"i": contact_id, "c": code})


DELETED_ORDERS = "SELECT n_tup_del FROM pg_stat_user_tables WHERE schemaname = 'erp' AND relname = 'sales_order'"


def wait_until(condition, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        time.sleep(0.2)


def user_of(web: Engine, email: str) -> int | None:
    return one(web, "SELECT user_id FROM web.app_user WHERE lower(email_address) = lower(:e)", e=email)


def test_a3_second_run_after_the_first_load_of_a_seeded_world_writes_nothing(dbs):
    from userdebtor_pipeline.seed import seed_databases

    with dbs.erp.begin() as conn:  # the seed brings its own template
        conn.execute(sa.text("DELETE FROM erp.deb_master"))
    seed_databases(dbs.erp, dbs.web, debtors=300, users=300, seed=11)
    synced()
    assert_final(dbs)


def test_a3_u2_user_has_its_orders_and_contact_links_in_the_run_that_makes_it(dbs):
    """O1 and M1 after U2: the user made for a debtor sees its orders and its contact's other account at once."""
    add_debtor(dbs.erp, "C100", "maker@mail.example", name="Maker")
    add_debtor(dbs.erp, "T200", None, name="Trade account", cust_type="TRADE")
    add_order(dbs.erp, "SO1", "C100")
    add_contact(dbs.erp, 1, "maker@mail.example", "T200")

    synced()

    user = user_of(dbs.web, "maker@mail.example")
    assert one(dbs.web, "SELECT user_id FROM web.order_history WHERE order_no = 'SO1'") == user
    assert one(dbs.web, "SELECT count(*) FROM web.user_customer WHERE user_id = :u", u=user) == 2
    assert_final(dbs)


def test_a3_matched_pair_takes_the_erp_values_in_the_run_that_links_it(dbs):
    """U2's link of an existing user and debtor: the ERP's values reach the web in the same run."""
    user = add_user(dbs.web, "match@mail.example", name="Web name", email_verified=True)
    add_debtor(dbs.erp, "C300", "match@mail.example", name="ERP name", dr_phone="0400 000 000")

    synced()

    if one(dbs.web, "SELECT count(*) FROM userdebtor.user_debtor_link WHERE user_id = :u", u=user):
        assert one(dbs.web, "SELECT name FROM web.app_user WHERE user_id = :u", u=user) == "ERP name"
        assert one(dbs.web, "SELECT phone_number FROM web.app_user WHERE user_id = :u", u=user) == "0400 000 000"
    assert_final(dbs)


def test_a3_customer_mirror_takes_a_web_edit_in_the_run_that_sends_it_to_the_erp(dbs):
    """M3 after U4: a web edit sent to the ERP is mirrored into web.customer in the same run."""
    add_debtor(dbs.erp, "C400", "edit@mail.example", name="Before")
    synced()
    web_change(dbs.web, user_of(dbs.web, "edit@mail.example"), name="After")

    synced()

    assert one(dbs.erp, "SELECT dr_cust_name FROM erp.deb_master WHERE dr_cust_code = 'C400'") == "After"
    assert one(dbs.web, "SELECT name FROM web.customer WHERE customer_code = 'C400'") == "After"
    assert_final(dbs)


def test_a3_debtor_leaving_scope_is_retired_at_once_and_its_web_edit_not_written(dbs):
    """U6 and M3 in one run: the link is suspended, web.customer retired, the ERP not written for it (U4)."""
    add_debtor(dbs.erp, "C500", "leaving@mail.example", name="Leaving")
    synced()
    web_change(dbs.web, user_of(dbs.web, "leaving@mail.example"), name="Edited on the web")
    erp_change(dbs.erp, "C500", dr_cust_type="RETAIL")  # neither the master nor the CSS filter

    synced()

    assert one(dbs.erp, "SELECT dr_cust_name FROM erp.deb_master WHERE dr_cust_code = 'C500'") == "Leaving"
    assert one(dbs.web, "SELECT state FROM userdebtor.user_debtor_link WHERE dr_cust_code = 'C500'") == "suspended"
    assert one(dbs.web, "SELECT status FROM web.customer WHERE customer_code = 'C500'") == "Inactive"
    assert_final(dbs)


def test_a3_o2_in_store_order_follows_a_login_change_in_a_changed_since_run(dbs):
    add_debtor(dbs.erp, "CASH", None, name="Cash sales", cust_type="CASH")
    ann = add_user(dbs.web, "ann@shop.example", role="B2B", email_verified=True)
    bob = add_user(dbs.web, "bob@shop.example", role="B2B", email_verified=True)
    add_order(dbs.erp, "POS1", "CASH", source="POS", email="ann@shop.example")
    synced()
    assert one(dbs.web, "SELECT user_id FROM web.order_history WHERE order_no = 'POS1'") == ann

    web_change(dbs.web, ann, email_address="ann.new@shop.example")
    web_change(dbs.web, bob, email_address="ann@shop.example")
    synced()

    assert one(dbs.web, "SELECT user_id FROM web.order_history WHERE order_no = 'POS1'") == bob
    assert_final(dbs)


def test_a3_o1_account_a_user_leaves_as_default_goes_to_the_only_user_left(dbs):
    """O1: an account that two users have as default shows its orders to neither; when one of them moves away, the
    other is the only one, in the same changed-since run, although that user did not change."""
    add_debtor(dbs.erp, "C800", "trade@mail.example", name="Trade", cust_type="TRADE")
    ann = add_user(dbs.web, "ann@trade.example", role="B2B", default_code="C800")
    bob = add_user(dbs.web, "bob@trade.example", role="B2B", default_code="C800")
    add_order(dbs.erp, "SO8", "C800")
    synced()
    assert one(dbs.web, "SELECT user_id FROM web.order_history WHERE order_no = 'SO8'") is None

    web_change(dbs.web, ann, default_customer_code=None)
    synced()

    assert one(dbs.web, "SELECT user_id FROM web.order_history WHERE order_no = 'SO8'") == bob
    assert_final(dbs)


def test_a3_o1_order_deleted_in_the_erp_leaves_in_a_changed_since_run(dbs):
    add_debtor(dbs.erp, "C600", "orders@mail.example", name="Orders")
    add_order(dbs.erp, "SO6", "C600")
    add_order(dbs.erp, "SO7", "C600")
    synced()
    deleted_before = one(dbs.erp, DELETED_ORDERS)
    with dbs.erp.begin() as conn:
        conn.execute(sa.text("DELETE FROM erp.sales_order WHERE so_order_no = 'SO6'"))
    wait_until(lambda: one(dbs.erp, DELETED_ORDERS) > deleted_before)  # the ERP server publishes its count

    outcome = synced()

    assert outcome.materializations["staged_sales_orders"]["deletes_looked_for"] is True

    assert one(dbs.web, "SELECT string_agg(order_no, ',' ORDER BY order_no) FROM web.order_history") == "SO7"
    assert_final(dbs)


def test_a3_u2_set_aside_debtor_is_planned_again_when_its_blocker_changes(dbs):
    """U2: a debtor set aside because a linked user has its email gets its own user once that user moves away."""
    add_debtor(dbs.erp, "C700", "shared@mail.example", name="First")
    synced()
    add_debtor(dbs.erp, "C701", "shared@mail.example", name="Second")
    synced()
    assert user_of(dbs.web, "shared@mail.example") == one(
        dbs.web, "SELECT user_id FROM userdebtor.user_debtor_link WHERE dr_cust_code = 'C700'")

    web_change(dbs.web, user_of(dbs.web, "shared@mail.example"), email_address="first@mail.example")
    synced()

    assert one(dbs.web, "SELECT count(*) FROM userdebtor.user_debtor_link WHERE dr_cust_code = 'C701'") == 1
    assert one(dbs.web, "SELECT default_customer_code FROM web.app_user WHERE email_address = 'shared@mail.example'"
               ) == "C701"
    assert_final(dbs)


def test_a3_c2_conversion_stamps_the_users_it_changes(dbs):
    add_debtor(dbs.erp, "OLD9", "convert@mail.example", name="Converted")
    synced()
    user = user_of(dbs.web, "convert@mail.example")
    stamped = one(dbs.web, "SELECT updated_at FROM web.app_user WHERE user_id = :u", u=user)
    with dbs.erp.begin() as conn:
        conn.execute(sa.text("UPDATE erp.deb_master SET dr_cust_code = 'NEW9', dr_date_last_changed = now()"
                             " WHERE dr_cust_code = 'OLD9';"
                             " INSERT INTO erp.deb_conversion VALUES (1, 'OLD9', 'NEW9', now())"))

    synced()

    assert one(dbs.web, "SELECT default_customer_code FROM web.app_user WHERE user_id = :u", u=user) == "NEW9"
    assert one(dbs.web, "SELECT updated_at FROM web.app_user WHERE user_id = :u", u=user) > stamped
    assert_final(dbs)


@pytest.mark.parametrize("policy", ["erp_wins", "hold"])
def test_a3_same_field_conflict_settles_in_one_run(dbs, settings_path, policy):
    write_settings(settings_path, user_debtor={"conflict_policy": policy})
    add_debtor(dbs.erp, "C800", "conflict@mail.example", name="Base")
    synced()
    web_change(dbs.web, user_of(dbs.web, "conflict@mail.example"), name="Web")
    erp_change(dbs.erp, "C800", dr_cust_name="ERP")

    synced()

    assert_final(dbs)


@pytest.fixture
def settles_every_run(monkeypatch):
    """A run settles its plans only when its loads wrote more than SETTLE_ABOVE_ROWS rows; here, any run that wrote."""
    from userdebtor_pipeline.defs.user_debtor import settle

    monkeypatch.setattr(settle, "SETTLE_ABOVE_ROWS", 0)


THE_U_PLANS = ("debtors_to_create", "users_to_create", "field_changes", "link_exits")
NEWEST_STAGED = """SELECT max(s) FROM (SELECT max(change_seq) s FROM userdebtor.web_user
                    UNION ALL SELECT max(change_seq) FROM userdebtor.erp_debtor
                    UNION ALL SELECT max(change_seq) FROM userdebtor.user_debtor_link) x"""


def test_a3_after_a_big_run_the_plans_start_after_what_its_loads_wrote(dbs, settles_every_run):
    """A3 at scale: the run's own writes (users, debtors and links its loads made) change nothing the user/debtor
    plans would do, so their next window starts after them (after a first load at a million: about 10 s of the next
    run)."""
    from userdebtor_pipeline.seed import seed_databases

    with dbs.erp.begin() as conn:  # the seed brings its own template
        conn.execute(sa.text("DELETE FROM erp.deb_master"))
    seed_databases(dbs.erp, dbs.web, debtors=300, users=300, seed=11)
    first = synced()
    assert first.materializations["plans_settled"]["settled"].startswith("settled"), first.materializations[
        "plans_settled"]
    newest = one(dbs.web, NEWEST_STAGED)

    again = synced()

    assert [plan for plan in THE_U_PLANS if again.materializations[plan]["since_seq"] < newest] == []
    assert_final(dbs)


def test_a3_u6_link_u1_made_to_a_debtor_out_of_scope_keeps_the_plans_marks(dbs, settings_path, settles_every_run):
    """U6 after U1: a debtor U1 copies from a template outside the master filter is out of scope the moment it is
    made. The plans run again after the loads see it, so their marks stay and the next run suspends the link."""
    write_settings(settings_path, user_debtor={"customer_master_filter": 'dr-cust-type = "TRADE"'})
    buyer = add_user(dbs.web, "new.buyer@mail.example")
    first = synced()
    assert first.materializations["plans_settled"]["settled"] == (
        "not settled: what the run wrote changes what the plans would do (link_exits: rows planned: 1 from the"
        " marks, 0 from now; link_exits: new records set aside: 1 from the marks, 0 from now); the next run plans it")
    assert first.materializations["plans_settled"]["plans_whose_finds_differ"] == "link_exits"
    code = one(dbs.web, "SELECT dr_cust_code FROM userdebtor.user_debtor_link WHERE user_id = :u", u=buyer)
    assert code is not None

    synced()

    assert one(dbs.web, "SELECT state FROM userdebtor.user_debtor_link WHERE dr_cust_code = :c", c=code) == "suspended"
