"""SQL files of named steps: `-- step: <name>` lines split a file into statements, each named by a snake_case
identifier that Python runs, skips or reads the row count of.

A step name is an API between the SQL and the Python that reads it, so it is checked when the definitions load:
an `SqlFile` declared at module level fails the import when a name in its file is not snake_case, appears twice,
or is one the Python reads (`reads=`) and the file lacks. Renaming a step then breaks loading, not a count.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, CursorResult

from userdebtor_pipeline.paths import read_sql

STEP_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_STEP_LINE = re.compile(r"^--\s*step:(.*)$", re.MULTILINE)


class SqlStepError(ValueError):
    """A SQL file's step names do not fit the Python that runs it."""


@cache
def sql_steps(relative: str) -> tuple[tuple[str, str], ...]:
    """A SQL file split at its `-- step: <name>` lines into (name, statement); a file without them is one step,
    named after the file ('contacts/user_batches.sql' -> 'user_batches')."""
    text = read_sql(relative)
    marks = list(_STEP_LINE.finditer(text))
    if not marks:
        return ((PurePosixPath(relative).stem, text),)
    steps: list[tuple[str, str]] = []
    for i, mark in enumerate(marks):
        name = mark.group(1).strip()
        if not STEP_NAME.match(name):
            raise SqlStepError(f"{relative}: step {name!r} is not a snake_case identifier (e.g. 'orders_to_add')")
        if any(name == seen for seen, _ in steps):
            raise SqlStepError(f"{relative}: step {name!r} is named twice")
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        body = text[mark.end() : end].strip()
        if body:
            steps.append((name, body))
    return tuple(steps)


def step_names(relative: str) -> list[str]:
    return [name for name, _ in sql_steps(relative)]


def check_steps_named(relative: str, names: Iterable[str], purpose: str = "reads") -> None:
    """Raise SqlStepError when Python names a step the file lacks."""
    known = step_names(relative)
    missing = [name for name in names if name not in known]
    if missing:
        raise SqlStepError(
            f"{relative}: Python {purpose} step(s) {', '.join(map(repr, missing))} that the file lacks;"
            f" its steps are {', '.join(known)}"
        )


def run_sql(
    conn: Connection,
    relative: str,
    params: Mapping[str, Any] | None = None,
    *,
    skip: Collection[str] = (),
    only: Collection[str] | None = None,
) -> dict[str, int]:
    """Run the steps of a SQL file in order (all, or `only` these, never those in `skip`) with bound parameters;
    the row count of each step run, by name."""
    check_steps_named(relative, [*skip, *(only or ())], "skips or picks")
    counts: dict[str, int] = {}
    for name, statement in sql_steps(relative):
        if name in skip or (only is not None and name not in only):
            continue
        result = conn.execute(sa.text(statement), dict(params or {}))
        counts[name] = result.rowcount if result.rowcount is not None else -1
    return counts


@dataclass(frozen=True)
class SqlFile:
    """One SQL file and the step names the Python around it reads, checked against the file when declared."""

    relative: str
    reads: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_steps_named(self.relative, self.reads)

    @property
    def steps(self) -> list[str]:
        return step_names(self.relative)

    def run(
        self,
        conn: Connection,
        params: Mapping[str, Any] | None = None,
        *,
        skip: Collection[str] = (),
        only: Collection[str] | None = None,
    ) -> dict[str, int]:
        return run_sql(conn, self.relative, params, skip=skip, only=only)

    def statement(self, name: str) -> str:
        """The SQL of one step, by a name declared in `reads` (and so checked when the definitions load)."""
        if name not in self.reads:
            raise SqlStepError(f"{self.relative}: step {name!r} is read by Python but not declared in reads=")
        return dict(sql_steps(self.relative))[name]

    def execute(self, conn: Connection, name: str, params: Mapping[str, Any] | None = None) -> CursorResult:
        """Run one step and hand back its result, for a step whose rows the Python reads."""
        return conn.execute(sa.text(self.statement(name)), dict(params or {}))

    def rows_written(self, conn: Connection, params: Mapping[str, Any] | None = None) -> int:
        """Run a file of one step (named after the file); the rows it wrote."""
        (name,) = self.steps
        return self.run(conn, params)[name]


def sql_files() -> list[str]:
    """Every SQL file of the domains (`defs/<domain>/sql/*.sql`), as read_sql names them."""
    root = Path(__file__).resolve().parent
    return sorted(f"{path.parent.parent.name}/{path.name}" for path in root.glob("*/sql/*.sql"))


def check_sql_files() -> None:
    """Every domain SQL file's step names are snake_case and unique (raises SqlStepError otherwise)."""
    for relative in sql_files():
        sql_steps(relative)
