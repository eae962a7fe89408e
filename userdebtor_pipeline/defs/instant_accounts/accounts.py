"""The writes of instant accounts that go one decision at a time (I1 approvals, I2 re-verification emails).

Each runs in the caller's transaction, so a user, their links, their token, their email and the stamp that
says the request or the login was decided commit together or not at all: a rerun after a crash ends the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from userdebtor_pipeline.defs.contacts.customer_mirror import mirror_customers
from userdebtor_pipeline.defs.sql_file import SqlFile
from userdebtor_pipeline.email import email_queued, issue_token, queue_email, token_link
from userdebtor_pipeline.paths import read_sql
from userdebtor_pipeline.settings import Settings

# What a website may show the person who registered, by reason_kind of plan_registrations.sql.
# {email}, {account} (the account the request names) and {accounts} (the accounts found) are filled in.
REGISTRATION_REASONS: dict[str, str] = {
    "approved": "Approved: this email address is on account(s) {accounts}. "
    "We have sent an email with a link to confirm the address.",
    "malformed_email": "\"{email}\" is not a valid email address. Please check it and register again.",
    "no_account": "We could not find a customer account for this email address. Please register with the "
    "email address your account knows you by, or contact us.",
    "only_cash_account": "This email address is only known from our cash sales, which cannot be used to log "
    "in for account ordering. Please contact us to open an account.",
    "account_excluded": "The account for this email address cannot be used for online ordering. "
    "Please contact us.",
    "account_closed": "The account for this email address is closed. Please contact us to reopen it.",
    "named_account_not_yours": "Account {account} is not one of the accounts of this email address. Please "
    "check the account number, or register without one.",
    "named_cash_account": "Account {account} is our cash sales account and cannot be used for online "
    "ordering. Please register without an account number, or contact us.",
    "named_account_excluded": "Account {account} cannot be used for online ordering. Please contact us.",
    "named_account_closed": "Account {account} is closed. Please contact us to reopen it.",
}


# The statements of one approval, run one at a time: the Python decides between them.
OPEN_ACCOUNT_SQL = SqlFile(
    "instant_accounts/open_account.sql",
    reads=("lock_request", "find_user", "address_proven", "create_user", "give_default_account",
           "accounts_without_web_customer", "link_accounts", "remember_instant_account_user",
           "remember_accounts_linked", "approve_request"),
)


def _step(conn: Connection, name: str, params: dict[str, object]) -> sa.CursorResult:
    return OPEN_ACCOUNT_SQL.execute(conn, name, params)


@dataclass(frozen=True)
class ApprovedRequest:
    """One row of userdebtor.plan_registration with decision 'approve'."""

    request_id: int
    email_address: str
    reason: str
    qualifying_codes: list[str]
    default_code: str
    contact_name: str | None


@dataclass(frozen=True)
class OpenedAccount:
    request_id: int
    user_id: int
    user_created: bool
    accounts: list[str]
    customers_mirrored: int
    email_queued: bool


def open_instant_account(conn: Connection, request: ApprovedRequest, settings: Settings) -> OpenedAccount | None:
    """I1 for one approved request: user, default account, links, web customers, verify email, request approved.

    None when the request is no longer pending (another run, or the website, decided it meanwhile).
    """
    config = settings.instant_accounts
    status = _step(conn, "lock_request", {"request_id": request.request_id}).scalar_one_or_none()
    if status != "pending":
        return None
    user_id = _step(conn, "find_user", {"email_address": request.email_address}).scalar_one_or_none()
    created = user_id is None
    # A1: a user made here has proven nothing yet; a reused one may have.
    proven = not created and bool(_step(conn, "address_proven", {"user_id": user_id}).scalar())
    if created:
        user_id = _step(
            conn,
            "create_user",
            {"email_address": request.email_address, "name": request.contact_name, "role": config.default_role,
             "default_code": None},
        ).scalar_one()
    codes = list(request.qualifying_codes) if proven else []
    mirrored = _link_accounts(conn, int(user_id), codes, settings) if proven else 0
    _step(conn, "remember_instant_account_user",
          {"user_id": user_id, "request_id": request.request_id, "linked": proven})
    queued = _queue_verify_email(conn, request, int(user_id), settings)
    _step(conn, "approve_request", {"request_id": request.request_id, "reason": request.reason,
                                        "user_id": user_id})
    return OpenedAccount(request_id=request.request_id, user_id=int(user_id), user_created=created, accounts=codes,
                         customers_mirrored=mirrored, email_queued=queued)


def _link_accounts(conn: Connection, user_id: int, codes: list[str], settings: Settings) -> int:
    """I1's links of one user: a web customer for each account lacking one, the links, a default account."""
    config = settings.instant_accounts
    lacking = list(_step(conn, "accounts_without_web_customer", {"codes": codes}).scalars())
    mirrored = mirror_customers(conn, lacking, config.cash_account_code)
    _step(conn, "give_default_account", {"user_id": user_id, "default_code": codes[0]})
    _step(conn, "link_accounts", {"user_id": user_id, "codes": codes, "role": config.default_role})
    return mirrored


def link_proven_instant_accounts(conn: Connection, settings: Settings) -> list[dict[str, object]]:
    """I1 after A1: users approved before their address was proven get the accounts that qualify now, once the
    address is proven (I3 applied the followed link before this run's plans). Proportional to those users."""
    config = settings.instant_accounts
    waiting = conn.execute(
        sa.text(read_sql("instant_accounts/proven_accounts.sql")),
        {"cash_account_code": config.cash_account_code, "excluded_codes": list(config.excluded_account_codes)},
    ).mappings().all()
    for user in waiting:
        _link_accounts(conn, int(user["user_id"]), list(user["codes"]), settings)
        _step(conn, "remember_accounts_linked", {"user_id": user["user_id"]})
    return [{"user_id": u["user_id"], "accounts": ", ".join(u["codes"])} for u in waiting]


def _queue_token_email(conn: Connection, settings: Settings, *, user_id: int, purpose: str, template: str,
                       to_address: str, dedupe_key: str, context: dict[str, object]) -> bool:
    """A one-time link of `purpose` and its email, once per dedupe key whatever the reruns: no second token for an
    email that exists already."""
    if email_queued(conn, dedupe_key):
        return False
    hours = settings.instant_accounts.token_ttl_hours
    token = issue_token(conn, user_id, purpose, hours)
    return queue_email(
        conn,
        template=template,
        to_address=to_address,
        context={"link": token_link(settings.email.site_url, purpose, token), "expires_hours": hours,
                 "site_url": settings.email.site_url, **context},
        dedupe_key=dedupe_key,
        templates_dir=settings.email.templates_dir,
    ) is not None


def _queue_verify_email(conn: Connection, request: ApprovedRequest, user_id: int, settings: Settings) -> bool:
    return _queue_token_email(
        conn, settings, user_id=user_id, purpose="verify_email", template="instant_account_verify",
        to_address=request.email_address, dedupe_key=f"instant_verify:{request.request_id}",
        context={"name": request.contact_name, "email_address": request.email_address.strip(),
                 "accounts": list(request.qualifying_codes)},
    )


@dataclass(frozen=True)
class ReverifyLogin:
    """One login of plan_login with outcome 'reverify_required'."""

    event_id: int
    user_id: int
    email_address: str
    name: str | None


def queue_reverify_email(conn: Connection, login: ReverifyLogin, settings: Settings) -> bool:
    """I2: a one-time reverify link for this login; once per login event, whatever the reruns."""
    return _queue_token_email(
        conn, settings, user_id=login.user_id, purpose="reverify", template="instant_account_reverify",
        to_address=login.email_address, dedupe_key=f"instant_reverify:{login.event_id}",
        context={"name": login.name, "email_address": login.email_address,
                 "days": settings.instant_accounts.reverify_after_days},
    )
