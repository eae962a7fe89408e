"""The blocking check of the M1 plan: planned users and links are sound before contact_links_applied writes."""

from typing import Any

import dagster as dg

from userdebtor_pipeline.defs.common import EMAIL_PATTERN, sql_steps
from userdebtor_pipeline.defs.contacts.plan import contact_links_plan
from userdebtor_pipeline.defs.expectations import in_set, matches, not_null, unique
from userdebtor_pipeline.defs.plan_check import CheckedPlan, failing_rows, judge_plans, plan_check, plans_result
from userdebtor_pipeline.defs.resources import WebDatabase

_QUERIES = dict(sql_steps("contacts/check_contact_plan.sql"))

PLANS = [
    CheckedPlan(
        name="users_to_create",
        what="users to create",
        query=_QUERIES["users_to_create"],
        expectations=lambda _config: [
            matches("email_address", EMAIL_PATTERN),
            # one email, one user: two planned users whose emails differ only in case would collide on login
            unique("email_lower"),
            not_null("default_customer_code"),
            # an email that is a user already gets links only, never a second user
            in_set("already_a_user", [False]),
        ],
        order_by=("email_key",),
    ),
    CheckedPlan(
        name="links_to_add",
        what="links to add",
        query=_QUERIES["links_to_add"],
        expectations=lambda _config: [not_null("customer_code"), in_set("has_user", [True])],
        order_by=("email_key", "customer_code"),
    ),
]

contact_links_plan_is_sound = plan_check(
    asset=contact_links_plan,
    name="contact_links_plan_is_sound",
    rule="M1",
    description="planned users have well-formed, unique emails that no user has yet and a default account; "
    "every planned link has a user. A failure holds contact_links_applied back.",
    plans=PLANS,
)


def judge_contact_links_plan(web: WebDatabase) -> tuple[dg.AssetCheckResult, list[dict[str, Any]]]:
    """The verdict on the M1 plan, and the failing rows behind it (its expectations read no settings)."""
    verdicts = judge_plans(web, PLANS, None, run_id="")
    return plans_result(PLANS, verdicts, None), failing_rows(PLANS, verdicts)
