"""Blocking checks on the plan, upstream of every write: a failing check holds its loads back for this run.

Nothing is lost when a check fails: the plan watermark does not move, so the next good run plans again.
"""

import re

import dagster as dg
import great_expectations as gx
import pandas as pd
import sqlalchemy as sa

from userdebtor_pipeline.defs.common import EMAIL_PATTERN, email_key, markdown_table
from userdebtor_pipeline.defs.expectations import failing_mask, report_if_failed
from userdebtor_pipeline.defs.resources import ErpDatabase, SyncSettings, WebDatabase
from userdebtor_pipeline.defs.user_debtor.guard import read_guard_verdict
from userdebtor_pipeline.defs.user_debtor.plan import debtors_to_create, user_debtor_plan, users_to_create
from userdebtor_pipeline.operations.data_docs import MAX_ROWS
from userdebtor_pipeline.quality import validate_frame

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
@dg.asset(
    group_name="plan",
    deps=[debtors_to_create],
    description="U1 creations vetted: the checks on this asset gate the ERP debtor creation alone.",
)
def new_debtors_vetted(web: WebDatabase) -> dg.MaterializeResult:
    with web.engine.connect() as conn:
        planned = conn.execute(sa.text("SELECT count(*) FROM userdebtor.plan_debtor_create")).scalar()
    return dg.MaterializeResult(metadata={"planned": int(planned)})


@dg.asset(
    group_name="plan",
    deps=[users_to_create],
    description="U2 creations vetted: the checks on this asset gate the web user creation alone.",
)
def new_users_vetted(web: WebDatabase) -> dg.MaterializeResult:
    with web.engine.connect() as conn:
        planned = conn.execute(sa.text("SELECT count(*) FROM userdebtor.plan_user_create")).scalar()
    return dg.MaterializeResult(metadata={"planned": int(planned)})


def _verdict(
    context: dg.AssetCheckExecutionContext,
    passed: bool,
    summary: str,
    *,
    frame: pd.DataFrame | None = None,
    expectations: list | None = None,
    failing_rows=None,
    failing_total: int | None = None,
    **metadata,
) -> dg.AssetCheckResult:
    """The check's result; a failure also writes the readable report that its metadata links."""
    result = dg.AssetCheckResult(passed=passed, metadata={"summary": summary, **metadata})
    return report_if_failed(context, result, frame=frame, expectations=expectations, failing_rows=failing_rows,
                            failing_total=failing_total)


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


@dg.asset_check(
    asset=new_debtors_vetted,
    blocking=True,
    description="U1: new codes have the prefix and width, are unique and collide with nothing in the ERP; "
    "emails are well formed and unique.",
)
def new_debtors_are_sound(
    context: dg.AssetCheckExecutionContext, erp: ErpDatabase, web: WebDatabase, settings: SyncSettings
) -> dg.AssetCheckResult:
    user_debtor = settings.get().user_debtor
    with web.engine.connect() as conn:
        frame = pd.read_sql(
            sa.text(
                "SELECT user_id, dr_cust_code, userdebtor.email_key(email_address) AS email"
                " FROM userdebtor.plan_debtor_create WHERE action = 'create'"
            ),
            conn,
        )
    code_shape = (
        "^" + re.escape(user_debtor.new_account_prefix) + "[0-9]{" + str(user_debtor.account_number_width) + "}$"
    )
    expectations = [
        gx.expectations.ExpectColumnValuesToMatchRegex(column="dr_cust_code", regex=code_shape),
        gx.expectations.ExpectColumnValuesToBeUnique(column="dr_cust_code"),
        gx.expectations.ExpectColumnValuesToMatchRegex(column="email", regex=EMAIL_PATTERN),
        gx.expectations.ExpectColumnValuesToBeUnique(column="email"),
    ]
    verdict = validate_frame(frame, expectations, "new_debtors")
    # A code already in the ERP is a collision unless it is our own debtor from a run cut short between the
    # ERP write and the web write: then it carries the planned user's email.
    collisions: list[str] = []
    if not frame.empty:
        with erp.engine.connect() as conn:
            existing = conn.execute(
                sa.text("SELECT dr_cust_code, dr_email FROM erp.deb_master WHERE dr_cust_code = ANY(:codes)"),
                {"codes": frame["dr_cust_code"].tolist()},
            ).all()
        planned_email = dict(zip(frame["dr_cust_code"], frame["email"], strict=True))
        collisions = [code for code, email in existing if planned_email.get(code) != email_key(email)]
    passed = verdict.passed and not collisions
    summary = verdict.summary() if not verdict.passed else "codes and emails are sound"
    if collisions:
        summary += f"; {len(collisions)} planned codes already exist in the ERP: {', '.join(collisions[:10])}"
    failing = frame[failing_mask(frame, verdict) | frame["dr_cust_code"].isin(collisions)] if not frame.empty else None
    return _verdict(
        context,
        passed,
        summary,
        frame=frame,
        expectations=expectations,
        failing_rows=failing,
        rows=verdict.rows,
        collisions=len(collisions),
        failing=dg.MetadataValue.md(verdict.markdown()),
    )


@dg.asset_check(
    asset=new_users_vetted,
    blocking=True,
    description="U2: new users' emails are well formed, unique, and not already a login on the web.",
)
def new_users_are_sound(context: dg.AssetCheckExecutionContext, web: WebDatabase) -> dg.AssetCheckResult:
    with web.engine.connect() as conn:
        frame = pd.read_sql(
            sa.text(
                "SELECT p.dr_cust_code, userdebtor.email_key(p.email_address) AS email,"
                " EXISTS (SELECT 1 FROM web.app_user u"
                "   WHERE userdebtor.email_key(u.email_address) = userdebtor.email_key(p.email_address))"
                "   AS login_taken"
                " FROM userdebtor.plan_user_create p WHERE p.action = 'create'"
            ),
            conn,
        )
    expectations = [
        gx.expectations.ExpectColumnValuesToMatchRegex(column="email", regex=EMAIL_PATTERN),
        gx.expectations.ExpectColumnValuesToBeUnique(column="email"),
        gx.expectations.ExpectColumnValuesToBeInSet(column="login_taken", value_set=[False]),
    ]
    verdict = validate_frame(frame, expectations, "new_users")
    return _verdict(
        context,
        verdict.passed,
        verdict.summary(),
        frame=frame,
        expectations=expectations,
        failing_rows=frame[failing_mask(frame, verdict)] if not frame.empty else None,
        rows=verdict.rows,
        failing=dg.MetadataValue.md(verdict.markdown()),
    )


@dg.asset_check(
    asset=user_debtor_plan,
    blocking=True,
    description="No user would be linked to two debtors, and no debtor to two users.",
)
def no_user_linked_twice(context: dg.AssetCheckExecutionContext, web: WebDatabase) -> dg.AssetCheckResult:
    with web.engine.connect() as conn:
        rows = (
            conn.execute(
                sa.text(
                    "WITH planned AS ("
                    "  SELECT user_id, dr_cust_code FROM userdebtor.user_debtor_link"
                    "  UNION ALL SELECT user_id, dr_cust_code FROM userdebtor.plan_debtor_create"
                    "  UNION ALL SELECT user_id, dr_cust_code FROM userdebtor.plan_user_create"
                    "  WHERE user_id IS NOT NULL)"
                    " SELECT 'user' AS side, user_id::text AS id, count(DISTINCT dr_cust_code) AS links FROM planned"
                    "  GROUP BY user_id HAVING count(DISTINCT dr_cust_code) > 1"
                    " UNION ALL SELECT 'debtor', dr_cust_code, count(DISTINCT user_id) FROM planned"
                    "  GROUP BY dr_cust_code HAVING count(DISTINCT user_id) > 1 LIMIT 50"
                )
            )
            .mappings()
            .all()
        )
    return _verdict(
        context,
        not rows,
        f"{len(rows)} users or debtors would have two links" if rows else "every link is one-to-one",
        failing_rows=[dict(r) for r in rows],
        failing=dg.MetadataValue.md(markdown_table([dict(r) for r in rows])),
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
