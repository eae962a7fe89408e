"""Small helpers every domain uses: run a SQL file, read the run's change window, build UI metadata."""

from __future__ import annotations

import re
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from userdebtor_pipeline.paths import read_sql

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
_STEP = re.compile(r"^--\s*step:\s*(.+)$", re.MULTILINE)


def sql_steps(relative: str) -> list[tuple[str, str]]:
    """A SQL file split at `-- step: <name>` lines into (name, statement); a file without them is one step."""
    text = read_sql(relative)
    marks = list(_STEP.finditer(text))
    if not marks:
        return [(relative, text)]
    steps = []
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        body = text[mark.end() : end].strip()
        if body:
            steps.append((mark.group(1).strip(), body))
    return steps


def run_sql(
    conn: Connection, relative: str, params: Mapping[str, Any] | None = None, *, skip: Collection[str] = ()
) -> dict[str, int]:
    """Run every step of a SQL file (but those named in `skip`) with bound parameters; the row count of each."""
    counts: dict[str, int] = {}
    for name, statement in sql_steps(relative):
        if name in skip:
            continue
        result = conn.execute(sa.text(statement), dict(params or {}))
        counts[name] = result.rowcount if result.rowcount is not None else -1
    return counts


@dataclass(frozen=True)
class ChangeWindow:
    """What this run plans from: staged rows whose change_seq is above `since` (0 in a full run)."""

    run_id: str
    since: int
    upto: int
    full: bool
    dry_run: bool


def change_window(conn: Connection, run_id: str) -> ChangeWindow:
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
    return ChangeWindow(run_id=run_id, since=int(since), upto=int(upto), full=mode == "full", dry_run=dry_run)


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
