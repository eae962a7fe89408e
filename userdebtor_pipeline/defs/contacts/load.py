"""Loads of M1-M3: contact users and links written to the web, and the CSS customer mirror. Nothing in a dry run."""

from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from userdebtor_pipeline.defs.batches import in_transactions
from userdebtor_pipeline.defs.blocks import LoadRun, load
from userdebtor_pipeline.defs.common import markdown_table, run_sql
from userdebtor_pipeline.defs.contacts.customer_mirror import customer_mirror
from userdebtor_pipeline.defs.contacts.plan import (
    contact_links_plan,
    contact_plan_counts,
    contact_plan_samples,
    move_contact_plan_mark_past_its_users,
)
from userdebtor_pipeline.defs.problems import CONTACTS_SET_ASIDE, Problem, record_problems, record_set_aside_rows
from userdebtor_pipeline.defs.sql_file import SqlFile
from userdebtor_pipeline.defs.welcome import queue_welcome_emails
from userdebtor_pipeline.paths import read_sql
from userdebtor_pipeline.progress import Progress
from userdebtor_pipeline.settings import Settings

# Problem kinds this domain records, so that fixed contacts resolve their problem.
CONTACT_PROBLEM_KINDS = ["malformed_contact_email", "contact_email_unproven"]
RESOLVE_PROBLEMS_SQL = SqlFile("contacts/record_contact_problems.sql")
REMOVE_LINKS_SQL = SqlFile("contacts/remove_contact_links.sql",
                           reads=("user_accounts_removed", "contact_links_forgotten", "defaults_moved"))


@dataclass
class UsersCreated:
    users: int = 0
    emails_queued: int = 0
    emails_held: int = 0
    links_added: int = 0
    sample: list[dict[str, Any]] = field(default_factory=list)


def create_planned_users(engine: Engine, config: Settings, log: Any = None) -> UsersCreated:
    """M1: the planned users, batch by batch; each batch's users, tokens, emails and links commit together."""
    report = UsersCreated()
    with engine.connect() as conn:
        batches = conn.execute(sa.text(read_sql("contacts/user_batches.sql"))).scalars().all()
        planned = conn.execute(sa.text("SELECT count(*) FROM userdebtor.plan_contact_user_create")).scalar_one()
    create_users = sa.text(read_sql("contacts/create_contact_users.sql"))

    def create_batch(conn: Connection, batch: int) -> tuple[list[Any], int, int]:
        new_users = conn.execute(
            create_users, {"batch": batch, "role": config.user_debtor.default_role_for_new_users}
        ).mappings().all()
        held = queue_welcome_emails(conn, config, new_users)
        return new_users, held, _links_added(conn, batch)

    with Progress("web users created for contacts (M1)", planned, unit="users", log=log) as progress:
        for _, (new_users, held, links) in in_transactions(engine, batches, create_batch):
            report.emails_held += held
            report.emails_queued += len(new_users) - held
            report.links_added += links
            report.users += len(new_users)
            progress.advance(len(new_users))
            if len(report.sample) < 20:
                report.sample.extend(
                    {"user_id": u["user_id"], "email_address": u["email_address"], "status": u["status"],
                     "default_customer_code": u["default_customer_code"]}
                    for u in new_users[: 20 - len(report.sample)]
                )
    return report


def _links_added(conn: Connection, batch: int | None) -> int:
    return run_sql(conn, "contacts/add_contact_links.sql", {"batch": batch})["add_contact_links"]


def _deactivated_problem(user_id: int, email_address: str) -> Problem:
    return Problem(
        kind="contact_user_deactivated", rule="M2", subject=f"user:{user_id}", warn=True,
        detail=f"web user {user_id} ({email_address}) was made for CRM contacts, and no active contact acts for an "
        "account with its email any more, so it was Deactivated; it becomes Active again when a contact brings "
        "an account back",
    )


def _record_contact_problems(conn: Connection, config: Settings, run_id: str) -> dict[str, int]:
    """This plan's set-aside contacts recorded as problems (new or seen again); those fixed since, resolved."""
    recorded = record_set_aside_rows(conn, config, run_id, CONTACTS_SET_ASIDE)
    resolved = RESOLVE_PROBLEMS_SQL.run(conn, {"kinds": CONTACT_PROBLEM_KINDS})["record_contact_problems"]
    return {"problems_new": recorded["problems_new"], "problems_seen_again": recorded["problems_seen_again"],
            "problems_resolved": resolved}


def _contact_links_would(conn: Connection, run_id: str) -> dict[str, Any]:
    return {**contact_plan_counts(conn), **contact_plan_samples(conn)}


@load(
    rule="M1/M2 applied, after the accounts exist on the web: contact users created with a welcome email, "
    "user_customer links added and recorded, links no contact needs removed (kept where another rule needs them).",
    # After U2's load: a debtor's own email gets its user (and its link) from U2, and M1 then reuses it.
    deps=[contact_links_plan, customer_mirror, dg.AssetKey("web_users_created")], would=_contact_links_would,
)
def contact_links_applied(run: LoadRun) -> dict[str, Any]:
    config, web, context = run.config, run.web, run.context
    with web.engine.begin() as conn:
        # Again at load time: a load of this run (U2) may have made a link needed since the plan.
        run_sql(conn, "contacts/mark_links_other_rules_need.sql")
        removed = REMOVE_LINKS_SQL.run(conn)
        deactivated = conn.execute(
            sa.text("SELECT user_id, email_address FROM _contact_user_deactivated ORDER BY user_id")
        ).all()
        record_problems(conn, config, context.run_id, (_deactivated_problem(u.user_id, u.email_address)
                                                        for u in deactivated))
    created = create_planned_users(web.engine, config, context.log)
    with web.engine.begin() as conn:
        links_for_existing_users = _links_added(conn, None)
        reactivated = run_sql(conn, "contacts/reactivate_contact_users.sql")["reactivate_contact_users"]
        problems = _record_contact_problems(conn, config, context.run_id)
    with web.engine.begin() as conn:
        mark_moved = move_contact_plan_mark_past_its_users(conn, context.run_id)
    counts = {
        "users_created": created.users,
        "welcome_emails_queued": created.emails_queued,
        "welcome_emails_held": created.emails_held,
        "links_added": created.links_added + links_for_existing_users,
        "user_accounts_removed": removed["user_accounts_removed"],
        "contact_links_forgotten": removed["contact_links_forgotten"],
        "defaults_moved": removed["defaults_moved"],
        "users_deactivated": len(deactivated),
        "users_reactivated": reactivated,
        **problems,
        "plan_mark_moved_past_its_users": mark_moved,
        "users_created_sample": dg.MetadataValue.md(markdown_table(created.sample)),
    }
    return counts
