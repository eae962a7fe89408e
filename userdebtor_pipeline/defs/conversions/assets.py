"""C1-C4: receive the ERP's code conversions into web.customer_conversion and apply each once, in order.

Each row is applied in its own transaction together with its processed_at stamp, so a run killed in the
middle of a batch leaves every row either wholly applied and stamped or untouched.
"""

import re
from dataclasses import dataclass

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from userdebtor_pipeline.defs.common import Stopwatch, markdown_table, run_sql, sample
from userdebtor_pipeline.defs.extract.assets import staged_debtor_conversions
from userdebtor_pipeline.defs.problems import Problem, record_problems
from userdebtor_pipeline.defs.resources import RunOptions, SyncSettings, WebDatabase
from userdebtor_pipeline.paths import read_sql

GROUP = "conversions"
_CODE_SHAPE = r"^[A-Za-z0-9_\-./]{1,40}$"


@dataclass(frozen=True)
class Decision:
    outcome: str  # converted | merged | skipped | failed
    detail: str
    warn: bool


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
        pending = conn.execute(
            sa.text("SELECT count(*) FROM web.customer_conversion WHERE processed_at IS NULL")
        ).scalar()
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


def _on_web(conn: Connection, code: str) -> bool:
    return bool(conn.execute(sa.text(read_sql("conversions/code_on_web.sql")), {"code": code}).scalar())


def _malformed(code: str) -> str | None:
    """Why a code of a conversion row cannot be used, in words; None when it can (C4)."""
    if not code.strip():
        return "an empty code"
    if code != code.strip():
        return f"the code {code!r}, with spaces around it"
    if not re.match(_CODE_SHAPE, code):
        return f"the code {code!r}, which is not a debtor code"
    return None


def _decide(conn: Connection, old: str, new: str) -> Decision | None:
    """The outcome of one row before it is applied; None means apply it (convert or merge).

    C4: a row is a rename of what the web holds when it comes, so A to B then B to A ends at A, as in the ERP.
    A bad row is failed alone; it never holds back the rows after it.
    """
    for side, code in (("old", old), ("new", new)):
        problem = _malformed(code)
        if problem is not None:
            return Decision("failed", f"the row's {side} code is {problem}, so nothing was converted", True)
    if old == new:
        return Decision("failed", f"the row names {old} twice: a code cannot be converted into itself", True)
    if not _on_web(conn, old):
        return Decision("skipped", f"{old} is not on the web, so there is nothing to convert", True)
    return None


def apply_one(conn: Connection, seq: int, old: str, new: str) -> Decision:
    """Apply one conversion in the caller's transaction and stamp it."""
    decision = _decide(conn, old, new)
    if decision is None:
        merge = _on_web(conn, new)
        counts = run_sql(conn, "conversions/apply_conversion.sql", {"old": old, "new": new, "merge": merge})
        touched = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items() if v > 0) or "no rows"
        verb = "merged into the existing account" if merge else "renamed"
        decision = Decision("merged" if merge else "converted", f"{old} {verb} {new}: {touched}", False)
    conn.execute(
        sa.text(
            "UPDATE web.customer_conversion SET processed_at = now(), outcome = :o, detail = :d"
            " WHERE conversion_seq = :s"
        ),
        {"o": decision.outcome, "d": decision.detail, "s": seq},
    )
    return decision


@dg.asset(
    group_name=GROUP,
    deps=[conversion_ledger],
    description="Every unprocessed conversion applied once, in order, each in its own transaction (C1-C4).",
)
def customer_conversions_applied(
    context: dg.AssetExecutionContext, web: WebDatabase, settings: SyncSettings, run_options: RunOptions
) -> dg.MaterializeResult:
    watch = Stopwatch()
    config = settings.get()
    outcomes: dict[str, int] = {"converted": 0, "merged": 0, "skipped": 0, "failed": 0}
    applied: list[dict] = []
    if config.customer_conversions.enabled and not run_options.dry_run:
        with web.engine.connect() as conn:
            pending = (
                conn.execute(
                    sa.text(
                        "SELECT conversion_seq FROM web.customer_conversion"
                        " WHERE processed_at IS NULL ORDER BY conversion_seq"
                    )
                )
                .scalars()
                .all()
            )
        for pending_seq in pending:
            with web.engine.begin() as conn:
                row = conn.execute(
                    sa.text(
                        "SELECT conversion_seq, old_code, new_code FROM web.customer_conversion"
                        " WHERE conversion_seq = :s AND processed_at IS NULL FOR UPDATE"
                    ),
                    {"s": pending_seq},
                ).one_or_none()
                if row is None:  # stamped meanwhile: each row is processed once
                    continue
                seq, old, new = row
                decision = apply_one(conn, seq, old, new)
                if decision.warn:
                    record_problems(
                        conn,
                        config,
                        context.run_id,
                        [
                            Problem(
                                kind=f"conversion_{decision.outcome}",
                                rule="C4",
                                subject=f"conversion:{seq}",
                                detail=decision.detail,
                                warn=True,
                                facts={"old_code": old, "new_code": new},
                            )
                        ],
                    )
            outcomes[decision.outcome] += 1
            applied.append(
                {
                    "conversion_seq": seq,
                    "old_code": old,
                    "new_code": new,
                    "outcome": decision.outcome,
                    "detail": decision.detail,
                }
            )
    return dg.MaterializeResult(
        metadata={
            **{k: dg.MetadataValue.int(v) for k, v in outcomes.items()},
            "enabled": config.customer_conversions.enabled,
            "dry_run": run_options.dry_run,
            "outcomes": dg.MetadataValue.md(markdown_table(applied)),
            "seconds": watch.seconds,
        }
    )


assets = [conversion_ledger, customer_conversions_applied]
