"""The databases the bench measures: write counters, fresh homes for the embedded server, scratch copies."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import psutil
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.engine import Engine, make_url

from userdebtor_pipeline.db import DatabaseUrls, engine_for

_log = logging.getLogger(__name__)

MARKER = ".userdebtor-bench"  # a home folder the bench made, and may wipe


class BenchError(RuntimeError):
    """The bench cannot run: a database that is not empty, a home folder that is not the bench's, ..."""


# ---------------------------------------------------------------------------------------------
# Rows changed: what PostgreSQL counted in the two systems' tables
# ---------------------------------------------------------------------------------------------

_TABLE_WRITES = sa.text(
    "SELECT schemaname || '.' || relname, n_tup_ins, n_tup_upd, n_tup_del"
    " FROM pg_stat_user_tables WHERE schemaname = ANY(:schemas)"
)


def engines(systems: DatabaseUrls) -> tuple[Engine, Engine]:
    """The engines of the ERP and web databases the bench measures (maybe one database)."""
    return engine_for(systems.erp), engine_for(systems.web)


def _read_writes(systems: DatabaseUrls) -> dict[str, tuple[int, int, int]]:
    erp, web = engines(systems)
    targets = [(web, ["erp", "web"])] if systems.same_database else [(erp, ["erp"]), (web, ["web"])]
    counts: dict[str, tuple[int, int, int]] = {}
    for engine, schemas in targets:
        with engine.connect() as conn:
            for table, ins, upd, dele in conn.execute(_TABLE_WRITES, {"schemas": schemas}):
                counts[table] = (int(ins), int(upd), int(dele))
    return counts


def settled_writes(systems: DatabaseUrls, timeout: float = 6.0) -> dict[str, tuple[int, int, int]]:
    """Table write counters once every backend has flushed them: pools closed, then read until stable."""
    from userdebtor_pipeline.db import dispose_all

    dispose_all()  # a backend flushes its counters when it exits
    deadline = time.monotonic() + timeout
    previous = _read_writes(systems)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        current = _read_writes(systems)
        if current == previous:
            return current
        previous = current
    return previous


def writes_between(before: Mapping[str, tuple[int, int, int]],
                   after: Mapping[str, tuple[int, int, int]]) -> dict[str, dict[str, int]]:
    changed: dict[str, dict[str, int]] = {}
    for table, (ins, upd, dele) in after.items():
        b_ins, b_upd, b_del = before.get(table, (0, 0, 0))
        delta = {"inserted": ins - b_ins, "updated": upd - b_upd, "deleted": dele - b_del}
        if any(delta.values()):
            changed[table] = delta
    return changed


# ---------------------------------------------------------------------------------------------
# Databases: a fresh embedded server under a scratch home, or empty databases named by the URLs
# ---------------------------------------------------------------------------------------------

_FILLED_STATE = sa.text(
    "SELECT (SELECT count(*) FROM userdebtor.user_debtor_link) + (SELECT count(*) FROM userdebtor.sync_run)"
)


@contextmanager
def environment(**values: str | None) -> Iterator[None]:
    """Set (or with None, remove) environment variables for the block; restore them after."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def default_home(scale: int) -> Path:
    return Path(".userdebtor") / f"bench-{scale}"


def fresh_home(home: Path) -> Path:
    """An empty home for the embedded server. A folder the bench made before is wiped (its server stopped)."""
    home = home.resolve()
    if home.exists() and any(home.iterdir()):
        if not (home / MARKER).exists():
            raise BenchError(f"{home} holds files the bench did not make; give an empty or new --home")
        stop_embedded_server(home / "pgdata")
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    (home / MARKER).write_text("made by `userdebtor bench`; wiped by the next bench run with this home\n")
    return home


def stop_embedded_server(pgdata: Path, timeout: float = 60.0) -> bool:
    """Fast shutdown (SIGINT to its postmaster, by pid) of the embedded server in `pgdata`, if it runs."""
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return False
    try:
        pid = int(pid_file.read_text().split()[0])
        postmaster = psutil.Process(pid)
        if "postgres" not in postmaster.name():
            return False
        postmaster.send_signal(signal.SIGINT)
        postmaster.wait(timeout)
    except (ValueError, IndexError, psutil.NoSuchProcess):
        return False
    except psutil.TimeoutExpired:
        _log.warning("the embedded PostgreSQL in %s did not stop within %.0f s", pgdata, timeout)
        return False
    return True


def refuse_filled(erp: Engine, web: Engine) -> None:
    """Databases named by URLs must be empty: the bench seeds them and measures a first load."""
    from userdebtor_pipeline.seed import SeedError, refuse_filled_tables

    with erp.connect() as erp_conn, web.connect() as web_conn:
        try:
            refuse_filled_tables(erp_conn, web_conn)
        except SeedError as exc:
            raise BenchError(f"the bench needs empty databases: {exc}") from None
        if web_conn.execute(_FILLED_STATE).scalar_one():
            raise BenchError("the bench needs empty databases: the pipeline's state (schema userdebtor) has runs")


def _database_url(server_url: str, database: str) -> str:
    return make_url(server_url).set(database=database).render_as_string(hide_password=False)


class ScratchDatabases:
    """Scratch databases beside the measured ones, for the baseline, dropped again: the contract's tables the
    baseline reads and writes, with the rows the measured databases hold now.

    They are made through a maintenance database of the same server (CREATE DATABASE needs a connection that is
    in none of them).
    """

    def __init__(self, server_url: str) -> None:
        measured = make_url(server_url).database
        maintenance = "template1" if measured == "postgres" else "postgres"
        self._admin = sa.create_engine(_database_url(server_url, maintenance), isolation_level="AUTOCOMMIT")
        self._server_url = server_url
        self.made: list[str] = []

    def copy_tables(self, url: str, name: str, tables: Mapping[str, tuple[str, ...]]) -> str:
        """A new database `name` with the contract's tables of each system in `tables` (schema: table names), the
        named ones holding the rows the database at `url` holds now; its URL."""
        from userdebtor_pipeline.schema import InitReport, create_missing_tables

        with self._admin.connect() as conn:
            # From template0: the maintenance connection may itself be in template1, the default.
            conn.connection.driver_connection.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
        self.made.append(name)
        copy_url = _database_url(url, name)
        source, target = sa.create_engine(url), sa.create_engine(copy_url)
        try:
            for system, names in tables.items():
                create_missing_tables(target, system, InitReport())
                for table in names:
                    _copy_rows(source, target, sql.Identifier(system, table))
        finally:
            source.dispose()
            target.dispose()
        return copy_url

    def drop_all(self) -> None:
        for name in reversed(self.made):
            try:
                with self._admin.connect() as conn:
                    conn.connection.driver_connection.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            except sa.exc.SQLAlchemyError as exc:
                _log.warning("could not drop scratch database %s: %s", name, exc)
        self.made.clear()
        self._admin.dispose()


# What the baseline (naive.py) reads and writes, and so all it needs copied: about 1.3 GB at a million, where a copy
# of both whole databases took 14 GB of disk.
BASELINE_TABLES = {"erp": ("deb_master",), "web": ("app_user",)}


def _copy_rows(source: Engine, target: Engine, table: sql.Composable) -> None:
    """Every row of `table` from one database into the same, empty table of another, by COPY; its identity
    columns then number on after the copied rows."""
    with source.connect() as src_conn, target.begin() as dst_conn:
        src, dst = src_conn.connection.driver_connection, dst_conn.connection.driver_connection
        with src.cursor() as scur, dst.cursor() as dcur:
            with scur.copy(sql.SQL("COPY {} TO STDOUT").format(table)) as out, \
                    dcur.copy(sql.SQL("COPY {} FROM STDIN").format(table)) as into:
                for chunk in out:
                    into.write(chunk)
            name = table.as_string(dst)
            for (column,) in dcur.execute("SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass"
                                          " AND attidentity <> ''", (name,)).fetchall():
                dcur.execute(sql.SQL("SELECT setval(pg_get_serial_sequence({t}, {c}), max({col})) FROM {table}")
                             .format(t=sql.Literal(name), c=sql.Literal(column), col=sql.Identifier(column),
                                     table=table))


def copy_systems(systems: DatabaseUrls, tag: str) -> tuple[DatabaseUrls, list[ScratchDatabases]]:
    """The baseline's tables of both systems copied as they are now (one copy when they share a database), each
    on its own server; the copies are dropped by `drop_all` on the returned scratch sets."""
    from userdebtor_pipeline.db import dispose_all

    dispose_all()
    scratches = [ScratchDatabases(systems.web)]
    if systems.same_database:
        both = scratches[0].copy_tables(systems.web, f"udbench_{tag}", BASELINE_TABLES)
        return DatabaseUrls(both, both), scratches
    web = scratches[0].copy_tables(systems.web, f"udbench_{tag}_web", {"web": BASELINE_TABLES["web"]})
    scratches.append(ScratchDatabases(systems.erp))
    erp = scratches[1].copy_tables(systems.erp, f"udbench_{tag}_erp", {"erp": BASELINE_TABLES["erp"]})
    return DatabaseUrls(erp, web), scratches
