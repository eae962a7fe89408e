"""Queue emails in web.email_outbox, in the caller's transaction (rule E1), and release held ones (U3).

An email is queued in the same transaction as the change that caused it: if the change rolls back, so does
the email, and if the change commits, the email is certain to go out. `dedupe_key` names the event, so a
rerun that meets the same event again queues nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from userdebtor_pipeline.db import TextArray
from userdebtor_pipeline.email.render import EmailRenderer

if TYPE_CHECKING:
    from userdebtor_pipeline.settings import EmailSettings

_log = logging.getLogger(__name__)

WARNING_TEMPLATE = "user_debtor_warning"
QUEUE_STATUSES = ("queued", "held")

# Short names of the rules of RULES.md, shown beside the rule number in a warning.
RULE_TITLES: dict[str, str] = {
    "U1": "web to ERP, create",
    "U2": "ERP to web, create",
    "U3": "approval",
    "U4": "updates, three-way",
    "U5": "email collision",
    "U6": "ERP delete",
    "U7": "safety",
    "C1": "code conversions, order of processing",
    "C2": "code conversions, rewrite",
    "C3": "code conversions, merge",
    "C4": "code conversions, skipped or failed",
    "M1": "contacts acting for several accounts",
    "M2": "contact links removed",
    "M3": "CSS customer accounts",
    "I1": "instant account registration",
    "I2": "instant account login",
    "I3": "instant account verification",
    "O1": "order history",
    "O2": "in-store orders",
    "E1": "email",
}

# What a person should do, by rule, when the caller does not say something more specific.
RULE_ACTIONS: dict[str, str] = {
    "U1": "Correct the user's email address on the website. The next sync run creates the ERP account "
    "once the address is valid.",
    "U2": "Check the debtor's email in the ERP. If the address belongs to a web user who is already linked "
    "to another account, decide which account the login belongs to and correct the email in the ERP or on "
    "the website; the next sync run picks up the change.",
    "U3": "Approve or decline the new login on the website. The welcome email goes out on the next sync run "
    "after approval.",
    "U4": "Compare the values shown, decide which is right and correct it in the ERP or on the website. "
    "With conflict_policy 'hold', neither side changes until you do.",
    "U5": "Another web user already logs in with this address. Correct the debtor's email in the ERP, or "
    "change or retire the other web login, then let the next sync run apply it.",
    "U6": "Confirm whether the ERP account was meant to be deleted or taken out of the filter's scope. "
    "If not, restore it in the ERP; if so, review the web user's access.",
    "U7": "Review the counts. If the changes are expected, run the sync once with the guard lifted; "
    "otherwise fix the data at its source first. Nothing was written.",
    "C1": "Check the conversion in the ERP and the web's Customer Conversion table, correct the accounts on "
    "the web by hand if needed, and mark the row as dealt with.",
    "C4": "Check the conversion in the ERP. A conversion whose old code the web never had needs no action; "
    "a cycle or a repeated code needs the ERP's conversion records corrected.",
    "M1": "Check the contact's email and accounts in the ERP CRM; correct them there and the next sync run "
    "follows.",
    "I1": "Check that the person's email is on an active contact or the account email in the ERP, then ask "
    "them to register again.",
    "I2": "Check the person's accounts and contacts in the ERP; if they should have access, restore the "
    "contact or email there and reactivate the login on the website.",
    "E1": "Check the email settings (transport, SMTP server, from address) and the address of the recipient. "
    "Failed emails can be requeued by setting their status back to 'queued' with attempts 0.",
}
RULE_ACTIONS["C2"] = RULE_ACTIONS["C3"] = RULE_ACTIONS["C1"]
RULE_ACTIONS["M2"] = RULE_ACTIONS["M3"] = RULE_ACTIONS["M1"]
RULE_ACTIONS["I3"] = RULE_ACTIONS["I2"]
_DEFAULT_ACTION = (
    "Check the record named above in the ERP and on the website, correct whichever side is wrong, and let "
    "the next sync run pick it up."
)


@dataclass(frozen=True)
class OutgoingEmail:
    """One email to queue: its recipient, the template's values, and the event that makes it unique."""

    to_address: str
    context: Mapping[str, Any]
    dedupe_key: str
    status: str = "queued"
    hold_for_user_id: int | None = None  # with status "held": released once this user is Active (U3)


# One statement per batch: the rendered rows arrive as arrays, in order, and an event queued before is skipped.
_QUEUE_SQL = sa.text(
    """
WITH queued AS (
    INSERT INTO web.email_outbox
           (template, to_address, subject, body_text, body_html, dedupe_key, status, attempts, created_at)
    SELECT :template, e.to_address, e.subject, e.body_text, e.body_html, e.dedupe_key, e.status, 0, now()
      FROM unnest(CAST(:to_address AS text[]), CAST(:subject AS text[]), CAST(:body_text AS text[]),
                  CAST(:body_html AS text[]), CAST(:dedupe_key AS text[]), CAST(:status AS text[]))
           WITH ORDINALITY AS e(to_address, subject, body_text, body_html, dedupe_key, status, position)
     ORDER BY e.position
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING email_id, dedupe_key
), held AS (
    INSERT INTO userdebtor.email_hold (email_id, user_id)
    SELECT q.email_id, h.user_id
      FROM queued q
      JOIN unnest(CAST(:hold_key AS text[]), CAST(:hold_user AS bigint[])) AS h(dedupe_key, user_id)
        ON h.dedupe_key = q.dedupe_key
)
SELECT email_id, dedupe_key FROM queued ORDER BY email_id
"""
)


def _checked(template: str, email: OutgoingEmail) -> None:
    if email.status not in QUEUE_STATUSES:
        raise ValueError(f"an email is queued with status 'queued' or 'held', not {email.status!r}")
    if not email.to_address or not email.to_address.strip():
        raise ValueError(f"email {template!r} ({email.dedupe_key}) has no recipient")
    if not email.dedupe_key:
        raise ValueError(f"email {template!r} has no dedupe_key")


def queue_emails(
    conn: Connection, *, template: str, emails: Sequence[OutgoingEmail], templates_dir: str | Path | None
) -> dict[str, int]:
    """Render a batch of emails of one template and queue them in one statement; email_id by dedupe_key.

    The template compiles once for the batch. Events queued before are left out of the answer (nothing is
    queued twice). The caller's transaction is used and never committed here.
    """
    for email in emails:
        _checked(template, email)
    if not emails:
        return {}
    # Rendered before the insert so that a template error leaves no half-made row; it also fails the
    # caller's transaction, so the change and its email stay together (E1).
    renderer = EmailRenderer(template, templates_dir)
    rendered = [renderer.render(email.context) for email in emails]
    holds = [e for e in emails if e.status == "held" and e.hold_for_user_id is not None]
    queued = conn.execute(
        _QUEUE_SQL,
        {
            "template": template,
            "to_address": TextArray(e.to_address.strip() for e in emails),
            "subject": TextArray(r.subject for r in rendered),
            "body_text": TextArray(r.body_text for r in rendered),
            "body_html": TextArray(r.body_html for r in rendered),
            "dedupe_key": TextArray(e.dedupe_key for e in emails),
            "status": TextArray(e.status for e in emails),
            "hold_key": TextArray(e.dedupe_key for e in holds),
            "hold_user": [e.hold_for_user_id for e in holds],
        },
    ).all()
    if len(queued) < len(emails):
        _log.debug("%s email(s) %s not queued again: their event was queued before", len(emails) - len(queued),
                   template)
    if queued:
        _log.info("queued %s email(s) %s", len(queued), template)
    return {key: int(email_id) for email_id, key in queued}


def queue_email(
    conn: Connection,
    *,
    template: str,
    to_address: str,
    context: Mapping[str, Any],
    dedupe_key: str,
    templates_dir: str | Path | None,
    status: str = "queued",
    hold_for_user_id: int | None = None,
) -> int | None:
    """Render and queue one email; the new email_id, or None when `dedupe_key` was queued before.

    `status="held"` with `hold_for_user_id` keeps the email until that user is Active (U3,
    see release_held_emails). The caller's transaction is used and never committed here.
    """
    email = OutgoingEmail(to_address, context, dedupe_key, status, hold_for_user_id)
    return queue_emails(conn, template=template, emails=[email], templates_dir=templates_dir).get(dedupe_key)


def email_queued(conn: Connection, dedupe_key: str) -> bool:
    """Whether an email for this event exists already (so a caller can skip making its token)."""
    return bool(
        conn.execute(
            sa.text("SELECT EXISTS (SELECT 1 FROM web.email_outbox WHERE dedupe_key = :k)"), {"k": dedupe_key}
        ).scalar()
    )


# One statement: the emails to release and their hold rows change together, whatever else runs meanwhile.
_RELEASE_SQL = """
WITH released AS (
    UPDATE web.email_outbox AS o
       SET status = 'queued'
      FROM userdebtor.email_hold AS h
      JOIN web.app_user AS u ON u.user_id = h.user_id
     WHERE o.email_id = h.email_id
       AND o.status = 'held'
       AND u.status = 'Active'
    RETURNING o.email_id
), floor_lowered AS (
    -- delivery reads the outbox from its floor (delivery.py): a released email may lie below it
    UPDATE userdebtor.watermark AS w
       SET seq = least(w.seq, (SELECT min(email_id) FROM released)), updated_at = now()
     WHERE w.name = 'email_outbox' AND EXISTS (SELECT 1 FROM released)
), unheld AS (
    DELETE FROM userdebtor.email_hold AS h
     USING released AS r
     WHERE h.email_id = r.email_id
    RETURNING h.email_id
)
SELECT count(*) FROM unheld
"""

# Hold rows whose email is gone or no longer held (changed by hand) hold nothing; they are dropped.
_STALE_HOLDS_SQL = """
DELETE FROM userdebtor.email_hold AS h
 WHERE NOT EXISTS (
       SELECT 1 FROM web.email_outbox AS o WHERE o.email_id = h.email_id AND o.status = 'held')
"""


def release_held_emails(conn: Connection) -> int:
    """Queue the held emails whose user is now Active (U3); the number released."""
    released = int(conn.execute(sa.text(_RELEASE_SQL)).scalar_one())
    conn.execute(sa.text(_STALE_HOLDS_SQL))
    if released:
        _log.info("released %s held email(s) of users now Active", released)
    return released


def _setting(settings_email: Any, name: str) -> Any:
    if settings_email is None:
        return None
    if isinstance(settings_email, Mapping):
        return settings_email.get(name)
    return getattr(settings_email, name, None)


def warning_email(
    *,
    settings_email: EmailSettings | Mapping[str, Any] | None,
    warning_to: str,
    rule: str,
    kind: str,
    subject_key: str,
    summary: str,
    details: Mapping[str, str | None],
    action: str | None = None,
    run_id: str | None = None,
) -> OutgoingEmail:
    """The `user_debtor_warning` of one event, with dedupe_key `warning:<kind>:<subject_key>`.

    `subject_key` names the record (e.g. 'debtor:C10001'); `details` are its relevant fields.
    """
    context = {
        "rule": rule,
        "rule_title": RULE_TITLES.get(rule),
        "kind": kind,
        "subject_key": subject_key,
        "summary": summary,
        "details": dict(details),
        "action": action or RULE_ACTIONS.get(rule, _DEFAULT_ACTION),
        "run_id": run_id,
        "site_url": _setting(settings_email, "site_url"),
    }
    return OutgoingEmail(warning_to, context, f"warning:{kind}:{subject_key}")


def queue_warnings(
    conn: Connection,
    *,
    settings_email: EmailSettings | Mapping[str, Any] | None,
    warning_to: str | None,
    events: Sequence[Mapping[str, Any]],
    templates_dir: str | Path | None = None,
) -> dict[str, int]:
    """Queue the warning of each event (the fields of warning_email), each once, rendered and inserted as one batch;
    email_id by dedupe_key of those new. With no `warning_to` (the setting left empty) nothing is queued.
    `templates_dir` falls back to the setting."""
    if not events or not warning_to or not warning_to.strip():
        return {}
    emails = [warning_email(settings_email=settings_email, warning_to=warning_to, **event) for event in events]
    if templates_dir is None:
        templates_dir = _setting(settings_email, "templates_dir")
    return queue_emails(conn, template=WARNING_TEMPLATE, emails=emails, templates_dir=templates_dir)


def queue_warning(
    conn: Connection,
    *,
    settings_email: EmailSettings | Mapping[str, Any] | None,
    warning_to: str | None,
    templates_dir: str | Path | None = None,
    **event: Any,
) -> int | None:
    """Queue one event's warning once (see queue_warnings); its email_id, or None when it was queued before."""
    queued = queue_warnings(conn, settings_email=settings_email, warning_to=warning_to, events=[event],
                            templates_dir=templates_dir)
    return next(iter(queued.values()), None)
