"""The seed's SQL: files in sql/seed/ run on one connection per database, whose pg_temp helpers and temp tables live
only in that session: nothing is left behind in the databases."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from userdebtor_pipeline.paths import read_sql

_log = logging.getLogger(__name__)


@contextmanager
def seeding_session(engine: Engine) -> Iterator[Connection]:
    """One connection for the whole seed (temp tables live in it), clean again when it goes back."""
    conn = engine.connect()
    try:
        with conn.begin():
            run_script(conn, "session_helpers")
            run_script(conn, "transfer_tables")
        yield conn
    finally:
        try:
            conn.rollback()
            conn.execute(sa.text("DISCARD TEMP"))
            conn.commit()
        except Exception:  # a broken connection must not go back to the pool
            conn.invalidate()
        conn.close()


def seed_sql(name: str) -> str:
    """The text of one of the seed's SQL files, sql/seed/<name>.sql."""
    return read_sql(f"seed/{name}.sql")


def run_script(conn: Connection, name: str) -> None:
    """A seed SQL file of several statements without parameters (functions, temp tables), in one round trip."""
    conn.connection.driver_connection.execute(seed_sql(name))


def run(conn: Connection, name: str, params: Mapping[str, Any] | None = None) -> int:
    """One bulk statement (sql/seed/<name>.sql) in its own transaction; returns the rows it touched."""
    started = time.perf_counter()
    with conn.begin():
        # Losing the last few commits in a crash is fine for synthetic data; waiting for the disk is not.
        conn.execute(sa.text("SET LOCAL synchronous_commit = off"))
        rows = conn.execute(sa.text(seed_sql(name)), dict(params or {})).rowcount
    _log.debug("seed: %d rows in %.1f s by %s", rows, time.perf_counter() - started, name)
    return rows


def stream(src: Connection, copy_out: str, dst: Connection, copy_in: str) -> None:
    """COPY rows from one database to the other in blocks, never holding them all in memory."""
    with src.begin(), dst.begin():
        src_driver = src.connection.driver_connection
        dst_driver = dst.connection.driver_connection
        with src_driver.cursor() as out_cur, dst_driver.cursor() as in_cur:
            with out_cur.copy(copy_out) as source, in_cur.copy(copy_in) as sink:
                for block in source:
                    sink.write(block)
