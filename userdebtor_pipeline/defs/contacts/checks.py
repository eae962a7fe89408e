"""Blocking data-quality check of the M1 plan, with Great Expectations 1.x (userdebtor_pipeline.quality)."""

from typing import Any

import dagster as dg
import great_expectations as gx
import pandas as pd
import sqlalchemy as sa

from userdebtor_pipeline.defs.common import EMAIL_PATTERN, markdown_table, sql_steps
from userdebtor_pipeline.defs.contacts.plan import contact_links_plan
from userdebtor_pipeline.defs.expectations import failing_mask, report_if_failed
from userdebtor_pipeline.defs.resources import WebDatabase
from userdebtor_pipeline.quality import FrameVerdict, validate_frame

# Failing rows shown per frame with the verdict.
FAILING_ROWS_SHOWN = 20

# What a sound plan looks like, per frame of check_contact_plan.sql.
EXPECTATIONS: dict[str, list[Any]] = {
    "users_to_create": [
        gx.expectations.ExpectColumnValuesToMatchRegex(column="email_address", regex=EMAIL_PATTERN),
        # one email, one user: two planned users whose emails differ only in case would collide on login
        gx.expectations.ExpectColumnValuesToBeUnique(column="email_lower"),
        gx.expectations.ExpectColumnValuesToNotBeNull(column="default_customer_code"),
        # an email that is a user already gets links only, never a second user
        gx.expectations.ExpectColumnValuesToBeInSet(column="already_a_user", value_set=[False]),
    ],
    "links_to_add": [
        gx.expectations.ExpectColumnValuesToNotBeNull(column="customer_code"),
        gx.expectations.ExpectColumnValuesToBeInSet(column="has_user", value_set=[True]),
    ],
}


def failing_rows(frame: pd.DataFrame, verdict: FrameVerdict) -> list[dict[str, Any]]:
    """The frame's rows behind the verdict's failures (GX reports failing values; a person wants the rows)."""
    rows = frame[failing_mask(frame, verdict)].head(FAILING_ROWS_SHOWN)
    return rows.astype(object).where(rows.notna(), None).to_dict("records")


@dg.asset_check(
    asset=contact_links_plan,
    blocking=True,
    description="M1 plan is sound: planned users have well-formed, unique emails that no user has yet and a "
    "default account; every planned link has a user. A failure holds contact_links_applied back.",
)
def contact_links_plan_is_sound(context: dg.AssetCheckExecutionContext, web: WebDatabase) -> dg.AssetCheckResult:
    result, rows = judge_contact_links_plan(web)
    return report_if_failed(context, result, failing_rows=rows)


def judge_contact_links_plan(web: WebDatabase) -> tuple[dg.AssetCheckResult, list[dict[str, Any]]]:
    """The verdict on the M1 plan, and the failing rows behind it."""
    with web.engine.connect() as conn:
        frames = {
            name: pd.read_sql(sa.text(query), conn) for name, query in sql_steps("contacts/check_contact_plan.sql")
        }
    verdicts = {name: validate_frame(frames[name], expectations, name) for name, expectations in EXPECTATIONS.items()}
    failed = {name: verdict for name, verdict in verdicts.items() if not verdict.passed}
    summary = "; ".join(f"{name.replace('_', ' ')}: {verdict.summary()}" for name, verdict in verdicts.items())
    failing_sample = "\n\n".join(
        f"**{name}**\n\n{verdict.markdown()}\n\n{markdown_table(failing_rows(frames[name], verdict))}"
        for name, verdict in failed.items()
    )
    result = dg.AssetCheckResult(
        passed=not failed,
        metadata={
            "summary": summary,
            "failing_expectations": sum(len(verdict.failures) for verdict in verdicts.values()),
            "failing_rows": dg.MetadataValue.md(failing_sample or "_none_"),
        },
    )
    rows = [row | {"plan": name} for name, verdict in failed.items() for row in failing_rows(frames[name], verdict)]
    return result, rows
