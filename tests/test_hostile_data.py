"""Hostile data, end to end: what an attacker, a careless export or a full code space puts in the ERP and web
tables, the real Dagster job, and what must (and must not) come out. Each case names the rule it guards.

"Typed email" cases are the attack of RULES A1: a login registered on the website with someone else's
address, never proven, must get nothing of that person's accounts, orders or contacts' accounts.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.support import (
    add_debtor,
    add_user,
    change_contact,
    contact,
    digest,
    follow_link,
    one,
    rows,
    set_contact_accounts,
    write_settings,
)
from tests.support import synced_clean as synced
from userdebtor_pipeline.defs.common import email_key, is_well_formed_email
from userdebtor_pipeline.runner import SyncOutcome, run_sync

pytestmark = pytest.mark.slow

OTHER_TYPE = "DEBTOR"  # matched by neither filter: the U and M rules leave such accounts alone


# ------------------------------------------------------------------------------------------ helpers

def trade(erp: Engine, *codes: str) -> None:
    for code in codes:
        add_debtor(erp, code, None, name=f"Trade {code}", cust_type="TRADE")


def user(web: Engine, user_id: int) -> dict[str, Any]:
    return rows(web, "SELECT * FROM web.app_user WHERE user_id = :u", u=user_id)[0]


def accounts_of(web: Engine, user_id: int) -> set[str]:
    return {r["customer_code"] for r in rows(web, "SELECT customer_code FROM web.user_customer WHERE user_id = :u",
                                              u=user_id)}


def link_of(web: Engine, user_id: int) -> str | None:
    return one(web, "SELECT dr_cust_code FROM userdebtor.user_debtor_link WHERE user_id = :u", u=user_id)


def verify_emails(web: Engine, user_id: int | None = None) -> list[dict[str, Any]]:
    found = rows(web, "SELECT * FROM web.email_outbox WHERE template = 'account_link_verify' ORDER BY email_id")
    return [e for e in found if user_id is None or e["dedupe_key"].startswith(f"account_link_verify:{user_id}:")]


def problem(web: Engine, kind: str, subject: str) -> dict[str, Any] | None:
    found = rows(web, "SELECT * FROM userdebtor.problem WHERE kind = :k AND subject = :s", k=kind, s=subject)
    return found[0] if found else None


def order(erp: Engine, order_no: str, code: str, email: str | None) -> None:
    with erp.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO erp.sales_order (so_order_no, so_cust_code, so_order_date, so_order_status,"
                    " so_source, so_email, so_order_total, so_date_stamp)"
                    " VALUES (:no, :c, now() - interval '3 days', '10', 'POS', :e, 42, now() - interval '3 days')"),
            {"no": order_no, "c": code, "e": email},
        )


def register(web: Engine, email: str) -> int:
    with web.begin() as conn:
        return conn.execute(sa.text("INSERT INTO web.registration_request (email_address) VALUES (:e)"
                                    " RETURNING request_id"), {"e": email}).scalar_one()


# ------------------------------------------------------------------------------------------ A1 typed emails
def test_a1_u2_typed_email_of_a_debtor_links_nothing_until_the_address_is_proven(dbs):
    """A1/U2: a login with a trade customer's email (never proven) is not linked to that debtor; the owner of the
    address gets one account_link_verify email, and the run after its link is followed makes the link."""
    attacker = add_user(dbs.web, "owner@trade.example", role="B2B")
    add_debtor(dbs.erp, "WEB_100", "Owner@Trade.example", name="Owner's account")

    synced()

    assert link_of(dbs.web, attacker) is None and accounts_of(dbs.web, attacker) == set()
    assert user(dbs.web, attacker)["default_customer_code"] is None
    assert one(dbs.web, "SELECT count(*) FROM web.app_user") == 1, "no second login for the same address"
    set_aside = problem(dbs.web, "email_unproven", "debtor:WEB_100")
    assert set_aside and set_aside["rule"] == "U2" and f"web user {attacker}" in set_aside["detail"]
    [mail] = verify_emails(dbs.web, attacker)
    assert mail["to_address"] == "owner@trade.example" and "WEB_100" in mail["body_text"]
    assert "/account/verify-email?token=" in mail["body_text"]

    synced(full=True)
    assert len(verify_emails(dbs.web)) == 1, "one email per user and account set, never twice"
    assert link_of(dbs.web, attacker) is None

    assert follow_link(dbs.web, attacker) == 1
    synced()

    assert link_of(dbs.web, attacker) == "WEB_100"
    assert user(dbs.web, attacker)["email_verified"] is True
    assert user(dbs.web, attacker)["default_customer_code"] == "WEB_100"
    assert one(dbs.web, "SELECT count(*) FROM web.app_user") == 1


def test_a1_u1_unproven_user_matching_a_debtor_waits_and_gets_no_new_debtor(dbs):
    """A1/U1: an in-scope user whose email matches an in-scope debtor is neither linked nor given a new debtor
    while the address is unproven: nothing is made in the ERP."""
    add_debtor(dbs.erp, "WEB_000050", "victim@mail.example")
    attacker = add_user(dbs.web, "VICTIM@mail.example ")  # B2C: U1's role; padded and in another case
    before = digest(dbs.erp, "SELECT dr_cust_code FROM erp.deb_master ORDER BY 1")

    synced()

    assert link_of(dbs.web, attacker) is None
    assert digest(dbs.erp, "SELECT dr_cust_code FROM erp.deb_master ORDER BY 1") == before, "no debtor made"
    set_aside = problem(dbs.web, "email_unproven", f"user:{attacker}")
    assert set_aside and set_aside["rule"] == "U1"
    assert len(verify_emails(dbs.web, attacker)) == 1


def test_a1_m1_typed_email_of_a_contact_gets_no_trade_accounts_until_proven(dbs):
    """A1/M1: a login with a CRM contact's email gets none of the contact's accounts until it proves the address."""
    trade(dbs.erp, "T1", "T2")
    attacker = add_user(dbs.web, " Buyer@Trade.Example", role="B2B")
    contact(dbs.erp, 1, "buyer@trade.example", ["T1", "T2"])

    synced()

    assert accounts_of(dbs.web, attacker) == set()
    assert one(dbs.web, "SELECT count(*) FROM web.app_user") == 1, "the padded, case-different login is the one"
    set_aside = problem(dbs.web, "contact_email_unproven", f"user:{attacker}")
    assert set_aside and set_aside["rule"] == "M1" and "T1, T2" in set_aside["detail"]
    [mail] = verify_emails(dbs.web, attacker)
    assert "T1" in mail["body_text"] and "T2" in mail["body_text"]

    follow_link(dbs.web, attacker)
    synced()
    assert accounts_of(dbs.web, attacker) == {"T1", "T2"}


def test_a1_m1_user_the_integration_makes_is_linked_at_once(dbs):
    """A1/M1: a user made for a contact is linked at once (nobody logs in to it but through its one-time link)."""
    trade(dbs.erp, "T7")
    contact(dbs.erp, 7, "new.contact@trade.example", ["T7"])
    synced()
    made = one(dbs.web, "SELECT user_id FROM web.app_user WHERE email_address = 'new.contact@trade.example'")
    assert accounts_of(dbs.web, made) == {"T7"} and user(dbs.web, made)["email_verified"] is False
    assert verify_emails(dbs.web) == []


def test_a1_i1_typed_email_reuses_no_approval_until_proven(dbs):
    """A1/I1: a registration with a contact's email, by an existing unproven login, links no account until the
    verify link is followed; then the accounts that qualify at that time are linked."""
    add_debtor(dbs.erp, "CASH", None, cust_type="CASH")
    add_debtor(dbs.erp, "A100", None, cust_type=OTHER_TYPE)
    contact(dbs.erp, 1, "boss@acme.example", ["A100", "CASH"])
    attacker = add_user(dbs.web, "boss@acme.example", role="B2B")
    request_id = register(dbs.web, "BOSS@acme.example")

    synced()

    assert one(dbs.web, "SELECT status FROM web.registration_request WHERE request_id = :r", r=request_id) == "approved"
    assert accounts_of(dbs.web, attacker) == set() and user(dbs.web, attacker)["default_customer_code"] is None

    follow_link(dbs.web, attacker)
    synced()
    assert accounts_of(dbs.web, attacker) == {"A100"}, "linked once proven, never to the cash account"
    assert user(dbs.web, attacker)["default_customer_code"] == "A100"


def test_a1_o2_in_store_orders_are_not_shown_to_an_unproven_login(dbs):
    """A1/O2: an in-store order given with an address is shown only to a user who proved it."""
    add_debtor(dbs.erp, "CASH", None, cust_type="CASH")
    attacker = add_user(dbs.web, "shopper@mail.example", role="B2B")
    order(dbs.erp, "POS1", "CASH", " Shopper@Mail.example")

    synced()
    assert one(dbs.web, "SELECT count(*) FROM web.order_history") == 0
    assert len(verify_emails(dbs.web, attacker)) == 1

    follow_link(dbs.web, attacker)
    synced()
    assert one(dbs.web, "SELECT user_id FROM web.order_history WHERE order_no = 'POS1'") == attacker


def test_a1_a_new_account_set_is_a_new_email_the_same_set_never_is(dbs):
    """A1: one account_link_verify per user and account set: a rerun sends nothing, a further account sends one."""
    trade(dbs.erp, "T1", "T2")
    waiting = add_user(dbs.web, "slow@trade.example", role="B2B")
    contact(dbs.erp, 1, "slow@trade.example", ["T1"])
    synced()
    synced()
    assert len(verify_emails(dbs.web, waiting)) == 1
    set_contact_accounts(dbs.erp, 1, ["T1", "T2"])
    synced()
    assert len(verify_emails(dbs.web, waiting)) == 2
    assert one(dbs.web, "SELECT count(*) FROM web.verification_token WHERE user_id = :u", u=waiting) == 2


# ------------------------------------------------------------------------------------------ A2 the same address
def test_a2_padded_web_email_beside_the_debtor_email_is_one_login(dbs):
    """A2: web user 'x@y.com ' beside debtor 'x@y.com' is one login, linked (its address is proven)."""
    padded = add_user(dbs.web, "x@y.com ", role="B2B", email_verified=True)
    add_debtor(dbs.erp, "WEB_200", "X@Y.com")
    synced()
    assert one(dbs.web, "SELECT count(*) FROM web.app_user") == 1
    assert link_of(dbs.web, padded) == "WEB_200"


def test_a2_spaces_inside_or_no_at_is_malformed_and_gets_no_login(dbs):
    """A2: an address with a space inside it, or with no @, is malformed: set aside, no login made."""
    add_debtor(dbs.erp, "WEB_301", "pat @mail.example")
    add_debtor(dbs.erp, "WEB_302", "pat.mail.example")
    add_debtor(dbs.erp, "WEB_303", "  fine@mail.example  ")
    synced()
    assert [r["email_address"] for r in rows(dbs.web, "SELECT email_address FROM web.app_user")] == [
        "  fine@mail.example  "
    ], "surrounding spaces are no fault; spaces inside and a missing @ are"
    for code in ("WEB_301", "WEB_302"):
        assert problem(dbs.web, "malformed_email", f"debtor:{code}")["rule"] == "U2"


def test_a2_python_and_sql_agree_on_the_same_address(dbs):
    """A2: one definition in Python (email_key) and SQL (userdebtor.email_key), index-backed on the mirrors."""
    samples = [" X@Y.com", "x@y.COM  ", "Ünïcode@Example.com", "a b@c.de", "no-at.example"]
    with dbs.web.connect() as conn:
        in_sql = conn.execute(sa.text("SELECT userdebtor.email_key(e) FROM unnest(CAST(:s AS text[])) e"),
                              {"s": samples}).scalars().all()
        conn.execute(sa.text("SET enable_seqscan = off"))  # a tiny table: ask whether the index serves the key
        plan = "\n".join(conn.execute(sa.text(
            "EXPLAIN SELECT 1 FROM userdebtor.web_user WHERE userdebtor.email_key(email_address) = 'x@y.com'"
        )).scalars())
    assert in_sql == [email_key(s) for s in samples]
    assert "web_user_email_key_idx" in plan
    assert [is_well_formed_email(s) for s in samples] == [True, True, True, False, False]


# ------------------------------------------------------------------------------------------ I3 tokens
def test_i3_set_password_link_proves_the_address(dbs):
    """I3/A1: a followed set_password link proves the address: the waiting link is then made."""
    waiting = add_user(dbs.web, "setpw@mail.example", role="B2B")
    add_debtor(dbs.erp, "WEB_400", "setpw@mail.example")
    synced()
    assert link_of(dbs.web, waiting) is None
    with dbs.web.begin() as conn:  # the website's own password link, followed
        conn.execute(sa.text("INSERT INTO web.verification_token (token_hash, user_id, purpose, created_at,"
                             " expires_at, used_at) VALUES (md5('pw') || md5('pw'), :u, 'set_password', now(),"
                             " now() + interval '1 day', now())"), {"u": waiting})
    synced()
    assert user(dbs.web, waiting)["email_verified"] is True
    assert link_of(dbs.web, waiting) == "WEB_400"


def test_i3_expired_link_proves_nothing(dbs):
    """I3: a verify link followed after it expired proves nothing and links nothing; the problem is recorded."""
    late = add_user(dbs.web, "late@mail.example", role="B2B")
    add_debtor(dbs.erp, "WEB_500", "late@mail.example")
    synced()
    follow_link(dbs.web, late, late=True)
    synced()
    assert user(dbs.web, late)["email_verified"] is False and link_of(dbs.web, late) is None
    assert rows(dbs.web, "SELECT * FROM userdebtor.problem WHERE kind = 'token_expired'")


def test_i3_a_link_never_revives_a_deactivated_login(dbs):
    """I3: a followed verify link of a Deactivated user (refused under I2, or U6/M2) changes nothing."""
    gone = add_user(dbs.web, "gone@mail.example", role="B2B")
    add_debtor(dbs.erp, "WEB_600", "gone@mail.example")
    synced()
    [_mail] = verify_emails(dbs.web, gone)
    with dbs.web.begin() as conn:  # refused at a login meanwhile
        conn.execute(sa.text("UPDATE web.app_user SET status = 'Deactivated', updated_at = now() WHERE user_id = :u"),
                     {"u": gone})
    follow_link(dbs.web, gone)
    outcome = synced()
    assert (user(dbs.web, gone)["status"], user(dbs.web, gone)["email_verified"]) == ("Deactivated", False)
    assert link_of(dbs.web, gone) is None
    assert outcome.materializations["verified_tokens_applied"]["tokens_of_deactivated_users"] == 1
    assert rows(dbs.web, "SELECT * FROM userdebtor.problem WHERE kind = 'token_of_deactivated_user'")


# ------------------------------------------------------------------------------------------ U1 code space
def raw_database_errors(outcome: SyncOutcome) -> list[str]:
    """Errors other than a blocking check's verdict: a failed step, a database error."""
    return [e for e in outcome.errors if "DagsterAssetCheckFailedError" not in e] + list(
        s for s in outcome.failed_steps if not s.endswith("code_space_left"))


@pytest.mark.parametrize("full_code", ["WEB_999999", "WEB_1000000"])
def test_u1_code_space_exhausted_holds_the_creation_and_cuts_nothing(dbs, full_code):
    """U1: with the last code of the width (or a wider one) in the ERP, no code is made or cut to fit: a blocking
    check names the prefix and width, before any insert; the other loads go on."""
    add_debtor(dbs.erp, full_code, "erp-made@shop.example", cust_type="RETAIL")
    buyer = add_user(dbs.web, "needs.debtor@mail.example")
    add_debtor(dbs.erp, "WEB_OTHER", "other@mail.example")  # U2 goes on beside the held creation
    before = digest(dbs.erp, "SELECT dr_cust_code FROM erp.deb_master ORDER BY 1")

    outcome = run_sync()

    assert not raw_database_errors(outcome), outcome.errors
    assert outcome.failed_checks == ["new_debtors_vetted:code_space_left"]
    summary = outcome.check_metadata["new_debtors_vetted:code_space_left"]["summary"]
    assert "'WEB_'" in summary and "width 6" in summary and "exhausted" in summary
    assert digest(dbs.erp, "SELECT dr_cust_code FROM erp.deb_master ORDER BY 1") == before
    assert link_of(dbs.web, buyer) is None
    assert problem(dbs.web, "code_space_exhausted", f"user:{buyer}")
    assert one(dbs.web, "SELECT count(*) FROM web.app_user WHERE email_address = 'other@mail.example'") == 1

    outcome = run_sync()  # run after run: the same clear check, never a raw UniqueViolation
    assert not raw_database_errors(outcome) and outcome.failed_checks == ["new_debtors_vetted:code_space_left"]


def test_u1_code_space_widened_goes_on(dbs, settings_path):
    """U1: once account_number_width is widened, the held user gets the next code at the new width."""
    add_debtor(dbs.erp, "WEB_999999", "erp-made@shop.example", cust_type="RETAIL")
    buyer = add_user(dbs.web, "needs.debtor@mail.example")
    assert run_sync().failed_checks
    write_settings(settings_path, user_debtor={"account_number_width": 7})
    synced()
    assert link_of(dbs.web, buyer) == "WEB_1000000"


# ------------------------------------------------------------------------------------------ M2
def test_m2_leaving_contact_takes_the_default_account_too_and_m1_brings_the_user_back(dbs):
    """M2: the link to the default account goes with the contact; the default moves to another linked account or
    becomes null; an M1-made user left with none is Deactivated with a warning; M1 makes it Active again."""
    trade(dbs.erp, "T1", "T2")
    contact(dbs.erp, 1, "rep@trade.example", ["T1", "T2"])
    synced()
    rep = one(dbs.web, "SELECT user_id FROM web.app_user")
    assert user(dbs.web, rep)["default_customer_code"] == "T1"

    set_contact_accounts(dbs.erp, 1, ["T2"])
    synced()
    assert accounts_of(dbs.web, rep) == {"T2"} and user(dbs.web, rep)["default_customer_code"] == "T2"

    change_contact(dbs.erp, 1, contact_active=False)
    synced()
    gone = user(dbs.web, rep)
    assert accounts_of(dbs.web, rep) == set()
    assert (gone["default_customer_code"], gone["status"]) == (None, "Deactivated")
    assert one(dbs.web, "SELECT count(*) FROM web.email_outbox"
               " WHERE dedupe_key = :k", k=f"warning:contact_user_deactivated:user:{rep}") == 1

    change_contact(dbs.erp, 1, contact_active=True)
    synced()
    back = user(dbs.web, rep)
    assert (back["status"], back["default_customer_code"]) == ("Active", "T2")
    assert accounts_of(dbs.web, rep) == {"T2"}


def test_m2_a_website_made_link_and_a_user_it_did_not_make_stay(dbs):
    """M2: links the website made stay, and a user the integration did not make is never deactivated by M2."""
    trade(dbs.erp, "T1", "T3")
    own = add_user(dbs.web, "own@trade.example", role="B2B", email_verified=True, default_code="T1")
    contact(dbs.erp, 1, "own@trade.example", ["T1"])
    with dbs.web.begin() as conn:
        conn.execute(sa.text("INSERT INTO web.user_customer (user_id, customer_code) VALUES (:u, 'T3')"), {"u": own})
    synced()
    assert accounts_of(dbs.web, own) == {"T1", "T3"}
    change_contact(dbs.erp, 1, contact_active=False)
    synced()
    after = user(dbs.web, own)
    assert accounts_of(dbs.web, own) == {"T3"}
    assert (after["status"], after["default_customer_code"]) == ("Active", "T3")


# ------------------------------------------------------------------------------------------ C4
def test_c4_a_to_b_and_back_as_the_erp_did_keeps_the_user_and_a_line_break_fails_alone(dbs):
    """C4: A to B then B to A (the ERP renamed twice) ends at A with the user Active; a code with a line break
    fails alone with a warning and holds back nothing, run after run."""
    add_debtor(dbs.erp, "WEB_A", "flip@mail.example")
    synced()
    flipper = one(dbs.web, "SELECT user_id FROM web.app_user")
    with dbs.erp.begin() as conn:
        conn.execute(sa.text("INSERT INTO erp.deb_conversion (conversion_seq, old_cust_code, new_cust_code) VALUES"
                             " (1, 'WEB_A', 'WEB_B'), (2, E'WEB_B\\n', 'WEB_C'), (3, 'WEB_B', 'WEB_A')"))
    synced(lift_change_guard=True)
    outcomes = {r["conversion_seq"]: r["outcome"] for r in rows(dbs.web, "SELECT * FROM web.customer_conversion")}
    assert outcomes == {1: "converted", 2: "failed", 3: "converted"}
    assert (user(dbs.web, flipper)["status"], user(dbs.web, flipper)["default_customer_code"]) == ("Active", "WEB_A")
    assert link_of(dbs.web, flipper) == "WEB_A"
    assert problem(dbs.web, "conversion_failed", "conversion:2")["rule"] == "C4"
    synced()
    assert user(dbs.web, flipper)["status"] == "Active", "not a delete (U6) after the round trip"
