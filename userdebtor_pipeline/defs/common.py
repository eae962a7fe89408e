"""Small helpers every domain uses: run a SQL file, read the run's change window, build UI metadata."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from userdebtor_pipeline.defs.sql_file import run_sql as run_sql
from userdebtor_pipeline.defs.sql_file import sql_steps as sql_steps

# A well-formed email address, as far as a store login needs it; the same pattern is used in SQL (`~`), always
# on the address's key (A2): surrounding spaces do not make an address malformed, spaces inside it do.
EMAIL_PATTERN = r"^[^@\s\u00a0,;<>()]+@[^@\s\u00a0,;<>()]+\.[^@\s\u00a0,;<>().]{2,}$"
_WELL_FORMED = re.compile(EMAIL_PATTERN)


def email_key(address: str | None) -> str | None:
    """A2: what an address means to a person, trimmed and case-folded; SQL's twin is userdebtor.email_key()."""
    return None if address is None else address.strip(" ").lower()


def is_well_formed_email(address: str | None) -> bool:
    key = email_key(address)
    return bool(key) and _WELL_FORMED.match(key) is not None


@dataclass(frozen=True)
class ChangeWindow:
    """What this run plans from: staged rows whose change_seq is above `since` (0 in a full run)."""

    run_id: str
    since: int
    upto: int
    full: bool
    dry_run: bool


# A plan's mark: the newest change_seq when it planned; a good run's marks become the plans' own watermarks.
_MARK_SQL = sa.text(
    "UPDATE userdebtor.sync_run SET summary = summary || jsonb_build_object('marks',"
    " coalesce(summary->'marks', '{}'::jsonb) || jsonb_build_object(CAST(:plan AS text),"
    " coalesce(CAST(:at AS bigint), (SELECT last_value FROM userdebtor.change_seq))))"
    " WHERE run_id = :r"
)
_RUN_MARK_SQL = sa.text(
    "SELECT CAST(summary->'marks'->>CAST(:plan AS text) AS bigint) FROM userdebtor.sync_run WHERE run_id = :r"
)
_PLAN_WATERMARK_SQL = sa.text("SELECT seq FROM userdebtor.watermark WHERE name = 'plan:' || CAST(:plan AS text)")
# The marks of a run whose loads all went through (sync_run_completed): each plan's next window starts there.
MOVE_PLAN_WATERMARKS_SQL = sa.text(
    "INSERT INTO userdebtor.watermark (name, seq, updated_at)"
    " SELECT 'plan:' || m.key, m.value::bigint, now() FROM userdebtor.sync_run r,"
    " jsonb_each_text(coalesce(r.summary->'marks', '{}'::jsonb)) m WHERE r.run_id = :r"
    " ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, updated_at = now()"
)


def change_window(conn: Connection, run_id: str, plan: str | None = None) -> ChangeWindow:
    """The run's change window; with `plan`, that plan's own, and its mark taken now.

    A plan's window starts at its mark of the last good run rather than at the run's start: a run's steps go one
    at a time (in-process executor), so every change numbered up to the mark was committed and seen when the plan
    read. What a load wrote before a plan (in the run after a first load: every user, debtor and link made) is
    not looked at again by that plan; what was written after it is. Call it after anything the plan restages.
    """
    row = conn.execute(
        sa.text(
            "SELECT mode, dry_run, coalesce((summary->>'since')::bigint, 0), coalesce(plan_seq, 0)"
            " FROM userdebtor.sync_run WHERE run_id = :r"
        ),
        {"r": run_id},
    ).one_or_none()
    if row is None:
        raise RuntimeError(f"run {run_id} has no change window: the sync_run_started asset did not run")
    mode, dry_run, since, upto = row
    full = mode == "full"
    if plan is not None:
        mark_plan(conn, run_id, plan)
        own = conn.execute(_PLAN_WATERMARK_SQL, {"plan": plan}).scalar()
        if not full and own is not None:
            since = max(int(since), int(own))
    return ChangeWindow(run_id=run_id, since=int(since), upto=int(upto), full=full, dry_run=dry_run)


def mark_plan(conn: Connection, run_id: str, plan: str, at: int | None = None) -> None:
    """Take the plan's mark now (or `at`): every change numbered up to there has been looked at by the plan
    (change_window)."""
    conn.execute(_MARK_SQL, {"plan": plan, "r": run_id, "at": at})


def plan_mark(conn: Connection, run_id: str, plan: str) -> int | None:
    """The plan's mark in this run, or None when it has taken none."""
    mark = conn.execute(_RUN_MARK_SQL, {"plan": plan, "r": run_id}).scalar()
    return None if mark is None else int(mark)


def markdown_table(rows: Sequence[Mapping[str, Any]], limit: int = 20) -> str:
    """A Markdown table of the first rows, for the UI; an empty list says so."""
    if not rows:
        return "_none_"
    columns = list(rows[0].keys())
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows[:limit]:
        cells = ["" if row[c] is None else str(row[c]).replace("|", "\\|").replace("\n", " ") for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    if len(rows) > limit:
        lines.append(f"\n_{len(rows) - limit} more not shown_")
    return "\n".join(lines)


def sample(conn: Connection, query: str, params: Mapping[str, Any] | None = None, limit: int = 20) -> str:
    """Markdown of the first `limit` rows of a query (the query must not end in a LIMIT)."""
    rows = conn.execute(sa.text(f"{query} LIMIT :_limit"), {**(params or {}), "_limit": limit}).mappings().all()
    return markdown_table([dict(r) for r in rows], limit)


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return round(time.perf_counter() - self.started, 3)


def counts_metadata(counts: Mapping[str, int], seconds: float, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {k: dg.MetadataValue.int(int(v)) for k, v in counts.items()}
    meta["seconds"] = dg.MetadataValue.float(seconds)
    for key, value in extra.items():
        meta[key] = value
    return meta


def plain(value: Any) -> Any:
    """A metadata value as a person reads it: the text or number inside Dagster's MetadataValue wrapper."""
    return getattr(value, "value", value)
