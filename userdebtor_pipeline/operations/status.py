"""`userdebtor status`: what the last runs did and what waits for a person, read from the state and the web.

Only counts, codes and ids are printed, with at most a handful of examples per kind: a terminal (or a ticket
it is pasted into) is no place for customers' names, emails or addresses.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from userdebtor_pipeline.db import safe_url
from userdebtor_pipeline.defs.resources import SYNC_LOCK_KEY
from userdebtor_pipeline.masking import mask_secrets

EXAMPLES = 5  # examples shown per kind: enough to find the records, too few to leak a customer list
_EMAIL = re.compile(r"[^\s<>@,;:\"']+@[^\s<>@,;:\"']+")

_RUNS_SQL = sa.text(
    "SELECT run_id, started_at, finished_at, mode, dry_run, outcome, summary->>'error' AS error"
    " FROM userdebtor.sync_run ORDER BY started_at DESC LIMIT :limit"
)
_RUNS_LAST_DAY_SQL = sa.text(
    "SELECT coalesce(outcome, CASE WHEN finished_at IS NULL THEN 'unfinished' ELSE 'finished' END), count(*)"
    " FROM userdebtor.sync_run WHERE started_at > now() - interval '24 hours' GROUP BY 1 ORDER BY 1"
)
# The run lock (SyncLock) is a session advisory lock: held means a sync is writing right now.
_SYNC_RUNNING_SQL = sa.text(
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND ((classid::bigint << 32) | objid::bigint) = :key)"
)
_CONFLICT_COUNTS_SQL = sa.text(
    "SELECT status, count(*) FROM userdebtor.conflict WHERE status IN ('open', 'resolved') GROUP BY status"
)
_OPEN_CONFLICTS_SQL = sa.text(
    "SELECT conflict_id, dr_cust_code, user_id, field, detected_at FROM userdebtor.conflict"
    " WHERE status = 'open' ORDER BY detected_at, conflict_id LIMIT :limit"
)
_PROBLEMS_SQL = sa.text(
    "SELECT rule, kind, count(*) AS records, min(first_seen_at) AS first_seen, max(last_seen_at) AS last_seen,"
    " (array_agg(subject ORDER BY last_seen_at DESC, subject))[1:CAST(:examples AS int)] AS examples"
    " FROM userdebtor.problem WHERE resolved_at IS NULL GROUP BY rule, kind ORDER BY rule, kind"
)
_PENDING_CONVERSIONS_SQL = sa.text(
    "SELECT conversion_seq, old_code, new_code, received_at FROM web.customer_conversion"
    " WHERE processed_at IS NULL ORDER BY conversion_seq LIMIT :limit"
)
_CONVERSION_COUNTS_SQL = sa.text(
    "SELECT CASE WHEN processed_at IS NULL THEN 'pending' ELSE coalesce(outcome, 'processed') END,"
    " count(*), max(conversion_seq) FROM web.customer_conversion"
    " GROUP BY 1 ORDER BY 1"
)
_ERP_CONVERSIONS_AFTER_SQL = sa.text(
    "SELECT count(*) FROM erp.deb_conversion WHERE conversion_seq > :after"
)
_OUTBOX_SQL = sa.text(
    "SELECT status, count(*), min(created_at), count(*) FILTER (WHERE attempts > 0)"
    " FROM web.email_outbox GROUP BY status ORDER BY status"
)
_FAILED_EMAILS_SQL = sa.text(
    "SELECT email_id, template, attempts, created_at, last_error FROM web.email_outbox"
    " WHERE status = 'failed' ORDER BY email_id DESC LIMIT :limit"
)
_WATERMARKS_SQL = sa.text("SELECT name, value, seq, updated_at FROM userdebtor.watermark ORDER BY name")


@dataclass(frozen=True)
class RunLine:
    run_id: str
    started_at: datetime
    finished_at: datetime | None
    mode: str
    dry_run: bool
    outcome: str  # succeeded | held | failed | running | held or failed
    error: str | None


@dataclass(frozen=True)
class ProblemKind:
    rule: str
    kind: str
    records: int
    first_seen: datetime
    last_seen: datetime
    examples: list[str]


@dataclass(frozen=True)
class OutboxStatus:
    status: str
    emails: int
    oldest: datetime | None
    retried: int  # emails of this status that failed at least once


@dataclass
class StatusReport:
    """Everything `userdebtor status` shows; collected first, then rendered, so tests can read either."""

    web_url: str
    erp_url: str | None
    erp_problem: str | None
    now: datetime
    runs: list[RunLine] = field(default_factory=list)
    runs_last_day: dict[str, int] = field(default_factory=dict)
    conflicts_open: int = 0
    conflicts_resolved_waiting: int = 0
    open_conflict_examples: list[dict[str, Any]] = field(default_factory=list)
    problems: list[ProblemKind] = field(default_factory=list)
    conversions: dict[str, int] = field(default_factory=dict)  # outcome (or pending) -> rows
    pending_conversion_examples: list[dict[str, Any]] = field(default_factory=list)
    conversions_not_received: int | None = None  # in the ERP, not yet copied to the web; None: ERP unreachable
    outbox: list[OutboxStatus] = field(default_factory=list)
    failed_emails: list[dict[str, Any]] = field(default_factory=list)
    watermarks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def problems_total(self) -> int:
        return sum(p.records for p in self.problems)


def _run_outcome(row: Any, newest_unfinished: str | None, sync_running: bool) -> str:
    if row.outcome:
        return row.outcome
    if row.finished_at is None and row.run_id == newest_unfinished and sync_running:
        return "running"
    # No outcome and no lock held: the run stopped without closing (a blocking check held it, or it failed).
    return "held or failed"


def collect_status(web: Engine, erp: Engine | None, *, erp_problem: str | None = None,
                   runs: int = 10, examples: int = EXAMPLES) -> StatusReport:
    """Read everything `status` shows; one short read-only transaction per database."""
    with web.connect() as conn:
        report = StatusReport(web_url=safe_url(web.url), erp_url=safe_url(erp.url) if erp else None,
                              erp_problem=erp_problem, now=conn.execute(sa.text("SELECT now()")).scalar_one())
        _collect_runs(conn, report, runs)
        _collect_conflicts(conn, report, examples)
        report.problems = [
            ProblemKind(rule=r.rule, kind=r.kind, records=int(r.records), first_seen=r.first_seen,
                        last_seen=r.last_seen, examples=list(r.examples or []))
            for r in conn.execute(_PROBLEMS_SQL, {"examples": examples})
        ]
        newest_received = 0
        for outcome, count, newest in conn.execute(_CONVERSION_COUNTS_SQL):
            report.conversions[outcome] = int(count)
            newest_received = max(newest_received, int(newest or 0))
        report.pending_conversion_examples = [
            dict(r) for r in conn.execute(_PENDING_CONVERSIONS_SQL, {"limit": examples}).mappings()
        ]
        report.outbox = [OutboxStatus(status=s, emails=int(n), oldest=oldest, retried=int(retried))
                         for s, n, oldest, retried in conn.execute(_OUTBOX_SQL)]
        report.failed_emails = [
            {**dict(r), "last_error": _without_addresses(r["last_error"])}
            for r in conn.execute(_FAILED_EMAILS_SQL, {"limit": examples}).mappings()
        ]
        report.watermarks = [dict(r) for r in conn.execute(_WATERMARKS_SQL).mappings()]
    if erp is not None:
        with erp.connect() as conn:
            report.conversions_not_received = int(
                conn.execute(_ERP_CONVERSIONS_AFTER_SQL, {"after": newest_received}).scalar_one())
    return report


def _collect_runs(conn: Connection, report: StatusReport, limit: int) -> None:
    rows = conn.execute(_RUNS_SQL, {"limit": max(limit, 1)}).all()
    sync_running = bool(conn.execute(_SYNC_RUNNING_SQL, {"key": SYNC_LOCK_KEY}).scalar())
    newest_unfinished = next((r.run_id for r in rows if r.finished_at is None and not r.outcome), None)
    report.runs = [
        RunLine(run_id=r.run_id, started_at=r.started_at, finished_at=r.finished_at, mode=r.mode,
                dry_run=bool(r.dry_run), outcome=_run_outcome(r, newest_unfinished, sync_running),
                error=mask_secrets(r.error) if r.error else None)
        for r in rows
    ]
    report.runs_last_day = {str(k): int(v) for k, v in conn.execute(_RUNS_LAST_DAY_SQL)}


def _collect_conflicts(conn: Connection, report: StatusReport, examples: int) -> None:
    counts = dict(conn.execute(_CONFLICT_COUNTS_SQL).all())
    report.conflicts_open = int(counts.get("open", 0))
    report.conflicts_resolved_waiting = int(counts.get("resolved", 0))
    report.open_conflict_examples = [
        dict(r) for r in conn.execute(_OPEN_CONFLICTS_SQL, {"limit": examples}).mappings()
    ]


def _without_addresses(text: str | None) -> str:
    """An SMTP error often quotes the recipient; the status shows the error, not the address."""
    if not text:
        return ""
    first_line = text.strip().splitlines()[0] if text.strip() else ""
    cleaned = _EMAIL.sub("<address>", mask_secrets(first_line))
    return cleaned if len(cleaned) <= 120 else cleaned[:117] + "..."


# --------------------------------------------------------------------------------------------- render


def _when(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "-"
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC ({_ago(now - moment)})"


def _ago(delta: Any) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 0:
        return "just now"
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def _duration(start: datetime, end: datetime | None) -> str:
    if end is None:
        return "-"
    seconds = (end - start).total_seconds()
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], indent: str = "  ") -> list[str]:
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = [indent + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += [indent + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return lines


def render_status(report: StatusReport) -> str:
    now = report.now
    out: list[str] = [f"userdebtor status at {now.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC", ""]
    out.append("databases")
    out.append(f"  web (and pipeline state): {report.web_url}")
    out.append(f"  ERP: {report.erp_url}" if report.erp_url else f"  ERP: UNREACHABLE: {report.erp_problem}")

    out += ["", "last runs (userdebtor.sync_run, newest first)"]
    if report.runs:
        out += _table(
            ["run id", "started", "mode", "took", "outcome"],
            [[r.run_id, _when(r.started_at, now), r.mode + (" (dry run)" if r.dry_run else ""),
              _duration(r.started_at, r.finished_at), r.outcome] for r in report.runs],
        )
        errors = [r for r in report.runs if r.error]
        for run in errors[:EXAMPLES]:
            out.append(f"  {run.run_id}: {run.error}")
        last_day = ", ".join(f"{k} {v}" for k, v in report.runs_last_day.items()) or "none"
        out.append(f"  last 24 hours: {last_day}")
        if any(r.outcome == "held or failed" for r in report.runs):
            out.append("  'held or failed': the run never closed; open it in the Dagster UI (or rerun "
                       "`userdebtor sync`) to see the check or step that stopped it")
    else:
        out.append("  no run yet: `userdebtor sync` runs one")

    out += ["", f"conflicts (U4): {report.conflicts_open} open, "
            f"{report.conflicts_resolved_waiting} resolved and waiting for the next sync"]
    if report.open_conflict_examples:
        out += _table(["id", "debtor", "user", "field", "detected"],
                      [[c["conflict_id"], c["dr_cust_code"], c["user_id"], c["field"], _when(c["detected_at"], now)]
                       for c in report.open_conflict_examples])
        if report.conflicts_open > len(report.open_conflict_examples):
            out.append(f"  ... and {report.conflicts_open - len(report.open_conflict_examples)} more")
        out.append("  see the values with `userdebtor conflicts`; settle one with "
                   "`userdebtor resolve ID --take erp|web`")

    out += ["", f"records set aside, with reasons (userdebtor.problem): {report.problems_total}"]
    if report.problems:
        out += _table(["rule", "kind", "records", "last seen", "examples"],
                      [[p.rule, p.kind, p.records, _when(p.last_seen, now), ", ".join(p.examples)]
                       for p in report.problems])
        out.append("  each warning email names the record and what to do; the next run retries them")

    pending = report.conversions.get("pending", 0)
    out += ["", f"customer conversions (C1): {pending} pending on the web"]
    if report.conversions_not_received is not None:
        out.append(f"  in the ERP, not yet copied to the web: {report.conversions_not_received}")
    done = {k: v for k, v in report.conversions.items() if k != "pending"}
    if done:
        out.append("  processed: " + ", ".join(f"{k} {v}" for k, v in sorted(done.items())))
    if report.pending_conversion_examples:
        out += _table(["seq", "old code", "new code", "received"],
                      [[c["conversion_seq"], c["old_code"], c["new_code"], _when(c["received_at"], now)]
                       for c in report.pending_conversion_examples])

    backlog = {o.status: o for o in report.outbox}
    total = sum(o.emails for o in report.outbox)
    out += ["", f"emails (web.email_outbox): {total}"]
    if report.outbox:
        out += _table(["status", "emails", "oldest", "retried"],
                      [[o.status, o.emails, _when(o.oldest, now), o.retried] for o in report.outbox])
    if "queued" in backlog:
        out.append("  queued emails go out at the end of the next sync run (or after a failed-run warning)")
    if report.failed_emails:
        out.append("  failed (newest first):")
        out += _table(["email id", "template", "attempts", "created", "last error"],
                      [[e["email_id"], e["template"], e["attempts"], _when(e["created_at"], now), e["last_error"]]
                       for e in report.failed_emails], indent="    ")
        out.append("  to retry one: set its status back to 'queued' with attempts 0")

    out += ["", "watermarks (userdebtor.watermark)"]
    if report.watermarks:
        out += _table(["name", "value", "seq", "updated"],
                      [[w["name"], w["value"].isoformat() if w["value"] else "", w["seq"],
                        _when(w["updated_at"], now)] for w in report.watermarks])
    else:
        out.append("  none yet: the first run reads everything")
    return "\n".join(out) + "\n"
