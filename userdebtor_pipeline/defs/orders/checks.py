"""The blocking check on the order history plan (O1, O2): every order to show is complete and may be shown."""

from userdebtor_pipeline.defs.expectations import in_set, not_in_set, not_null, unique
from userdebtor_pipeline.defs.orders.assets import order_history_plan
from userdebtor_pipeline.defs.plan_check import CheckedPlan, plan_check

planned_orders_are_complete = plan_check(
    asset=order_history_plan,
    name="planned_orders_are_complete",
    rule="O1/O2",
    description="every order to show has an order number, a customer code, a date, a source, a status that is "
    "shown online and a total; an in-store order on the cash account is shown only with its user.",
    plans=[CheckedPlan(
        name="planned_orders",
        what="orders to add or update",
        query="SELECT order_no, action, customer_code, user_id, order_date, source, status, total,"
              "       (customer_code IS DISTINCT FROM :cash OR user_id IS NOT NULL) AS cash_order_has_user"
              "  FROM userdebtor.plan_order_history WHERE run_id = :run_id AND action IN ('add', 'update')",
        expectations=lambda config: [
            unique("order_no"), not_null("customer_code"), not_null("total"), not_null("order_date"),
            not_null("source"), not_in_set("status", config.order_history.hidden_statuses),
            in_set("cash_order_has_user", [True])],
        params=lambda config: {"cash": config.instant_accounts.cash_account_code},
        order_by=("order_no",),
    )],
)

asset_checks = [planned_orders_are_complete]
