"""M3, the web's copy of ERP accounts (web.customer), in one place: its plan, its load, and the one SQL that every
rule writing a web customer goes through (U1, U2 and I1 mirror the accounts they link with `mirror_customers`).

customer_mirror_plan -> customer_mirror -> contact_links_applied (links need their accounts on the web)
"""

from collections.abc import Sequence
from typing import Any

import dagster as dg
from sqlalchemy.engine import Connection

from userdebtor_pipeline.defs.blocks import LoadRun, load, metadata_of, plan_table_metadata
from userdebtor_pipeline.defs.common import Stopwatch, change_window, sample
from userdebtor_pipeline.defs.contacts.plan import USER_DEBTOR_LOADS
from userdebtor_pipeline.defs.extract.assets import change_window as change_window_asset
from userdebtor_pipeline.defs.extract.assets import stage_what_the_loads_wrote
from userdebtor_pipeline.defs.resources import ErpDatabase, SyncSettings, WebDatabase
from userdebtor_pipeline.defs.sql_file import SqlFile

PLAN_TABLE = "userdebtor.plan_customer_mirror"
MIRROR_SQL = SqlFile("contacts/mirror_customers.sql")
PLAN_SQL = SqlFile("contacts/plan_customer_mirror.sql")
RETIRE_SQL = SqlFile("contacts/retire_customers.sql")
REPORTS_SQL = SqlFile("contacts/customer_mirror_reports.sql", reads=("customer_plan_counts", "customer_plan"))


def _mirror(conn: Connection, *, codes: Sequence[str], from_m3_plan: bool, cash_account_code: str) -> int:
    return MIRROR_SQL.rows_written(
        conn, {"codes": list(codes), "from_m3_plan": from_m3_plan, "cash_account_code": cash_account_code}
    )


def mirror_customers(conn: Connection, codes: Sequence[str], cash_account_code: str) -> int:
    """Create or refresh the web.customer rows of these debtor codes; returns the rows written."""
    if not codes:
        return 0
    return _mirror(conn, codes=codes, from_m3_plan=False, cash_account_code=cash_account_code)


def mirror_planned_customers(conn: Connection, cash_account_code: str) -> int:
    """Create or refresh every account the M3 plan lists, in one statement: the codes never travel through Python."""
    return _mirror(conn, codes=(), from_m3_plan=True, cash_account_code=cash_account_code)


def customer_plan_counts(conn: Connection) -> dict[str, int]:
    row = REPORTS_SQL.execute(conn, "customer_plan_counts").mappings().one()
    return {name: int(value) for name, value in row.items()}


def customer_plan_sample(conn: Connection) -> dict[str, Any]:
    return {"customer_plan_sample": dg.MetadataValue.md(sample(conn, REPORTS_SQL.statement("customer_plan")))}


@dg.asset(
    group_name="plan",
    # A3: after the user/debtor loads, from what they wrote: the ERP values U4 sent, the links U1/U2 made and U6
    # suspended are mirrored (or retired) in the same run.
    deps=[change_window_asset, *USER_DEBTOR_LOADS],
    description="M3: web.customer rows of CSS accounts (and accounts with an active user-debtor link) to create "
    "or refresh, and rows to set Inactive because their debtor left the scope or the ERP.",
)
def customer_mirror_plan(context: dg.AssetExecutionContext, erp: ErpDatabase, web: WebDatabase,
                         settings: SyncSettings) -> dg.MaterializeResult:
    watch = Stopwatch()
    with web.engine.begin() as conn:
        restaged = stage_what_the_loads_wrote(conn, erp.engine, settings, context.run_id)
        window = change_window(conn, context.run_id, "customer_mirror_plan")
        PLAN_SQL.run(conn, {"full": window.full, "since": window.since})
        counts = customer_plan_counts(conn)
        plan_sample = customer_plan_sample(conn)
        table = plan_table_metadata(conn, PLAN_TABLE)
    return dg.MaterializeResult(metadata={
        **metadata_of(counts | restaged), **table, **plan_sample, "mode": "full" if window.full else "changed_since",
        "since_seq": dg.MetadataValue.int(window.since), "seconds": watch.seconds,
    })


def _customers_would(conn: Connection, run_id: str) -> dict[str, Any]:
    return {**customer_plan_counts(conn), **customer_plan_sample(conn)}


@load(
    rule="M3 applied: web.customer rows of CSS accounts created or refreshed from the ERP (is_debtor_customer), "
    "retired ones set Inactive (never deleted).",
    deps=[customer_mirror_plan], would=_customers_would,
)
def customer_mirror(run: LoadRun) -> dict[str, Any]:
    with run.web.engine.begin() as conn:
        written = mirror_planned_customers(conn, run.config.instant_accounts.cash_account_code)
        window = change_window(conn, run.run_id)  # the run's, not the plan's: its mark stays where it is
        retired = RETIRE_SQL.run(conn, {"full": window.full, "since": window.since})
        return {"customers_written": written, **retired, **customer_plan_sample(conn)}



