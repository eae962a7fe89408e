"""`userdebtor init`: create the contract's tables where missing and migrate the pipeline's own schema."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from userdebtor_pipeline.paths import sql_dir

# Any fixed number works; it only keeps two `init` runs from migrating at once.
_MIGRATION_LOCK = 7_420_001

_TABLE_NAME = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+)\.(\w+)")


class InitError(RuntimeError):
    """`init` cannot create what is missing (a role without CREATE): the message says what and what to do."""


def _exists(conn: Connection, qualified: str) -> bool:
    return bool(conn.execute(sa.text("SELECT to_regclass(:t) IS NOT NULL"), {"t": qualified}).scalar())


def _schema_exists(conn: Connection, schema: str) -> bool:
    return bool(conn.execute(sa.text("SELECT to_regnamespace(:s) IS NOT NULL"), {"s": schema}).scalar())


def _create(conn: Connection, what: str, ddl: str) -> None:
    """Run DDL for a missing object; a role that may not create it gets a sentence, not a traceback."""
    try:
        with conn.begin_nested():  # a savepoint: after a refusal the transaction can still say who we are
            conn.exec_driver_sql(ddl)
    except sa.exc.ProgrammingError as exc:
        if getattr(exc.orig, "sqlstate", None) != "42501":  # insufficient_privilege
            raise
        user = conn.execute(sa.text("SELECT current_user")).scalar()
        raise InitError(
            f"{what} is missing and role {user} may not create it ({str(exc.orig).splitlines()[0]}). Run "
            "`userdebtor init` once as the database owner, then `userdebtor grants` for this role."
        ) from None


@dataclass
class InitReport:
    created_tables: list[str] = field(default_factory=list)
    existing_tables: list[str] = field(default_factory=list)
    applied_migrations: list[str] = field(default_factory=list)


def create_missing_tables(engine: Engine, system: str, report: InitReport) -> None:
    """Run each table file of `sql/<system>/tables` whose table does not exist; existing ones are not touched."""
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
        for path in sorted((sql_dir() / system / "tables").glob("*.sql")):
            ddl = path.read_text(encoding="utf-8")
            schema, table = _TABLE_NAME.search(ddl).groups()
            qualified = f"{schema}.{table}"
            if _exists(conn, qualified):
                report.existing_tables.append(qualified)
                continue
            if not _schema_exists(conn, schema):
                _create(conn, f"schema {schema}", f"CREATE SCHEMA {schema}")
            _create(conn, f"table {qualified}", ddl)
            report.created_tables.append(qualified)


def migrate_state(engine: Engine, report: InitReport) -> None:
    """Apply the versioned migrations of schema `userdebtor` that have not been applied yet."""
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
        # Checked before created: a role without CREATE finds everything in place and changes nothing.
        if not _schema_exists(conn, "userdebtor"):
            _create(conn, "schema userdebtor", "CREATE SCHEMA userdebtor")
        if not _exists(conn, "userdebtor.schema_migration"):
            _create(conn, "table userdebtor.schema_migration",
                    "CREATE TABLE userdebtor.schema_migration ("
                    " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
        applied = set(conn.execute(sa.text("SELECT version FROM userdebtor.schema_migration")).scalars())
        for path in sorted((sql_dir() / "state" / "migrations").glob("*.sql")):
            version = path.stem
            if version in applied:
                continue
            _create(conn, f"state migration {version}", path.read_text(encoding="utf-8"))
            conn.execute(sa.text("INSERT INTO userdebtor.schema_migration (version) VALUES (:v)"), {"v": version})
            report.applied_migrations.append(version)


def init_databases(erp: Engine, web: Engine) -> InitReport:
    """Idempotent: a second run creates and applies nothing."""
    report = InitReport()
    create_missing_tables(erp, "erp", report)
    create_missing_tables(web, "web", report)
    migrate_state(web, report)
    return report


def state_is_ready(web: Engine) -> bool:
    with web.connect() as conn:
        return bool(conn.execute(sa.text("SELECT to_regclass('userdebtor.sync_run') IS NOT NULL")).scalar())
