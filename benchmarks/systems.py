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
    """Copies of the measured databases (CREATE DATABASE ... TEMPLATE) for the baseline, dropped again.

    The copy is made through a maintenance database of the same server, since a database cannot be copied while
    anyone, this connection included, is connected to it.
    """

    def __init__(self, server_url: str) -> None:
        measured = make_url(server_url).database
        maintenance = "template1" if measured == "postgres" else "postgres"
        self._admin = sa.create_engine(_database_url(server_url, maintenance), isolation_level="AUTOCOMMIT")
        self._server_url = server_url
        self.made: list[str] = []

    def copy(self, url: str, name: str, attempts: int = 30) -> str:
        """A new database `name` holding what the database at `url` holds now; its URL."""
        from psycopg import sql

        template = make_url(url).database
        statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
        for attempt in range(attempts):
            try:
                with self._admin.connect() as conn:
                    conn.connection.driver_connection.execute(statement)
                break
            except sa.exc.OperationalError:
                # A template in use (an autovacuum worker, a closing backend) cannot be copied yet.
                if attempt == attempts - 1:
                    raise
                time.sleep(1)
        self.made.append(name)
        return _database_url(url, name)

    def drop_all(self) -> None:
        from psycopg import sql

        for name in reversed(self.made):
            try:
                with self._admin.connect() as conn:
                    conn.connection.driver_connection.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            except sa.exc.SQLAlchemyError as exc:
                _log.warning("could not drop scratch database %s: %s", name, exc)
        self.made.clear()
        self._admin.dispose()


def copy_systems(systems: DatabaseUrls, tag: str) -> tuple[DatabaseUrls, list[ScratchDatabases]]:
    """Both systems copied as they are now (one copy when they share a database), each on its own server; the
    copies are dropped by `drop_all` on the returned scratch sets."""
    from userdebtor_pipeline.db import dispose_all

    dispose_all()  # a database in use cannot be copied
    scratches = [ScratchDatabases(systems.web)]
    web = scratches[0].copy(systems.web, f"udbench_{tag}_web")
    if systems.same_database:
        return DatabaseUrls(web, web), scratches
    scratches.append(ScratchDatabases(systems.erp))
    return DatabaseUrls(scratches[1].copy(systems.erp, f"udbench_{tag}_erp"), web), scratches
