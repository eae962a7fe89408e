"""Plans of M1-M3, rebuilt by every run in schema userdebtor: contact users and links, and the CSS customer mirror."""

from typing import Any

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from userdebtor_pipeline.defs.common import (
    EMAIL_PATTERN,
    Stopwatch,
    counts_metadata,
    run_sql,
    sample,
)
from userdebtor_pipeline.defs.common import change_window as read_change_window
from userdebtor_pipeline.defs.extract.assets import change_window, stage_what_the_loads_wrote
from userdebtor_pipeline.defs.resources import ErpDatabase, SyncSettings, WebDatabase
from userdebtor_pipeline.defs.sql_file import SqlFile

GROUP = "plan"
# The loads of U1, U2, U4 and U6: the contact and mirror plans come after them (A3). None of them is held by the
# change guard alone (U7 holds their writes, not the run), so a hold there does not hold these plans.
USER_DEBTOR_LOADS = [dg.AssetKey(name) for name in
                     ("erp_debtors_created", "web_users_created", "field_changes_applied", "link_exits_applied")]
# New users are made, with their token and welcome email, this many to a transaction.
USERS_PER_TRANSACTION = 2_000


REPORTS_SQL = SqlFile("contacts/reports.sql", reads=(
    "contact_plan_counts", "customer_plan_counts", "customer_plan",
    "users_to_create", "links_to_add", "links_to_remove", "contacts_set_aside"))


def report_queries() -> dict[str, str]:
    """The plan's counts and samples, by name, as the UI and the dry run show them."""
    return {name: REPORTS_SQL.statement(name) for name in REPORTS_SQL.reads}


def contact_plan_counts(conn: Connection) -> dict[str, int]:
    row = conn.execute(sa.text(report_queries()["contact_plan_counts"])).mappings().one()
    return {name: int(value) for name, value in row.items()}


def customer_plan_counts(conn: Connection) -> dict[str, int]:
    row = conn.execute(sa.text(report_queries()["customer_plan_counts"])).mappings().one()
    return {name: int(value) for name, value in row.items()}


def contact_plan_samples(conn: Connection) -> dict[str, Any]:
    queries = report_queries()
    return {
        f"{name}_sample": dg.MetadataValue.md(sample(conn, queries[name]))
        for name in ("users_to_create", "links_to_add", "links_to_remove", "contacts_set_aside")
    }


def customer_plan_sample(conn: Connection) -> dict[str, Any]:
    return {"customer_plan_sample": dg.MetadataValue.md(sample(conn, report_queries()["customer_plan"]))}


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


@dg.asset(
    group_name=GROUP,
    # A3: after the user/debtor loads, from what they wrote: the ERP values U4 sent, the links U1/U2 made and U6
    # suspended are mirrored (or retired) in the same run.
    deps=[change_window, *USER_DEBTOR_LOADS],
    description="M3: web.customer rows of CSS accounts (and accounts with an active user-debtor link) to create "
    "or refresh, and rows to set Inactive because their debtor left the scope or the ERP.",
)
def customer_mirror_plan(context: dg.AssetExecutionContext, erp: ErpDatabase, web: WebDatabase,
                         settings: SyncSettings) -> dg.MaterializeResult:
    watch = Stopwatch()
    with web.engine.begin() as conn:
        restaged = stage_what_the_loads_wrote(conn, erp.engine, settings)
        window = read_change_window(conn, context.run_id)
        run_sql(conn, "contacts/plan_customer_mirror.sql", {"full": window.full, "since": window.since})
        counts = customer_plan_counts(conn)
        plan_sample = customer_plan_sample(conn)
    return dg.MaterializeResult(
        metadata=counts_metadata(
            counts | restaged, watch.seconds, mode="full" if window.full else "changed_since",
            since_seq=dg.MetadataValue.int(window.since), **plan_sample,
        )
    )
