"""Plans of M1/M2, rebuilt by every run in schema userdebtor: contact users and links (M3: customer_mirror.py)."""

from typing import Any

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from userdebtor_pipeline.defs.common import (
    EMAIL_PATTERN,
    Stopwatch,
    change_window,
    counts_metadata,
    mark_plan,
    plan_mark,
    run_sql,
    sample,
)
from userdebtor_pipeline.defs.extract.assets import change_window as change_window_asset
from userdebtor_pipeline.defs.extract.assets import stage_users_the_loads_wrote, stage_what_the_loads_wrote
from userdebtor_pipeline.defs.resources import ErpDatabase, SyncSettings, WebDatabase
from userdebtor_pipeline.defs.sql_file import SqlFile

GROUP = "plan"
CONTACT_PLAN = "contact_links_plan"  # the plan asset, and the name of its mark
# The loads of U1, U2, U4 and U6: the contact and mirror plans come after them (A3). None of them is held by the
# change guard alone (U7 holds their writes, not the run), so a hold there does not hold these plans.
USER_DEBTOR_LOADS = [dg.AssetKey(name) for name in
                     ("erp_debtors_created", "web_users_created", "field_changes_applied", "link_exits_applied")]
# New users are made, with their token and welcome email, this many to a transaction.
USERS_PER_TRANSACTION = 2_000
PLAN_SQL = SqlFile("contacts/plan_contact_links.sql",
                   reads=("emails_changed_since_last_run", "changes_since_last_run_at_least"))
# A changed-since plan first lists the addresses whose links may have changed ...
SCOPE_STEPS = ("emails_to_plan", "emails_changed_since_last_run", "emails_to_plan_analyzed")
# ... whose lookups these indexes serve; a plan of every address joins whole tables and has no use for them.
LOOKUP_INDEX_STEPS = ("users_to_plan_indexed", "contact_accounts_wanted_indexed")
# ... and plans every address when more users and contacts changed, or that list is longer, than this share of the
# users and this many (the run after a first load of a million users, say): one pass over every table then costs
# less than a lookup for each address, or than making the list.
PLAN_ALL_ABOVE_SHARE = 0.2
PLAN_ALL_ABOVE_COUNT = 10_000
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


# What changed since the contact plan's mark, of what the plan reads, is only the users M1's load made in this run,
# each as it was made (its stamp is the one it was made with): no contact, account, debtor, address taken away, nor
# any other user. The mark is bound as a value, so that each table is read through its change_seq index.
_ONLY_USERS_M1_MADE_SINCE_SQL = sa.text("""
SELECT NOT EXISTS (SELECT 1 FROM userdebtor.web_user u
                    WHERE u.change_seq > :mark
                      AND NOT EXISTS (SELECT 1 FROM userdebtor.made_user m
                                       WHERE m.user_id = u.user_id AND m.rule = 'M1'
                                         AND m.made_at >= (SELECT started_at FROM userdebtor.sync_run
                                                            WHERE run_id = :run_id)
                                         AND m.made_at = u.updated_at))
   AND NOT EXISTS (SELECT 1 FROM userdebtor.erp_contact c WHERE c.change_seq > :mark)
   AND NOT EXISTS (SELECT 1 FROM userdebtor.erp_contact_account ca WHERE ca.change_seq > :mark)
   AND NOT EXISTS (SELECT 1 FROM userdebtor.erp_debtor d WHERE d.change_seq > :mark)
   AND NOT EXISTS (SELECT 1 FROM userdebtor.contact_email_touched t WHERE t.change_seq > :mark)
""")


def move_contact_plan_mark_past_its_users(conn: Connection, run_id: str) -> bool:
    """A3, after M1's load: the users it made are staged, and when they are all that changed of what the contact plan
    reads since its mark, the mark moves past them, so the next run does not plan their addresses again (after a
    first load, 1.2 million users made: every address planned again, 23 s at a million). Anything else changed
    since (the website's own edit of a user, a user M2 deactivated) leaves the mark where it was. Whether it moved.
    """
    stage_users_the_loads_wrote(conn)
    mark = plan_mark(conn, run_id, CONTACT_PLAN)
    if mark is None or not conn.execute(_ONLY_USERS_M1_MADE_SINCE_SQL, {"mark": mark, "run_id": run_id}).scalar():
        return False
    mark_plan(conn, run_id, CONTACT_PLAN)
    return True


@dg.asset(
    group_name=GROUP,
    deps=[change_window_asset, *USER_DEBTOR_LOADS],
    description="M1/M2: web users to create for contact emails, user_customer links to add, and integration-made "
    "links no contact needs any more; contacts with a malformed email set aside. Changed-since: only the "
    "addresses whose contacts, accounts or users changed since the last good run.",
)
def contact_links_plan(context: dg.AssetExecutionContext, erp: ErpDatabase, web: WebDatabase,
                       settings: SyncSettings) -> dg.MaterializeResult:
    watch = Stopwatch()
    config = settings.get()
    with web.engine.begin() as conn:
        # A3: what the loads before it wrote (U4's changes to users and debtors, U2's users) is staged first, so the
        # plan sees it before its mark: the next run does not plan those addresses again (20,000 of them after a
        # reconcile that changed 1% of a million pairs).
        restaged = stage_what_the_loads_wrote(conn, erp.engine, settings, context.run_id)
        window = change_window(conn, context.run_id, CONTACT_PLAN)
        params = {
            "full": window.full,
            "since": window.since,
            "email_pattern": EMAIL_PATTERN,
            "cash_account_code": config.instant_accounts.cash_account_code,
            "batch_size": USERS_PER_TRANSACTION,
        }
        cap = int(max(PLAN_ALL_ABOVE_COUNT, PLAN_ALL_ABOVE_SHARE * _users_estimate(conn)))
        changed, every_address = 0, "full reconcile" if window.full else None
        if every_address is None and _changes_at_least(conn, params | {"cap": cap + 1}) > cap:
            every_address = f"more than {cap:,} users and contacts changed"
        if every_address is None:
            changed = PLAN_SQL.run(conn, params, only=SCOPE_STEPS)["emails_changed_since_last_run"]
            if changed > cap:
                every_address = f"more than {cap:,} addresses changed"
        else:
            PLAN_SQL.run(conn, params, only=("emails_to_plan",))  # the plan's steps name the list, empty here
        PLAN_SQL.run(conn, params | {"full": every_address is not None},
                     skip=(*SCOPE_STEPS, "changes_since_last_run_at_least",
                           *(LOOKUP_INDEX_STEPS if every_address else ())))
        run_sql(conn, "contacts/mark_links_other_rules_need.sql")
        counts = contact_plan_counts(conn)
        samples = contact_plan_samples(conn)
    return dg.MaterializeResult(metadata=counts_metadata(
        counts | restaged, watch.seconds, **samples, mode="full" if window.full else "changed_since",
        since_seq=dg.MetadataValue.int(window.since),
        addresses_changed=dg.MetadataValue.int(changed),
        planned=f"every address ({every_address})" if every_address else "the addresses that changed",
    ))


def _changes_at_least(conn: Connection, params: dict[str, Any]) -> int:
    """Users and contacts changed since the last good run, counted up to params["cap"]."""
    return int(PLAN_SQL.execute(conn, "changes_since_last_run_at_least", params).scalar_one())


def _users_estimate(conn: Connection) -> int:
    """The web's user count as the planner's statistics have it: no count of a million rows for a ratio."""
    return int(conn.execute(sa.text(
        "SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = 'web.app_user'::regclass")).scalar() or 0)
