"""The blocking checks of instant accounts (I1, I2): approvals link only qualifying accounts; logins are decided."""

from userdebtor_pipeline.defs.expectations import in_set, not_in_set, not_null, unique
from userdebtor_pipeline.defs.instant_accounts.assets import LOGIN_OUTCOMES, login_decisions, registration_decisions
from userdebtor_pipeline.defs.plan_check import CheckedPlan, plan_check

approvals_link_only_qualifying_accounts = plan_check(
    asset=registration_decisions,
    name="approvals_link_only_qualifying_accounts",
    rule="I1",
    description="no approval links the cash account, an excluded or a closed account; every approval has an "
    "account, includes the account its request names, and the role for new users exists.",
    plans=[CheckedPlan(
        name="approved_account_links",
        what="account links of approved requests",
        query="SELECT p.request_id, p.email_address, p.account_code AS named_account, a.code AS account_code,"
              "       d.dr_account_status AS account_status,"
              "       (p.account_code IS NULL OR EXISTS (SELECT 1 FROM unnest(p.qualifying_codes) q"
              "            WHERE upper(q) = upper(p.account_code))) AS named_account_included,"
              "       EXISTS (SELECT 1 FROM web.role r WHERE r.role_name = :role) AS role_exists"
              "  FROM userdebtor.plan_registration p"
              "  LEFT JOIN LATERAL unnest(p.qualifying_codes) AS a(code) ON true"
              "  LEFT JOIN userdebtor.erp_debtor d ON d.dr_cust_code = a.code"
              " WHERE p.run_id = :run_id AND p.decision = 'approve'",
        expectations=lambda config: [
            not_null("account_code"),
            not_in_set("account_code", [config.instant_accounts.cash_account_code,
                                        *config.instant_accounts.excluded_account_codes]),
            not_null("account_status"), not_in_set("account_status", ["C"]),
            in_set("named_account_included", [True]), in_set("role_exists", [True])],
        params=lambda config: {"role": config.instant_accounts.default_role},
        order_by=("request_id", "account_code"),
    )],
    metadata=lambda config: {
        "never_linked": ", ".join([config.instant_accounts.cash_account_code,
                                   *config.instant_accounts.excluded_account_codes]),
        "default_role": config.instant_accounts.default_role},
)

login_decisions_are_complete = plan_check(
    asset=login_decisions,
    name="login_decisions_are_complete",
    rule="I2",
    description="every login is decided once, with a known outcome and a reason in words.",
    plans=[CheckedPlan(
        name="login_decisions",
        what="login decisions",
        query="SELECT event_id, user_id, outcome, reason FROM userdebtor.plan_login WHERE run_id = :run_id",
        expectations=lambda _config: [unique("event_id"), in_set("outcome", LOGIN_OUTCOMES), not_null("reason")],
        order_by=("event_id",),
    )],
)

asset_checks = [approvals_link_only_qualifying_accounts, login_decisions_are_complete]
