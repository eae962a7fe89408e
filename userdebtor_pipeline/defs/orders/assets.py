"""Order history (O1, O2): the ERP's orders of linked and integrated accounts, and in-store orders by email, on the web.

order_history_plan (plan) -> check -> order_history_synced (load)

The plan looks at what changed since the last good run (orders by change_seq, accounts that became linked or
changed hands, users whose email may own in-store orders, orders that aged past archive_days) and diffs that
against web.order_history; a full reconcile looks at everything and also takes away orders the ERP deleted.
"""

import hashlib
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from userdebtor_pipeline.defs.blocks import LoadRun, load, pair_counts, plan_table_metadata
from userdebtor_pipeline.defs.common import Stopwatch, change_window, counts_metadata, sample
from userdebtor_pipeline.defs.contacts.customer_mirror import customer_mirror
from userdebtor_pipeline.defs.contacts.load import contact_links_applied
from userdebtor_pipeline.defs.contacts.plan import USER_DEBTOR_LOADS
from userdebtor_pipeline.defs.extract.assets import change_window as change_window_asset
from userdebtor_pipeline.defs.extract.assets import stage_what_the_loads_wrote
from userdebtor_pipeline.defs.extract.staging import read_watermark
from userdebtor_pipeline.defs.instant_accounts.assets import (
    instant_accounts_opened,
    login_decisions_applied,
    verified_tokens_applied,
)
from userdebtor_pipeline.defs.problems import Problem, record_problems
from userdebtor_pipeline.defs.resources import ErpDatabase, SyncSettings, WebDatabase
from userdebtor_pipeline.defs.sql_file import SqlFile
from userdebtor_pipeline.settings import Settings

PLAN = "plan"
WATERMARK = "order_history"  # its value: the archive cut-off of the last load; its note: the settings digest
# The step that gathers the orders a run looks at, each once: its rows are orders_looked_at.
ORDERS_LOOKED_AT = "orders_under_current_code"
PLAN_SQL = SqlFile("orders/plan_order_history.sql", reads=(ORDERS_LOOKED_AT,))
APPLY_SQL = SqlFile("orders/apply_order_history.sql",
                    reads=("orders_removed", "orders_written", "accounts_shown", "accounts_no_longer_shown"))

_PLAN_SAMPLE = (
    "SELECT action, order_no, customer_code, user_id, order_date, source, status, total, why"
    " FROM userdebtor.plan_order_history WHERE run_id = :run_id ORDER BY action, order_no"
)
_ACCOUNT_SAMPLE = (
    "SELECT action, customer_code, user_id, previous_user_id FROM userdebtor.plan_order_account"
    " WHERE run_id = :run_id ORDER BY action, customer_code"
)


def _settings_digest(settings: Settings) -> str:
    """What the whole history depends on: when it changes, the next run reconciles every order."""
    history, instant = settings.order_history, settings.instant_accounts
    text = "\x00".join([str(history.archive_days), *sorted(history.hidden_statuses), "|", instant.cash_account_code,
                        "|", settings.schedule.timezone])  # the day archive_days count from (archive_cutoff)
    return hashlib.sha256(text.encode()).hexdigest()


def archive_cutoff(now: datetime, archive_days: int) -> datetime:
    """O1: the oldest order date still shown, the start of the day `archive_days` before today (in the schedules'
    time zone). Orders age out once a day, at midnight: the runs of a day find none leaving by age alone, so a
    run with nothing new writes nothing."""
    return now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=archive_days)


@dg.asset(
    group_name=PLAN,
    # A3: after every load that makes users, links or customer rows, so that orders follow them in the same run.
    deps=[change_window_asset, *USER_DEBTOR_LOADS, customer_mirror, contact_links_applied, instant_accounts_opened,
          verified_tokens_applied, login_decisions_applied],
    description="O1/O2: the orders web.order_history should add, update or take away (hidden statuses, older "
    "than archive_days, no longer linked, deleted in the ERP), and in-store orders matched to a user by email.",
)
def order_history_plan(context: dg.AssetExecutionContext, erp: ErpDatabase, web: WebDatabase,
                       settings: SyncSettings) -> dg.MaterializeResult:
    watch = Stopwatch()
    config = settings.get()
    if not config.order_history.enabled:
        return dg.MaterializeResult(metadata={"enabled": False, "note": "order_history.enabled is false"})
    digest = _settings_digest(config)
    with web.engine.begin() as conn:
        stage_what_the_loads_wrote(conn, erp.engine, settings, context.run_id)
        window = change_window(conn, context.run_id, "order_history_plan")
        previous_cutoff, previous_digest = read_watermark(conn, WATERMARK)
        # New archive or status settings (or a history never made) change every order's verdict.
        full = window.full or previous_digest != digest
        cutoff = archive_cutoff(datetime.now(ZoneInfo(config.schedule.timezone)), config.order_history.archive_days)
        params = {
            "run_id": context.run_id,
            "full_reconcile": full,
            "since": 0 if full else window.since,
            "cash_account_code": config.instant_accounts.cash_account_code,
            "hidden_statuses": list(config.order_history.hidden_statuses),
            "cutoff": cutoff,
            "previous_cutoff": previous_cutoff,
        }
        conn.execute(sa.text("DELETE FROM userdebtor.plan_order_history_run"))
        conn.execute(
            sa.text("INSERT INTO userdebtor.plan_order_history_run (run_id, full_reconcile, cutoff, settings_digest)"
                    " VALUES (:run_id, :full, :cutoff, :digest)"),
            {"run_id": context.run_id, "full": full, "cutoff": cutoff, "digest": digest},
        )
        steps = PLAN_SQL.run(conn, params)
        by_action = pair_counts(conn, "SELECT action, count(*) FROM userdebtor.plan_order_history"
                                  " WHERE run_id = :run_id GROUP BY action", params)
        accounts = pair_counts(conn, "SELECT action, count(*) FROM userdebtor.plan_order_account"
                                 " WHERE run_id = :run_id GROUP BY action", params)
        in_store = conn.execute(
            sa.text("SELECT count(*) FROM userdebtor.plan_order_history WHERE run_id = :run_id"
                    " AND action IN ('add', 'update') AND customer_code = :cash"),
            {"run_id": context.run.run_id, "cash": config.instant_accounts.cash_account_code},
        ).scalar_one()
        orders_preview = sample(conn, _PLAN_SAMPLE, params)
        accounts_preview = sample(conn, _ACCOUNT_SAMPLE, params)
        table = plan_table_metadata(conn, "userdebtor.plan_order_history", context.run_id)
    return dg.MaterializeResult(
        metadata=counts_metadata(
            {
                "orders_looked_at": steps[ORDERS_LOOKED_AT],
                "orders_to_add": by_action.get("add", 0),
                "orders_to_update": by_action.get("update", 0),
                "orders_to_remove": by_action.get("remove", 0),
                "in_store_orders_to_show": int(in_store),
                "in_store_orders_ambiguous": by_action.get("ambiguous", 0),
                "accounts_added": accounts.get("add", 0),
                "accounts_changing_user": accounts.get("change_user", 0),
                "accounts_removed": accounts.get("remove", 0),
            },
            watch.seconds,
            mode="full" if full else "changed_since",
            since_seq=dg.MetadataValue.int(params["since"]),
            archive_cutoff=cutoff.isoformat(timespec="seconds"),
            planned_orders=dg.MetadataValue.md(orders_preview),
            planned_accounts=dg.MetadataValue.md(accounts_preview),
            **table,
        )
    )


def _planned_orders(conn: Connection, run_id: str) -> dict[str, Any]:
    """This run's order plan by action, and its sample; the plan must exist."""
    params = {"run_id": run_id}
    planned = conn.execute(
        sa.text("SELECT count(*) FROM userdebtor.plan_order_history_run WHERE run_id = :run_id"), params
    ).scalar_one()
    if not planned:
        raise RuntimeError(f"run {run_id} has no order history plan: order_history_plan did not run")
    return {**pair_counts(conn, "SELECT action, count(*) FROM userdebtor.plan_order_history"
                                " WHERE run_id = :run_id GROUP BY action", params),
            "planned_orders": dg.MetadataValue.md(sample(conn, _PLAN_SAMPLE, params))}


def _forget_the_history_made(run: LoadRun) -> None:
    """Changes are not followed while switched off: switched on again, the history is rebuilt whole."""
    with run.web.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM userdebtor.watermark WHERE name = :n"), {"n": WATERMARK})


@load(
    rule="O1/O2: writes the planned orders into web.order_history and takes away the rest, in one transaction with "
    "the record of which accounts' orders are shown; reports in-store orders left alone.",
    deps=[order_history_plan], switch="order_history.enabled", would=_planned_orders,
    when_switched_off=_forget_the_history_made,
)
def order_history_synced(run: LoadRun) -> dict[str, Any]:
    params = {"run_id": run.run_id}
    with run.web.engine.begin() as conn:
        planned = _planned_orders(conn, run.run_id)
        ambiguous = conn.execute(
            sa.text("SELECT order_no, why FROM userdebtor.plan_order_history"
                    " WHERE run_id = :run_id AND action = 'ambiguous' ORDER BY order_no"),
            params,
        ).all()
        counts = APPLY_SQL.run(conn, params)
        reported = record_problems(
            conn, run.config, run.run_id,
            [Problem(kind="in_store_order_ambiguous_email", rule="O2", subject=f"order:{order_no}",
                     detail=f"In-store order {order_no} is not shown to anyone: {why}.")
             for order_no, why in ambiguous],
        )
    return {
        **{name: counts[name] for name in APPLY_SQL.reads},
        "orders_added": planned.get("add", 0),
        "orders_updated": planned.get("update", 0),
        "in_store_orders_ambiguous": reported,
        "planned_orders": planned["planned_orders"],
    }


assets = [order_history_plan, order_history_synced]
