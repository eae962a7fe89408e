"""Extract: every run starts here. ERP rows cross by COPY; web rows are staged after conversions (C1)."""

import dataclasses
import hashlib

import dagster as dg
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection, Engine

from userdebtor_pipeline.contract import (
    APP_USER_COLUMNS,
    CRM_CONTACT_COLUMNS,
    DEB_MASTER_COLUMNS,
    SALES_ORDER_COLUMNS,
)
from userdebtor_pipeline.defs.common import Stopwatch, counts_metadata
from userdebtor_pipeline.defs.extract.staging import (
    ExtractResult,
    ExtractSpec,
    read_watermark,
    stage,
    stage_rows,
    write_watermark,
)
from userdebtor_pipeline.defs.resources import ErpDatabase, RunOptions, SyncLock, SyncSettings, WebDatabase
from userdebtor_pipeline.filters import filter_columns_of, parse_filter
from userdebtor_pipeline.preflight import check_before_writing

GROUP = "extract"
CONVERSIONS_APPLIED = dg.AssetKey("customer_conversions_applied")
# I3 runs first, so that the web users staged for this run's plans carry the addresses just proven (A1).
TOKENS_APPLIED = dg.AssetKey("verified_tokens_applied")

# Each extract: its mirror (a table in schema `userdebtor` named like the extract), key, columns and change stamp.
DEBTORS = ExtractSpec("erp_debtor", ("erp", "deb_master"), "erp_debtor", ("dr_cust_code",), DEB_MASTER_COLUMNS,
                      "dr_date_last_changed", extra_columns=("in_master_scope", "in_css_scope"),
                      gone_table="erp_debtor_gone")
CONTACTS = ExtractSpec("erp_contact", ("erp", "crm_contact"), "erp_contact", ("contact_id",), CRM_CONTACT_COLUMNS,
                       "contact_date_last_changed")
# The CRM master has no change stamp: its key ranges are compared by checksum, and those that differ read.
CONTACT_ACCOUNTS = ExtractSpec("erp_contact_account", ("erp", "crm_contact_account"), "erp_contact_account",
                               ("contact_id", "dr_cust_code"), ("contact_id", "dr_cust_code"), None,
                               tracks_changes=False)
CONVERSIONS = ExtractSpec("erp_conversion", ("erp", "deb_conversion"), "erp_conversion", ("conversion_seq",),
                          ("conversion_seq", "old_cust_code", "new_cust_code", "conversion_date"), None,
                          deletes="full_only", tracks_changes=False)
# Deleted orders are looked for when the ERP's own count of deleted rows moved (see staged_sales_orders).
ORDERS = ExtractSpec("erp_sales_order", ("erp", "sales_order"), "erp_sales_order", ("so_order_no",),
                     SALES_ORDER_COLUMNS, "so_date_stamp", deletes="full_only", gone_table="erp_sales_order_gone",
                     overlap_by_key=True)
# The ERP server's count of rows deleted from sales_order (its statistics; null where they are not kept).
_ORDERS_DELETED_COUNT = sa.text(
    "SELECT n_tup_del FROM pg_stat_user_tables WHERE schemaname = 'erp' AND relname = 'sales_order'"
)
WEB_USERS = ExtractSpec("web_user", ("web", "app_user"), "web_user", ("user_id",), APP_USER_COLUMNS, "updated_at")
WEB_CUSTOMERS = ExtractSpec("web_customer", ("web", "customer"), "web_customer", ("customer_code",),
                            ("customer_code", "status", "is_debtor_customer", "is_cash_account",
                             "auto_part_registration"), None)


def _result(spec: ExtractSpec, result: ExtractResult, watch: Stopwatch, **extra) -> dg.MaterializeResult:
    """Counts, mode and watermark of one staged table, named as its mirror so the UI shows which table it is."""
    return dg.MaterializeResult(
        metadata=counts_metadata(
            {"rows_read": result.read, "rows_changed": result.changed, "rows_deleted": result.deleted},
            watch.seconds,
            mode=result.mode,
            watermark=str(result.watermark) if result.watermark else "none",
            **extra,
            **{"dagster/table_name": f"userdebtor.{spec.mirror}"},
        )
    )


@dg.asset(
    group_name=GROUP,
    description="Opens the run: checks settings and databases, records the run and its change window.",
)
def sync_run_started(
    context: dg.AssetExecutionContext,
    erp: ErpDatabase,
    web: WebDatabase,
    settings: SyncSettings,
    run_options: RunOptions,
    sync_lock: SyncLock,
) -> dg.MaterializeResult:
    # A4: settings that cannot work stop the run here, before anything is read or written, with the message
    # `userdebtor sync` gives (a typo, a missing role, a template the sandbox refuses).
    config = settings.get()
    erp.check()
    web.check()
    check_before_writing(config, web.engine, settings.path)
    with web.engine.begin() as conn:
        since = 0
        if not run_options.full:
            since = conn.execute(
                sa.text("SELECT coalesce(max(seq), 0) FROM userdebtor.watermark WHERE name = 'plan'")
            ).scalar()
        conn.execute(
            sa.text(
                "INSERT INTO userdebtor.sync_run (run_id, mode, dry_run, summary)"
                " VALUES (:r, :m, :d, jsonb_build_object('since', :s)) ON CONFLICT (run_id) DO NOTHING"
            ),
            {
                "r": context.run_id,
                "m": "full" if run_options.full else "changed_since",
                "d": run_options.dry_run,
                "s": since,
            },
        )
    return dg.MaterializeResult(
        metadata={
            "mode": "full" if run_options.full else "changed_since",
            "dry_run": run_options.dry_run,
            "plan_since_seq": dg.MetadataValue.int(int(since)),
        }
    )


def scope_flags(settings: SyncSettings):
    """Computes the two scope flags on the staged rows, from the filters, with bound values only."""
    user_debtor = settings.get().user_debtor

    def apply(conn: Connection, temp: str) -> None:
        staged = sa.Table(
            temp,
            sa.MetaData(),
            *[sa.Column(c) for c in DEB_MASTER_COLUMNS],
            sa.Column("in_master_scope"),
            sa.Column("in_css_scope"),
        )
        columns = filter_columns_of(staged)
        master = parse_filter(user_debtor.customer_master_filter, columns)
        css = parse_filter(user_debtor.css_customer_filter, columns)
        conn.execute(
            sa.update(staged).values(
                in_master_scope=sa.func.coalesce(master, sa.false()),
                in_css_scope=sa.func.coalesce(css, sa.false()),
            )
        )

    return apply


def remember_defaults_left(conn: Connection, temp: str) -> None:
    """Records the accounts that staged users no longer have as default account (O1, A3): another user may now be
    the only one whose default it is, so the order plan looks at them again though that user did not change."""
    staged = sa.table(temp, sa.column("user_id"), sa.column("default_customer_code"))
    mirror = sa.table("web_user", sa.column("user_id"), sa.column("default_customer_code"), schema="userdebtor")
    left = sa.table("web_user_default_left", sa.column("customer_code"), sa.column("change_seq"), schema="userdebtor")
    lost = (
        sa.select(mirror.c.default_customer_code)
        .distinct()
        .join_from(mirror, staged, staged.c.user_id == mirror.c.user_id)
        .where(mirror.c.default_customer_code.is_not(None),
               mirror.c.default_customer_code.is_distinct_from(staged.c.default_customer_code))
    )
    conn.execute(
        pg_insert(left)
        .from_select(["customer_code"], lost)
        .on_conflict_do_update(index_elements=["customer_code"],
                               set_={"change_seq": sa.func.nextval("userdebtor.change_seq")})
    )


def _filters_digest(settings: SyncSettings) -> str:
    user_debtor = settings.get().user_debtor
    text = f"{user_debtor.customer_master_filter}\x00{user_debtor.css_customer_filter}"
    return hashlib.sha256(text.encode()).hexdigest()


_SCOPE_COUNTS = sa.text("SELECT count(*) FILTER (WHERE in_master_scope), count(*) FILTER (WHERE in_css_scope),"
                        " count(*) FROM userdebtor.erp_debtor")


@dg.asset(
    group_name=GROUP,
    deps=[sync_run_started],
    description="ERP debtors (deb_master) staged with their scope: customer master filter and CSS filter.",
)
def staged_erp_debtors(
    erp: ErpDatabase, web: WebDatabase, settings: SyncSettings, run_options: RunOptions
) -> dg.MaterializeResult:
    watch = Stopwatch()
    digest = _filters_digest(settings)
    with web.engine.begin() as conn:
        _, last_digest = read_watermark(conn, "erp_debtor_scope")
        filters_changed = last_digest != digest
        # Changed filters change every debtor's scope: read them all again.
        result = stage(DEBTORS, source=erp.engine, web=conn, full=run_options.full, read_all=filters_changed,
                       before_merge=scope_flags(settings))
        write_watermark(conn, "erp_debtor_scope", None, note=digest)
        # Debtors in each scope, for the UI: counted in a full reconcile and when the filters changed, not in every
        # changed-since run (a pass over every debtor: 0.2-0.4 s at a million).
        in_scope = conn.execute(_SCOPE_COUNTS).one() if run_options.full or filters_changed else None
    scope_counts = {} if in_scope is None else {"debtors_in_master_scope": int(in_scope[0]),
                                                 "debtors_in_css_scope": int(in_scope[1]),
                                                 "debtors_staged": int(in_scope[2])}
    return _result(DEBTORS, result, watch, **scope_counts)


@dg.asset(
    group_name=GROUP,
    deps=[sync_run_started],
    description="CRM contacts and the accounts each acts for (crm_contact, crm_contact_account).",
)
def staged_crm_contacts(erp: ErpDatabase, web: WebDatabase, run_options: RunOptions) -> dg.MaterializeResult:
    watch = Stopwatch()
    with web.engine.begin() as conn:
        contacts = stage(CONTACTS, source=erp.engine, web=conn, full=run_options.full)
        accounts = stage(CONTACT_ACCOUNTS, source=erp.engine, web=conn, full=run_options.full)
    return dg.MaterializeResult(
        metadata=counts_metadata(
            {
                "contacts_read": contacts.read,
                "contacts_changed": contacts.changed,
                "contacts_deleted": contacts.deleted,
                "contact_accounts": accounts.read,
                "contact_accounts_changed": accounts.changed,
                "contact_accounts_deleted": accounts.deleted,
            },
            watch.seconds,
            mode=contacts.mode,
            **{"dagster/table_name": f"userdebtor.{CONTACTS.mirror}"},
        )
    )


@dg.asset(group_name=GROUP, deps=[sync_run_started], description="ERP debtor code conversions (deb_conversion).")
def staged_debtor_conversions(erp: ErpDatabase, web: WebDatabase) -> dg.MaterializeResult:
    watch = Stopwatch()
    with web.engine.begin() as conn:
        result = stage(CONVERSIONS, source=erp.engine, web=conn, full=False)
    return _result(CONVERSIONS, result, watch)


@dg.asset(
    group_name=GROUP,
    deps=[sync_run_started],
    description="ERP sales orders of every channel, in-store included (sales_order), by so_date_stamp.",
)
def staged_sales_orders(erp: ErpDatabase, web: WebDatabase, run_options: RunOptions) -> dg.MaterializeResult:
    """Orders changed since the last run; the order keys are compared whole only when the ERP deleted some.

    The ERP keeps no record of deleted orders, but its server counts deleted rows per table: read before the
    keys, a count that moved since the last run says that orders went (a count that cannot be read: every run).
    PostgreSQL publishes the count within seconds of a delete; one later than that is found by the next run.
    """
    watch = Stopwatch()
    with erp.engine.connect() as erp_conn:
        deleted_count = erp_conn.execute(_ORDERS_DELETED_COUNT).scalar()
    with web.engine.begin() as conn:
        _, last_count = read_watermark(conn, "erp_sales_order_deletes")
        deletes_seen = deleted_count is None or str(deleted_count) != last_count
        spec = dataclasses.replace(ORDERS, deletes="always") if deletes_seen else ORDERS
        result = stage(spec, source=erp.engine, web=conn, full=run_options.full)
        if deleted_count is not None:
            write_watermark(conn, "erp_sales_order_deletes", None, note=str(deleted_count))
    return _result(spec, result, watch, deletes_looked_for=deletes_seen or run_options.full)


@dg.asset(
    group_name=GROUP,
    deps=[sync_run_started, CONVERSIONS_APPLIED, TOKENS_APPLIED],
    description="Web users (app_user), staged after conversions so that they carry the new codes.",
)
def staged_web_users(web: WebDatabase, run_options: RunOptions) -> dg.MaterializeResult:
    watch = Stopwatch()
    with web.engine.begin() as conn:
        result = stage(WEB_USERS, source=conn, web=conn, full=run_options.full, before_merge=remember_defaults_left)
    return _result(WEB_USERS, result, watch)


@dg.asset(
    group_name=GROUP,
    deps=[sync_run_started, CONVERSIONS_APPLIED],
    description="Web customer accounts (customer): status, cash account and approval flags.",
)
def staged_web_customers(web: WebDatabase, run_options: RunOptions) -> dg.MaterializeResult:
    watch = Stopwatch()
    with web.engine.begin() as conn:
        result = stage(WEB_CUSTOMERS, source=conn, web=conn, full=run_options.full)
    return _result(WEB_CUSTOMERS, result, watch)


def stage_users_the_loads_wrote(conn: Connection) -> int:
    """A3: the web users the run's loads made or changed (U2, U4, M1, I1), changed-since and without looking for
    deletes; how many changed."""
    return stage(WEB_USERS, source=conn, web=conn, full=False, detect_deletes=False, restage=True,
                 before_merge=remember_defaults_left).changed


def stage_what_the_loads_wrote(conn: Connection, erp: Engine, settings: SyncSettings, run_id: str) -> dict[str, int]:
    """A3: a later plan of the run (U4's second pass, M1/M2, M3, O1/O2) reads what the run's earlier loads wrote, not
    the snapshot of its start.

    Changed-since and without looking for deletes, so it costs what the loads wrote: the debtors U4 changed in the
    ERP, the users U2, U4, M1 and I1 made or changed, the customer rows they added. Restaged rows get a change_seq
    above the run's window; a plan that restages before it takes its mark does not look at them again in the next
    run. The customer rows are found by the stamp every load sets (a web edit without one is found by the next
    run's checksums); nothing after staged_web_customers renames or deletes one (conversions run before it).
    """
    debtors = stage(DEBTORS, source=erp, web=conn, full=False, before_merge=scope_flags(settings),
                    detect_deletes=False, restage=True)
    users = stage_users_the_loads_wrote(conn)
    customers = stage_rows(WEB_CUSTOMERS, source=conn, web=conn, where=stamped_since_run_start(run_id))
    return {"debtors_restaged": debtors.changed, "users_restaged": users, "customers_restaged": customers}


def stamped_since_run_start(run_id: str) -> sql.Composable:
    """The web rows a load of this run stamped (A3), found through the stamp's index (migration 0016 for
    web.customer), not by a read of the whole table."""
    return sql.SQL("updated_at >= (SELECT started_at FROM userdebtor.sync_run WHERE run_id = {r})").format(
        r=sql.Literal(run_id))


STAGED_ERP = [staged_erp_debtors, staged_crm_contacts, staged_debtor_conversions, staged_sales_orders]
STAGED_WEB = [staged_web_users, staged_web_customers]
assets = [sync_run_started, *STAGED_ERP, *STAGED_WEB]


@dg.asset(
    group_name="plan",
    deps=[*STAGED_ERP, *STAGED_WEB],
    description="What this run plans from: staged rows changed since the last good run (all of them in --full).",
)
def change_window(context: dg.AssetExecutionContext, web: WebDatabase) -> dg.MaterializeResult:
    with web.engine.begin() as conn:
        upto = conn.execute(sa.text("SELECT last_value FROM userdebtor.change_seq")).scalar()
        conn.execute(
            sa.text("UPDATE userdebtor.sync_run SET plan_seq = :u WHERE run_id = :r"),
            {"u": upto, "r": context.run_id},
        )
        since = conn.execute(
            sa.text("SELECT (summary->>'since')::bigint FROM userdebtor.sync_run WHERE run_id = :r"),
            {"r": context.run_id},
        ).scalar()
    return dg.MaterializeResult(
        metadata={"since_seq": dg.MetadataValue.int(int(since or 0)), "upto_seq": dg.MetadataValue.int(int(upto or 0))}
    )


assets.append(change_window)
