"""The record of problems: records set aside with their reason, and the warnings the rules ask for.

A problem is one row per (kind, subject) in userdebtor.problem, seen again and again until it goes.
A warning is a `user_debtor_warning` email queued once per distinct event, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from userdebtor_pipeline.email import queue_warning
from userdebtor_pipeline.settings import Settings

_UPSERT = """
INSERT INTO userdebtor.problem (kind, rule, subject, detail, first_run_id, last_run_id)
VALUES (:kind, :rule, :subject, :detail, :run_id, :run_id)
ON CONFLICT (kind, subject) DO UPDATE
   SET detail = excluded.detail, rule = excluded.rule, last_run_id = excluded.last_run_id,
       last_seen_at = now(), resolved_at = NULL
"""


@dataclass(frozen=True)
class Problem:
    kind: str  # e.g. malformed_email
    rule: str  # e.g. U1
    subject: str  # e.g. user:42
    detail: str  # in words, for a person
    warn: bool = False  # the rule asks for a warning email
    facts: Mapping[str, str | None] = field(default_factory=dict)  # shown in the warning email


def record_problems(conn: Connection, settings: Settings, run_id: str, problems: Iterable[Problem]) -> int:
    """Record each problem and queue its warning (once per kind and subject). Returns how many."""
    count = 0
    for problem in problems:
        conn.execute(
            sa.text(_UPSERT),
            {"kind": problem.kind, "rule": problem.rule, "subject": problem.subject, "detail": problem.detail,
             "run_id": run_id},
        )
        if problem.warn:
            warn(conn, settings, run_id, problem)
        count += 1
    return count


def warn(conn: Connection, settings: Settings, run_id: str, problem: Problem) -> int | None:
    return queue_warning(
        conn,
        settings_email=settings.email,
        warning_to=settings.user_debtor.warning_emails_to,
        rule=problem.rule,
        kind=problem.kind,
        subject_key=problem.subject,
        summary=problem.detail,
        details={"record": problem.subject, **problem.facts},
        templates_dir=settings.email.templates_dir,
        run_id=run_id,
    )


def record_set_aside(conn: Connection, settings: Settings, run_id: str) -> dict[str, int]:
    """Set-based: every row of plan_set_aside becomes a problem; warn rows get their email once.

    Only warnings not yet queued are rendered, so the cost follows what is new, not what is known.
    """
    recorded = conn.execute(
        sa.text(
            "INSERT INTO userdebtor.problem (kind, rule, subject, detail, first_run_id, last_run_id)"
            " SELECT kind, rule, subject, detail, :run_id, :run_id FROM userdebtor.plan_set_aside"
            " ON CONFLICT (kind, subject) DO UPDATE SET detail = excluded.detail,"
            " last_run_id = excluded.last_run_id, last_seen_at = now(), resolved_at = NULL"
        ),
        {"run_id": run_id},
    ).rowcount
    fresh = conn.execute(
        sa.text(
            "SELECT s.kind, s.rule, s.subject, s.detail FROM userdebtor.plan_set_aside s"
            " WHERE s.warn AND NOT EXISTS (SELECT 1 FROM web.email_outbox o"
            "   WHERE o.dedupe_key = 'warning:' || s.kind || ':' || s.subject)"
            " ORDER BY s.kind, s.subject"
        )
    ).all()
    for kind, rule, subject, detail in fresh:
        warn(conn, settings, run_id, Problem(kind=kind, rule=rule, subject=subject, detail=detail, warn=True))
    return {"problems_recorded": recorded, "warnings_queued": len(fresh)}
