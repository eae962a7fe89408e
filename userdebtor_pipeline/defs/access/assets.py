"""A1 proof of email: one account_link_verify email per waiting user and account set, with a verify_email link.

The plans (U1, U2, M1, O2) put an email match of a user whose address is not proven into plan_link_proof
and set the record aside; this asset asks the person to prove the address. I3 applies the followed link
before the next run's web users are staged, and that run's plans make the links.
"""

from __future__ import annotations

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from userdebtor_pipeline.defs.common import Stopwatch, counts_metadata, markdown_table
from userdebtor_pipeline.defs.contacts.plan import contact_links_plan
from userdebtor_pipeline.defs.orders.assets import order_history_plan
from userdebtor_pipeline.defs.resources import RunOptions, SyncSettings, WebDatabase
from userdebtor_pipeline.defs.user_debtor.plan import debtors_to_create, users_to_create
from userdebtor_pipeline.email import issue_token, queue_email, token_link
from userdebtor_pipeline.paths import read_sql
from userdebtor_pipeline.settings import Settings

LINK_VERIFY_TEMPLATE = "account_link_verify"


def queue_link_proofs(conn: Connection, config: Settings) -> list[dict]:
    """Queue the account_link_verify emails not yet queued, each with a fresh verify_email token, in `conn`'s
    transaction: the token exists exactly when its email does. Returns the users asked."""
    hours = config.instant_accounts.token_ttl_hours
    waiting = conn.execute(sa.text(read_sql("access/link_proofs_to_send.sql"))).mappings().all()
    for user in waiting:  # proportional to the users asked this run, each asked once per account set
        token = issue_token(conn, int(user["user_id"]), "verify_email", hours)
        queue_email(
            conn,
            template=LINK_VERIFY_TEMPLATE,
            to_address=user["email_address"].strip(),
            context={
                "link": token_link(config.email.site_url, "verify_email", token),
                "name": user["name"],
                "email_address": user["email_address"].strip(),
                "accounts": list(user["accounts"]),
                "expires_hours": hours,
                "site_url": config.email.site_url,
            },
            dedupe_key=user["dedupe_key"],
            templates_dir=config.email.templates_dir,
        )
    return [{"user_id": u["user_id"], "accounts": ", ".join(u["accounts"])} for u in waiting]


@dg.asset(
    group_name="load",
    deps=[debtors_to_create, users_to_create, contact_links_plan, order_history_plan],
    description="A1: users whose email matched ERP accounts but whose address is not proven get one "
    "account_link_verify email per account set; nothing is linked until its link is followed.",
)
def link_proofs_requested(
    web: WebDatabase, settings: SyncSettings, run_options: RunOptions
) -> dg.MaterializeResult:
    watch = Stopwatch()
    with web.engine.begin() as conn:
        waiting = conn.execute(
            sa.text("SELECT count(DISTINCT user_id) FROM userdebtor.plan_link_proof")
        ).scalar_one()
        if run_options.dry_run:
            asked: list[dict] = []
        else:
            asked = queue_link_proofs(conn, settings.get())
    return dg.MaterializeResult(
        metadata=counts_metadata(
            {"users_waiting_for_proof": int(waiting), "verify_emails_queued": len(asked)},
            watch.seconds,
            dry_run=run_options.dry_run,
            sample=dg.MetadataValue.md(markdown_table(asked)),
        )
    )


assets = [link_proofs_requested]
