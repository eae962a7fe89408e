"""The record of problems: records set aside with their reason, and the warnings the rules ask for.

A problem is one row per (kind, subject) in userdebtor.problem, seen again and again until it goes.
A warning is a `user_debtor_warning` email queued once per distinct event, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.engine import Connection

from userdebtor_pipeline.email import queue_warnings
from userdebtor_pipeline.settings import Settings

# The one statement that records problems: every row of a table of set-aside records (kind, rule, subject,
# detail) becomes a problem, or is seen again. Each load of a run records the plan's rows (its own may have
# joined them); a row an earlier step of this run recorded as it is is counted, not written again.
_RECORD = sql.SQL("""
WITH found AS (
    SELECT DISTINCT ON (kind, subject) kind, rule, subject, detail FROM {source} ORDER BY kind, subject
), recorded AS (
    INSERT INTO userdebtor.problem AS p (kind, rule, subject, detail, first_run_id, last_run_id)
    SELECT f.kind, f.rule, f.subject, f.detail, %(run_id)s, %(run_id)s
      FROM found f
     WHERE NOT EXISTS (SELECT 1 FROM userdebtor.problem o
                        WHERE o.kind = f.kind AND o.subject = f.subject AND o.last_run_id = %(run_id)s
                          AND o.resolved_at IS NULL AND o.rule = f.rule AND o.detail = f.detail)
    ON CONFLICT (kind, subject) DO UPDATE
       SET detail = excluded.detail, rule = excluded.rule, last_run_id = excluded.last_run_id,
           last_seen_at = now(), resolved_at = NULL
    RETURNING (p.xmax = 0) AS is_new
)
SELECT (SELECT count(*) FROM found), (SELECT count(*) FROM recorded WHERE is_new)
""")
# Warnings of set-aside rows not queued yet: the cost follows what is new, not what is known.
_FRESH_WARNINGS = sql.SQL("""
SELECT s.kind, s.rule, s.subject, s.detail FROM {source} s
 WHERE s.warn
   AND NOT EXISTS (SELECT 1 FROM web.email_outbox o WHERE o.dedupe_key = 'warning:' || s.kind || ':' || s.subject)
 ORDER BY s.kind, s.subject
""")
# Where set-aside records wait to be recorded: the plans' tables, and the problems Python finds one by one.
SET_ASIDE = "userdebtor.plan_set_aside"
CONTACTS_SET_ASIDE = "userdebtor.plan_contact_set_aside"
_FOUND = "_problem_found"  # a temporary table of this transaction


@dataclass(frozen=True)
class Problem:
    kind: str  # e.g. malformed_email
    rule: str  # e.g. U1
    subject: str  # e.g. user:42
    detail: str  # in words, for a person
    warn: bool = False  # the rule asks for a warning email
    facts: Mapping[str, str | None] = field(default_factory=dict)  # shown in the warning email


def record_set_aside_rows(conn: Connection, settings: Settings, run_id: str, source: str) -> dict[str, int]:
    """Set-based: every row of `source` (one of the tables above) becomes a problem or is seen again; rows of
    plan_set_aside marked `warn` get their warning email once."""
    table = sql.Identifier(*source.split("."))
    with conn.connection.driver_connection.cursor() as cursor:  # this transaction's connection
        found, new = cursor.execute(_RECORD.format(source=table), {"run_id": run_id}).fetchone()
        fresh = cursor.execute(_FRESH_WARNINGS.format(source=table)).fetchall() if source == SET_ASIDE else []
    # Only plan_set_aside's rows say whether their rule warns.
    warn(conn, settings, run_id, [Problem(*row, warn=True) for row in fresh])
    return {"problems_new": new, "problems_seen_again": found - new, "warnings_queued": len(fresh)}


def record_problems(conn: Connection, settings: Settings, run_id: str, problems: Iterable[Problem]) -> int:
    """Record problems Python found one by one, through the same statement as the plans' set-aside rows, and queue
    the warning of each that asks for one (once per kind and subject). Returns how many."""
    found = list(problems)
    if not found:
        return 0
    conn.exec_driver_sql(
        "CREATE TEMP TABLE IF NOT EXISTS _problem_found (kind text, rule text, subject text, detail text)"
        " ON COMMIT DROP"
    )
    conn.exec_driver_sql("DELETE FROM _problem_found")
    conn.execute(
        sa.text("INSERT INTO _problem_found (kind, rule, subject, detail) VALUES (:kind, :rule, :subject, :detail)"),
        [{"kind": p.kind, "rule": p.rule, "subject": p.subject, "detail": p.detail} for p in found],
    )
    record_set_aside_rows(conn, settings, run_id, _FOUND)
    warn(conn, settings, run_id, [problem for problem in found if problem.warn])
    return len(found)


def warn(conn: Connection, settings: Settings, run_id: str, problems: Sequence[Problem]) -> int:
    """Queue the warning of each problem, once per kind and subject, as one batch; how many were new."""
    events = [{"rule": p.rule, "kind": p.kind, "subject_key": p.subject, "summary": p.detail,
               "details": {"record": p.subject, **p.facts}, "run_id": run_id} for p in problems]
    return len(queue_warnings(conn, settings_email=settings.email, warning_to=settings.user_debtor.warning_emails_to,
                              events=events, templates_dir=settings.email.templates_dir))


def record_set_aside(conn: Connection, settings: Settings, run_id: str) -> dict[str, int]:
    """The user/debtor plans' set-aside records (plan_set_aside) as problems, warned about where the rules say."""
    recorded = record_set_aside_rows(conn, settings, run_id, SET_ASIDE)
    return {"problems_recorded": recorded["problems_new"] + recorded["problems_seen_again"],
            "warnings_queued": recorded["warnings_queued"]}
