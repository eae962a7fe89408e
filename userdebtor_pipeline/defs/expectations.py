"""Expectations on a plan, judged in PostgreSQL: exact counts of failing rows whatever the plan's size.

An `Expect` is one column expectation (the Great Expectations 1.x kinds the checks use). `judge_plan` renders
the expectations as SQL conditions over the plan's query, counts the failing rows of each in the database and
brings back only the first failing rows (and, on a failure, a bounded random sample of the passing ones), so a
check's memory does not grow with the plan. Great Expectations itself is imported only when a failure's Data Docs
are built from those rows (`Expect.gx`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.engine import Connection

from userdebtor_pipeline.quality import FrameVerdict

# Failing rows brought back per plan (the report shows them; the count is exact all the same), and passing rows
# sampled beside them for the Data Docs.
FAILING_ROWS_KEPT = 500
PASSING_ROWS_SAMPLED = 500
SAMPLE_VALUES = 20

# Great Expectations' name of each kind, as the verdict and the Data Docs show it.
_GX_NAMES = {
    "match_regex": "ExpectColumnValuesToMatchRegex",
    "unique": "ExpectColumnValuesToBeUnique",
    "not_null": "ExpectColumnValuesToNotBeNull",
    "in_set": "ExpectColumnValuesToBeInSet",
    "not_in_set": "ExpectColumnValuesToNotBeInSet",
}


@dataclass(frozen=True)
class Expect:
    """One column expectation; nulls fail `not_null` only, as in Great Expectations."""

    kind: str
    column: str
    value: Any = None  # the regex, or the value set

    def __post_init__(self) -> None:
        if self.kind not in _GX_NAMES:
            raise ValueError(f"unknown expectation {self.kind!r}; known: {', '.join(_GX_NAMES)}")

    @property
    def gx_name(self) -> str:
        return _GX_NAMES[self.kind]

    def failing_sql(self, index: int) -> sql.Composable:
        """The condition true for a judged row that fails; the value is bound as :expect_<index>."""
        column = sql.Identifier("judged", self.column)
        value = sql.SQL(f":expect_{index}")
        if self.kind == "not_null":
            return sql.SQL("{} IS NULL").format(column)
        if self.kind == "unique":
            return sql.SQL("({} IS NOT NULL AND {} > 1)").format(column, sql.Identifier("judged", f"__dup_{index}"))
        if self.kind == "match_regex":
            return sql.SQL("({} IS NOT NULL AND {}::text !~ {})").format(column, column, value)
        member = (sql.SQL("{} = ANY(CAST({} AS boolean[]))") if _all_bool(self.value)
                  else sql.SQL("{}::text = ANY(CAST({} AS text[]))")).format(column, value)
        negate = sql.SQL("NOT " if self.kind == "in_set" else "")
        return sql.SQL("({} IS NOT NULL AND {}{})").format(column, negate, member)

    def bound_value(self) -> Any:
        if self.kind in ("in_set", "not_in_set"):
            return list(self.value) if _all_bool(self.value) else [str(v) for v in self.value]
        return self.value

    def gx(self) -> Any:
        """The Great Expectations expectation object (imports GX: call it only to build Data Docs)."""
        import great_expectations as gx

        kind = getattr(gx.expectations, self.gx_name)
        if self.kind == "match_regex":
            return kind(column=self.column, regex=self.value)
        if self.kind in ("in_set", "not_in_set"):
            return kind(column=self.column, value_set=list(self.value))
        return kind(column=self.column)


def _all_bool(values: Any) -> bool:
    return isinstance(values, (list, tuple)) and bool(values) and all(isinstance(v, bool) for v in values)


def matches(column: str, regex: str) -> Expect:
    return Expect("match_regex", column, regex)


def unique(column: str) -> Expect:
    return Expect("unique", column)


def not_null(column: str) -> Expect:
    return Expect("not_null", column)


def in_set(column: str, values: Sequence[Any]) -> Expect:
    return Expect("in_set", column, tuple(values))


def not_in_set(column: str, values: Sequence[Any]) -> Expect:
    return Expect("not_in_set", column, tuple(values))


@dataclass
class PlanVerdict(FrameVerdict):
    """A FrameVerdict counted in SQL: `failing_total` rows fail, `failing_rows` are the first of them."""

    failing_total: int = 0
    failing_rows: list[dict[str, Any]] = field(default_factory=list)
    passing_sample: list[dict[str, Any]] = field(default_factory=list)


def judge_plan(conn: Connection, query: str, expectations: Sequence[Expect], params: Mapping[str, Any],
               *, order_by: Sequence[str] = ()) -> PlanVerdict:
    """Judge the rows of `query` (a SELECT with bound `params`) against `expectations`, in the database."""
    binds = {**params, **{f"expect_{i}": e.bound_value() for i, e in enumerate(expectations)}}
    fails = [e.failing_sql(i) for i, e in enumerate(expectations)]
    any_fails = sql.SQL(" OR ").join(fails) if fails else sql.SQL("false")
    dups = sql.SQL("").join(
        sql.SQL(", count(*) OVER (PARTITION BY {}) AS {}").format(
            sql.Identifier("plan", e.column), sql.Identifier(f"__dup_{i}"))
        for i, e in enumerate(expectations) if e.kind == "unique")
    judged = sql.SQL("WITH plan AS ({}), judged AS (SELECT plan.*{} FROM plan) ").format(
        sql.SQL(query.strip().rstrip(";")), dups)

    def run(tail: sql.Composable) -> list[dict[str, Any]]:
        return [dict(r) for r in conn.execute(sa.text((judged + tail).as_string(None)), binds).mappings()]

    counted = run(sql.SQL("SELECT count(*) AS rows, count(*) FILTER (WHERE {}) AS failing{} FROM judged").format(
        any_fails, sql.SQL("").join(sql.SQL(", count(*) FILTER (WHERE {}) AS {}").format(f, sql.Identifier(
            f"fails_{i}")) for i, f in enumerate(fails))))[0]
    verdict = PlanVerdict(passed=not counted["failing"], rows=int(counted["rows"]), failures=[],
                          failing_total=int(counted["failing"]))
    if verdict.passed:
        return verdict
    order = sql.SQL(", ").join(sql.Identifier("judged", c) for c in order_by) if order_by else sql.SQL("1")
    flags = sql.SQL("").join(sql.SQL(", {} AS {}").format(f, sql.Identifier(f"__fails_{i}"))
                             for i, f in enumerate(fails))
    failing = run(sql.SQL("SELECT judged.*{} FROM judged WHERE {} ORDER BY {} LIMIT {}").format(
        flags, any_fails, order, sql.Literal(FAILING_ROWS_KEPT)))
    for i, expect in enumerate(expectations):
        if counted[f"fails_{i}"]:
            values = list(dict.fromkeys(r[expect.column] for r in failing if r[f"__fails_{i}"]))
            verdict.failures.append({"expectation": expect.gx_name, "column": expect.column,
                                     "unexpected_count": int(counted[f"fails_{i}"]),
                                     "sample": values[:SAMPLE_VALUES]})
    verdict.failing_rows = [_plan_columns(r) for r in failing]
    verdict.passing_sample = [_plan_columns(r) for r in run(sql.SQL(
        "SELECT judged.* FROM judged WHERE NOT ({}) ORDER BY random() LIMIT {}").format(
        any_fails, sql.Literal(PASSING_ROWS_SAMPLED)))]
    return verdict


def _plan_columns(row: dict[str, Any]) -> dict[str, Any]:
    """A judged row without the judging's own columns."""
    return {k: v for k, v in row.items() if not k.startswith("__")}
