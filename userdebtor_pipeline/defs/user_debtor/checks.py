"""Blocking checks on the plan, upstream of every write: a failing check holds its loads back for this run.

Nothing is lost when a check fails: the plan watermark does not move, so the next good run plans again.
"""

import re
from typing import Any

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from userdebtor_pipeline.defs.common import EMAIL_PATTERN, email_key, markdown_table, plain
from userdebtor_pipeline.defs.expectations import in_set, matches, unique
from userdebtor_pipeline.defs.plan_check import (
    CheckedPlan,
    judge_plans,
    plan_check,
    plans_result,
    report_if_failed,
    report_plans_if_failed,
)
from userdebtor_pipeline.defs.resources import ErpDatabase, SyncSettings, WebDatabase
from userdebtor_pipeline.defs.user_debtor.guard import read_guard_verdict
from userdebtor_pipeline.defs.user_debtor.plan import debtors_to_create, user_debtor_plan, users_to_create
from userdebtor_pipeline.operations.data_docs import MAX_ROWS

# What U7 would write, one row per field changed or link ended, with the value before and after: the report
# of a held run lists these so a person can judge the change before lifting the guard.
_GUARDED_CHANGES_SQL = sa.text(
    "SELECT * FROM ("
    " SELECT dr_cust_code, user_id, field, direction AS change,"
    "  CASE direction WHEN 'to_erp' THEN erp_value ELSE web_value END AS before, new_value AS after"
    "  FROM userdebtor.plan_field_change WHERE direction IN ('to_erp', 'to_web')"
    " UNION ALL"
    " SELECT dr_cust_code, user_id, 'link', action, 'linked',"
    "  CASE WHEN deactivate_user THEN 'link ended, user deactivated' ELSE 'link ended' END"
    "  FROM userdebtor.plan_link_exit WHERE action IN ('deleted', 'out_of_scope')) c"
    " ORDER BY dr_cust_code, field LIMIT :limit"
)
_GUARDED_CHANGES_COUNT_SQL = sa.text(
    "SELECT (SELECT count(*) FROM userdebtor.plan_field_change WHERE direction IN ('to_erp', 'to_web'))"
    " + (SELECT count(*) FROM userdebtor.plan_link_exit WHERE action IN ('deleted', 'out_of_scope'))"
)


# Gates: each carries the checks of one load, so a failing check holds that load alone, not the whole run.
def _gate(name: str, plan: dg.AssetsDefinition, count_sql: str, description: str) -> dg.AssetsDefinition:
    @dg.asset(name=name, group_name="plan", deps=[plan], description=description)
    def gate(web: WebDatabase) -> dg.MaterializeResult:
        with web.engine.connect() as conn:
            planned = conn.execute(sa.text(count_sql)).scalar()
        return dg.MaterializeResult(metadata={"planned": int(planned)})

    return gate


new_debtors_vetted = _gate("new_debtors_vetted", debtors_to_create,
                           "SELECT count(*) FROM userdebtor.plan_debtor_create",
                           "U1 creations vetted: the checks on this asset gate the ERP debtor creation alone.")
new_users_vetted = _gate("new_users_vetted", users_to_create,
                         "SELECT count(*) FROM userdebtor.plan_user_create",
                         "U2 creations vetted: the checks on this asset gate the web user creation alone.")


def _verdict(
    context: dg.AssetCheckExecutionContext,
    passed: bool,
    summary: str,
    *,
    failing_rows=None,
    failing_total: int | None = None,
    **metadata,
) -> dg.AssetCheckResult:
    """The check's result; a failure also writes the readable report that its metadata links."""
    result = dg.AssetCheckResult(passed=passed, metadata={"summary": summary, **metadata})
    return report_if_failed(context, result, failing_rows=failing_rows, failing_total=failing_total)


@dg.asset_check(
    asset=new_debtors_vetted,
    blocking=True,
    description="U1: the template customer that new debtors are copied from exists in the ERP.",
)
def template_customer_exists(
    context: dg.AssetCheckExecutionContext, erp: ErpDatabase, web: WebDatabase, settings: SyncSettings
) -> dg.AssetCheckResult:
    template = settings.get().user_debtor.template_customer
    with web.engine.connect() as conn:
        creating = conn.execute(
            sa.text("SELECT count(*) FROM userdebtor.plan_debtor_create WHERE action = 'create'")
        ).scalar()
    with erp.engine.connect() as conn:
        found = conn.execute(
            sa.text("SELECT count(*) FROM erp.deb_master WHERE dr_cust_code = :t"), {"t": template}
        ).scalar()
    passed = bool(found) or not creating
    summary = (
        f"template customer {template} found"
        if found
        else f"no debtor is planned, and template customer {template} is missing"
        if not creating
        else f"template customer {template} is missing from erp.deb_master: {creating} new debtors are held "
        "back; create it or fix user_debtor.template_customer"
    )
    waiting = None
    if not passed:
        with web.engine.connect() as conn:
            waiting = [dict(r) for r in conn.execute(sa.text(
                "SELECT user_id, dr_cust_code, email_address FROM userdebtor.plan_debtor_create"
                " WHERE action = 'create' ORDER BY dr_cust_code LIMIT :limit"), {"limit": MAX_ROWS}).mappings()]
    return _verdict(context, passed, summary, failing_rows=waiting, failing_total=int(creating),
                    template_customer=template, debtors_waiting=int(creating))


NEW_DEBTORS = CheckedPlan(
    name="new_debtors",
    what="new debtors",
    query="SELECT user_id, dr_cust_code, userdebtor.email_key(email_address) AS email"
          " FROM userdebtor.plan_debtor_create WHERE action = 'create'",
    expectations=lambda config: [
        matches("dr_cust_code", "^" + re.escape(config.user_debtor.new_account_prefix)
                + "[0-9]{" + str(config.user_debtor.account_number_width) + "}$"),
        unique("dr_cust_code"), matches("email", EMAIL_PATTERN), unique("email")],
    order_by=("dr_cust_code",),
)
# Planned codes looked up in the ERP per chunk, so the lookup's memory does not grow with the plan.
_COLLISION_CHUNK = 10_000


def _erp_collisions(erp: ErpDatabase, web: WebDatabase) -> tuple[int, list[dict[str, Any]]]:
    """Planned codes the ERP holds already, unless they are our own debtor from a run cut short between the ERP
    write and the web write (then it carries the planned user's email): their count and the first ones."""
    total, first, after = 0, [], ""
    with web.engine.connect() as web_conn, erp.engine.connect() as erp_conn:
        while True:
            planned = dict(web_conn.execute(sa.text(
                "SELECT dr_cust_code, userdebtor.email_key(email_address) FROM userdebtor.plan_debtor_create"
                " WHERE action = 'create' AND dr_cust_code > :after ORDER BY dr_cust_code LIMIT :chunk"),
                {"after": after, "chunk": _COLLISION_CHUNK}).all())
            if not planned:
                return total, first
            after = max(planned)
            for code, email in erp_conn.execute(sa.text(
                    "SELECT dr_cust_code, dr_email FROM erp.deb_master WHERE dr_cust_code = ANY(:codes)"),
                    {"codes": list(planned)}):
                if planned[code] != email_key(email):
                    total += 1
                    if len(first) < MAX_ROWS:
                        first.append({"dr_cust_code": code, "email": planned[code], "collision": "in the ERP"})


@dg.asset_check(
    asset=new_debtors_vetted,
    blocking=True,
    description="U1: new codes have the prefix and width, are unique and collide with nothing in the ERP; "
    "emails are well formed and unique.",
)
def new_debtors_are_sound(
    context: dg.AssetCheckExecutionContext, erp: ErpDatabase, web: WebDatabase, settings: SyncSettings
) -> dg.AssetCheckResult:
    config = settings.get()
    verdicts = judge_plans(web, [NEW_DEBTORS], config, context.run.run_id)
    collisions, colliding = _erp_collisions(erp, web)
    result = plans_result([NEW_DEBTORS], verdicts, config, collisions=collisions)
    if collisions:
        shown = ", ".join(row["dr_cust_code"] for row in colliding[:10])
        summary = f"{plain(result.metadata['summary'])} {collisions} planned codes already exist in the ERP: {shown}"
        result = dg.AssetCheckResult(passed=False, metadata={**result.metadata, "summary": summary})
    return report_plans_if_failed(context, result, [NEW_DEBTORS], verdicts, config, extra_failing=colliding)


NEW_USERS = CheckedPlan(
    name="new_users",
    what="new users",
    query="SELECT p.dr_cust_code, userdebtor.email_key(p.email_address) AS email,"
          # The live table by its case-insensitive unique index, the staged mirror by email_key's (A2): both
          # indexed, as a correlated EXISTS over an unindexed expression would scan every user for every row.
          " EXISTS (SELECT 1 FROM web.app_user u WHERE lower(u.email_address) = userdebtor.email_key(p.email_address))"
          " OR EXISTS (SELECT 1 FROM userdebtor.web_user w"
          "   WHERE userdebtor.email_key(w.email_address) = userdebtor.email_key(p.email_address)) AS login_taken"
          " FROM userdebtor.plan_user_create p WHERE p.action = 'create'",
    expectations=lambda _config: [matches("email", EMAIL_PATTERN), unique("email"), in_set("login_taken", [False])],
    order_by=("dr_cust_code",),
)

new_users_are_sound = plan_check(
    asset=new_users_vetted,
    name="new_users_are_sound",
    rule="U2",
    description="new users' emails are well formed, unique, and not already a login on the web.",
    plans=[NEW_USERS],
)


# The links table's own unique keys keep the links one-to-one: only the planned pairs, and the links of the
# users and debtors they name, can break that, so only those are read (the cost follows the plans).
_LINKED_TWICE_SQL = sa.text(
    "WITH plan AS ("
    "  SELECT user_id, dr_cust_code FROM userdebtor.plan_debtor_create"
    "  UNION ALL SELECT user_id, dr_cust_code FROM userdebtor.plan_user_create WHERE user_id IS NOT NULL),"
    " planned AS ("
    "  SELECT user_id, dr_cust_code FROM plan"
    "  UNION ALL SELECT l.user_id, l.dr_cust_code FROM userdebtor.user_debtor_link l"
    "  WHERE l.user_id IN (SELECT user_id FROM plan)"
    "  UNION ALL SELECT l.user_id, l.dr_cust_code FROM userdebtor.user_debtor_link l"
    "  WHERE l.dr_cust_code IN (SELECT dr_cust_code FROM plan))"
    " SELECT 'user' AS side, user_id::text AS id, count(DISTINCT dr_cust_code) AS links FROM planned"
    "  GROUP BY user_id HAVING count(DISTINCT dr_cust_code) > 1"
    " UNION ALL SELECT 'debtor', dr_cust_code, count(DISTINCT user_id) FROM planned"
    "  GROUP BY dr_cust_code HAVING count(DISTINCT user_id) > 1 LIMIT 50"
)


def linked_twice(conn: Connection) -> list[dict[str, Any]]:
    """The users and debtors the plans would give a second link (at most 50)."""
    return [dict(r) for r in conn.execute(_LINKED_TWICE_SQL).mappings()]


@dg.asset_check(
    asset=user_debtor_plan,
    blocking=True,
    description="No user would be linked to two debtors, and no debtor to two users.",
)
def no_user_linked_twice(context: dg.AssetCheckExecutionContext, web: WebDatabase) -> dg.AssetCheckResult:
    with web.engine.connect() as conn:
        rows = linked_twice(conn)
    return _verdict(
        context,
        not rows,
        f"{len(rows)} users or debtors would have two links" if rows else "every link is one-to-one",
        failing_rows=rows,
        failing=dg.MetadataValue.md(markdown_table(rows)),
    )


@dg.asset(
    group_name="plan",
    deps=[user_debtor_plan],
    description="U7: the change guard's verdict on the plan. Its check fails the run as held and keeps the plan "
    "watermark; the user/debtor loads read the same verdict and write nothing, the other domains go on.",
)
def change_guard(context: dg.AssetExecutionContext, web: WebDatabase) -> dg.MaterializeResult:
    with web.engine.connect() as conn:
        verdict = read_guard_verdict(conn, context.run_id)
    return dg.MaterializeResult(metadata={"holds": verdict.holds, "summary": verdict.summary})


@dg.asset_check(
    asset=change_guard,
    blocking=True,
    description="U7: a plan that changes, deactivates or unlinks more than max_change_fraction of the "
    "linked pairs writes nothing of the user/debtor sync until a person decides.",
)
def change_fraction_guard(context: dg.AssetCheckExecutionContext, web: WebDatabase) -> dg.AssetCheckResult:
    with web.engine.connect() as conn:
        verdict = read_guard_verdict(conn, context.run.run_id)
        changes, changes_total = None, None
        if verdict.holds:
            changes = [dict(r) for r in conn.execute(_GUARDED_CHANGES_SQL, {"limit": MAX_ROWS}).mappings()]
            changes_total = int(conn.execute(_GUARDED_CHANGES_COUNT_SQL).scalar_one())
    return _verdict(
        context,
        not verdict.holds,
        verdict.summary,
        failing_rows=changes,
        failing_total=changes_total,
        linked_pairs=verdict.linked,
        pairs_changing=verdict.touched,
        fraction=round(verdict.fraction, 4),
        limit=verdict.limit,
    )


@dg.asset_check(
    asset=new_debtors_vetted,
    blocking=True,
    description="U1: a code is left for every new debtor under new_account_prefix at account_number_width; "
    "no code is ever cut to fit.",
)
def code_space_left(
    context: dg.AssetCheckExecutionContext, web: WebDatabase, settings: SyncSettings
) -> dg.AssetCheckResult:
    user_debtor = settings.get().user_debtor
    with web.engine.connect() as conn:
        waiting = [
            dict(r)
            for r in conn.execute(
                sa.text(
                    "SELECT subject, detail FROM userdebtor.plan_set_aside"
                    " WHERE rule = 'U1' AND kind = 'code_space_exhausted' ORDER BY subject"
                )
            ).mappings()
        ]
    prefix, width = user_debtor.new_account_prefix, user_debtor.account_number_width
    if waiting:
        summary = (
            f"the code space of prefix {prefix!r} at width {width} is exhausted: {len(waiting)} web users wait "
            f"for a debtor and no debtor was created; widen user_debtor.account_number_width or choose another "
            "new_account_prefix"
        )
    else:
        summary = f"codes are left under prefix {prefix!r} at width {width}"
    return _verdict(
        context,
        not waiting,
        summary,
        failing_rows=waiting,
        prefix=prefix,
        width=width,
        users_waiting=len(waiting),
    )


asset_checks = [
    code_space_left,
    template_customer_exists,
    new_debtors_are_sound,
    new_users_are_sound,
    no_user_linked_twice,
    change_fraction_guard,
]

assets = [new_debtors_vetted, new_users_vetted, change_guard]
