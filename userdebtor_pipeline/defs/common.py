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
