"""What a run leaves behind, compared across runs: a fingerprint of every table of `erp` and `web` (and, where
asked, of the pipeline's own state in `userdebtor`)."""

from __future__ import annotations

import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.engine import Engine


def _tables(engine: Engine, schema: str) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(
            sa.text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"
                    " AND table_type = 'BASE TABLE' ORDER BY 1"), {"s": schema}).scalars())


def fingerprints(erp: Engine, web: Engine, *, with_state: bool = False) -> dict[str, str]:
    """md5 of each table's rows (as text, sorted): equal fingerprints, equal tables. Every column counts."""
    result: dict[str, str] = {}
    schemas = (("erp", erp), ("web", web), *((("userdebtor", web),) if with_state else ()))
    for schema, engine in schemas:
        with engine.connect() as conn:
            raw = conn.connection.driver_connection
            for table in _tables(engine, schema):
                query = sql.SQL("SELECT md5(coalesce(string_agg(r::text, '|' ORDER BY r::text), '')) FROM {} r").format(
                    sql.Identifier(schema, table))
                result[f"{schema}.{table}"] = raw.execute(query).fetchone()[0]
    return result
