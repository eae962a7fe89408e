"""The loads of the two-way sync: each writes one part of the plan, safe to repeat after a crash at any point.

The ERP and the web are two databases with no shared transaction, so each load writes in an order that a
rerun completes: U1 reserves the code before the ERP insert (ON CONFLICT DO NOTHING) and links only after it;
U4 writes the ERP first and the bases last, and a base that missed its write is caught up as 'changed alike'.
"""

from typing import Any

import dagster as dg
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.engine import Connection

from userdebtor_pipeline.contract import DEB_MASTER_COLUMNS, SYNCABLE_FIELDS
from userdebtor_pipeline.defs.batches import in_transactions
from userdebtor_pipeline.defs.blocks import LoadRun, load
from userdebtor_pipeline.defs.common import markdown_table, run_sql
from userdebtor_pipeline.defs.contacts.customer_mirror import mirror_customers
from userdebtor_pipeline.defs.extract.assets import DEBTORS, scope_flags
from userdebtor_pipeline.defs.extract.staging import copy_into_temp, stage
from userdebtor_pipeline.defs.problems import record_set_aside
from userdebtor_pipeline.defs.resources import ErpDatabase, RunOptions, SyncSettings, WebDatabase
from userdebtor_pipeline.defs.sql_file import SqlFile
from userdebtor_pipeline.defs.user_debtor.checks import new_debtors_vetted, new_users_vetted
from userdebtor_pipeline.defs.user_debtor.plan import (
    debtors_to_create,
    field_changes,
    link_exits,
    plan_field_changes_after_the_loads,
    user_debtor_plan,
    users_to_create,
)
from userdebtor_pipeline.defs.welcome import queue_welcome_emails
from userdebtor_pipeline.paths import read_sql
from userdebtor_pipeline.progress import Progress

GROUP = "load"
SWITCH = "user_debtor.enabled"
USER_CHUNK = 2_000  # users created per transaction: their links, tokens and welcome emails commit together
# Every deb_master column but the dates, which the ERP's insert stamps itself.
_NEW_DEBTOR_COLUMNS = tuple(c for c in DEB_MASTER_COLUMNS if c not in ("dr_date_created", "dr_date_last_changed"))
_CHANGED_FIELDS = tuple(spec.sync_key for spec in SYNCABLE_FIELDS)  # as plan_field_change_by_pair names them
_CHANGE_COLUMNS = ("dr_cust_code", *(c for f in _CHANGED_FIELDS for c in (f, f"{f}_way")))
COMPLETE_DEBTORS_SQL = SqlFile("user_debtor/complete_debtor_creation.sql",
                               reads=("reservations_completed", "collisions_released"))
FIELD_CHANGES_WEB_SQL = SqlFile("user_debtor/apply_field_changes_web.sql",
                                reads=("users", "bases", "conflicts_recorded"))


def _template_values(erp: ErpDatabase, template: str) -> dict[str, object]:
    with erp.engine.connect() as conn:
        row = (
            conn.execute(sa.text("SELECT * FROM erp.deb_master WHERE dr_cust_code = :t"), {"t": template})
            .mappings()
            .one_or_none()
        )
    if row is None:  # the blocking check template_customer_exists stops the run before this
        raise RuntimeError(f"template customer {template} is missing from erp.deb_master")
    return {f"t_{c}": row[c] for c in DEB_MASTER_COLUMNS}


@load(
    rule="U1: new ERP debtors written (copied from the template) and linked to their web users.",
    deps=[new_debtors_vetted, user_debtor_plan], switch=SWITCH, held_by_guard=True, uses_erp=True,
)
def erp_debtors_created(run: LoadRun) -> dict[str, Any]:
    config, erp, web = run.config, run.erp, run.web
    params = {"creation_fields": list(config.user_debtor.creation_fields)}
    with web.engine.connect() as conn:
        creating = conn.execute(
            sa.text("SELECT count(*) FROM userdebtor.plan_debtor_create WHERE action = 'create'")
        ).scalar()
    # With nothing to create the template is not read (nor needed): its values bind as nulls.
    params.update(
        _template_values(erp, config.user_debtor.template_customer)
        if creating
        else {f"t_{c}": None for c in DEB_MASTER_COLUMNS}
    )
    with web.engine.begin() as conn:
        inserted = 0
        run_sql(conn, "user_debtor/new_debtor_rows.sql", params)
        if creating:
            # The ERP insert commits on its own; the reservation makes a rerun write the same codes again.
            with erp.engine.begin() as erp_conn:
                erp_conn.exec_driver_sql(
                    "CREATE TEMP TABLE _incoming_debtor ON COMMIT DROP AS SELECT * FROM erp.deb_master WITH NO DATA"
                )
                copy_into_temp(
                    conn,
                    sql.SQL("SELECT {} FROM _new_debtor").format(
                        sql.SQL(", ").join(map(sql.Identifier, _NEW_DEBTOR_COLUMNS))
                    ),
                    erp_conn,
                    "_incoming_debtor",
                    _NEW_DEBTOR_COLUMNS,
                )
                inserted = erp_conn.execute(sa.text(read_sql("user_debtor/insert_erp_debtors.sql"))).rowcount
            # Read the ERP's rows back so the web mirrors exactly what the ERP holds.
            stage(
                DEBTORS,
                source=erp.engine,
                web=conn,
                full=False,
                before_merge=scope_flags(run.context.resources.settings),
                detect_deletes=False,
                restage=True,
            )
        counts = COMPLETE_DEBTORS_SQL.run(conn)
        linked = conn.execute(sa.text("SELECT count(*) FROM _new_link")).scalar()
        codes = list(conn.execute(sa.text("SELECT dr_cust_code FROM _new_link")).scalars())
        mirror_customers(conn, codes, config.instant_accounts.cash_account_code)
        run_sql(conn, "user_debtor/create_links.sql")
        reported = record_set_aside(conn, config, run.run_id)
        preview = markdown_table(
            [
                dict(r)
                for r in conn.execute(
                    sa.text("SELECT user_id, dr_cust_code, origin FROM _new_link ORDER BY user_id LIMIT 20")
                ).mappings()
            ]
        )
    return {
        "debtors_inserted_in_erp": inserted,
        "debtors_created": int(counts.get("reservations_completed", 0)),
        "pairs_linked": int(linked),
        "code_collisions": int(counts.get("collisions_released", 0)),
        **reported,
        "sample": dg.MetadataValue.md(preview),
    }


@load(
    rule="U2/U3: web users created for new ERP debtors (or linked), each with a welcome email.",
    deps=[new_users_vetted, user_debtor_plan], switch=SWITCH, held_by_guard=True,
)
def web_users_created(run: LoadRun) -> dict[str, Any]:
    config, web = run.config, run.web
    with web.engine.connect() as conn:
        codes = list(
            conn.execute(
                sa.text("SELECT dr_cust_code FROM userdebtor.plan_user_create ORDER BY dr_cust_code")
            ).scalars()
        )
    created = linked = emails = 0
    progress = Progress("web users created (U2)", len(codes), unit="users", log=run.context.log)

    def create_chunk(conn: Connection, chunk: list[str]) -> tuple[int, int]:
        conn.exec_driver_sql("CREATE TEMP TABLE _user_chunk (dr_cust_code text PRIMARY KEY) ON COMMIT DROP")
        conn.execute(sa.text("INSERT INTO _user_chunk SELECT unnest(CAST(:codes AS text[]))"), {"codes": chunk})
        mirror_customers(conn, chunk, config.instant_accounts.cash_account_code)
        run_sql(conn, "user_debtor/create_users.sql", {"role": config.user_debtor.default_role_for_new_users})
        new_users = conn.execute(sa.text(
            "SELECT user_id, email_address, name, status, dr_cust_code AS default_customer_code,"
            " name AS account_name FROM _created_user ORDER BY user_id"
        )).mappings().all()
        pairs = conn.execute(sa.text("SELECT count(*) FROM _new_link")).scalar()
        run_sql(conn, "user_debtor/create_links.sql")
        queue_welcome_emails(conn, config, new_users)  # U2/U3: held until approval where the account asks
        return len(new_users), pairs

    chunks = [codes[start : start + USER_CHUNK] for start in range(0, len(codes), USER_CHUNK)]
    for chunk, (users, pairs) in in_transactions(web.engine, chunks, create_chunk):
        created += users
        emails += users
        linked += pairs
        progress.advance(len(chunk))
    progress.finish()
    with web.engine.begin() as conn:
        reported = record_set_aside(conn, config, run.run_id)
    return {"users_created": created, "pairs_linked": linked, "welcome_emails_queued": emails, **reported}


@load(
    rule="U4/U5: field changes written each way (pairs linked in this run included), bases moved, "
    "conflicts recorded and warned about.",
    # After U1 and U2: the pairs they link get their first field changes in the same run (A3).
    deps=[field_changes, user_debtor_plan, erp_debtors_created, web_users_created],
    switch=SWITCH, held_by_guard=True, uses_erp=True,
)
def field_changes_applied(run: LoadRun) -> dict[str, Any]:
    config, erp, web = run.config, run.erp, run.web
    with web.engine.begin() as conn:
        restaged = plan_field_changes_after_the_loads(conn, erp.engine, run.context.resources.settings, run.run_id,
                                                      run.options.dry_run)
    with web.engine.connect() as conn, erp.engine.begin() as erp_conn:
        erp_conn.exec_driver_sql(
            "CREATE TEMP TABLE _debtor_change (dr_cust_code text PRIMARY KEY, "
            + ", ".join(f"{f} text, {f}_way text" for f in _CHANGED_FIELDS)
            + ") ON COMMIT DROP"
        )
        copy_into_temp(
            conn,
            sql.SQL(read_sql("user_debtor/field_changes_to_erp.sql")),
            erp_conn,
            "_debtor_change",
            _CHANGE_COLUMNS,
        )
        to_erp = erp_conn.execute(sa.text(read_sql("user_debtor/apply_field_changes_erp.sql"))).rowcount
    with web.engine.begin() as conn:
        counts = FIELD_CHANGES_WEB_SQL.run(
            conn,
            {"policy": config.user_debtor.conflict_policy, "run_id": run.run_id},
        )
        reported = record_set_aside(conn, config, run.run_id)
    return {
        "debtors_updated_in_erp": to_erp,
        "users_updated_on_web": int(counts["users"]),
        "links_rebased": int(counts["bases"]),
        "conflicts_recorded": int(counts["conflicts_recorded"]),
        **restaged,
        **reported,
    }


@load(
    rule="U6: links of deleted debtors ended (users deactivated), out-of-scope links suspended.",
    deps=[link_exits, user_debtor_plan], switch=SWITCH, held_by_guard=True,
)
def link_exits_applied(run: LoadRun) -> dict[str, Any]:
    with run.web.engine.begin() as conn:
        counts = run_sql(conn, "user_debtor/apply_link_exits.sql")
        return {**counts, **record_set_aside(conn, run.config, run.run_id)}


@dg.asset(
    group_name=GROUP,
    deps=[debtors_to_create, users_to_create, field_changes, link_exits],
    description="Records set aside by the plan, with their reasons, reported (and warned about where the "
    "rules say) even when a check held the loads back.",
)
def records_set_aside(
    context: dg.AssetExecutionContext, web: WebDatabase, settings: SyncSettings, run_options: RunOptions
) -> dg.MaterializeResult:
    with web.engine.begin() as conn:
        by_kind = {
            k: int(v)
            for k, v in conn.execute(
                sa.text("SELECT rule || ' ' || kind, count(*) FROM userdebtor.plan_set_aside GROUP BY 1 ORDER BY 1")
            ).all()
        }
        reported = {} if run_options.dry_run else record_set_aside(conn, settings.get(), context.run_id)
    return dg.MaterializeResult(metadata={**{k: dg.MetadataValue.int(v) for k, v in by_kind.items()}, **reported})


assets = [erp_debtors_created, web_users_created, field_changes_applied, link_exits_applied, records_set_aside]
