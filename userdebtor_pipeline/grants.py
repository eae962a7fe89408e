"""The least privileges of the integration's database roles: `userdebtor grants` prints them as SQL.

The owner of the databases runs `userdebtor init` once (it creates what is missing), then the printed SQL; from
then on the integration logs in as roles that can create nothing in the database: `userdebtor init` under them
checks that every object exists and changes nothing, and every sync runs. A later release whose state
migrations create tables needs the owner to run `init` again.

What each role may do follows what the sync writes (one list per system below, next to nothing else):
ERP: read the contract's tables, create debtors (U1) and update them (U4). Web: read and write the store's
tables the rules name, and own the pipeline's state in schema `userdebtor`. Both: temporary tables.
"""

from __future__ import annotations

from psycopg import sql

# The ERP tables the sync writes, and how; every other `erp` table is only read.
ERP_WRITES: dict[str, tuple[str, ...]] = {"deb_master": ("INSERT", "UPDATE")}
# The web tables the sync writes, and how; every other `web` table is only read.
WEB_WRITES: dict[str, tuple[str, ...]] = {
    "app_user": ("INSERT", "UPDATE"),
    "customer": ("INSERT", "UPDATE", "DELETE"),
    "user_customer": ("INSERT", "UPDATE", "DELETE"),
    "favourite": ("INSERT", "UPDATE", "DELETE"),
    "order_history": ("INSERT", "UPDATE", "DELETE"),
    "customer_conversion": ("INSERT", "UPDATE"),
    "email_outbox": ("INSERT", "UPDATE"),
    "verification_token": ("INSERT", "UPDATE"),
    "registration_request": ("INSERT", "UPDATE"),  # INSERT: `userdebtor invite` (I4)
    "login_event": ("UPDATE",),
    "role": ("INSERT",),
}
STATE_SCHEMA = "userdebtor"
_STATE_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE, TRUNCATE"


def _statement(template: str, **names: str) -> str:
    return sql.SQL(template).format(**{k: sql.Identifier(v) for k, v in names.items()}).as_string(None) + ";"


def _common(role: str, database: str, schema: str) -> list[str]:
    return [
        _statement("GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {role}", db=database, role=role),
        _statement("GRANT USAGE ON SCHEMA {schema} TO {role}", schema=schema, role=role),
        _statement("GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}", schema=schema, role=role),
        _statement("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role}", schema=schema, role=role),
    ]


def _writes(role: str, schema: str, writes: dict[str, tuple[str, ...]]) -> list[str]:
    return [
        sql.SQL("GRANT {} ON {} TO {}").format(
            sql.SQL(", ").join(map(sql.SQL, privileges)), sql.Identifier(schema, table), sql.Identifier(role)
        ).as_string(None) + ";"
        for table, privileges in writes.items()
    ]


def erp_grants(role: str, database: str) -> list[str]:
    """What the ERP role needs, in the ERP database."""
    return _common(role, database, "erp") + _writes(role, "erp", ERP_WRITES)


def web_grants(role: str, database: str) -> list[str]:
    """What the web role needs, in the web database: the store's tables and the pipeline's own state."""
    state = [
        _statement("GRANT USAGE ON SCHEMA {schema} TO {role}", schema=STATE_SCHEMA, role=role),
        _statement(f"GRANT {_STATE_PRIVILEGES} ON ALL TABLES IN SCHEMA {{schema}} TO {{role}}",
                   schema=STATE_SCHEMA, role=role),
        _statement("GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
                   schema=STATE_SCHEMA, role=role),
        # Tables that a later `init` by the same owner adds to the state are granted as they are made.
        _statement(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {{schema}} GRANT {_STATE_PRIVILEGES} ON TABLES TO {{role}}",
                   schema=STATE_SCHEMA, role=role),
        _statement("ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {role}",
                   schema=STATE_SCHEMA, role=role),
    ]
    return _common(role, database, "web") + _writes(role, "web", WEB_WRITES) + state


def grants_sql(erp_role: str, web_role: str, erp_database: str, web_database: str, only: str | None = None) -> str:
    """The script to run as the owner after `userdebtor init`; `only` ("erp" or "web") for one database alone."""
    lines = [
        "-- Least privileges of the userdebtor integration (`userdebtor grants`). Run as the owner, after",
        "-- `userdebtor init`; the roles must exist (e.g. CREATE ROLE ... LOGIN PASSWORD '...').",
    ]
    if only in (None, "erp"):
        lines += [f"-- In the ERP database ({erp_database}):", *erp_grants(erp_role, erp_database)]
    if only in (None, "web"):
        lines += [f"-- In the web database ({web_database}):", *web_grants(web_role, web_database)]
    return "\n".join(lines) + "\n"
