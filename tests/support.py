"""Helpers for end-to-end tests: a settings file, real rows in the contract's tables, and table digests."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Engine

from userdebtor_pipeline.runner import SyncOutcome, run_sync

NOW = datetime.now(UTC).replace(microsecond=0)
EXAMPLE = Path(__file__).resolve().parent.parent / "userdebtor.example.yaml"


def write_settings(path: Path, **sections: dict[str, Any]) -> Path:
    """The example settings with some keys changed, e.g. write_settings(p, user_debtor={"conflict_policy": "hold"})."""
    data = yaml.safe_load(EXAMPLE.read_text())
    data = copy.deepcopy(data)
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def add_template(erp: Engine, code: str = "TEMPLATE") -> None:
    with erp.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO erp.deb_master (dr_cust_code, dr_cust_name, dr_cust_type, dr_price_code, dr_tax_code,"
                " dr_territory, dr_credit_limit, dr_addr_1, dr_abn)"
                " VALUES (:c, 'Template', 'WEB_', 'WEB', 'GST', 'ONL', 500, 'Template street', '00000000000')"
            ),
            {"c": code},
        )


def add_debtor(
    erp: Engine, code: str, email: str | None, name: str = "A Customer", cust_type: str = "WEB_", **columns: Any
) -> None:
    values = {"dr_cust_code": code, "dr_cust_name": name, "dr_cust_type": cust_type, "dr_email": email, **columns}
    names = ", ".join(values)
    binds = ", ".join(f":{k}" for k in values)
    with erp.begin() as conn:
        conn.execute(sa.text(f"INSERT INTO erp.deb_master ({names}) VALUES ({binds})"), values)  # noqa: S608


def add_user(web: Engine, email: str, role: str = "B2C", default_code: str | None = None, **columns: Any) -> int:
    values = {
        "email_address": email,
        "role": role,
        "default_customer_code": default_code,
        "status": "Active",
        **columns,
    }
    names = ", ".join(values)
    binds = ", ".join(f":{k}" for k in values)
    with web.begin() as conn:
        return conn.execute(
            sa.text(f"INSERT INTO web.app_user ({names}) VALUES ({binds}) RETURNING user_id"),  # noqa: S608
            values,
        ).scalar_one()


def add_order(erp: Engine, order_no: str, code: str, *, days_old: float = 10, status: str = "10",
              source: str = "WEB", email: str | None = None, total: str = "100.00", stamped_now: bool = False) -> None:
    """An ERP order, last changed when it was placed (or just now)."""
    placed = NOW - timedelta(days=days_old)
    with erp.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO erp.sales_order (so_order_no, so_cust_code, so_order_date, so_order_status,"
                    " so_source, so_email, so_order_total, so_date_stamp) VALUES (:no, :c, :d, :s, :src, :e, :t,"
                    " CASE WHEN :now THEN clock_timestamp() ELSE :d END)"),
            {"no": order_no, "c": code, "d": placed, "s": status, "src": source, "e": email, "t": total,
             "now": stamped_now},
        )


def one(engine: Engine, query: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.text(query), params).scalar()


def rows(engine: Engine, query: str, **params: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(query), params).mappings()]


def _stamped_edit(engine: Engine, table: str, stamp: str, key: str, value: Any, columns: dict[str, Any]) -> None:
    """An edit as the system that owns `table` makes it: the change, and `stamp` set to the moment of the change."""
    sets = ", ".join(f"{k} = :{k}" for k in columns)
    with engine.begin() as conn:
        conn.execute(
            sa.text(f"UPDATE {table} SET {sets}, {stamp} = clock_timestamp() WHERE {key} = :key_value"),  # noqa: S608
            {**columns, "key_value": value},
        )


def erp_change(erp: Engine, code: str, **columns: Any) -> None:
    """An ERP edit: the ERP stamps dr_date_last_changed on every change of the row."""
    _stamped_edit(erp, "erp.deb_master", "dr_date_last_changed", "dr_cust_code", code, columns)


def web_change(web: Engine, user_id: int, **columns: Any) -> None:
    """A website edit: the website stamps updated_at on every change it makes."""
    _stamped_edit(web, "web.app_user", "updated_at", "user_id", user_id, columns)


def change_contact(erp: Engine, contact_id: int, **columns: Any) -> None:
    """A CRM edit: the ERP stamps contact_date_last_changed on every change of the row."""
    _stamped_edit(erp, "erp.crm_contact", "contact_date_last_changed", "contact_id", contact_id, columns)


def set_contact_accounts(erp: Engine, contact_id: int, accounts: Sequence[str]) -> None:
    """The CRM master rewritten for one contact (crm_contact_account carries no change stamp)."""
    with erp.begin() as conn:
        conn.execute(sa.text("DELETE FROM erp.crm_contact_account WHERE contact_id = :id"), {"id": contact_id})
        for code in accounts:
            conn.execute(
                sa.text("INSERT INTO erp.crm_contact_account VALUES (:id, :code)"), {"id": contact_id, "code": code}
            )


def digest(engine: Engine, query: str) -> str:
    """md5 of a query's rows in order: two databases in the same state give the same digest."""
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT md5(coalesce(string_agg(t::text, '|'), '')) FROM ({query}) t")).scalar()  # noqa: S608


def follow_link(web: Engine, user_id: int, purpose: str = "verify_email", *, late: bool = False) -> int:
    """The website's part when a person opens their newest emailed link: it stamps used_at (after expiry if late)."""
    with web.begin() as conn:
        return conn.execute(
            sa.text(
                "UPDATE web.verification_token SET used_at = CASE WHEN :late THEN expires_at + interval '1 minute'"
                " ELSE clock_timestamp() END"
                " WHERE token_hash = (SELECT token_hash FROM web.verification_token"
                "   WHERE user_id = :u AND purpose = :p AND used_at IS NULL ORDER BY created_at DESC LIMIT 1)"
            ),
            {"u": user_id, "p": purpose, "late": late},
        ).rowcount


def contact(erp: Engine, contact_id: int, email: str | None, accounts: list[str], active: bool = True) -> None:
    """An ERP contact acting for the given accounts."""
    with erp.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO erp.crm_contact (contact_id, contact_email, contact_first_name, contact_surname,"
                    " contact_active) VALUES (:id, :email, 'Pat', 'Buyer', :active)"),
            {"id": contact_id, "email": email, "active": active},
        )
        for code in accounts:
            conn.execute(sa.text("INSERT INTO erp.crm_contact_account (contact_id, dr_cust_code) VALUES (:id, :c)"),
                         {"id": contact_id, "c": code})


def a_finished_and_a_held_run(env: Any, settings_path: Path, email: str, name: str) -> tuple[Any, Any]:
    """Two terminal runs on one instance: one that succeeds (a debtor gets a user), then one that a blocking
    check holds (the template customer named in the settings is missing and a user waits for a debtor)."""
    from userdebtor_pipeline.runner import run_sync

    add_template(env.erp)
    add_debtor(env.erp, "C100", email, name=name)
    finished = run_sync()
    assert finished.success, (finished.failed_checks, finished.errors)
    write_settings(settings_path, user_debtor={"template_customer": "NO_SUCH_TEMPLATE"})
    add_user(env.web, "waits@mail.example")
    return finished, run_sync()


def synced(**options: Any) -> SyncOutcome:
    """A sync run (run_sync's options) that succeeded; a check that only warns may have failed."""
    outcome = run_sync(**options)
    assert outcome.success, (outcome.errors, outcome.failed_steps, outcome.failed_checks)
    return outcome


def synced_clean(**options: Any) -> SyncOutcome:
    """A sync run that succeeded with every check passing."""
    outcome = synced(**options)
    assert not outcome.failed_checks, outcome.check_metadata
    return outcome
