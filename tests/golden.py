"""Golden SQL cases: a plan's SQL file run on a few rows per table, its plan tables compared with the expected rows.

A case is a folder `userdebtor_pipeline/defs/<domain>/golden/<sql file stem>/<case>/` (the layout of
mozilla/bigquery-etl's `tests/sql/.../<test>/` folders) holding

- `<schema>.<table>.yaml`: the rows of one input table, a list of mappings (column: value);
- `settings.yaml` (optional): settings sections over the defaults, as in userdebtor.yaml;
- `params.yaml` (optional): bound values over those the plan's own parameter function gives;
- `expect.yaml`: `<schema>.<table>: [rows]` for each table the case checks. Only the columns the expected rows
  name are compared (a column one row leaves out is expected null there), but every row of the table is (an
  empty list: the table holds no row), in any order.

A value `now`, `now-400d` or `now+2h` stands for a moment relative to the case's run. A NOT NULL input column
without a default that a case leaves out takes a neutral value of its type ('' for text, false, 0, a change
sequence of 1, now), so a file names only the columns its rule reads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from psycopg import sql
from sqlalchemy.engine import Connection

from userdebtor_pipeline.defs.common import EMAIL_PATTERN, run_sql
from userdebtor_pipeline.defs.user_debtor.plan import plan_parameters
from userdebtor_pipeline.settings import Settings, parse_settings

DEFS = Path(__file__).resolve().parent.parent / "userdebtor_pipeline" / "defs"
RUN_ID = "golden-run"
_RELATIVE = re.compile(r"^now(?:([+-]\d+)([dhm]))?$")
_NEUTRAL = {"text": "", "boolean": False, "numeric": 0, "integer": 0, "bigint": 1, "timestamp with time zone": "now"}


def _user_debtor(config: Settings) -> dict[str, Any]:
    return plan_parameters(config, RUN_ID, 0, False)


# Where a plan's bound values come from: the asset's own function where it has one; every plan gets the run id
# and the project's email pattern; params.yaml gives the rest.
PARAMETERS: dict[str, Callable[[Settings], dict[str, Any]]] = {"user_debtor": _user_debtor}
_EVERY_PLAN = {"run_id": RUN_ID, "email_pattern": EMAIL_PATTERN}


@dataclass(frozen=True)
class GoldenCase:
    domain: str
    sql_file: str  # as run_sql names it, "<domain>/<stem>.sql"
    folder: Path

    @property
    def id(self) -> str:
        return f"{self.sql_file.removesuffix('.sql')}/{self.folder.name}"

    def read(self, name: str) -> Any:
        path = self.folder / name
        return yaml.safe_load(path.read_text()) if path.is_file() else None

    def inputs(self) -> dict[str, list[dict[str, Any]]]:
        """Each input table ("schema.table") with its rows, in file name order."""
        return {
            path.stem: yaml.safe_load(path.read_text()) or []
            for path in sorted(self.folder.glob("*.*.yaml"))
        }

    def parameters(self) -> dict[str, Any]:
        config = parse_settings(self.read("settings.yaml") or {}, str(self.folder / "settings.yaml"))
        given = _EVERY_PLAN | PARAMETERS.get(self.domain, lambda _config: {})(config)
        return given | {key: moment(value) for key, value in (self.read("params.yaml") or {}).items()}


def discover() -> list[GoldenCase]:
    return [
        GoldenCase(folder.parents[2].name, f"{folder.parents[2].name}/{folder.parent.name}.sql", folder)
        for folder in sorted(DEFS.glob("*/golden/*/*"))
        if (folder / "expect.yaml").is_file()
    ]


def moment(value: Any, now: datetime | None = None) -> Any:
    """`now`, `now-400d`, `now+2h`, `now-30m` as an ISO timestamp; any other value as it is."""
    match = _RELATIVE.match(value) if isinstance(value, str) else None
    if not match:
        return value
    now = now or datetime.now(UTC)
    if match.group(1) is None:
        return now.isoformat()
    unit = {"d": "days", "h": "hours", "m": "minutes"}[match.group(2)]
    return (now + timedelta(**{unit: int(match.group(1))})).isoformat()


def _required_columns(conn: Connection, table: str) -> dict[str, str]:
    """The NOT NULL columns without a default (or identity) of `table`, with their data types."""
    schema, name = table.split(".")
    rows = conn.execute(
        sa.text(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = :s"
            " AND table_name = :t AND is_nullable = 'NO' AND column_default IS NULL AND is_identity = 'NO'"
            " AND is_generated = 'NEVER'"
        ),
        {"s": schema, "t": name},
    ).all()
    return dict(rows)


def load_rows(conn: Connection, table: str, rows: list[dict[str, Any]]) -> None:
    """Insert `rows` into `table` through jsonb_populate_recordset: values bound, typed by the table's row type.

    Rows are inserted in groups of the same columns, so a column a row leaves out takes its default, not null.
    """
    required = _required_columns(conn, table)
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        columns = tuple(dict.fromkeys([*row, *required]))
        groups.setdefault(columns, []).append(
            {c: moment(row[c] if c in row else _NEUTRAL.get(required[c])) for c in columns}
        )
    schema, name = table.split(".")
    target = sql.Identifier(schema, name)
    for columns, filled in groups.items():
        names = sql.SQL(", ").join(map(sql.Identifier, columns))
        statement = sql.SQL(
            "INSERT INTO {target} ({names}) OVERRIDING SYSTEM VALUE"
            " SELECT {names} FROM jsonb_populate_recordset(NULL::{target}, CAST(:rows AS jsonb))"
        ).format(target=target, names=names)
        conn.execute(sa.text(statement.as_string()), {"rows": json.dumps(filled, default=str)})


def table_rows(conn: Connection, table: str, columns: list[str]) -> list[dict[str, Any]]:
    schema, name = table.split(".")
    query = sql.SQL("SELECT to_jsonb(t) FROM {} t").format(sql.Identifier(schema, name))
    return [{c: row.get(c) for c in columns} for (row,) in conn.execute(sa.text(query.as_string()))]


def _sorted(rows: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(rows, key=lambda row: json.dumps(row, sort_keys=True, default=str))


def run_case(conn: Connection, case: GoldenCase) -> dict[str, tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]]:
    """Load the inputs, run the plan, and return per expected table (actual rows, expected rows), both sorted."""
    for table, rows in case.inputs().items():
        load_rows(conn, table, rows)
    run_sql(conn, case.sql_file, case.parameters())
    compared = {}
    for table, expected in (case.read("expect.yaml") or {}).items():
        columns = list(dict.fromkeys(c for row in expected or [] for c in row)) or ["*"]
        expected_rows = [{c: moment(row.get(c)) for c in columns} for row in expected or []]
        actual = table_rows(conn, table, columns) if expected else table_rows(conn, table, [])
        compared[table] = (_sorted(actual), _sorted(expected_rows))
    return compared
