"""M1 and M2 end to end: CRM contacts in the ERP, the real Dagster job, users and links read back from the web.

The accounts are TRADE debtors without an email: in CSS scope (css_customer_filter) but outside the customer
master filter, so the U rules leave them alone and each test sees the M rules only.
"""

import hashlib
import re
from collections.abc import Sequence

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.support import (
    add_debtor,
    add_user,
    change_contact,
    digest,
    erp_change,
    one,
    rows,
    set_contact_accounts,
    write_settings,
)
from tests.support import synced_clean as synced
from userdebtor_pipeline.defs.contacts.checks import judge_contact_links_plan
from userdebtor_pipeline.defs.resources import WebDatabase

WEB_STATE = {
    "users": "SELECT user_id, email_address, name, role, status, default_customer_code FROM web.app_user ORDER BY 1",
    "user_accounts": "SELECT user_id, customer_code FROM web.user_customer ORDER BY 1, 2",
    "contact_links": "SELECT user_id, customer_code, email FROM userdebtor.contact_link ORDER BY 1, 2",
    "emails": "SELECT template, to_address, dedupe_key FROM web.email_outbox ORDER BY email_id",
    "tokens": "SELECT user_id, purpose FROM web.verification_token ORDER BY 1, 2",
    "customers": "SELECT customer_code, status, is_debtor_customer FROM web.customer ORDER BY 1",
}


# ---------------------------------------------------------------- the ERP's CRM, as the ERP would write it
def add_contact(
    erp: Engine,
    contact_id: int,
    email: str | None,
    accounts: Sequence[str],
    first: str = "Pat",
    surname: str = "Buyer",
    active: bool = True,
) -> None:
    with erp.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO erp.crm_contact (contact_id, contact_email, contact_first_name, contact_surname,"
                " contact_active) VALUES (:id, :email, :first, :surname, :active)"
            ),
            {"id": contact_id, "email": email, "first": first, "surname": surname, "active": active},
        )
        for code in accounts:
            conn.execute(
                sa.text("INSERT INTO erp.crm_contact_account VALUES (:id, :code)"), {"id": contact_id, "code": code}
            )


def add_trade_accounts(erp: Engine, *codes: str) -> None:
    for code in codes:
        add_debtor(erp, code, None, name=f"Trade account {code}", cust_type="TRADE")


def link_website_account(web: Engine, user_id: int, code: str) -> None:
    """A user_customer row the website made (an account a person added on the site)."""
    with web.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO web.user_customer (user_id, customer_code, initial_role) VALUES (:u, :c, 'B2B')"),
            {"u": user_id, "c": code},
        )


# ---------------------------------------------------------------- reading the web back
def user_id_of(web: Engine, email: str) -> int | None:
    return one(web, "SELECT user_id FROM web.app_user WHERE lower(email_address) = lower(:e)", e=email)


def accounts_of(web: Engine, user_id: int) -> set[str]:
    return {
        r["customer_code"]
        for r in rows(web, "SELECT customer_code FROM web.user_customer WHERE user_id = :u", u=user_id)
    }


def contact_links_of(web: Engine, user_id: int) -> set[str]:
    return {
        r["customer_code"]
        for r in rows(web, "SELECT customer_code FROM userdebtor.contact_link WHERE user_id = :u", u=user_id)
    }


def web_state(web: Engine) -> dict[str, str]:
    return {name: digest(web, query) for name, query in WEB_STATE.items()}


@pytest.fixture
def dbs(pipeline_env, settings_path):
    return pipeline_env


# ---------------------------------------------------------------- M1
def test_m1_one_email_on_contacts_of_three_accounts_gives_one_user_three_links_one_email(dbs):
    """M1: two contacts share an email (in different letter case) across three CSS accounts: one user."""
    add_trade_accounts(dbs.erp, "T1", "T2", "T3")
    add_contact(dbs.erp, 1, "Pat.Buyer@Trade.example", ["T2", "T1"], first="Pat", surname="Buyer")
    add_contact(dbs.erp, 2, "pat.buyer@trade.example", ["T3"], first="Patricia", surname="Buyer")

    outcome = synced()

    users = rows(dbs.web, "SELECT * FROM web.app_user")
    assert len(users) == 1, "one email gives one user, however many contacts and accounts carry it"
    user = users[0]
    assert (user["email_address"], user["name"], user["role"], user["status"], user["default_customer_code"]) == (
        "Pat.Buyer@Trade.example",
        "Pat Buyer",
        "B2C",
        "Active",
        "T1",
    ), "role default_role_for_new_users, names of the lowest contact, default = the lowest of its accounts"
    assert accounts_of(dbs.web, user["user_id"]) == {"T1", "T2", "T3"}
    assert contact_links_of(dbs.web, user["user_id"]) == {"T1", "T2", "T3"}, "the integration's links are recorded"
    assert {
        r["customer_code"] for r in rows(dbs.web, "SELECT customer_code FROM web.customer WHERE is_debtor_customer")
    } == {"T1", "T2", "T3"}

    emails = rows(dbs.web, "SELECT * FROM web.email_outbox")
    assert [(e["template"], e["to_address"], e["dedupe_key"]) for e in emails] == [
        ("user_debtor_new_user", "Pat.Buyer@Trade.example", f"new_user:{user['user_id']}")
    ]
    token = re.search(r"/account/set-password\?token=([A-Za-z0-9_\-%]+)", emails[0]["body_text"]).group(1)
    assert (
        one(
            dbs.web,
            "SELECT purpose FROM web.verification_token WHERE token_hash = :h AND user_id = :u",
            h=hashlib.sha256(token.encode()).hexdigest(),
            u=user["user_id"],
        )
        == "set_password"
    ), "a one-time set-password link whose token is stored only as its hash"
    assert "password:" not in emails[0]["body_text"].lower()
    applied = outcome.materializations["contact_links_applied"]
    assert (applied["users_created"], applied["links_added"], applied["welcome_emails_queued"]) == (1, 3, 1)

    # Rerun = no change: no second user, link or email.
    before = web_state(dbs.web)
    again = synced()
    assert web_state(dbs.web) == before
    assert again.materializations["contact_links_plan"]["users_to_create"] == 0
    assert again.materializations["contact_links_plan"]["links_to_add"] == 0


def test_a3_m1_the_next_run_does_not_plan_again_the_addresses_its_load_made_users_for(dbs):
    """A3 at scale: after M1's load, the users it made are staged and, being all that changed of what the contact
    plan reads, its mark moves past them; the next run plans none of their addresses (after a first load, 1.2
    million users made: every address planned again). A run whose load changed a user it did not make in that
    run (M2 deactivates one) leaves the mark, and the next run looks at that user's address."""
    add_trade_accounts(dbs.erp, "T1", "T2")
    add_contact(dbs.erp, 1, "pat@trade.example", ["T1"])
    add_contact(dbs.erp, 2, "sam@trade.example", ["T2"])

    first = synced()
    assert first.materializations["contact_links_applied"]["users_created"] == 2
    assert first.materializations["contact_links_applied"]["plan_mark_moved_past_its_users"] is True
    again = synced()
    assert again.materializations["contact_links_plan"]["addresses_changed"] == 0

    change_contact(dbs.erp, 2, contact_active=False)  # M2: sam's user has no account left and is deactivated
    ended = synced()
    assert ended.materializations["contact_links_applied"]["users_deactivated"] == 1
    assert ended.materializations["contact_links_applied"]["plan_mark_moved_past_its_users"] is False
    assert synced().materializations["contact_links_plan"]["addresses_changed"] >= 1


def test_m1_email_of_an_existing_user_only_gets_links(dbs):
    """M1: the email belongs to a website user already (another letter case): links are added, no user, no email."""
    add_trade_accounts(dbs.erp, "T1", "T2")
    uid = add_user(dbs.web, "jo@trade.example", role="B2B", default_code="T1", email_verified=True)  # proven (A1)
    add_contact(dbs.erp, 7, "JO@Trade.Example", ["T1", "T2"])

    synced()

    assert one(dbs.web, "SELECT count(*) FROM web.app_user") == 1
    assert accounts_of(dbs.web, uid) == {"T1", "T2"}
    assert one(dbs.web, "SELECT count(*) FROM web.email_outbox") == 0, "no welcome email for an existing user"


def test_m1_only_active_contacts_of_css_accounts_with_an_email_count(dbs):
    """M1: inactive contacts, contacts without email and accounts outside css_customer_filter give nothing."""
    add_trade_accounts(dbs.erp, "T1")
    add_debtor(dbs.erp, "R1", None, name="Retail account", cust_type="RETAIL")  # outside the CSS filter
    add_contact(dbs.erp, 1, "sleeping@trade.example", ["T1"], active=False)
    add_contact(dbs.erp, 2, None, ["T1"])
    add_contact(dbs.erp, 3, "   ", ["T1"])
    add_contact(dbs.erp, 4, "retail@shop.example", ["R1"])

    synced()

    assert one(dbs.web, "SELECT count(*) FROM web.app_user") == 0
    assert one(dbs.web, "SELECT count(*) FROM userdebtor.problem") == 0, "a missing email is not a problem"


def test_m1_malformed_contact_email_is_a_problem_not_a_warning(dbs):
    """M1: a malformed contact email is recorded as a problem (no user, no warning email) until it is fixed."""
    add_trade_accounts(dbs.erp, "T1")
    add_contact(dbs.erp, 5, "sam@@trade", ["T1"])

    synced()

    problem = rows(dbs.web, "SELECT kind, rule, subject, detail, resolved_at FROM userdebtor.problem")
    assert len(problem) == 1
    assert (problem[0]["kind"], problem[0]["rule"], problem[0]["subject"], problem[0]["resolved_at"]) == (
        "malformed_contact_email",
        "M1",
        "contact:5",
        None,
    )
    assert "sam@@trade" in problem[0]["detail"] and "T1" in problem[0]["detail"]
    assert one(dbs.web, "SELECT count(*) FROM web.app_user") == 0
    assert one(dbs.web, "SELECT count(*) FROM web.email_outbox") == 0, "a problem, not a warning"

    change_contact(dbs.erp, 5, contact_email="sam@trade.example")
    synced()

    assert one(dbs.web, "SELECT resolved_at IS NOT NULL FROM userdebtor.problem WHERE subject = 'contact:5'")
    assert accounts_of(dbs.web, user_id_of(dbs.web, "sam@trade.example")) == {"T1"}


# ---------------------------------------------------------------- M2
def test_m2_contact_moved_to_another_account_link_follows(dbs):
    """M2: a contact that stops acting for T2 and starts acting for T3: the T2 link goes, the T3 link comes."""
    add_trade_accounts(dbs.erp, "T1", "T2", "T3")
    add_contact(dbs.erp, 1, "mover@trade.example", ["T1", "T2"])
    synced()
    uid = user_id_of(dbs.web, "mover@trade.example")
    assert accounts_of(dbs.web, uid) == {"T1", "T2"}

    set_contact_accounts(dbs.erp, 1, ["T1", "T3"])
    outcome = synced()

    assert accounts_of(dbs.web, uid) == {"T1", "T3"}
    assert contact_links_of(dbs.web, uid) == {"T1", "T3"}
    assert outcome.materializations["contact_links_applied"]["user_accounts_removed"] == 1
    assert one(dbs.web, "SELECT count(*) FROM web.email_outbox") == 1, "the same user: no second welcome email"


def test_m2_deactivated_contact_loses_integration_links_website_links_survive(dbs):
    """M2: contact deactivated: the links the integration made go; the links the website made stay."""
    add_trade_accounts(dbs.erp, "T1", "T2", "W1")
    uid = add_user(dbs.web, "dana@trade.example", role="B2B", default_code="W1", email_verified=True)
    link_website_account(dbs.web, uid, "W1")
    link_website_account(dbs.web, uid, "T2")  # the website linked T2 before any contact did
    add_contact(dbs.erp, 3, "dana@trade.example", ["T1", "T2"])
    synced()
    assert accounts_of(dbs.web, uid) == {"W1", "T1", "T2"}
    assert contact_links_of(dbs.web, uid) == {"T1"}, "only the link the integration made is its own"

    change_contact(dbs.erp, 3, contact_active=False)
    synced()

    assert accounts_of(dbs.web, uid) == {"W1", "T2"}, "website-made links are never removed"
    assert contact_links_of(dbs.web, uid) == set()
    assert one(dbs.web, "SELECT status FROM web.app_user WHERE user_id = :u", u=uid) == "Active"


def test_m2_contact_email_changed_links_follow_the_new_email(dbs):
    """M2: a contact's email changes: the old user's contact links go, its default account's too, and the user M1
    made is left with none, so it is Deactivated with a warning; the new email gets a user."""
    add_trade_accounts(dbs.erp, "T1", "T2")
    add_contact(dbs.erp, 4, "old@trade.example", ["T1", "T2"])
    synced()
    old_uid = user_id_of(dbs.web, "old@trade.example")

    change_contact(dbs.erp, 4, contact_email="new@trade.example")
    outcome = synced()

    new_uid = user_id_of(dbs.web, "new@trade.example")
    assert new_uid is not None and new_uid != old_uid
    assert accounts_of(dbs.web, new_uid) == {"T1", "T2"}
    # T1 was the old user's default account: that is no reason to keep it (M2).
    assert accounts_of(dbs.web, old_uid) == set()
    assert contact_links_of(dbs.web, old_uid) == set()
    old = rows(dbs.web, "SELECT status, default_customer_code FROM web.app_user WHERE user_id = :u", u=old_uid)[0]
    assert (old["status"], old["default_customer_code"]) == ("Deactivated", None)
    assert outcome.materializations["contact_links_plan"]["links_kept_for_other_rules"] == 0
    assert outcome.materializations["contact_links_applied"]["users_deactivated"] == 1
    assert one(dbs.web, "SELECT count(*) FROM web.email_outbox WHERE template = 'user_debtor_new_user'") == 2


def test_m2_email_changed_on_the_website_ends_the_contact_links(dbs):
    """M2: the user changes their login on the website: the contact's email no longer names them."""
    add_trade_accounts(dbs.erp, "T1", "T2")
    add_contact(dbs.erp, 4, "kim@trade.example", ["T1", "T2"])
    synced()
    uid = user_id_of(dbs.web, "kim@trade.example")
    with dbs.web.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE web.app_user SET email_address = 'kim@home.example', updated_at = now() WHERE user_id = :u"
            ),
            {"u": uid},
        )

    synced()

    assert accounts_of(dbs.web, uid) == set(), "its default account goes too (M2)"
    assert one(dbs.web, "SELECT status FROM web.app_user WHERE user_id = :u", u=uid) == "Deactivated"
    assert accounts_of(dbs.web, user_id_of(dbs.web, "kim@trade.example")) == {"T1", "T2"}


def test_m2_account_out_of_css_scope_or_deleted_removes_the_link(dbs):
    """M2: an account that leaves the CSS filter, or the ERP, is no longer linked through the contact."""
    add_trade_accounts(dbs.erp, "T0", "T1", "T2")
    add_contact(dbs.erp, 8, "lee@trade.example", ["T0", "T1", "T2"])
    synced()
    uid = user_id_of(dbs.web, "lee@trade.example")

    erp_change(dbs.erp, "T1", dr_cust_type="RETAIL")
    with dbs.erp.begin() as conn:
        conn.execute(sa.text("DELETE FROM erp.deb_master WHERE dr_cust_code = 'T2'"))
    outcome = synced()

    assert accounts_of(dbs.web, uid) == {"T0"}
    reasons = outcome.materializations["contact_links_plan"]["links_to_remove_sample"]
    assert "account_out_of_scope" in reasons and "account_gone" in reasons


def test_m2_changed_since_sees_a_contact_gone_and_a_crm_master_row_gone(dbs):
    """M2 in a changed-since run: a contact deleted from the CRM and one CRM master row deleted leave no change
    stamp, yet their links end; only those two addresses are planned, not the whole CRM."""
    add_trade_accounts(dbs.erp, "T1", "T2")
    add_contact(dbs.erp, 11, "gone@trade.example", ["T1"])
    add_contact(dbs.erp, 12, "stays@trade.example", ["T1", "T2"])
    add_contact(dbs.erp, 13, "bystander@trade.example", ["T2"])
    synced()
    gone, stays = user_id_of(dbs.web, "gone@trade.example"), user_id_of(dbs.web, "stays@trade.example")
    synced()  # the users the first run made are staged: from here on, nothing is new

    with dbs.erp.begin() as conn:
        conn.execute(sa.text("DELETE FROM erp.crm_contact_account WHERE contact_id = 11 OR "
                             "(contact_id = 12 AND dr_cust_code = 'T2')"))
        conn.execute(sa.text("DELETE FROM erp.crm_contact WHERE contact_id = 11"))
    outcome = synced()

    assert accounts_of(dbs.web, gone) == set()
    assert accounts_of(dbs.web, stays) == {"T1"}
    plan = outcome.materializations["contact_links_plan"]
    assert (plan["mode"], plan["planned"]) == ("changed_since", "the addresses that changed")
    assert plan["addresses_changed"] == 2


def test_m1_a_link_the_website_removed_comes_back_in_the_full_reconcile(dbs):
    """M1: web.user_customer has no change stamp, so a contact link the website removed is put back by the full
    reconcile (nightly), not by a changed-since run that found nothing new."""
    add_trade_accounts(dbs.erp, "T1", "T2")
    add_contact(dbs.erp, 14, "kept@trade.example", ["T1", "T2"])
    synced()
    uid = user_id_of(dbs.web, "kept@trade.example")
    synced()
    with dbs.web.begin() as conn:
        conn.execute(sa.text("DELETE FROM web.user_customer WHERE user_id = :u AND customer_code = 'T2'"), {"u": uid})

    assert synced().materializations["contact_links_plan"]["addresses_changed"] == 0
    assert accounts_of(dbs.web, uid) == {"T1"}

    outcome = synced(full=True)
    assert outcome.materializations["contact_links_plan"]["planned"] == "every address (full reconcile)"
    assert accounts_of(dbs.web, uid) == {"T1", "T2"}


def test_m2_link_needed_by_a_user_debtor_link_stays(dbs, settings_path):
    """M2: the contact stops acting for W2, but the user's active user_debtor_link is on W2: the row stays."""
    # Only Postcode syncs (U4), so the hand-made link below has nothing to reconcile.
    write_settings(settings_path, user_debtor={"sync_fields": ["Postcode"]})
    add_trade_accounts(dbs.erp, "T1")
    add_debtor(dbs.erp, "WEB_000002", None, name="Web account")  # in CSS scope and in the master scope
    add_contact(dbs.erp, 9, "max@trade.example", ["T1", "WEB_000002"])
    synced()
    uid = user_id_of(dbs.web, "max@trade.example")
    assert contact_links_of(dbs.web, uid) == {"T1", "WEB_000002"}
    with dbs.web.begin() as conn:  # U1/U2 matched the pair (as a run of the U rules would record it)
        conn.execute(
            sa.text(
                "INSERT INTO userdebtor.user_debtor_link (user_id, dr_cust_code, origin)"
                " VALUES (:u, 'WEB_000002', 'matched')"
            ),
            {"u": uid},
        )

    set_contact_accounts(dbs.erp, 9, ["T1"])
    outcome = synced()

    assert accounts_of(dbs.web, uid) == {"T1", "WEB_000002"}, "the user_debtor_link still needs the row"
    assert contact_links_of(dbs.web, uid) == {"T1"}, "the contact link itself is forgotten"
    assert outcome.materializations["contact_links_applied"]["contact_links_forgotten"] == 1
    assert outcome.materializations["contact_links_applied"]["user_accounts_removed"] == 0


def test_m1_m2_dry_run_writes_nothing_and_reports_the_plan(dbs):
    """M1/M2/M3 dry run: nothing is written to the web; the plan's counts are reported."""
    add_trade_accounts(dbs.erp, "T1", "T2")
    add_contact(dbs.erp, 1, "dry@trade.example", ["T1", "T2"])
    before = web_state(dbs.web)

    outcome = synced(dry_run=True)

    assert web_state(dbs.web) == before
    applied = outcome.materializations["contact_links_applied"]
    assert (applied["dry_run"], applied["would_users_to_create"], applied["would_links_to_add"]) == (True, 1, 2)
    assert outcome.materializations["customer_mirror"]["would_customers_to_create"] == 2

    synced()
    assert accounts_of(dbs.web, user_id_of(dbs.web, "dry@trade.example")) == {"T1", "T2"}


def test_m1_account_that_asks_for_approval_holds_the_new_user(dbs):
    """M1 with U3: a new user on an account with auto_part_registration waits for approval; its email is held."""
    add_trade_accounts(dbs.erp, "T1")
    with dbs.web.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO web.customer (customer_code, name, status, auto_part_registration)"
                " VALUES ('T1', 'Trade account T1', 'Active', true)"
            )
        )
    add_contact(dbs.erp, 1, "wait@trade.example", ["T1"])

    synced()

    uid = user_id_of(dbs.web, "wait@trade.example")
    assert one(dbs.web, "SELECT status FROM web.app_user WHERE user_id = :u", u=uid) == "PendingApproval"
    assert one(dbs.web, "SELECT status FROM web.email_outbox WHERE dedupe_key = :k", k=f"new_user:{uid}") == "held"


def test_m1_m2_m3_across_two_databases(two_databases, monkeypatch, tmp_path):
    """M1-M3 with the ERP and the web in two databases: nothing joins across them."""
    monkeypatch.setenv("USERDEBTOR_ERP_URL", two_databases.erp_url)
    monkeypatch.setenv("USERDEBTOR_WEB_URL", two_databases.web_url)
    monkeypatch.setenv("USERDEBTOR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("USERDEBTOR_CONFIG", str(write_settings(tmp_path / "userdebtor.yaml")))
    erp, web = two_databases.erp, two_databases.web
    add_trade_accounts(erp, "T1", "T2", "T3")
    add_contact(erp, 1, "two@trade.example", ["T1", "T2"])

    synced()
    uid = user_id_of(web, "two@trade.example")
    assert accounts_of(web, uid) == {"T1", "T2"}
    assert one(web, "SELECT count(*) FROM web.customer WHERE is_debtor_customer AND status = 'Active'") == 3

    set_contact_accounts(erp, 1, ["T1", "T3"])
    with erp.begin() as conn:
        conn.execute(sa.text("DELETE FROM erp.deb_master WHERE dr_cust_code = 'T2'"))
    synced()
    assert accounts_of(web, uid) == {"T1", "T3"}
    assert contact_links_of(web, uid) == {"T1", "T3"}
    assert one(web, "SELECT status FROM web.customer WHERE customer_code = 'T2'") == "Inactive"


def test_m1_plan_check_blocks_an_unsound_plan_and_shows_the_failing_rows(engines):
    """M1: the blocking check on contact_links_plan fails on a malformed or existing email and a link without user."""
    with engines.web.begin() as conn:
        conn.execute(sa.text("INSERT INTO web.app_user (email_address, role) VALUES ('taken@trade.example', 'B2C')"))
        conn.execute(
            sa.text(
                "INSERT INTO userdebtor.plan_contact_user_create"
                " (email_key, email_address, default_customer_code, contact_id, pending_approval, batch) VALUES"
                " ('taken@trade.example', 'Taken@trade.example', 'T1', 1, false, 0),"
                " ('fine@trade.example', 'fine@trade.example', 'T1', 2, false, 0),"
                " ('bad@@trade', 'bad@@trade', 'T1', 3, false, 0)"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO userdebtor.plan_contact_link_add (email_key, customer_code)"
                " VALUES ('nobody@trade.example', 'T1')"
            )
        )

    verdict, _ = judge_contact_links_plan(WebDatabase(url=engines.web_url))

    assert verdict.passed is False
    assert verdict.metadata["failing_expectations"].value == 3
    failing = verdict.metadata["failing_rows"].value
    assert "bad@@trade" in failing and "Taken@trade.example" in failing and "nobody@trade.example" in failing
    assert "fine@trade.example" not in failing, "only the failing rows travel with the verdict"

    with engines.web.begin() as conn:
        conn.execute(sa.text("DELETE FROM userdebtor.plan_contact_user_create WHERE contact_id <> 2"))
        conn.execute(sa.text("DELETE FROM userdebtor.plan_contact_link_add"))
    assert judge_contact_links_plan(WebDatabase(url=engines.web_url))[0].passed


def test_m1_plan_check_counts_every_failing_row_of_a_plan_larger_than_its_sample(engines):
    """The check judges the plan in PostgreSQL: the failing count is exact, the rows it brings back are bounded."""
    from userdebtor_pipeline.defs.expectations import FAILING_ROWS_KEPT

    malformed = FAILING_ROWS_KEPT + 200
    with engines.web.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO userdebtor.plan_contact_user_create"
            " (email_key, email_address, default_customer_code, contact_id, pending_approval, batch)"
            " SELECT e, e, 'T1', n, false, 0"
            "   FROM generate_series(1, :n) n, LATERAL (SELECT CASE WHEN n <= :bad THEN 'bad' || n || '@@trade'"
            "        ELSE 'fine' || n || '@trade.example' END) AS m(e)"), {"n": malformed + 1_000, "bad": malformed})

    verdict, failing = judge_contact_links_plan(WebDatabase(url=engines.web_url))

    assert verdict.passed is False
    assert (verdict.metadata["rows_checked"].value, verdict.metadata["rows_failing"].value) == (malformed + 1_000,
                                                                                                 malformed)
    assert f"ExpectColumnValuesToMatchRegex on `email_address`: {malformed} of {malformed + 1_000} rows" in str(
        verdict.metadata["summary"])
    assert len(failing) == FAILING_ROWS_KEPT and all("@@" in row["email_address"] for row in failing)
