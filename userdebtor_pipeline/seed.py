"""`userdebtor seed`: fill EMPTY erp/web tables with realistic synthetic Australian data.

Faker (en_AU) builds only small pools of names, streets and suburbs in Python. Every bulk row is made
in the database by one set-based `INSERT ... SELECT ... FROM generate_series(...)` that picks from
those pools (passed as array bind parameters) with a hash of the row number and the seed, never
random(). The same seed and the same `as_of` day give identical rows.

The ERP and the web may be two databases, so nothing joins across them: the few ERP facts the web
rows need (trade accounts, in-scope debtor emails) and the web emails that in-store orders quote are
streamed between the two with COPY into temporary tables.

Row numbers decide the rare edge cases (`g % 64 = 3` is a malformed email, ...), so that even a
300-debtor demo holds each of them; hashes decide everything else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from userdebtor_pipeline.progress import Progress
from userdebtor_pipeline.seeding.erp import (
    convert_codes,
    default_conversions,
    final_codes,
    insert_contacts,
    insert_debtors,
    insert_house_accounts,
    insert_orders,
    plan_conversions,
)
from userdebtor_pipeline.seeding.model import FIRST_DEBTOR_NUMBER, SeedError, SeedSettings
from userdebtor_pipeline.seeding.pools import build_pools
from userdebtor_pipeline.seeding.session import run, seed_sql, seeding_session
from userdebtor_pipeline.seeding.web import (
    hand_erp_facts_to_web,
    hand_user_emails_to_erp,
    insert_customers,
    insert_registration_requests,
    insert_roles,
    insert_users,
)

if TYPE_CHECKING:
    from userdebtor_pipeline.settings import Settings

_log = logging.getLogger(__name__)

# What other modules (the bench, the tests) use of the seed.
__all__ = ["SeedError", "SeedReport", "default_conversions", "final_codes", "plan_conversions",
           "refuse_filled_tables", "seed_databases", "seed_for_settings"]


@dataclass
class SeedReport:
    """Rows per table after seeding (`erp.deb_master`: 2008, ...) and the seconds it took."""

    counts: dict[str, int]
    seconds: float


_ERP_TABLES = ("erp.deb_master", "erp.crm_contact", "erp.crm_contact_account", "erp.deb_conversion",
               "erp.sales_order")  # fmt: skip


_WEB_TABLES = ("web.app_user", "web.customer", "web.user_customer", "web.favourite")


def refuse_filled_tables(erp: Connection, web: Connection) -> None:
    """Seed only fills empty tables: any row it could collide with, or mix with, stops it."""
    filled = [name for name, has in zip(_ERP_TABLES, erp.execute(sa.text(seed_sql("erp_has_rows"))).one(), strict=True)
              if has]  # fmt: skip
    filled += [name for name, has in zip(_WEB_TABLES, web.execute(sa.text(seed_sql("web_has_rows"))).one(), strict=True)
               if has]  # fmt: skip
    erp.rollback()
    web.rollback()
    if filled:
        raise SeedError(
            f"seed only fills empty tables; {', '.join(filled)} already {'has' if len(filled) == 1 else 'have'} rows"
        )


_WEB_COUNTED = ("web.app_user", "web.customer", "web.user_customer", "web.favourite", "web.registration_request")


def analyze_and_count(erp: Connection, web: Connection) -> dict[str, int]:
    """Fresh planner statistics for the sync that follows, and the rows now in each table."""
    run(erp, "analyze_erp")
    run(web, "analyze_web")
    counts = dict(zip(_ERP_TABLES, erp.execute(sa.text(seed_sql("erp_counts"))).one(), strict=True))
    counts |= dict(zip(_WEB_COUNTED, web.execute(sa.text(seed_sql("web_counts"))).one(), strict=True))
    erp.rollback()
    web.rollback()
    return counts


def _start_of_today() -> datetime:
    """Dates count back from midnight UTC, so that one seed gives the same rows all day."""
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _settings(**given: Any) -> SeedSettings:
    for name in ("debtors", "users", "orders_per_debtor", "contacts_per_debtor", "conversions"):
        if given[name] is not None and given[name] < 0:
            raise SeedError(f"seed: {name} must be zero or more, got {given[name]}")
    if given["width"] < 1:
        raise SeedError(f"seed: width must be at least 1, got {given['width']}")
    debtors = given["debtors"]
    return SeedSettings(
        debtors=debtors,
        users=given["users"],
        seed=given["seed"],
        prefix=given["prefix"],
        width=given["width"],
        template_code=given["template_code"],
        cash_code=given["cash_code"],
        excluded_codes=tuple(given["excluded_codes"]),
        master_type=given["master_type"],
        orders=round(debtors * given["orders_per_debtor"]),
        contacts=round(debtors * given["contacts_per_debtor"]),
        conversions=default_conversions(debtors) if given["conversions"] is None else given["conversions"],
        as_of=given["as_of"] or _start_of_today(),
    )


_SEED_STEPS = ("debtors", "contacts and web users", "sales orders", "code conversions and sign-ups", "analyze")


@contextmanager
def _timed(step: str, progress: Progress) -> Iterator[None]:
    progress.stage(step)
    started = time.perf_counter()
    yield
    _log.info("seed: %s in %.1f s", step, time.perf_counter() - started)
    progress.advance()


def seed_databases(
    erp: Engine,
    web: Engine,
    *,
    debtors: int = 2000,
    users: int = 2000,
    seed: int = 42,
    prefix: str = "WEB_",
    width: int = 6,
    template_code: str = "TEMPLATE",
    cash_code: str = "CASH",
    excluded_codes: tuple[str, ...] = ("STAFF",),
    master_type: str = "WEB_",
    orders_per_debtor: float = 5.0,
    contacts_per_debtor: float = 1.5,
    conversions: int | None = None,
    as_of: datetime | None = None,
) -> SeedReport:
    """Fill the empty ERP and web tables; the same seed (on the same day, or `as_of`) gives the same rows.

    `debtors` bulk debtors come on top of the house accounts (template, cash, excluded, five ERP-made
    web-prefixed codes); `conversions` defaults to 0.5% of the debtors, at least 6.
    """
    started = time.perf_counter()
    s = _settings(debtors=debtors, users=users, seed=seed, prefix=prefix, width=width,
                  template_code=template_code, cash_code=cash_code, excluded_codes=excluded_codes,
                  master_type=master_type, orders_per_debtor=orders_per_debtor,
                  contacts_per_debtor=contacts_per_debtor, conversions=conversions, as_of=as_of)  # fmt: skip
    pools = build_pools(seed)
    params = pools.as_params() | {
        "seed": s.seed, "as_of": s.as_of, "master_type": s.master_type, "cash_code": s.cash_code,
        "first_number": FIRST_DEBTOR_NUMBER, "debtors": s.debtors, "contacts": s.contacts,
        "orders": s.orders, "users": s.users,
    }  # fmt: skip
    progress = Progress("seed", len(_SEED_STEPS), unit="steps")
    with seeding_session(erp) as erp_conn, seeding_session(web) as web_conn:
        refuse_filled_tables(erp_conn, web_conn)
        with _timed("debtors", progress):
            insert_house_accounts(erp_conn, s, pools)
            insert_debtors(erp_conn, params)
            hand_erp_facts_to_web(erp_conn, web_conn, s)
        # Contacts (ERP) and users (web) need nothing of each other: one core builds each.
        with _timed("contacts and web users", progress), ThreadPoolExecutor(max_workers=1) as worker:
            contacts_done = worker.submit(insert_contacts, erp_conn, s, params)
            insert_roles(web_conn)
            insert_customers(web_conn, s)
            insert_users(web_conn, params)
            contacts_done.result()
        with _timed("sales orders", progress):
            user_emails = hand_user_emails_to_erp(web_conn, erp_conn)
            insert_orders(erp_conn, s, params, user_emails)
        with _timed("code conversions and sign-ups", progress):
            convert_codes(erp_conn, s)
            insert_registration_requests(erp_conn, web_conn, s)
        with _timed("analyze", progress):
            counts = analyze_and_count(erp_conn, web_conn)
    progress.finish()
    return SeedReport(counts=counts, seconds=round(time.perf_counter() - started, 3))


def seed_for_settings(
    erp: Engine, web: Engine, settings: Settings, *, debtors: int, users: int, seed: int
) -> SeedReport:
    """Seed with the codes the settings name (prefix, width, template, cash and excluded accounts)."""
    return seed_databases(
        erp,
        web,
        debtors=debtors,
        users=users,
        seed=seed,
        prefix=settings.user_debtor.new_account_prefix,
        width=settings.user_debtor.account_number_width,
        template_code=settings.user_debtor.template_customer,
        cash_code=settings.instant_accounts.cash_account_code,
        excluded_codes=tuple(settings.instant_accounts.excluded_account_codes),
    )
