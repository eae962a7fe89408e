"""C1-C4: receive the ERP's code conversions into web.customer_conversion and apply each once, in order.

Pending rows apply in waves: a wave holds rows that name no code an earlier pending row names, so they commute
and apply together set-based (apply_conversion_wave.sql). A wave is applied and its rows stamped in one
transaction, so a run killed in the middle leaves every row either wholly applied and stamped or untouched. When
more rows are pending than one wave takes, two transactions apply waves side by side.
"""

import threading
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from userdebtor_pipeline.defs.common import Stopwatch, markdown_table, run_sql, sample
from userdebtor_pipeline.defs.extract.assets import staged_debtor_conversions
from userdebtor_pipeline.defs.problems import Problem, record_problems
from userdebtor_pipeline.defs.resources import RunOptions, SyncSettings, WebDatabase
from userdebtor_pipeline.settings import Settings

GROUP = "conversions"
OUTCOMES = ("converted", "merged", "skipped", "failed")
WARNED = ("skipped", "failed")  # C4: these rows come with a warning
# Rows per wave: one transaction's worth, so a wave's locks and temp tables stay small.
WAVE_SIZE = 5_000
# Waves in flight at once when more rows are pending than one wave takes: the rows of two waves name different
# codes, so they touch different rows, and while one waits on a page the other goes on.
WAVES_AT_ONCE = 2
PENDING_SQL = "SELECT count(*) FROM web.customer_conversion WHERE processed_at IS NULL"
SHOWN_ROWS = 20


@dg.asset(
    group_name=GROUP,
    deps=[staged_debtor_conversions],
    description="The web's Customer Conversion table: ERP conversions received, in conversion_seq order (C1).",
)
def conversion_ledger(web: WebDatabase, settings: SyncSettings, run_options: RunOptions) -> dg.MaterializeResult:
    watch = Stopwatch()
    received = 0
    with web.engine.begin() as conn:
        if settings.get().customer_conversions.enabled and not run_options.dry_run:
            received = run_sql(conn, "conversions/receive_conversions.sql")["receive_conversions"]
        pending = conn.execute(sa.text(PENDING_SQL)).scalar()
        preview = sample(
            conn,
            "SELECT conversion_seq, old_code, new_code, conversion_date FROM web.customer_conversion"
            " WHERE processed_at IS NULL ORDER BY conversion_seq",
        )
    return dg.MaterializeResult(
        metadata={
            "received": received,
            "pending": int(pending),
            "seconds": watch.seconds,
            "pending_sample": dg.MetadataValue.md(preview),
        }
    )


def apply_wave(conn: Connection, config: Settings, run_id: str) -> list[dict[str, Any]]:
    """Apply the next wave of pending conversions in the caller's transaction; its rows with their outcomes.

    A failed or skipped row is recorded as a C4 problem (a warning) in the same transaction as its stamp.
    """
    picked = run_sql(conn, "conversions/apply_conversion_wave.sql", {"wave_size": WAVE_SIZE})["wave_picked"]
    if not picked:
        return []
    wave = [
        dict(row)
        for row in conn.execute(
            sa.text("SELECT conversion_seq, old_code, new_code, outcome, detail FROM web.customer_conversion"
                    " WHERE conversion_seq IN (SELECT conversion_seq FROM conversion_wave) ORDER BY conversion_seq")
        ).mappings()
    ]
    warnings = [
        Problem(kind=f"conversion_{row['outcome']}", rule="C4", subject=f"conversion:{row['conversion_seq']}",
                detail=row["detail"], warn=True, facts={"old_code": row["old_code"], "new_code": row["new_code"]})
        for row in wave
        if row["outcome"] in WARNED
    ]
    if warnings:
        record_problems(conn, config, run_id, warnings)
    return wave


def apply_pending_waves(engine: Engine, config: Settings, run_id: str) -> list[list[dict[str, Any]]]:
    """Every pending wave, each in a transaction of its own, in conversion_seq order of their first rows.

    When more rows are pending than one wave takes, WAVES_AT_ONCE transactions pick and apply waves side by side.
    A wave picks only rows no other transaction holds (SKIP LOCKED) and that wait on no earlier pending row, so a
    chain still applies in order. The first failure starts no further wave and is raised once the others end.
    """

    def next_wave() -> list[dict[str, Any]]:
        with engine.begin() as conn:
            return apply_wave(conn, config, run_id)

    stop = threading.Event()

    def waves_until_none_left() -> list[list[dict[str, Any]]]:
        waves: list[list[dict[str, Any]]] = []
        try:
            while not stop.is_set() and (wave := next_wave()):
                waves.append(wave)
        except BaseException:
            stop.set()
            raise
        return waves

    with engine.connect() as conn:
        pending = conn.execute(sa.text(PENDING_SQL)).scalar_one()
    if pending <= WAVE_SIZE:
        return waves_until_none_left()
    with ThreadPoolExecutor(max_workers=WAVES_AT_ONCE, thread_name_prefix="conversion-wave") as pool:
        running = [pool.submit(waves_until_none_left) for _ in range(WAVES_AT_ONCE)]
        wait(running)
    waves = [wave for worker in running for wave in worker.result()]
    return sorted(waves, key=lambda wave: wave[0]["conversion_seq"])


@dg.asset(
    group_name=GROUP,
    deps=[conversion_ledger],
    description="Every unprocessed conversion applied once, in order: waves of rows that name different codes, "
    "each wave set-based in one transaction with every row's own outcome (C1-C4).",
)
def customer_conversions_applied(
    context: dg.AssetExecutionContext, web: WebDatabase, settings: SyncSettings, run_options: RunOptions
) -> dg.MaterializeResult:
    watch = Stopwatch()
    config = settings.get()
    outcomes: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
    shown: list[dict[str, Any]] = []
    waves = 0
    if config.customer_conversions.enabled and not run_options.dry_run:
        for wave in apply_pending_waves(web.engine, config, context.run_id):
            waves += 1
            for row in wave:
                outcomes[row["outcome"]] += 1
            shown += wave[: SHOWN_ROWS - len(shown)]
    return dg.MaterializeResult(
        metadata={
            **{k: dg.MetadataValue.int(v) for k, v in outcomes.items()},
            "waves": dg.MetadataValue.int(waves),
            "enabled": config.customer_conversions.enabled,
            "dry_run": run_options.dry_run,
            "outcomes": dg.MetadataValue.md(markdown_table(shown, limit=SHOWN_ROWS)),
            "seconds": watch.seconds,
        }
    )


assets = [conversion_ledger, customer_conversions_applied]
