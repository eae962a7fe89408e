"""Instant accounts (I1-I3): sign-ups decided from ERP contacts and debtor emails, logins checked, emails verified.

registration_decisions (plan) -> check -> instant_accounts_opened (load)
verified_tokens_applied (load) -> login_decisions (plan) -> check -> login_decisions_applied (load)

Tokens go first: a person who confirmed their email and then logged in is judged with the confirmation known.
"""

from typing import Any

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from userdebtor_pipeline.defs.blocks import LoadRun, load, pair_counts, sql_plan
from userdebtor_pipeline.defs.common import (
    EMAIL_PATTERN,
    Stopwatch,
    counts_metadata,
    markdown_table,
    run_sql,
    sample,
)
from userdebtor_pipeline.defs.extract.assets import change_window, sync_run_started
from userdebtor_pipeline.defs.instant_accounts.accounts import (
    REGISTRATION_REASONS,
    ApprovedRequest,
    ReverifyLogin,
    link_proven_instant_accounts,
    open_instant_account,
    queue_reverify_email,
)
from userdebtor_pipeline.defs.problems import Problem, record_problems
from userdebtor_pipeline.defs.resources import RunOptions, SyncSettings, WebDatabase
from userdebtor_pipeline.defs.sql_file import SqlFile
from userdebtor_pipeline.settings import InstantAccountSettings

PLAN = "plan"
LOAD = "load"
# The loads of U2 and M1 that make users from ERP debtors and contacts. An approval runs after them, so it
# reuses the user they made for the same email instead of making it first under their planned feet.
SWITCH = "instant_accounts.enabled"
USER_CREATING_LOADS = [dg.AssetKey("web_users_created"), dg.AssetKey("contact_links_applied")]
# A dry run only finds the followed tokens; the rest of the file applies them.
TOKENS_FOUND = ("followed_tokens", "find_followed_tokens")
VERIFIED_TOKENS_SQL = SqlFile("instant_accounts/apply_verified_tokens.sql", reads=(*TOKENS_FOUND, "users_verified"))
LOGINS_SQL = SqlFile("instant_accounts/apply_logins.sql",
                     reads=("logins_stamped", "users_last_login_moved", "users_expired", "users_deactivated"))


# ------------------------------------------------------------------------------------------ I1 sign-ups

_REGISTRATION_SAMPLE = (
    "SELECT request_id, email_address, account_code, decision, reason_kind,"
    " array_to_string(qualifying_codes, ', ') AS accounts, existing_user_id, reason"
    " FROM userdebtor.plan_registration WHERE run_id = :run_id ORDER BY decision, request_id"
)


def _registration_params(run_id: str, config: InstantAccountSettings) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "cash_account_code": config.cash_account_code,
        "excluded_codes": list(config.excluded_account_codes),
        "email_pattern": EMAIL_PATTERN,
        "reason_kinds": list(REGISTRATION_REASONS),
        "reason_texts": list(REGISTRATION_REASONS.values()),
    }


registration_decisions = sql_plan(
    "registration_decisions",
    rule="I1: each pending registration request, approved with its qualifying accounts (not the cash account, not "
    "excluded, not closed) or rejected with a reason a website can show.",
    sql=SqlFile("instant_accounts/plan_registrations.sql"),
    table="userdebtor.plan_registration",
    counts="SELECT 'requests_pending', count(*) FROM userdebtor.plan_registration WHERE run_id = :run_id"
    " UNION ALL SELECT 'to_approve', count(*) FROM userdebtor.plan_registration"
    "  WHERE run_id = :run_id AND decision = 'approve'"
    " UNION ALL SELECT 'to_reject', count(*) FROM userdebtor.plan_registration"
    "  WHERE run_id = :run_id AND decision <> 'approve'"
    " UNION ALL SELECT 'users_to_create', count(*) FROM userdebtor.plan_registration"
    "  WHERE run_id = :run_id AND decision = 'approve' AND existing_user_id IS NULL"
    " UNION ALL SELECT 'reason_' || reason_kind, count(*) FROM userdebtor.plan_registration"
    "  WHERE run_id = :run_id GROUP BY reason_kind",
    sample_rows=_REGISTRATION_SAMPLE,
    params=lambda run: _registration_params(run.run_id, run.config.instant_accounts),
    switch=SWITCH, per_run=True,
    deps=[change_window, "merchant_invitation"],  # I4: in the invite job, the merchant's request comes first
)


def _approved_requests(conn: Connection, run_id: str) -> list[ApprovedRequest]:
    rows = conn.execute(
        sa.text(
            "SELECT request_id, email_address, reason, qualifying_codes, default_code, contact_name"
            " FROM userdebtor.plan_registration WHERE run_id = :run_id AND decision = 'approve'"
            " ORDER BY request_id"
        ),
        {"run_id": run_id},
    ).mappings().all()
    return [ApprovedRequest(**row) for row in rows]


def _registrations_would(conn: Connection, run_id: str) -> dict[str, Any]:
    decided = pair_counts(conn, "SELECT decision, count(*) FROM userdebtor.plan_registration WHERE run_id = :run_id"
                                " GROUP BY decision", {"run_id": run_id})
    return {"approve": decided.get("approve", 0), "reject": decided.get("reject", 0),
            "decisions": dg.MetadataValue.md(sample(conn, _REGISTRATION_SAMPLE, {"run_id": run_id}))}


@load(
    rule="I1: opens the approved instant accounts (user, verify email; links and web customers at once for a proven "
    "address, else once it is proven, A1) and stamps every decided request; one transaction per approval, "
    "rejections in one statement.",
    deps=[registration_decisions, *USER_CREATING_LOADS], switch=SWITCH, would=_registrations_would,
)
def instant_accounts_opened(run: LoadRun) -> dict[str, Any]:
    web, config, params = run.web, run.config, {"run_id": run.run_id}
    with web.engine.connect() as conn:
        approved = _approved_requests(conn, run.run_id)
        preview = sample(conn, _REGISTRATION_SAMPLE, params)
    with web.engine.begin() as conn:
        rejected = run_sql(conn, "instant_accounts/reject_registrations.sql", params)
    opened = []
    for request in approved:
        # One transaction per person: one bad row cannot hold back the others' accounts, and each
        # approval's user, links, token, email and stamp commit together.
        with web.engine.begin() as conn:
            result = open_instant_account(conn, request, config)
        if result is not None:
            opened.append(result)
    with web.engine.begin() as conn:
        proven_since = link_proven_instant_accounts(conn, config)
    rows = [
        {"request_id": o.request_id, "user_id": o.user_id, "user": "created" if o.user_created else "reused",
         "accounts": ", ".join(o.accounts), "verify_email_queued": o.email_queued}
        for o in opened
    ]
    return {
        "requests_approved": len(opened),
        "requests_rejected": sum(rejected.values()),
        "users_created": sum(o.user_created for o in opened),
        "users_reused": sum(not o.user_created for o in opened),
        "accounts_linked": sum(len(o.accounts) for o in opened),
        "web_customers_created": sum(o.customers_mirrored for o in opened),
        "verify_emails_queued": sum(o.email_queued for o in opened),
        "users_linked_once_proven": len(proven_since),
        "approved": dg.MetadataValue.md(markdown_table(rows)),
        "linked_once_proven": dg.MetadataValue.md(markdown_table(proven_since)),
        "decisions": dg.MetadataValue.md(preview),
    }


# ------------------------------------------------------------------------------------------ I3 tokens

_TOKEN_PROBLEMS = {
    "expired": ("token_expired", "The {purpose} link of user {user_id} was followed at {used_at}, after it expired; "
                "nothing was changed. The person can ask for a new link."),
    "used_again": ("token_used_again", "The {purpose} link of user {user_id} was followed again at {used_at}; a "
                   "link works once, so nothing was changed."),
    "no_user": ("token_without_user", "The {purpose} link of user {user_id} was followed, but the user no longer "
                "exists; nothing was changed."),
    "deactivated": ("token_of_deactivated_user", "The {purpose} link of user {user_id} was followed at {used_at}, "
                    "but the user is Deactivated; a link never makes a deactivated login Active again, so nothing "
                    "was changed."),
}
_TOKEN_SUMMARY = (
    "SELECT verdict, purpose, user_id, used_at, expires_at, left(token_hash, 12) AS token"
    " FROM _followed_token ORDER BY verdict, used_at"
)


@dg.asset(
    group_name=LOAD,
    # Before the web users are staged: the plans of this same run see the addresses these links proved (A1).
    deps=[sync_run_started],
    description="I3: each followed verify_email / reverify link makes its user Active and verified, a followed "
    "set_password link proves the address (A1), once; a link followed again, after it expired, or by a "
    "Deactivated user changes nothing and is reported.",
)
def verified_tokens_applied(context: dg.AssetExecutionContext, web: WebDatabase, settings: SyncSettings,
                            run_options: RunOptions) -> dg.MaterializeResult:
    watch = Stopwatch()
    config = settings.get()
    params = {"run_id": context.run.run_id}
    with web.engine.connect() as conn, conn.begin() as tx:
        counts = VERIFIED_TOKENS_SQL.run(conn, params, only=TOKENS_FOUND if run_options.dry_run else None)
        by_verdict = pair_counts(conn, "SELECT verdict, count(*) FROM _followed_token GROUP BY verdict", params)
        preview = sample(conn, _TOKEN_SUMMARY)
        problems = []
        for row in conn.execute(sa.text("SELECT * FROM _followed_token WHERE verdict <> 'apply'")):
            kind, text = _TOKEN_PROBLEMS[row.verdict]
            detail = text.format(purpose=row.purpose, user_id=row.user_id, used_at=row.used_at)
            problems.append(Problem(kind=kind, rule="I3", subject=f"token:{row.token_hash[:16]}", detail=detail))
        if run_options.dry_run:
            tx.rollback()
        else:
            record_problems(conn, config, context.run_id, problems)
    result = {
        "tokens_applied" if not run_options.dry_run else "tokens_to_apply": by_verdict.get("apply", 0),
        "tokens_expired": by_verdict.get("expired", 0),
        "tokens_used_again": by_verdict.get("used_again", 0),
        "tokens_without_user": by_verdict.get("no_user", 0),
        "tokens_of_deactivated_users": by_verdict.get("deactivated", 0),
        "users_verified": max(counts.get("users_verified", 0), 0),
    }
    return dg.MaterializeResult(
        metadata=counts_metadata(result, watch.seconds, dry_run=run_options.dry_run,
                                 tokens=dg.MetadataValue.md(preview),
                                 note="A link works once: one followed again or after it expired changes nothing.")
    )


# ------------------------------------------------------------------------------------------ I2 logins

_LOGIN_SAMPLE = (
    "SELECT event_id, user_id, email_address, occurred_at, previous_login_at, outcome, reason"
    " FROM userdebtor.plan_login WHERE run_id = :run_id ORDER BY outcome, occurred_at, event_id"
)
LOGIN_OUTCOMES = ["allowed", "reverify_required", "refused", "skipped"]


login_decisions = sql_plan(
    "login_decisions",
    rule="I2: each unprocessed login of an instant-account user, in occurred_at order: refused when no qualifying "
    "account lists the email any more, reverify_required after reverify_after_days, else allowed.",
    sql=SqlFile("instant_accounts/plan_logins.sql"),
    table="userdebtor.plan_login",
    counts="SELECT 'logins_' || o.outcome, count(p.event_id)"
    "  FROM unnest(CAST(ARRAY['allowed', 'reverify_required', 'refused', 'skipped'] AS text[])) AS o(outcome)"
    "  LEFT JOIN userdebtor.plan_login p ON p.outcome = o.outcome AND p.run_id = :run_id GROUP BY o.outcome",
    sample_rows=_LOGIN_SAMPLE,
    params=lambda run: {
        "default_role": run.config.instant_accounts.default_role,
        "cash_account_code": run.config.instant_accounts.cash_account_code,
        "excluded_codes": list(run.config.instant_accounts.excluded_account_codes),
        "reverify_after_days": run.config.instant_accounts.reverify_after_days,
    },
    switch=SWITCH, per_run=True, deps=[change_window, verified_tokens_applied],
)


def _reverify_logins(conn: Connection, run_id: str) -> list[ReverifyLogin]:
    rows = conn.execute(
        sa.text(
            "SELECT p.event_id, p.user_id, u.email_address, u.name"
            "  FROM userdebtor.plan_login p"
            "  JOIN web.login_event e ON e.event_id = p.event_id AND e.processed_at IS NULL"
            "  JOIN web.app_user u ON u.user_id = p.user_id"
            " WHERE p.run_id = :run_id AND p.outcome = 'reverify_required'"
            " ORDER BY p.occurred_at, p.event_id"
            " FOR UPDATE OF e"
        ),
        {"run_id": run_id},
    ).mappings().all()
    return [ReverifyLogin(**row) for row in rows]


def _logins_would(conn: Connection, run_id: str) -> dict[str, Any]:
    params = {"run_id": run_id}
    return {**pair_counts(conn, "SELECT outcome, count(*) FROM userdebtor.plan_login WHERE run_id = :run_id"
                                " GROUP BY outcome", params),
            "decisions": dg.MetadataValue.md(sample(conn, _LOGIN_SAMPLE, params))}


@load(
    rule="I2: applies the login decisions in one transaction: last_login_at, Expired with a reverify email "
    "(password untouched), Deactivated, and each login event stamped processed.",
    deps=[login_decisions], switch=SWITCH, would=_logins_would,
)
def login_decisions_applied(run: LoadRun) -> dict[str, Any]:
    params = {"run_id": run.run_id}
    with run.web.engine.begin() as conn:
        # Emails first, while the events are locked and still unprocessed; the stamps follow in this transaction.
        emails = sum(queue_reverify_email(conn, login, run.config) for login in _reverify_logins(conn, run.run_id))
        counts = LOGINS_SQL.run(conn, params)
        preview = sample(conn, _LOGIN_SAMPLE, params)
    return {**{name: counts[name] for name in LOGINS_SQL.reads}, "reverify_emails_queued": emails,
            "decisions": dg.MetadataValue.md(preview)}


assets = [registration_decisions, instant_accounts_opened, verified_tokens_applied, login_decisions,
          login_decisions_applied]
