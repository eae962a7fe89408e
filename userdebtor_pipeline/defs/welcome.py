"""The welcome emails of new web users (U2, M1): a one-time set-password link each, never a password."""

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Connection

from userdebtor_pipeline.email import OutgoingEmail, issue_tokens, queue_emails, token_link
from userdebtor_pipeline.settings import Settings

WELCOME_TEMPLATE = "user_debtor_new_user"


def queue_welcome_emails(conn: Connection, config: Settings, users: Sequence[Mapping[str, Any]]) -> int:
    """One-time set-password tokens and the welcome emails of a batch of new users, in the transaction that made
    them: the tokens in one statement, the emails rendered from one compiled template and queued in one more.

    Returns how many of the emails are held for the website's approval of their user (U3).
    """
    ttl_hours = config.instant_accounts.token_ttl_hours
    site_url = config.email.site_url
    tokens = issue_tokens(conn, [int(user["user_id"]) for user in users], "set_password", ttl_hours)
    emails = []
    for user in users:  # per user only the values of its email; the SQL around it is set-based
        user_id = int(user["user_id"])
        held = user["status"] == "PendingApproval"
        emails.append(OutgoingEmail(
            to_address=user["email_address"],
            context={
                "link": token_link(site_url, "set_password", tokens[user_id]),
                "name": user["name"],
                "email_address": user["email_address"],
                "account_code": user["default_customer_code"],
                "account_name": user["account_name"],
                "expires_hours": ttl_hours,
                "site_url": site_url,
            },
            dedupe_key=f"new_user:{user_id}",
            status="held" if held else "queued",
            hold_for_user_id=user_id if held else None,
        ))
    queue_emails(conn, template=WELCOME_TEMPLATE, emails=emails, templates_dir=config.email.templates_dir)
    return sum(email.status == "held" for email in emails)
