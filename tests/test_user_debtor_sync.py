"""U1-U7 and E1 end to end: real rows in the contract's tables, the real Dagster job, real rows out."""

from __future__ import annotations

import email
import hashlib
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.support import (
    add_debtor,
    add_template,
    add_user,
    erp_change,
    one,
    rows,
    synced,
    web_change,
    write_settings,
)
from userdebtor_pipeline.defs.problems import SET_ASIDE, record_set_aside_rows
from userdebtor_pipeline.runner import run_sync
from userdebtor_pipeline.settings import Settings


def link_of(dbs, user_id):
    return one(dbs.web, "SELECT dr_cust_code FROM userdebtor.user_debtor_link WHERE user_id = :u", u=user_id)


# ---------------------------------------------------------------- U1
def test_u1_in_scope_user_gets_a_debtor_copied_from_the_template(dbs):
    add_debtor(dbs.erp, "WEB_000007", "erp-made@shop.example")  # a code the ERP made itself with our prefix
    uid = add_user(dbs.web, "new.buyer@mail.example", name="New Buyer", address1="1 Pitt St", postcode="2000")
    b2b = add_user(dbs.web, "trade@mail.example", role="B2B")

    synced()

    code = link_of(dbs, uid)
    assert code == "WEB_000008", "next number above every code with the prefix, zero padded to the width"
    debtor = rows(dbs.erp, "SELECT * FROM erp.deb_master WHERE dr_cust_code = :c", c=code)[0]
    assert (debtor["dr_email"], debtor["dr_cust_name"], debtor["dr_addr_1"], debtor["dr_postcode"]) == (
        "new.buyer@mail.example",
        "New Buyer",
        "1 Pitt St",
        "2000",
    )
    # Everything outside creation_fields comes from the template.
    assert (debtor["dr_price_code"], debtor["dr_tax_code"], debtor["dr_territory"], debtor["dr_cust_type"]) == (
        "WEB",
        "GST",
        "ONL",
        "WEB_",
    )
    assert debtor["dr_credit_limit"] == 500
    assert one(dbs.web, "SELECT default_customer_code FROM web.app_user WHERE user_id = :u", u=uid) == code
    assert one(dbs.web, "SELECT is_debtor_customer FROM web.customer WHERE customer_code = :c", c=code) is True
    assert (
        one(dbs.web, "SELECT count(*) FROM web.user_customer WHERE user_id = :u AND customer_code = :c", u=uid, c=code)
        == 1
    )
    assert link_of(dbs, b2b) is None, "roles outside roles_requiring_erp_account get no debtor"

    synced()
    assert one(dbs.erp, "SELECT count(*) FROM erp.deb_master WHERE dr_email = 'new.buyer@mail.example'") == 1


def test_u1_links_a_matching_in_scope_debtor_instead_of_creating(dbs):
    add_debtor(dbs.erp, "C100", "Match.Me@mail.example", name="Existing Account")
    uid = add_user(dbs.web, "match.me@mail.example", email_verified=True)  # A1: a proven address

    synced()

    assert link_of(dbs, uid) == "C100"
    assert one(dbs.erp, "SELECT count(*) FROM erp.deb_master WHERE dr_cust_code LIKE 'WEB\\_%'") == 0
    assert one(dbs.web, "SELECT count(*) FROM web.app_user") == 1, "no second user for the debtor (U2)"


def test_u1_malformed_email_is_set_aside_and_the_rest_goes_on(dbs):
    bad = add_user(dbs.web, "not an email")
    good = add_user(dbs.web, "good@mail.example")

    synced()

    assert link_of(dbs, bad) is None
    assert link_of(dbs, good) is not None
    problem = rows(dbs.web, "SELECT rule, kind, detail FROM userdebtor.problem WHERE subject = :s", s=f"user:{bad}")
    assert problem and problem[0]["rule"] == "U1" and problem[0]["kind"] == "malformed_email"


def test_u1_a_set_aside_record_is_written_once_a_run_however_many_loads_record_it(dbs):
    # Every load of a run records the plan's set-aside rows (its own may have joined them): a row recorded earlier
    # in the run is counted again, not rewritten; the next run writes it once, and one resolved meanwhile comes back.
    with dbs.web.begin() as conn:
        conn.execute(sa.text("INSERT INTO userdebtor.plan_set_aside (kind, rule, subject, detail, warn)"
                             " VALUES ('malformed_email', 'U1', 'user:7', 'no address', false)"))
    written = "SELECT xmin::text FROM userdebtor.problem WHERE subject = 'user:7'"

    def record(run_id: str) -> dict[str, int]:
        with dbs.web.begin() as conn:
            return record_set_aside_rows(conn, Settings(), run_id, SET_ASIDE)

    assert record("run-1")["problems_new"] == 1
    first = one(dbs.web, written)
    assert record("run-1") == {"problems_new": 0, "problems_seen_again": 1, "warnings_queued": 0}
    assert one(dbs.web, written) == first, "recorded again in the same run: not written again"
    with dbs.web.begin() as conn:
        conn.execute(sa.text("UPDATE userdebtor.problem SET resolved_at = now() WHERE subject = 'user:7'"))
    record("run-1")
    assert one(dbs.web, "SELECT resolved_at FROM userdebtor.problem WHERE subject = 'user:7'") is None
    after_resolved = one(dbs.web, written)
    assert record("run-2")["problems_seen_again"] == 1
    assert one(dbs.web, written) != after_resolved
    assert one(dbs.web, "SELECT last_run_id FROM userdebtor.problem WHERE subject = 'user:7'") == "run-2"


def test_u1_a_code_is_never_reused(dbs):
    first = add_user(dbs.web, "first@mail.example")
    synced()
    code = link_of(dbs, first)
    with dbs.erp.begin() as conn:  # the ERP deletes the debtor; its number must not come back
        conn.execute(sa.text("DELETE FROM erp.deb_master WHERE dr_cust_code = :c"), {"c": code})
    second = add_user(dbs.web, "second@mail.example")
    synced(lift_change_guard=True)
    assert link_of(dbs, second) > code


def test_u1_missing_template_holds_only_the_creations(dbs, settings_path):
    write_settings(settings_path, user_debtor={"template_customer": "NO_SUCH_TEMPLATE"})
    add_debtor(dbs.erp, "C200", "erp.only@mail.example")
    uid = add_user(dbs.web, "waits@mail.example")

    outcome = run_sync()

    assert not outcome.success
    assert "new_debtors_vetted:template_customer_exists" in outcome.failed_checks
    check = outcome.check_metadata["new_debtors_vetted:template_customer_exists"]
    assert "NO_SUCH_TEMPLATE" in check["summary"]
    assert "NO_SUCH_TEMPLATE" in Path(check["report"]).read_text(), "the failed check links a readable report"
    assert link_of(dbs, uid) is None
    assert one(dbs.web, "SELECT count(*) FROM web.app_user WHERE email_address = 'erp.only@mail.example'") == 1, (
        "the other loads of the run went on"
    )

    write_settings(settings_path)  # the person fixes the setting; the held user goes on the next run
    synced()
    assert link_of(dbs, uid) is not None


# ---------------------------------------------------------------- U2 / U3 / E1
def _body(dbs, to):
    return one(
        dbs.web,
        "SELECT body_text FROM web.email_outbox WHERE to_address = :t AND template = 'user_debtor_new_user'",
        t=to,
    )


def test_u2_debtor_gets_a_user_with_a_one_time_link_and_no_password(dbs):
    add_debtor(dbs.erp, "C300", "erp.customer@mail.example", name="Erp Customer", dr_phone="0400 000 000")

    synced()

    user = rows(dbs.web, "SELECT * FROM web.app_user WHERE email_address = 'erp.customer@mail.example'")[0]
    assert (user["role"], user["status"], user["default_customer_code"], user["phone_number"]) == (
        "B2C",
        "Active",
        "C300",
        "0400 000 000",
    )
    body = _body(dbs, "erp.customer@mail.example")
    token = re.search(r"token=([A-Za-z0-9_\-]+)", body).group(1)
    stored = one(
        dbs.web,
        "SELECT token_hash FROM web.verification_token WHERE user_id = :u AND purpose = 'set_password'",
        u=user["user_id"],
    )
    assert stored == hashlib.sha256(token.encode()).hexdigest()
    assert one(dbs.web, "SELECT count(*) FROM web.verification_token WHERE token_hash = :t", t=token) == 0
    assert not re.search(r"password\s*[:=]\s*\S", body, re.IGNORECASE)
    assert one(dbs.web, "SELECT status FROM web.email_outbox WHERE to_address = 'erp.customer@mail.example'") == "sent"

    synced()
    assert one(dbs.web, "SELECT count(*) FROM web.email_outbox WHERE to_address = 'erp.customer@mail.example'") == 1


def test_e1_emails_are_delivered_to_the_local_mail_folder(dbs, pipeline_env, tmp_path):
    add_debtor(dbs.erp, "C301", "mailbox@mail.example")
    synced()
    new = list((tmp_path / "home" / "mail" / "new").iterdir())
    assert len(new) == 1
    message = email.message_from_bytes(new[0].read_bytes())
    assert message["To"] == "mailbox@mail.example"


def test_u2_existing_unlinked_user_is_linked_not_duplicated(dbs):
    uid = add_user(dbs.web, "already@mail.example", role="B2B", email_verified=True)  # A1: a proven address
    add_debtor(dbs.erp, "C400", "Already@mail.example")
    synced()
    assert link_of(dbs, uid) == "C400"
    assert one(dbs.web, "SELECT count(*) FROM web.app_user") == 1
    assert one(dbs.web, "SELECT count(*) FROM web.email_outbox WHERE template = 'user_debtor_new_user'") == 0


def test_u2_email_of_a_user_linked_elsewhere_changes_nothing_and_warns(dbs):
    add_debtor(dbs.erp, "C500", "shared@mail.example")
    synced()
    add_debtor(dbs.erp, "C501", "shared@mail.example")
    synced()
    assert one(dbs.web, "SELECT count(*) FROM userdebtor.user_debtor_link WHERE dr_cust_code = 'C501'") == 0
    warning = rows(dbs.web, "SELECT to_address, body_text FROM web.email_outbox WHERE template = 'user_debtor_warning'")
    assert len(warning) == 1 and warning[0]["to_address"] == "erp-admin@example.com"
    assert "C501" in warning[0]["body_text"]
    synced(full=True)
    assert one(dbs.web, "SELECT count(*) FROM web.email_outbox WHERE template = 'user_debtor_warning'") == 1, (
        "a warning is queued once per event"
    )


def test_u2_debtor_without_email_is_reported_never_given_a_user(dbs):
    add_debtor(dbs.erp, "C600", None)
    synced()
    assert one(dbs.web, "SELECT count(*) FROM web.app_user") == 0
    assert one(dbs.web, "SELECT kind FROM userdebtor.problem WHERE subject = 'debtor:C600'") == "debtor_without_email"


def test_u3_approval_holds_the_welcome_email_until_the_user_is_active(dbs):
    with dbs.web.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO web.customer (customer_code, name, status, auto_part_registration)"
                " VALUES ('C700', 'Needs Approval', 'Active', true)"
            )
        )
    add_debtor(dbs.erp, "C700", "approve.me@mail.example")
    synced()
    user_id, status = rows(dbs.web, "SELECT user_id, status FROM web.app_user")[0].values()
    assert status == "PendingApproval"
    assert one(dbs.web, "SELECT status FROM web.email_outbox WHERE to_address = 'approve.me@mail.example'") == "held"

    synced()
    assert one(dbs.web, "SELECT status FROM web.email_outbox WHERE to_address = 'approve.me@mail.example'") == "held"

    web_change(dbs.web, user_id, status="Active")  # the website approves
    synced()
    assert one(dbs.web, "SELECT status FROM web.email_outbox WHERE to_address = 'approve.me@mail.example'") == "sent"


# ---------------------------------------------------------------- U4 / U5
@pytest.fixture
def linked_pair(dbs):
    add_debtor(dbs.erp, "C800", "pair@mail.example", name="Pair Name", dr_phone="0411 111 111", dr_abn="111")
    synced()
    uid = one(dbs.web, "SELECT user_id FROM web.app_user WHERE email_address = 'pair@mail.example'")
    return uid


def test_u4_web_change_reaches_the_erp_and_does_not_echo(dbs, linked_pair):
    web_change(dbs.web, linked_pair, name="New Web Name", abn="999")
    synced()
    debtor = rows(dbs.erp, "SELECT dr_cust_name, dr_abn FROM erp.deb_master WHERE dr_cust_code = 'C800'")[0]
    assert debtor["dr_cust_name"] == "New Web Name"
    assert debtor["dr_abn"] == "111", "ABN is not in sync_fields: it never flows web to ERP"
    stamp = one(dbs.erp, "SELECT dr_date_last_changed FROM erp.deb_master WHERE dr_cust_code = 'C800'")
    outcome = synced()
    assert outcome.materializations["field_changes_applied"]["debtors_updated_in_erp"] == 0
    assert outcome.materializations["field_changes_applied"]["users_updated_on_web"] == 0
    assert one(dbs.erp, "SELECT dr_date_last_changed FROM erp.deb_master WHERE dr_cust_code = 'C800'") == stamp


def test_a3_u4_compares_the_pairs_u1_and_u2_made_in_their_run_and_the_next_run_starts_past_them(dbs):
    """A3 at scale: U4 compares the pairs U1 and U2 made in the run that made them, against their users and debtors
    staged again, and its plan's mark moves past them: the next run's U4 plan does not compare them again (after a
    first load of a million pairs, 11.5 s of that run). What U4 itself wrote after the mark is looked at again."""
    add_debtor(dbs.erp, "C900", "made@mail.example", name="Made Name")  # U2 makes its user
    add_debtor(dbs.erp, "C100", "match.me@mail.example", name="ERP Name")
    matched = add_user(dbs.web, "match.me@mail.example", name="Web Name", email_verified=True)  # U1 links it

    first = synced()

    assert one(dbs.web, "SELECT name FROM web.app_user WHERE user_id = :u", u=matched) == "ERP Name"
    assert first.materializations["field_changes_applied"]["users_restaged"] >= 1
    mark = one(dbs.web, "SELECT seq FROM userdebtor.watermark WHERE name = 'plan:field_changes'")
    newer = rows(dbs.web, "SELECT l.dr_cust_code FROM userdebtor.user_debtor_link l"
                          " JOIN userdebtor.web_user u ON u.user_id = l.user_id"
                          " JOIN userdebtor.erp_debtor d ON d.dr_cust_code = l.dr_cust_code"
                          " WHERE greatest(l.change_seq, u.change_seq, d.change_seq) > :m", m=mark)
    assert [r["dr_cust_code"] for r in newer] == ["C100"], "only the pair whose user U4 wrote after its mark"

    again = synced()
    assert again.materializations["field_changes"]["since_seq"] == mark
    assert again.materializations["field_changes_applied"]["users_updated_on_web"] == 0
    made = one(dbs.web, "SELECT user_id FROM web.app_user WHERE email_address = 'made@mail.example'")
    web_change(dbs.web, made, name="Renamed On The Web")
    synced()
    assert one(dbs.erp, "SELECT dr_cust_name FROM erp.deb_master WHERE dr_cust_code = 'C900'") == "Renamed On The Web"


def test_a3_m1_plans_what_u4_wrote_in_its_run_and_not_again_in_the_next(dbs, linked_pair):
    """A3 at scale: the contact plan stages what the loads before it wrote (U4's change to the user and the debtor)
    before its mark, so it plans those addresses in that run and the next run plans none of them again (after a
    reconcile that changed 1% of a million pairs, 20,000 addresses of the next run)."""
    erp_change(dbs.erp, "C800", dr_phone="0422 222 222")
    web_change(dbs.web, linked_pair, name="Renamed On The Web")

    changed = synced()

    assert changed.materializations["field_changes_applied"]["users_updated_on_web"] == 1
    plan = changed.materializations["contact_links_plan"]
    assert plan["users_restaged"] == 1 and plan["debtors_restaged"] == 1
    assert plan["addresses_changed"] >= 1
    assert synced().materializations["contact_links_plan"]["addresses_changed"] == 0


def test_u4_erp_change_reaches_the_web(dbs, linked_pair):
    erp_change(dbs.erp, "C800", dr_phone="0499 999 999")
    synced()
    assert one(dbs.web, "SELECT phone_number FROM web.app_user WHERE user_id = :u", u=linked_pair) == "0499 999 999"


def test_u4_same_change_on_both_sides_is_nothing_to_do(dbs, linked_pair):
    web_change(dbs.web, linked_pair, postcode="3000")
    erp_change(dbs.erp, "C800", dr_postcode="3000")
    outcome = synced()
    assert outcome.materializations["field_changes_applied"]["conflicts_recorded"] == 0
    assert (
        one(dbs.web, "SELECT base_postcode FROM userdebtor.user_debtor_link WHERE user_id = :u", u=linked_pair)
        == "3000"
    )


def test_u4_conflict_erp_wins_is_recorded_and_warned_once(dbs, linked_pair):
    web_change(dbs.web, linked_pair, name="Web Says")
    erp_change(dbs.erp, "C800", dr_cust_name="Erp Says")
    synced()
    assert one(dbs.web, "SELECT name FROM web.app_user WHERE user_id = :u", u=linked_pair) == "Erp Says"
    conflict = rows(dbs.web, "SELECT base_value, web_value, erp_value, status, winner FROM userdebtor.conflict")
    assert conflict == [
        {
            "base_value": "Pair Name",
            "web_value": "Web Says",
            "erp_value": "Erp Says",
            "status": "settled",
            "winner": "erp",
        }
    ]
    synced(full=True)
    assert one(dbs.web, "SELECT count(*) FROM web.email_outbox WHERE template = 'user_debtor_warning'") == 1


def test_u4_conflict_hold_changes_neither_side(dbs, linked_pair, settings_path):
    write_settings(settings_path, user_debtor={"conflict_policy": "hold"})
    web_change(dbs.web, linked_pair, name="Web Says")
    erp_change(dbs.erp, "C800", dr_cust_name="Erp Says")
    synced()
    synced(full=True)
    assert one(dbs.web, "SELECT name FROM web.app_user WHERE user_id = :u", u=linked_pair) == "Web Says"
    assert one(dbs.erp, "SELECT dr_cust_name FROM erp.deb_master WHERE dr_cust_code = 'C800'") == "Erp Says"
    assert one(dbs.web, "SELECT count(*) FROM userdebtor.conflict WHERE status = 'open'") == 1
    assert one(dbs.web, "SELECT count(*) FROM web.email_outbox WHERE template = 'user_debtor_warning'") == 1


def test_u4_web_wins_and_newest_wins(dbs, linked_pair, settings_path):
    write_settings(settings_path, user_debtor={"conflict_policy": "web_wins"})
    web_change(dbs.web, linked_pair, name="Web Says")
    erp_change(dbs.erp, "C800", dr_cust_name="Erp Says")
    synced()
    assert one(dbs.erp, "SELECT dr_cust_name FROM erp.deb_master WHERE dr_cust_code = 'C800'") == "Web Says"

    write_settings(settings_path, user_debtor={"conflict_policy": "newest_wins"})
    erp_change(dbs.erp, "C800", dr_phone="0422 222 222")
    web_change(dbs.web, linked_pair, phone_number="0433 333 333")  # the later change
    synced()
    assert one(dbs.erp, "SELECT dr_phone FROM erp.deb_master WHERE dr_cust_code = 'C800'") == "0433 333 333"


def test_u5_erp_email_taken_by_another_user_keeps_the_login(dbs, linked_pair):
    add_user(dbs.web, "taken@mail.example", role="B2B")
    erp_change(dbs.erp, "C800", dr_email="taken@mail.example", dr_phone="0455 555 555")
    synced()
    user = rows(dbs.web, "SELECT email_address, phone_number FROM web.app_user WHERE user_id = :u", u=linked_pair)[0]
    assert user == {"email_address": "pair@mail.example", "phone_number": "0455 555 555"}
    assert one(dbs.web, "SELECT count(*) FROM userdebtor.problem WHERE kind = 'email_collision'") == 1
    assert one(dbs.web, "SELECT count(*) FROM web.email_outbox WHERE template = 'user_debtor_warning'") == 1


# ---------------------------------------------------------------- U6 / U7
def test_u6_deleted_debtor_deactivates_its_user_with_a_warning(dbs, linked_pair):
    with dbs.erp.begin() as conn:
        conn.execute(sa.text("DELETE FROM erp.deb_master WHERE dr_cust_code = 'C800'"))
    synced(lift_change_guard=True)
    assert one(dbs.web, "SELECT status FROM web.app_user WHERE user_id = :u", u=linked_pair) == "Deactivated"
    assert one(dbs.web, "SELECT kind FROM userdebtor.problem WHERE subject = 'debtor:C800'") == "debtor_deleted"
    assert one(dbs.erp, "SELECT count(*) FROM erp.deb_master") == 1, "the integration never deletes a debtor"


def test_u6_warn_only_leaves_the_user(dbs, linked_pair, settings_path):
    write_settings(settings_path, user_debtor={"on_erp_delete": "warn_only"})
    with dbs.erp.begin() as conn:
        conn.execute(sa.text("DELETE FROM erp.deb_master WHERE dr_cust_code = 'C800'"))
    synced(lift_change_guard=True)
    assert one(dbs.web, "SELECT status FROM web.app_user WHERE user_id = :u", u=linked_pair) == "Active"
    assert one(dbs.web, "SELECT count(*) FROM web.email_outbox WHERE template = 'user_debtor_warning'") == 1


def test_u6_leaving_the_filter_suspends_the_link_not_a_delete(dbs, linked_pair):
    erp_change(dbs.erp, "C800", dr_cust_type="TRADE")
    synced(lift_change_guard=True)
    assert (
        one(dbs.web, "SELECT state FROM userdebtor.user_debtor_link WHERE user_id = :u", u=linked_pair) == "suspended"
    )
    assert one(dbs.web, "SELECT status FROM web.app_user WHERE user_id = :u", u=linked_pair) == "Active"
    assert one(dbs.web, "SELECT kind FROM userdebtor.problem WHERE subject = 'debtor:C800'") == "debtor_out_of_scope"
    erp_change(dbs.erp, "C800", dr_cust_type="WEB_")
    synced()
    assert one(dbs.web, "SELECT state FROM userdebtor.user_debtor_link WHERE user_id = :u", u=linked_pair) == "active"


def test_u7_a_large_change_writes_nothing_until_a_person_lifts_the_guard(dbs):
    for i in range(10):
        add_debtor(dbs.erp, f"C9{i:02d}", f"guard{i}@mail.example", name=f"Guard {i}")
    synced()
    for i in range(5):  # half the linked pairs change: more than max_change_fraction 0.2
        erp_change(dbs.erp, f"C9{i:02d}", dr_cust_name=f"Renamed {i}")

    outcome = run_sync()

    assert "change_guard:change_fraction_guard" in outcome.failed_checks
    summary = outcome.check_metadata["change_guard:change_fraction_guard"]["summary"]
    assert "5 of 10" in summary
    assert Path(outcome.check_metadata["change_guard:change_fraction_guard"]["report"]).exists()
    assert one(dbs.web, "SELECT count(*) FROM web.app_user WHERE name LIKE 'Renamed%'") == 0

    synced(lift_change_guard=True)
    assert one(dbs.web, "SELECT count(*) FROM web.app_user WHERE name LIKE 'Renamed%'") == 5


def test_u7_a_held_guard_holds_only_the_user_debtor_writes(dbs):
    """The guard's hold leaves contacts, orders and email delivery to go on, and the run says what was held."""
    for i in range(10):
        add_debtor(dbs.erp, f"C9{i:02d}", f"guard{i}@mail.example", name=f"Guard {i}")
    synced()
    for i in range(5):
        erp_change(dbs.erp, f"C9{i:02d}", dr_cust_name=f"Renamed {i}")
    add_debtor(dbs.erp, "C950", "newcomer@mail.example", name="Newcomer", cust_type="TRADE")
    with dbs.erp.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO erp.crm_contact (contact_id, contact_email, contact_date_last_changed)"
            " VALUES (77, 'guard1@mail.example', now());"
            " INSERT INTO erp.crm_contact_account VALUES (77, 'C950');"
            " INSERT INTO erp.sales_order (so_order_no, so_cust_code, so_order_date, so_order_status, so_source,"
            "  so_order_total, so_date_stamp) VALUES ('SO-HELD-1', 'C901', now(), '70', 'WEB', 10, now())"))

    outcome = run_sync()

    assert outcome.failed_checks == ["change_guard:change_fraction_guard"]
    assert outcome.materializations["field_changes_applied"]["held"] is True
    assert one(dbs.web, "SELECT count(*) FROM web.app_user WHERE name LIKE 'Renamed%'") == 0
    # M1 linked the contact's login to its new account, O1 showed the new order, the outbox was delivered.
    assert one(dbs.web, "SELECT count(*) FROM web.user_customer uc JOIN web.app_user u USING (user_id)"
                        " WHERE u.email_address = 'guard1@mail.example' AND uc.customer_code = 'C950'") == 1
    assert one(dbs.web, "SELECT count(*) FROM web.order_history WHERE order_no = 'SO-HELD-1'") == 1
    assert one(dbs.web, "SELECT count(*) FROM web.email_outbox WHERE status = 'queued'") == 0
    assert "field_changes_applied" in outcome.held_loads
    assert "order_history_synced" not in outcome.held_loads

    synced(lift_change_guard=True)
    assert one(dbs.web, "SELECT count(*) FROM web.app_user WHERE name LIKE 'Renamed%'") == 5


# ---------------------------------------------------------------- whole-run properties
def test_dry_run_writes_nothing_to_erp_or_web(dbs):
    add_debtor(dbs.erp, "C990", "dry@mail.example")
    add_user(dbs.web, "dry.user@mail.example")
    before = (one(dbs.erp, "SELECT count(*) FROM erp.deb_master"), one(dbs.web, "SELECT count(*) FROM web.app_user"))
    outcome = synced(dry_run=True)
    assert outcome.materializations["debtors_to_create"]["create"] == 1
    assert outcome.materializations["users_to_create"]["create"] == 1
    after = (one(dbs.erp, "SELECT count(*) FROM erp.deb_master"), one(dbs.web, "SELECT count(*) FROM web.app_user"))
    assert before == after
    assert one(dbs.web, "SELECT count(*) FROM web.email_outbox") == 0
    assert one(dbs.web, "SELECT count(*) FROM userdebtor.debtor_reservation") == 0
    synced()
    assert one(dbs.web, "SELECT count(*) FROM web.app_user") == 2


def test_a_second_sync_waits_for_the_first(dbs):
    with dbs.web.connect() as conn:
        conn.execute(sa.text("SELECT pg_advisory_lock(7420002)"))  # a sync is running
        outcome = run_sync()
        conn.execute(sa.text("SELECT pg_advisory_unlock(7420002)"))
    assert not outcome.success
    assert any("another userdebtor sync is running" in e for e in outcome.errors)


def test_two_databases(two_databases, tmp_path, monkeypatch):
    monkeypatch.setenv("USERDEBTOR_ERP_URL", two_databases.erp_url)
    monkeypatch.setenv("USERDEBTOR_WEB_URL", two_databases.web_url)
    monkeypatch.setenv("USERDEBTOR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("USERDEBTOR_CONFIG", str(write_settings(tmp_path / "s.yaml")))
    add_template(two_databases.erp)
    add_debtor(two_databases.erp, "C1", "two.db@mail.example")
    uid = add_user(two_databases.web, "web.only@mail.example")
    synced()
    assert one(two_databases.web, "SELECT count(*) FROM web.app_user WHERE email_address = 'two.db@mail.example'") == 1
    code = one(two_databases.web, "SELECT default_customer_code FROM web.app_user WHERE user_id = :u", u=uid)
    assert (
        one(two_databases.erp, "SELECT dr_email FROM erp.deb_master WHERE dr_cust_code = :c", c=code)
        == "web.only@mail.example"
    )
    web_change(two_databases.web, uid, name="Changed On Web")
    synced()
    assert (
        one(two_databases.erp, "SELECT dr_cust_name FROM erp.deb_master WHERE dr_cust_code = :c", c=code)
        == "Changed On Web"
    )
    assert Path(tmp_path / "home").exists()


def test_e1_smtp_delivery_through_the_job_and_a_refusal_retried_then_failed(
    dbs, settings_path, smtp_server, refusing_smtp_server
):
    recorder, port = smtp_server
    write_settings(settings_path, email={"transport": "smtp", "smtp_host": "127.0.0.1", "smtp_port": port})
    add_debtor(dbs.erp, "C950", "smtp.user@mail.example")
    synced()
    assert [m["To"] for m in recorder.messages] == ["smtp.user@mail.example"]
    assert recorder.messages[0].get_body(("html",)) is not None, "text and HTML"

    _, refusing_port = refusing_smtp_server
    write_settings(
        settings_path,
        email={"transport": "smtp", "smtp_host": "127.0.0.1", "smtp_port": refusing_port, "max_attempts": 2},
    )
    add_debtor(dbs.erp, "C951", "refused@mail.example")
    synced()
    first = rows(dbs.web, "SELECT status, attempts FROM web.email_outbox WHERE to_address = 'refused@mail.example'")
    assert first == [{"status": "queued", "attempts": 1}], "a refused delivery is kept for a retry"
    synced()
    final = rows(
        dbs.web, "SELECT status, attempts, last_error FROM web.email_outbox WHERE to_address = 'refused@mail.example'"
    )[0]
    assert (final["status"], final["attempts"]) == ("failed", 2) and "550" in final["last_error"]
    assert len(recorder.messages) == 1, "a sent email is never sent twice"


def test_u2_debtors_sharing_an_email_give_one_login_and_one_warning_each(dbs):
    add_debtor(dbs.erp, "C960", "family@mail.example")
    add_debtor(dbs.erp, "C961", "family@mail.example")
    synced()
    assert one(dbs.web, "SELECT default_customer_code FROM web.app_user") == "C960", "the lowest code gets the login"
    synced(full=True)  # a later run sees the login taken: the same event, not a second warning
    warnings = rows(dbs.web, "SELECT dedupe_key FROM web.email_outbox WHERE template = 'user_debtor_warning'")
    assert warnings == [{"dedupe_key": "warning:email_taken:debtor:C961"}]


def test_a_held_run_from_the_terminal_is_recorded_and_warned_about(dbs, settings_path):
    write_settings(settings_path, user_debtor={"template_customer": "GONE"})
    add_user(dbs.web, "waiting@mail.example")
    outcome = run_sync()
    assert not outcome.success
    assert one(dbs.web, "SELECT outcome FROM userdebtor.sync_run WHERE run_id = :r", r=outcome.run_id) == "held"
    failure = rows(dbs.web, "SELECT to_address, body_text FROM web.email_outbox WHERE template = 'sync_run_failed'")
    assert len(failure) == 1 and failure[0]["to_address"] == "erp-admin@example.com"
    assert "template_customer_exists" in failure[0]["body_text"]


def test_u1_u2_a_plan_that_would_link_a_user_or_debtor_twice_is_caught_from_the_plans_alone(engines):
    """U1/U2 one-to-one: the blocking check reads the planned pairs and the links of the users and debtors they
    name (the links table's unique keys guard the rest), so it catches each way a plan could break it."""
    from userdebtor_pipeline.defs.user_debtor.checks import linked_twice

    with engines.web.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO userdebtor.user_debtor_link (user_id, dr_cust_code, origin) VALUES"
            " (1, 'C1', 'matched'), (2, 'C2', 'matched'), (3, 'C3', 'matched')"))
        assert linked_twice(conn) == [], "links alone are one-to-one"
        conn.execute(sa.text(
            "INSERT INTO userdebtor.plan_debtor_create (user_id, action, dr_cust_code, email_address) VALUES"
            " (1, 'link', 'C9', 'one@example.com'), (5, 'link', 'C7', 'five@example.com')"))
        conn.execute(sa.text(
            "INSERT INTO userdebtor.plan_user_create (dr_cust_code, action, user_id, email_address) VALUES"
            " ('C2', 'link', 8, 'eight@example.com'), ('C7', 'link', 6, 'six@example.com'),"
            " ('C8', 'create', NULL, 'new@example.com')"))
        found = {(r["side"], r["id"]) for r in linked_twice(conn)}
    # user 1 already has C1; C2 already has user 2; C7 is planned for users 5 and 6
    assert found == {("user", "1"), ("debtor", "C2"), ("debtor", "C7")}
