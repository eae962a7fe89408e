"""Plans of M1/M2, rebuilt by every run in schema userdebtor: contact users and links (M3: customer_mirror.py)."""

from typing import Any

import dagster as dg
from sqlalchemy.engine import Connection

from userdebtor_pipeline.defs.common import (
    EMAIL_PATTERN,
    Stopwatch,
    counts_metadata,
    run_sql,
    sample,
)
from userdebtor_pipeline.defs.extract.assets import change_window
from userdebtor_pipeline.defs.resources import SyncSettings, WebDatabase
from userdebtor_pipeline.defs.sql_file import SqlFile

GROUP = "plan"
# The loads of U1, U2, U4 and U6: the contact and mirror plans come after them (A3). None of them is held by the
# change guard alone (U7 holds their writes, not the run), so a hold there does not hold these plans.
USER_DEBTOR_LOADS = [dg.AssetKey(name) for name in
                     ("erp_debtors_created", "web_users_created", "field_changes_applied", "link_exits_applied")]
# New users are made, with their token and welcome email, this many to a transaction.
USERS_PER_TRANSACTION = 2_000
# The plan's counts and samples, as the UI and the dry run show them.
REPORTS_SQL = SqlFile("contacts/reports.sql",
                      reads=("contact_plan_counts", "users_to_create", "links_to_add", "links_to_remove",
                             "contacts_set_aside"))


def contact_plan_counts(conn: Connection) -> dict[str, int]:
    row = REPORTS_SQL.execute(conn, "contact_plan_counts").mappings().one()
    return {name: int(value) for name, value in row.items()}


def contact_plan_samples(conn: Connection) -> dict[str, Any]:
    return {
        f"{name}_sample": dg.MetadataValue.md(sample(conn, REPORTS_SQL.statement(name)))
        for name in ("users_to_create", "links_to_add", "links_to_remove", "contacts_set_aside")
    }


@dg.asset(
    group_name=GROUP,
    deps=[change_window, *USER_DEBTOR_LOADS],
    description="M1/M2: web users to create for contact emails, user_customer links to add, and integration-made "
    "links no contact needs any more; contacts with a malformed email set aside.",
)
def contact_links_plan(web: WebDatabase, settings: SyncSettings) -> dg.MaterializeResult:
    watch = Stopwatch()
    config = settings.get()
    with web.engine.begin() as conn:
        run_sql(
            conn,
            "contacts/plan_contact_links.sql",
            {
                "email_pattern": EMAIL_PATTERN,
                "cash_account_code": config.instant_accounts.cash_account_code,
                "batch_size": USERS_PER_TRANSACTION,
            },
        )
        run_sql(conn, "contacts/mark_links_other_rules_need.sql")
        counts = contact_plan_counts(conn)
        samples = contact_plan_samples(conn)
    return dg.MaterializeResult(metadata=counts_metadata(counts, watch.seconds, **samples))
