"""The welcome email of a new web user (U2, M1): a one-time set-password link, never a password."""

from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import Connection

from userdebtor_pipeline.email import issue_token, queue_email, token_link
from userdebtor_pipeline.settings import Settings

WELCOME_TEMPLATE = "user_debtor_new_user"


def queue_welcome_email(conn: Connection, config: Settings, user: Mapping[str, Any]) -> bool:
    """A one-time set-password token and the welcome email of one new user, in the transaction that made the user.

    Returns whether the email is held for the website's approval of the user (U3).
    """
    user_id = int(user["user_id"])
    ttl_hours = config.instant_accounts.token_ttl_hours
    token = issue_token(conn, user_id, "set_password", ttl_hours)
    held = user["status"] == "PendingApproval"
    queue_email(
        conn,
        template=WELCOME_TEMPLATE,
        to_address=user["email_address"],
        context={
            "link": token_link(config.email.site_url, "set_password", token),
            "name": user["name"],
            "email_address": user["email_address"],
            "account_code": user["default_customer_code"],
            "account_name": user["account_name"],
            "expires_hours": ttl_hours,
            "site_url": config.email.site_url,
        },
        dedupe_key=f"new_user:{user_id}",
        templates_dir=config.email.templates_dir,
        status="held" if held else "queued",
        hold_for_user_id=user_id if held else None,
    )
    return held
