"""Instant accounts (I1-I3) end to end: real rows in the ERP and web tables, the real Dagster job, real rows out.

The accounts here have a customer type that neither filter selects, so U1-U7 and M1-M3 leave them alone and
each test sees only what the instant-account rules do. The sensor is evaluated with dg.build_sensor_context.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.support import add_debtor, add_template, add_user, contact, one, rows
from tests.support import synced_clean as sync
from userdebtor_pipeline.defs.instant_accounts.accounts import REGISTRATION_REASONS
from userdebtor_pipeline.defs.instant_accounts.sensors import instant_account_requests_sensor, probe_pending_work
from userdebtor_pipeline.defs.resources import WebDatabase
from userdebtor_pipeline.email import hash_token
from userdebtor_pipeline.paths import read_sql

pytestmark = pytest.mark.slow

ACCOUNT_TYPE = "DEBTOR"  # matched by neither customer_master_filter nor css_customer_filter


# ------------------------------------------------------------------------------------------ helpers


def account(erp: Engine, code: str, email: str | None = None, status: str = "A", cust_type: str = ACCOUNT_TYPE) -> None:
    add_debtor(erp, code, email, name=f"Account {code}", cust_type=cust_type, dr_account_status=status)



def register(web: Engine, email: str, account_code: str | None = None) -> int:
    with web.begin() as conn:
        return conn.execute(
            sa.text("INSERT INTO web.registration_request (email_address, account_code) VALUES (:e, :a)"
                    " RETURNING request_id"),
            {"e": email, "a": account_code},
        ).scalar_one()


def request(web: Engine, request_id: int) -> dict[str, Any]:
    return rows(web, "SELECT * FROM web.registration_request WHERE request_id = :r", r=request_id)[0]


def user_by_email(web: Engine, email: str) -> dict[str, Any] | None:
    found = rows(web, "SELECT * FROM web.app_user WHERE lower(email_address) = lower(:e)", e=email)
    return found[0] if found else None


def links(web: Engine, user_id: int) -> list[str]:
    return [r["customer_code"] for r in
            rows(web, "SELECT customer_code FROM web.user_customer WHERE user_id = :u ORDER BY 1", u=user_id)]


def emails(web: Engine, template: str) -> list[dict[str, Any]]:
    return rows(web, "SELECT * FROM web.email_outbox WHERE template = :t ORDER BY email_id", t=template)


def login(web: Engine, user_id: int, occurred_at: datetime) -> int:
    with web.begin() as conn:
        return conn.execute(
            sa.text("INSERT INTO web.login_event (user_id, occurred_at) VALUES (:u, :t) RETURNING event_id"),
            {"u": user_id, "t": occurred_at},
        ).scalar_one()


def login_event(web: Engine, event_id: int) -> dict[str, Any]:
    return rows(web, "SELECT * FROM web.login_event WHERE event_id = :e", e=event_id)[0]


def follow_link(web: Engine, user_id: int, purpose: str, used_at: datetime | None = None) -> str:
    """What the website does when a person opens an emailed link: stamp used_at on the token."""
    with web.begin() as conn:
        return conn.execute(
            sa.text("UPDATE web.verification_token SET used_at = coalesce(:t, now())"
                    " WHERE token_hash = (SELECT token_hash FROM web.verification_token"
                    "   WHERE user_id = :u AND purpose = :p ORDER BY created_at DESC LIMIT 1)"
                    " RETURNING token_hash"),
            {"u": user_id, "p": purpose, "t": used_at},
        ).scalar_one()


def standard_accounts(erp: Engine) -> None:
    account(erp, "CASH", cust_type="CASH")
    account(erp, "STAFF")
    account(erp, "C100")
    account(erp, "C200")


# ------------------------------------------------------------------------------------------ I1 sign-ups


def test_i1_credit_account_approved_and_cash_account_never_linked(env):
    """I1: an email on a credit account and on the cash account gets an account linked to the credit one only."""
    standard_accounts(env.erp)
    contact(env.erp, 1, "pat@acme.test", ["C100", "CASH"])
    request_id = register(env.web, "Pat@Acme.test")

    outcome = sync()

    decided = request(env.web, request_id)
    assert decided["status"] == "approved"
    assert "C100" in decided["reason"] and "CASH" not in decided["reason"]
    assert decided["decided_at"] is not None
    user = user_by_email(env.web, "pat@acme.test")
    assert decided["user_id"] == user["user_id"]
    # A1: nothing is linked until the address is proven by the verify link.
    assert (user["role"], user["status"], user["email_verified"], user["default_customer_code"]) == (
        "B2B", "Active", False, None)
    assert links(env.web, user["user_id"]) == []
    [email] = emails(env.web, "instant_account_verify")
    assert email["dedupe_key"] == f"instant_verify:{request_id}"
    assert email["to_address"] == "Pat@Acme.test"
    token = email["body_text"].split("/account/verify-email?token=")[1].split()[0]
    stored = rows(env.web, "SELECT * FROM web.verification_token WHERE token_hash = :h", h=hash_token(token))
    assert stored and stored[0]["user_id"] == user["user_id"] and stored[0]["purpose"] == "verify_email"
    opened = outcome.materializations["instant_accounts_opened"]
    assert (opened["requests_approved"], opened["users_created"], opened["verify_emails_queued"]) == (1, 1, 1)

    follow_link(env.web, user["user_id"], "verify_email")
    outcome = sync()

    assert links(env.web, user["user_id"]) == ["C100"]
    assert user_by_email(env.web, "pat@acme.test")["default_customer_code"] == "C100"
    customer = rows(env.web, "SELECT * FROM web.customer WHERE customer_code = 'C100'")[0]
    assert customer["is_debtor_customer"] and customer["name"] == "Account C100"
    assert outcome.materializations["instant_accounts_opened"]["users_linked_once_proven"] == 1


def test_i1_email_only_on_the_cash_account_is_rejected(env):
    """I1: an email that only the cash account carries is rejected, in words, and makes no user."""
    account(env.erp, "CASH", "walkin@example.test", cust_type="CASH")
    contact(env.erp, 1, "walkin@example.test", ["CASH"])
    request_id = register(env.web, "walkin@example.test")

    sync()

    decided = request(env.web, request_id)
    assert decided["status"] == "rejected"
    assert decided["reason"] == REGISTRATION_REASONS["only_cash_account"]
    assert user_by_email(env.web, "walkin@example.test") is None
    assert emails(env.web, "instant_account_verify") == []


def test_i1_excluded_account_rejected_alone_and_left_out_beside_a_credit_account(env):
    """I1: an excluded account never qualifies: alone it is a rejection, beside a credit account it is not linked."""
    standard_accounts(env.erp)
    contact(env.erp, 1, "staffer@acme.test", ["STAFF"])
    contact(env.erp, 2, "both@acme.test", ["STAFF", "C200"])
    staff_only = register(env.web, "staffer@acme.test")
    both = register(env.web, "both@acme.test")

    sync()

    assert request(env.web, staff_only)["status"] == "rejected"
    assert request(env.web, staff_only)["reason"] == REGISTRATION_REASONS["account_excluded"]
    assert request(env.web, both)["status"] == "approved"
    follow_link(env.web, request(env.web, both)["user_id"], "verify_email")
    sync()
    assert links(env.web, request(env.web, both)["user_id"]) == ["C200"]
    assert one(env.web, "SELECT count(*) FROM web.user_customer WHERE customer_code IN ('STAFF', 'CASH')") == 0


def test_i1_request_naming_an_account_that_is_not_the_emails(env):
    """I1: a request that names an account the email is not on is rejected; naming its own (any case) approves."""
    standard_accounts(env.erp)
    contact(env.erp, 1, "pat@acme.test", ["C100"])
    contact(env.erp, 2, "lee@acme.test", ["C100"])
    contact(env.erp, 3, "kim@acme.test", ["C100"])
    wrong = register(env.web, "pat@acme.test", "C200")
    right = register(env.web, "lee@acme.test", "c100")
    cash = register(env.web, "kim@acme.test", "CASH")

    sync()

    assert request(env.web, wrong)["status"] == "rejected"
    assert request(env.web, wrong)["reason"] == REGISTRATION_REASONS["named_account_not_yours"].format(account="C200")
    assert user_by_email(env.web, "pat@acme.test") is None
    assert request(env.web, right)["status"] == "approved"
    assert request(env.web, cash)["status"] == "rejected"
    assert "CASH" in request(env.web, cash)["reason"]


def test_i1_one_email_on_several_contacts_of_several_accounts_is_one_user(env):
    """I1: an email on two contacts acting for several accounts, and a debtor email, makes one user linked to every
    qualifying account (never the closed, the excluded or the cash one), and one verify email."""
    standard_accounts(env.erp)
    account(env.erp, "C300")
    account(env.erp, "C400", status="C")
    account(env.erp, "C500", "Multi@Acme.test")
    contact(env.erp, 1, "multi@acme.test", ["C300", "C100"])
    contact(env.erp, 2, "MULTI@acme.test", ["C200", "C400", "STAFF", "CASH"])
    contact(env.erp, 3, "multi@acme.test", ["C600"], active=False)  # inactive: its account does not count
    account(env.erp, "C600")
    request_id = register(env.web, "multi@acme.test")

    sync()

    decided = request(env.web, request_id)
    assert decided["status"] == "approved"
    assert one(env.web, "SELECT count(*) FROM web.app_user WHERE lower(email_address) = 'multi@acme.test'") == 1
    follow_link(env.web, user_by_email(env.web, "multi@acme.test")["user_id"], "verify_email")
    sync()
    user = user_by_email(env.web, "multi@acme.test")
    assert links(env.web, user["user_id"]) == ["C100", "C200", "C300", "C500"]
    assert user["default_customer_code"] == "C100"
    assert len(emails(env.web, "instant_account_verify")) == 1


def test_i1_closed_account_and_unknown_email_are_rejected(env):
    """I1: an email whose only account is closed, and one no account carries, are rejected with their reasons."""
    standard_accounts(env.erp)
    account(env.erp, "C900", "gone@acme.test", status="C")
    closed = register(env.web, "gone@acme.test")
    unknown = register(env.web, "nobody@acme.test")

    sync()

    assert request(env.web, closed)["reason"] == REGISTRATION_REASONS["account_closed"]
    assert request(env.web, unknown)["reason"] == REGISTRATION_REASONS["no_account"]
    assert {request(env.web, closed)["status"], request(env.web, unknown)["status"]} == {"rejected"}


def test_i1_malformed_email_is_rejected(env):
    """I1: a malformed email is rejected with a reason that says so; nothing is created."""
    standard_accounts(env.erp)
    account(env.erp, "C700", "not-an-email")
    bad = register(env.web, "not-an-email")
    bad2 = register(env.web, "someone@localhost")

    sync()

    for request_id, email in ((bad, "not-an-email"), (bad2, "someone@localhost")):
        decided = request(env.web, request_id)
        assert decided["status"] == "rejected"
        assert decided["reason"] == REGISTRATION_REASONS["malformed_email"].format(email=email)
    assert one(env.web, "SELECT count(*) FROM web.app_user") == 0


def test_i1_existing_user_is_reused(env):
    """I1: a web user with the email already (any letter case) is reused, not duplicated, and gets the links at
    once, its address being proven (A1)."""
    standard_accounts(env.erp)
    contact(env.erp, 1, "pat@acme.test", ["C100", "C200"])
    existing = add_user(env.web, "PAT@acme.test", role="B2B", email_verified=True)
    request_id = register(env.web, "pat@acme.test")

    outcome = sync()

    assert request(env.web, request_id)["user_id"] == existing
    assert one(env.web, "SELECT count(*) FROM web.app_user") == 1
    assert links(env.web, existing) == ["C100", "C200"]
    assert user_by_email(env.web, "pat@acme.test")["default_customer_code"] == "C100"
    assert outcome.materializations["instant_accounts_opened"]["users_reused"] == 1


def test_i1_email_of_accounts_other_rules_give_users_is_one_user(env):
    """I1 beside U2 and M1: when the same run gives the email a user from the ERP (a debtor in the customer
    master scope, a contact of a CSS account), the approval reuses that user; the run goes through."""
    add_template(env.erp)
    account(env.erp, "CASH", cust_type="CASH")
    account(env.erp, "T100", cust_type="TRADE")
    contact(env.erp, 1, "trade@acme.test", ["T100"])
    account(env.erp, "WEB_000009", "webby@acme.test", cust_type="WEB_")
    trade = register(env.web, "trade@acme.test")
    webby = register(env.web, "webby@acme.test")

    sync()

    for request_id, email, code in ((trade, "trade@acme.test", "T100"), (webby, "webby@acme.test", "WEB_000009")):
        decided = request(env.web, request_id)
        assert decided["status"] == "approved"
        assert one(env.web, "SELECT count(*) FROM web.app_user WHERE lower(email_address) = :e", e=email) == 1
        assert decided["user_id"] == user_by_email(env.web, email)["user_id"]
        assert links(env.web, decided["user_id"]) == [code]
    assert len(emails(env.web, "instant_account_verify")) == 2


def test_i1_rerun_changes_nothing_and_sends_no_second_email(env):
    """I1: a rerun finds nothing pending: no second user, link or email."""
    standard_accounts(env.erp)
    contact(env.erp, 1, "pat@acme.test", ["C100"])
    register(env.web, "pat@acme.test")
    sync()
    before = rows(env.web, "SELECT email_id, dedupe_key FROM web.email_outbox ORDER BY email_id")

    outcome = sync()
    sync(full=True)

    assert rows(env.web, "SELECT email_id, dedupe_key FROM web.email_outbox ORDER BY email_id") == before
    assert one(env.web, "SELECT count(*) FROM web.user_customer") == 0, "no link before the address is proven"
    assert outcome.materializations["registration_decisions"]["requests_pending"] == 0


def test_i1_dry_run_writes_nothing(env):
    """I1 with --dry-run: the decision is reported, the request stays pending, no user and no email."""
    standard_accounts(env.erp)
    contact(env.erp, 1, "pat@acme.test", ["C100"])
    request_id = register(env.web, "pat@acme.test")

    outcome = sync(dry_run=True)

    assert outcome.materializations["instant_accounts_opened"]["would_approve"] == 1
    assert request(env.web, request_id)["status"] == "pending"
    assert one(env.web, "SELECT count(*) FROM web.app_user") == 0
    assert one(env.web, "SELECT count(*) FROM web.email_outbox") == 0


# ------------------------------------------------------------------------------------------ I2 logins


def _instant_user(env, email: str, last_login_days: float | None, now: datetime, **columns: Any) -> int:
    return add_user(env.web, email, role="B2B", default_code="C100", created_at=now - timedelta(days=400),
                    last_login_at=None if last_login_days is None else now - timedelta(days=last_login_days),
                    **columns)


def test_i2_login_after_89_days_is_allowed_after_91_days_needs_reverification(env):
    """I2: a login 89 days after the previous one is allowed; 91 days after, the user is Expired and gets a
    reverify email (one per login event, password untouched); a rerun sends no second email."""
    standard_accounts(env.erp)
    contact(env.erp, 1, "recent@acme.test", ["C100"])
    contact(env.erp, 2, "away@acme.test", ["C100"])
    now = datetime.now(UTC)
    recent = _instant_user(env, "recent@acme.test", 89, now)
    away = _instant_user(env, "away@acme.test", 91, now)
    allowed_event = login(env.web, recent, now)
    stale_event = login(env.web, away, now)

    sync()

    allowed = login_event(env.web, allowed_event)
    assert (allowed["outcome"], allowed["processed_at"] is not None) == ("allowed", True)
    assert allowed["reason"]
    recent_user = user_by_email(env.web, "recent@acme.test")
    assert recent_user["last_login_at"] == now and recent_user["status"] == "Active"

    stale = login_event(env.web, stale_event)
    assert stale["outcome"] == "reverify_required" and "91 days" in stale["reason"]
    away_user = user_by_email(env.web, "away@acme.test")
    assert away_user["status"] == "Expired"
    assert away_user["last_login_at"] == now - timedelta(days=91)
    [email] = emails(env.web, "instant_account_reverify")
    assert email["dedupe_key"] == f"instant_reverify:{stale_event}"
    assert email["to_address"] == "away@acme.test"
    assert "password" not in email["body_text"].lower().split("hasn't changed")[0].split("token=")[0]
    assert one(env.web, "SELECT count(*) FROM web.verification_token WHERE user_id = :u AND purpose = 'reverify'",
               u=away) == 1
    assert one(env.web, "SELECT count(*) FROM web.verification_token WHERE purpose = 'set_password'") == 0

    sync()
    assert len(emails(env.web, "instant_account_reverify")) == 1


def test_i2_nothing_expires_by_time_alone(env):
    """I2: a user who has not logged in for a year stays Active until they try to log in."""
    standard_accounts(env.erp)
    contact(env.erp, 1, "idle@acme.test", ["C100"])
    now = datetime.now(UTC)
    _instant_user(env, "idle@acme.test", 365, now)

    sync()

    assert user_by_email(env.web, "idle@acme.test")["status"] == "Active"
    assert emails(env.web, "instant_account_reverify") == []


def test_i2_login_of_a_user_whose_contact_was_removed_is_refused(env):
    """I2: once the ERP no longer lists the email on a qualifying account, the next login is refused and the user
    Deactivated."""
    standard_accounts(env.erp)
    contact(env.erp, 1, "leaver@acme.test", ["C100"])
    request_id = register(env.web, "leaver@acme.test")
    sync()
    user_id = request(env.web, request_id)["user_id"]
    with env.erp.begin() as conn:
        conn.execute(sa.text("DELETE FROM erp.crm_contact_account WHERE contact_id = 1"))
    event = login(env.web, user_id, datetime.now(UTC))

    sync()

    decided = login_event(env.web, event)
    assert decided["outcome"] == "refused" and "no account" in decided["reason"].lower()
    assert user_by_email(env.web, "leaver@acme.test")["status"] == "Deactivated"


def test_i2_several_logins_of_one_user_in_one_run_are_decided_in_order(env):
    """I2: logins are decided in occurred_at order: an allowed login counts as the previous one for the next."""
    standard_accounts(env.erp)
    contact(env.erp, 1, "regular@acme.test", ["C100"])
    now = datetime.now(UTC)
    user_id = _instant_user(env, "regular@acme.test", 80, now)
    second = login(env.web, user_id, now)  # inserted first, happened last
    first = login(env.web, user_id, now - timedelta(days=5))

    sync()

    assert login_event(env.web, first)["outcome"] == "allowed"
    assert login_event(env.web, second)["outcome"] == "allowed"
    assert user_by_email(env.web, "regular@acme.test")["last_login_at"] == now


# ------------------------------------------------------------------------------------------ I3 tokens


def test_i3_verify_link_applies_once_and_a_second_use_does_nothing(env):
    """I3: a followed verify link makes the user Active and verified once; following it again changes nothing."""
    standard_accounts(env.erp)
    contact(env.erp, 1, "pat@acme.test", ["C100"])
    request_id = register(env.web, "pat@acme.test")
    sync()
    user_id = request(env.web, request_id)["user_id"]
    used_at = datetime.now(UTC).replace(microsecond=0)
    token_hash = follow_link(env.web, user_id, "verify_email", used_at)

    outcome = sync()

    user = user_by_email(env.web, "pat@acme.test")
    assert (user["status"], user["email_verified"], user["last_verified_at"]) == ("Active", True, used_at)
    assert outcome.materializations["verified_tokens_applied"]["tokens_applied"] == 1

    # The account is suspended on the website; the old link, followed again, must not reopen it.
    with env.web.begin() as conn:
        conn.execute(sa.text("UPDATE web.app_user SET status = 'Expired', email_verified = false WHERE user_id = :u"),
                     {"u": user_id})
    follow_link(env.web, user_id, "verify_email", used_at + timedelta(minutes=5))

    outcome = sync()

    user = user_by_email(env.web, "pat@acme.test")
    assert (user["status"], user["email_verified"], user["last_verified_at"]) == ("Expired", False, used_at)
    assert outcome.materializations["verified_tokens_applied"]["tokens_used_again"] == 1
    problem = rows(env.web, "SELECT * FROM userdebtor.problem WHERE kind = 'token_used_again'")
    assert problem and problem[0]["rule"] == "I3" and token_hash[:16] in problem[0]["subject"]


def test_i3_expired_link_does_nothing(env):
    """I3: a link followed after it expired leaves the user as they were, and says so."""
    standard_accounts(env.erp)
    contact(env.erp, 1, "late@acme.test", ["C100"])
    now = datetime.now(UTC)
    user_id = _instant_user(env, "late@acme.test", 100, now, status="Expired")
    with env.web.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO web.verification_token (token_hash, user_id, purpose, created_at, expires_at,"
                    " used_at) VALUES ('late-token', :u, 'reverify', :c, :e, :used)"),
            {"u": user_id, "c": now - timedelta(days=3), "e": now - timedelta(days=1), "used": now},
        )

    outcome = sync()

    user = user_by_email(env.web, "late@acme.test")
    assert (user["status"], user["email_verified"], user["last_verified_at"]) == ("Expired", False, None)
    assert outcome.materializations["verified_tokens_applied"]["tokens_expired"] == 1
    assert one(env.web, "SELECT count(*) FROM userdebtor.problem WHERE kind = 'token_expired'") == 1


def test_i2_i3_reverify_then_confirm_then_login_is_allowed(env):
    """I2 + I3: after a reverify the confirmed email counts as being seen: the next login is allowed, not asked
    for another confirmation."""
    standard_accounts(env.erp)
    contact(env.erp, 1, "back@acme.test", ["C100"])
    now = datetime.now(UTC)
    user_id = _instant_user(env, "back@acme.test", 120, now)
    login(env.web, user_id, now - timedelta(minutes=10))
    sync()
    assert user_by_email(env.web, "back@acme.test")["status"] == "Expired"
    follow_link(env.web, user_id, "reverify", now - timedelta(minutes=5))
    event = login(env.web, user_id, now)

    sync()

    assert login_event(env.web, event)["outcome"] == "allowed"
    user = user_by_email(env.web, "back@acme.test")
    assert (user["status"], user["email_verified"], user["last_login_at"]) == ("Active", True, now)


# ------------------------------------------------------------------------------------------ sensor


def test_i1_sensor_picks_up_a_new_request_once(env):
    """I1/I2 sensor: a new pending request starts one run (run_key from the cursor); nothing new starts none."""
    standard_accounts(env.erp)
    contact(env.erp, 1, "pat@acme.test", ["C100"])
    instance = dg.DagsterInstance.ephemeral()
    web = WebDatabase()

    with dg.build_sensor_context(instance=instance, resources={"web": web}) as context:
        assert isinstance(instant_account_requests_sensor(context), dg.SkipReason)

        request_id = register(env.web, "pat@acme.test")
        started = time.perf_counter()
        result = instant_account_requests_sensor(context)
        probe_seconds = time.perf_counter() - started
        assert isinstance(result, dg.RunRequest)
        assert result.run_key == f"instant_accounts:{request_id}:0"
        assert context.cursor == f"{request_id}:0"
        assert isinstance(instant_account_requests_sensor(context), dg.SkipReason)

    sync()
    decided_after = time.perf_counter() - started
    assert request(env.web, request_id)["status"] == "approved"
    assert probe_pending_work(web).newest_request == 0
    # Pickup latency: at most one sensor interval (15 s) plus this probe, then one run.
    print(f"sensor probe {probe_seconds * 1000:.1f} ms; request decided {decided_after:.1f} s after the tick")
    assert probe_seconds < 1.0


def test_i1_accounts_of_users_waiting_for_proof_are_looked_up_by_index(engines) -> None:
    """I1 after A1, at scale: each run lists the instant-account users whose address is proven now, with their
    accounts. It looks each user's address up through the indexes of contacts and debtors; joined whole, the view of
    addresses read every contact, account and debtor each run (0.6 s at a million). With sequential scans off, a
    query the indexes cannot serve would still show one."""
    with engines.web.connect() as conn:
        conn.execute(sa.text("SET enable_seqscan = off"))
        plan = "\n".join(conn.execute(sa.text("EXPLAIN " + read_sql("instant_accounts/proven_accounts.sql")),
                                      {"cash_account_code": "CASH", "excluded_codes": []}).scalars())
    for table in ("erp_contact", "erp_contact_account", "erp_debtor"):
        assert f"Seq Scan on {table} " not in plan, plan
