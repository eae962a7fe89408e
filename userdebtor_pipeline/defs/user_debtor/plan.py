"""The plan of the two-way sync: set-based SQL over the staged tables and the links' last-synced values.

Each plan is a table in schema `userdebtor` that a person can read in the UI (counts and a sample here)
and that the loads and tests query.
"""

from dataclasses import dataclass
from typing import Any

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from userdebtor_pipeline.defs.blocks import PlanRun, sql_plan
from userdebtor_pipeline.defs.common import EMAIL_PATTERN, change_window, mark_plan, sample
from userdebtor_pipeline.defs.extract.assets import change_window as change_window_asset
from userdebtor_pipeline.defs.extract.assets import stage_what_the_loads_wrote
from userdebtor_pipeline.defs.resources import RunOptions, SyncSettings, WebDatabase
from userdebtor_pipeline.defs.sql_file import SqlFile
from userdebtor_pipeline.defs.user_debtor.guard import record_guard_verdict
from userdebtor_pipeline.settings import Settings

GROUP = "plan"
SWITCH = "user_debtor.enabled"


@dataclass(frozen=True)
class UserDebtorPlan:
    """A U1-U6 plan: its asset (and the name of its mark), its SQL, the table of what it plans to do, and the rules
    whose records set aside and proofs asked for are its own."""

    name: str
    sql: SqlFile
    table: str
    rules: tuple[str, ...]


DEBTORS_TO_CREATE = UserDebtorPlan("debtors_to_create", SqlFile("user_debtor/plan_debtors_to_create.sql"),
                                   "userdebtor.plan_debtor_create", ("U1",))
USERS_TO_CREATE = UserDebtorPlan("users_to_create", SqlFile("user_debtor/plan_users_to_create.sql"),
                                 "userdebtor.plan_user_create", ("U2",))
# U4's plan again for the pairs linked later in the run: its plan table is kept, not reset.
FIELD_CHANGES = UserDebtorPlan("field_changes",
                               SqlFile("user_debtor/plan_field_changes.sql", reads=("reset", "reset_plan")),
                               "userdebtor.plan_field_change", ("U4", "U5"))
LINK_EXITS = UserDebtorPlan("link_exits", SqlFile("user_debtor/plan_link_exits.sql"), "userdebtor.plan_link_exit",
                            ("U6",))
# In run order: U2 reads U1's plan.
USER_DEBTOR_PLANS = (DEBTORS_TO_CREATE, USERS_TO_CREATE, FIELD_CHANGES, LINK_EXITS)
# Whether a link changed after the plan's window: U1 or U2 made it (their users and debtors are then staged
# again), or U6 ended or suspended it.
_LINKED_SINCE_SQL = sa.text("SELECT EXISTS (SELECT 1 FROM userdebtor.user_debtor_link WHERE change_seq > :since)")


def plan_parameters(config: Settings, run_id: str, since: int, dry_run: bool) -> dict[str, Any]:
    """Every value the plan SQL binds; settings only ever reach SQL as these bound values."""
    user_debtor = config.user_debtor
    return {
        "run_id": run_id,
        "since": since,
        "dry_run": dry_run,
        "roles": list(user_debtor.roles_requiring_erp_account),
        "email_pattern": EMAIL_PATTERN,
        "template_code": user_debtor.template_customer,
        "cash_code": config.instant_accounts.cash_account_code,
        "prefix": user_debtor.new_account_prefix,
        "width": user_debtor.account_number_width,
        "sync_fields": list(user_debtor.sync_fields),
        "policy": user_debtor.conflict_policy,
        "on_erp_delete": user_debtor.on_erp_delete,
        "after_loads": False,
    }


def plan_field_changes_after_the_loads(conn: Connection, erp: Engine, settings: SyncSettings, run_id: str,
                                       dry_run: bool) -> dict[str, int]:
    """A3: add to this run's U4 plan the pairs that changed after it was made (one home: the same SQL), and move the
    plan's mark past them.

    The users and debtors the loads wrote (U2's users, U1's debtors) are staged first when a link changed, so the
    pairs U1 and U2 made are compared now, against what the two systems hold: the next run does not compare them
    again (after a first load of a million pairs, 11.5 s of the next run). What changes later in the run (U4's own
    writes, M1's) is staged after the mark and looked at by the next run.
    """
    window = change_window(conn, run_id)
    restaged: dict[str, int] = {}
    if conn.execute(_LINKED_SINCE_SQL, {"since": window.upto}).scalar():
        restaged = stage_what_the_loads_wrote(conn, erp, settings, run_id)
    params = plan_parameters(settings.get(), run_id, window.upto, dry_run) | {"after_loads": True}
    FIELD_CHANGES.sql.run(conn, params, skip=FIELD_CHANGES.sql.reads)
    mark_plan(conn, run_id, FIELD_CHANGES.name)
    return restaged


def _parameters(run: PlanRun) -> dict[str, Any]:
    return plan_parameters(run.config, run.run_id, run.window.since, run.dry_run)


def _plan(plan: UserDebtorPlan, rule: str, counts: str, sample_rows: str, deps: list) -> dg.AssetsDefinition:
    """A U1-U6 plan over the change window, with the plan's bound values."""
    return sql_plan(plan.name, rule=rule, sql=plan.sql, table=plan.table, counts=counts, sample_rows=sample_rows,
                    params=_parameters, switch=SWITCH, deps=deps)


debtors_to_create = _plan(
    DEBTORS_TO_CREATE, "U1: web users of the configured roles that get a new ERP debtor (code reserved) or a"
    " matching one.",
    "SELECT action, count(*) FROM userdebtor.plan_debtor_create GROUP BY action",
    "SELECT user_id, action, dr_cust_code FROM userdebtor.plan_debtor_create ORDER BY user_id", [change_window_asset])
users_to_create = _plan(
    USERS_TO_CREATE, "U2/U3: in-scope ERP debtors that get a web user (with a welcome email) or are linked to"
    " one.",
    "SELECT action, count(*) FROM userdebtor.plan_user_create GROUP BY action", "SELECT dr_cust_code, action,"
    " user_id, pending_approval FROM userdebtor.plan_user_create ORDER BY dr_cust_code", [debtors_to_create])
field_changes = _plan(
    FIELD_CHANGES, "U4/U5: field changes each way for linked pairs, conflicts with base / web / ERP values.",
    "SELECT direction || CASE WHEN is_conflict THEN"
    " '_conflict' ELSE '' END, count(*) FROM userdebtor.plan_field_change GROUP BY 1", "SELECT link_id,"
    " dr_cust_code, field, direction, is_conflict, base_value, web_value, erp_value FROM userdebtor.plan_field_change"
    " ORDER BY is_conflict DESC, link_id, field", [change_window_asset])
link_exits = _plan(
    LINK_EXITS, "U6: linked debtors deleted in the ERP or out of the filter's scope (and back in).",
    "SELECT action, count(*) FROM userdebtor.plan_link_exit GROUP BY action", "SELECT link_id, user_id,"
    " dr_cust_code, action, deactivate_user FROM userdebtor.plan_link_exit ORDER BY link_id", [change_window_asset])


@dg.asset(
    group_name=GROUP,
    deps=[debtors_to_create, users_to_create, field_changes, link_exits],
    description="The whole user/debtor plan in one view: what each load would do and what was set aside.",
)
def user_debtor_plan(context: dg.AssetExecutionContext, web: WebDatabase, settings: SyncSettings,
                     run_options: RunOptions) -> dg.MaterializeResult:
    with web.engine.begin() as conn:
        guard = record_guard_verdict(conn, context.run_id, settings.get(), run_options.lift_change_guard)
        kinds = conn.execute(
            sa.text(
                "SELECT 'debtor_' || action, count(*) FROM userdebtor.plan_debtor_create GROUP BY action"
                " UNION ALL SELECT 'user_' || action, count(*) FROM userdebtor.plan_user_create GROUP BY action"
                " UNION ALL SELECT 'fields_' || direction, count(*) FROM userdebtor.plan_field_change"
                " GROUP BY direction"
                " UNION ALL SELECT 'conflicts', count(*) FROM userdebtor.plan_field_change WHERE is_conflict"
                " UNION ALL SELECT 'link_' || action, count(*) FROM userdebtor.plan_link_exit GROUP BY action"
                " UNION ALL SELECT 'set_aside_' || kind, count(*) FROM userdebtor.plan_set_aside GROUP BY kind"
            )
        ).all()
        set_aside = sample(
            conn, "SELECT rule, kind, subject, detail FROM userdebtor.plan_set_aside ORDER BY rule, kind, subject"
        )
    return dg.MaterializeResult(
        metadata={
            **{k: dg.MetadataValue.int(int(v)) for k, v in kinds},
            "set_aside": dg.MetadataValue.md(set_aside),
            "change_guard": guard.summary,
        }
    )


assets = [debtors_to_create, users_to_create, field_changes, link_exits, user_debtor_plan]
