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
import re
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from userdebtor_pipeline.progress import Progress

if TYPE_CHECKING:
    from userdebtor_pipeline.settings import Settings

_log = logging.getLogger(__name__)

# Bulk debtor codes are C100001, C100002, ...; codes of conversions continue after the last of them.
_FIRST_DEBTOR_NUMBER = 100_001

# Shares of web users by `user_no % 100`: 0-49 new B2C, 50-57 B2C matching a debtor's email,
# 58-97 B2B, 98 malformed email, 99 B2C awaiting approval (the numbers of _INSERT_USERS).
_MATCH_FIRST, _MATCH_LAST = 50, 57


class SeedError(RuntimeError):
    """The seed cannot run: tables already hold rows, or an argument is out of range."""


@dataclass
class SeedReport:
    """Rows per table after seeding (`erp.deb_master`: 2008, ...) and the seconds it took."""

    counts: dict[str, int]
    seconds: float


@dataclass(frozen=True)
class SeedSettings:
    debtors: int
    users: int
    seed: int
    prefix: str
    width: int
    template_code: str
    cash_code: str
    excluded_codes: tuple[str, ...]
    master_type: str
    orders: int
    contacts: int
    conversions: int
    as_of: datetime


@dataclass(frozen=True)
class Conversion:
    seq: int
    old_code: str
    new_code: str
    converted_at: datetime


# ---------------------------------------------------------------------------------------------
# Pools
# ---------------------------------------------------------------------------------------------

_STREET_TYPES = (
    "Street", "Road", "Avenue", "Parade", "Crescent", "Drive", "Court", "Place", "Lane", "Close",
    "Way", "Terrace", "Highway", "Boulevard", "Grove",
)  # fmt: skip
# State, weight (roughly by population), first and last postcode.
_STATES = (
    ("NSW", 31, 2000, 2599), ("VIC", 26, 3000, 3999), ("QLD", 20, 4000, 4999), ("WA", 11, 6000, 6797),
    ("SA", 7, 5000, 5799), ("TAS", 2, 7000, 7799), ("ACT", 2, 2600, 2618), ("NT", 1, 800, 899),
)  # fmt: skip
_TRADE_WORDS = (
    "Plumbing", "Electrical", "Building", "Landscaping", "Carpentry", "Roofing", "Painting",
    "Air Conditioning", "Tiling", "Fencing", "Concreting", "Glazing", "Joinery", "Pool Services",
    "Hardware", "Construction", "Maintenance", "Solar",
)  # fmt: skip
_PUBLIC_BODIES = (
    "City Council", "Shire Council", "Regional Council", "Public School", "TAFE Campus",
    "District Hospital", "Water Authority",
)  # fmt: skip
# Reserved `.example` domains: a demo configured for SMTP can never mail a real person.
_PERSONAL_DOMAINS = (
    "gmail.example", "bigpond.example", "outlook.example", "hotmail.example", "icloud.example",
    "optusnet.example", "yahoo.example", "iinet.example", "tpg.example",
)  # fmt: skip
_PRODUCT_FAMILIES = ("TAP", "PIPE", "VALVE", "CABLE", "SWITCH", "LAMP", "SCREW", "BOLT", "PAINT", "TILE")
_RECENT_ORDER_STATUSES = ("10", "30", "50", "60", "61", "70")
_STORE_DOMAIN = "store.example"


@dataclass(frozen=True)
class Pools:
    """Small lists that the bulk SQL picks from; `*_slugs` are the e-mail-safe spellings."""

    first_names: list[str]
    first_slugs: list[str]
    surnames: list[str]
    surname_slugs: list[str]
    streets: list[str]
    suburbs: list[str]
    states: list[str]
    postcodes: list[str]
    products: list[str]

    def as_params(self) -> dict[str, Any]:
        return {
            "first_names": self.first_names,
            "first_slugs": self.first_slugs,
            "surnames": self.surnames,
            "surname_slugs": self.surname_slugs,
            "streets": self.streets,
            "suburbs": self.suburbs,
            "states": self.states,
            "postcodes": self.postcodes,
            "products": self.products,
            "trade_words": list(_TRADE_WORDS),
            "trade_slugs": [_slug(w) for w in _TRADE_WORDS],
            "public_bodies": list(_PUBLIC_BODIES),
            "domains": list(_PERSONAL_DOMAINS),
            "recent_statuses": list(_RECENT_ORDER_STATUSES),
        }


def _slug(text: str) -> str:
    return re.sub(r"[^a-z]", "", text.lower()) or "x"


def _distinct(draw: Any, size: int) -> list[str]:
    """Up to `size` distinct values of `draw()`; gives up quietly when Faker has fewer."""
    seen: dict[str, None] = {}
    for _ in range(size * 20):
        seen.setdefault(draw(), None)
        if len(seen) == size:
            break
    return list(seen)


def build_pools(seed: int) -> Pools:
    """Names, streets and suburbs from Faker en_AU, the same for the same seed."""
    from faker import Faker

    fake = Faker("en_AU")
    fake.seed_instance(seed)
    first_names = _distinct(fake.first_name, 500)
    surnames = _distinct(fake.last_name, 500)
    streets = _distinct(lambda: f"{fake.last_name()} {fake.random_element(_STREET_TYPES)}", 300)
    weights = OrderedDict((state, weight) for state, weight, _, _ in _STATES)
    ranges = {state: (low, high) for state, _, low, high in _STATES}
    suburbs, states, postcodes = [], [], []
    for suburb in _distinct(fake.city, 200):
        state = fake.random_element(weights)
        suburbs.append(suburb)
        states.append(state)
        postcodes.append(f"{fake.random_int(*ranges[state]):04d}")
    products = _distinct(lambda: f"{fake.random_element(_PRODUCT_FAMILIES)}-{fake.numerify('####')}", 300)
    return Pools(
        first_names=first_names,
        first_slugs=[_slug(n) for n in first_names],
        surnames=surnames,
        surname_slugs=[_slug(n) for n in surnames],
        streets=streets,
        suburbs=suburbs,
        states=states,
        postcodes=postcodes,
        products=products,
    )


# ---------------------------------------------------------------------------------------------
# SQL helpers living in the session only (pg_temp): nothing is left behind in the databases
# ---------------------------------------------------------------------------------------------

# Plain SQL functions so that the planner inlines them; with the seed and salt constant the inner hash
# folds away and each call costs one hashint8extended per row.
_SESSION_HELPERS = (
    """CREATE OR REPLACE FUNCTION pg_temp.seed_int(seed bigint, n bigint, salt integer) RETURNS bigint
       LANGUAGE sql IMMUTABLE PARALLEL SAFE
       AS $$ SELECT abs(hashint8extended(n, hashint8extended(seed, salt)) % 1000000007) $$""",
    """CREATE OR REPLACE FUNCTION pg_temp.seed_frac(seed bigint, n bigint, salt integer)
       RETURNS double precision
       LANGUAGE sql IMMUTABLE PARALLEL SAFE
       AS $$ SELECT pg_temp.seed_int(seed, n, salt) / 1000000007.0::double precision $$""",
    """CREATE OR REPLACE FUNCTION pg_temp.seed_pick(pool text[], seed bigint, n bigint, salt integer)
       RETURNS text
       LANGUAGE sql IMMUTABLE PARALLEL SAFE
       AS $$ SELECT pool[1 + pg_temp.seed_int(seed, n, salt) % cardinality(pool)] $$""",
    # An Australian mobile number, 04xx xxx xxx, from a number below 10^9.
    """CREATE OR REPLACE FUNCTION pg_temp.seed_mobile(x bigint) RETURNS text
       LANGUAGE sql IMMUTABLE PARALLEL SAFE
       AS $$ SELECT '04' || lpad((x % 100)::text, 2, '0') || ' ' || lpad((x / 100 % 1000)::text, 3, '0')
                    || ' ' || lpad((x / 100000 % 1000)::text, 3, '0') $$""",
    # The ABN check sum: the 9 last digits weighted 3, 5, ..., 19; the 2 first digits make it 0 mod 89.
    """CREATE OR REPLACE FUNCTION pg_temp.seed_abn_weight(n bigint) RETURNS bigint
       LANGUAGE sql IMMUTABLE PARALLEL SAFE
       AS $$ SELECT (89 - (3 * (n / 100000000 % 10) + 5 * (n / 10000000 % 10) + 7 * (n / 1000000 % 10)
                    + 9 * (n / 100000 % 10) + 11 * (n / 10000 % 10) + 13 * (n / 1000 % 10)
                    + 15 * (n / 100 % 10) + 17 * (n / 10 % 10) + 19 * (n % 10)) % 89) % 89 $$""",
)

# Facts passed between the two databases; the same definition on both sides so that COPY fits.
_TRANSFER_TABLES = (
    """CREATE TEMP TABLE seed_trade_account (
         n bigint PRIMARY KEY, code text NOT NULL, name text NOT NULL, email text, addr_1 text,
         addr_2 text, addr_3 text, postcode text, phone text, abn text, industry text,
         changed_at timestamptz NOT NULL)""",
    "CREATE TEMP TABLE seed_match_debtor (n bigint PRIMARY KEY, email text NOT NULL, name text NOT NULL)",
    "CREATE TEMP TABLE seed_user_email (n bigint PRIMARY KEY, email text NOT NULL)",
)


@contextmanager
def _seeding_session(engine: Engine) -> Iterator[Connection]:
    """One connection for the whole seed (temp tables live in it), clean again when it goes back."""
    conn = engine.connect()
    try:
        for ddl in _SESSION_HELPERS + _TRANSFER_TABLES:
            conn.execute(sa.text(ddl))
        conn.commit()
        yield conn
    finally:
        try:
            conn.rollback()
            conn.execute(sa.text("DISCARD TEMP"))
            conn.commit()
        except Exception:  # a broken connection must not go back to the pool
            conn.invalidate()
        conn.close()


def _run(conn: Connection, sql: str, params: Mapping[str, Any] | None = None) -> int:
    """One bulk statement in its own transaction; returns the rows it touched."""
    started = time.perf_counter()
    with conn.begin():
        # Losing the last few commits in a crash is fine for synthetic data; waiting for the disk is not.
        conn.execute(sa.text("SET LOCAL synchronous_commit = off"))
        rows = conn.execute(sa.text(sql), dict(params or {})).rowcount
    _log.debug("seed: %d rows in %.1f s by %s", rows, time.perf_counter() - started, sql.strip().splitlines()[0])
    return rows


def _stream(src: Connection, copy_out: str, dst: Connection, copy_in: str) -> None:
    """COPY rows from one database to the other in blocks, never holding them all in memory."""
    with src.begin(), dst.begin():
        src_driver = src.connection.driver_connection
        dst_driver = dst.connection.driver_connection
        with src_driver.cursor() as out_cur, dst_driver.cursor() as in_cur:
            with out_cur.copy(copy_out) as source, in_cur.copy(copy_in) as sink:
                for block in source:
                    sink.write(block)


# ---------------------------------------------------------------------------------------------
# Refusing tables that hold rows
# ---------------------------------------------------------------------------------------------

_ERP_HAS_ROWS = """
SELECT EXISTS (SELECT 1 FROM erp.deb_master), EXISTS (SELECT 1 FROM erp.crm_contact),
       EXISTS (SELECT 1 FROM erp.crm_contact_account), EXISTS (SELECT 1 FROM erp.deb_conversion),
       EXISTS (SELECT 1 FROM erp.sales_order)"""
_ERP_TABLES = ("erp.deb_master", "erp.crm_contact", "erp.crm_contact_account", "erp.deb_conversion",
               "erp.sales_order")  # fmt: skip
_WEB_HAS_ROWS = """
SELECT EXISTS (SELECT 1 FROM web.app_user), EXISTS (SELECT 1 FROM web.customer),
       EXISTS (SELECT 1 FROM web.user_customer), EXISTS (SELECT 1 FROM web.favourite)"""
_WEB_TABLES = ("web.app_user", "web.customer", "web.user_customer", "web.favourite")


def refuse_filled_tables(erp: Connection, web: Connection) -> None:
    """Seed only fills empty tables: any row it could collide with, or mix with, stops it."""
    filled = [name for name, has in zip(_ERP_TABLES, erp.execute(sa.text(_ERP_HAS_ROWS)).one(), strict=True)
              if has]  # fmt: skip
    filled += [name for name, has in zip(_WEB_TABLES, web.execute(sa.text(_WEB_HAS_ROWS)).one(), strict=True)
               if has]  # fmt: skip
    erp.rollback()
    web.rollback()
    if filled:
        raise SeedError(
            f"seed only fills empty tables; {', '.join(filled)} already {'has' if len(filled) == 1 else 'have'} rows"
        )


# ---------------------------------------------------------------------------------------------
# ERP: debtors
# ---------------------------------------------------------------------------------------------


def insert_house_accounts(erp: Connection, s: SeedSettings, pools: Pools) -> None:
    """The template, the cash account, the excluded accounts, and codes the ERP itself gave the web prefix."""
    three_years_ago = s.as_of - timedelta(days=3 * 365)
    base = {
        "dr_phone": "02 9000 0000", "dr_addr_1": "1 Market Street", "dr_addr_2": "Sydney", "dr_addr_3": "NSW",
        "dr_postcode": "2000", "dr_abn": None, "dr_industry_code": "RET", "dr_price_code": "WEB",
        "dr_tax_code": "GST", "dr_territory": "ONL", "dr_credit_limit": 0, "dr_account_status": "A",
        "dr_date_created": three_years_ago, "dr_date_last_changed": three_years_ago,
    }  # fmt: skip
    rows = [
        # Everything but the code and dates is copied from the template to each new web debtor, the customer
        # type included: so the template is of the web type, and new debtors match the customer master filter.
        base | {"dr_cust_code": s.template_code, "dr_cust_name": "Template - Web Customers",
                "dr_cust_type": s.master_type, "dr_email": None, "dr_credit_limit": 500},
        base | {"dr_cust_code": s.cash_code, "dr_cust_name": "Cash Sales - Retail Store", "dr_cust_type": "CASH",
                "dr_email": cash_account_email(), "dr_price_code": "RRP", "dr_territory": "NSW"},
    ]  # fmt: skip
    for number, code in enumerate(s.excluded_codes, start=1):
        staff_email = f"staff.purchases{number}@{_STORE_DOMAIN}"
        rows.append(base | {"dr_cust_code": code, "dr_cust_name": "Staff Purchases", "dr_cust_type": "STAFF",
                            "dr_email": staff_email, "dr_price_code": "STF"})  # fmt: skip
    # The ERP made a few web-prefixed codes by hand: the pipeline's numbering must skip them.
    for number in range(1, 6):
        first, surname = pools.first_names[number], pools.surnames[number]
        rows.append(base | {
            "dr_cust_code": f"{s.prefix}{number:0{s.width}d}", "dr_cust_name": f"{first} {surname}",
            "dr_cust_type": s.master_type,
            "dr_email": f"{_slug(first)}.{_slug(surname)}.erp{number}@{_PERSONAL_DOMAINS[number]}",
            "dr_phone": f"04{number}2 555 0{number}0", "dr_addr_1": f"{10 + number} {pools.streets[number]}",
            "dr_addr_2": pools.suburbs[number], "dr_addr_3": pools.states[number],
            "dr_postcode": pools.postcodes[number],
            "dr_date_created": s.as_of - timedelta(days=400 + number),
            "dr_date_last_changed": s.as_of - timedelta(days=200 + number),
        })  # fmt: skip
    with erp.begin():
        erp.execute(
            sa.text(
                "INSERT INTO erp.deb_master (dr_cust_code, dr_cust_name, dr_cust_type, dr_email, dr_phone,"
                " dr_addr_1, dr_addr_2, dr_addr_3, dr_postcode, dr_abn, dr_industry_code, dr_price_code,"
                " dr_tax_code, dr_territory, dr_credit_limit, dr_account_status, dr_date_created,"
                " dr_date_last_changed) VALUES (:dr_cust_code, :dr_cust_name, :dr_cust_type, :dr_email,"
                " :dr_phone, :dr_addr_1, :dr_addr_2, :dr_addr_3, :dr_postcode, :dr_abn, :dr_industry_code,"
                " :dr_price_code, :dr_tax_code, :dr_territory, :dr_credit_limit, :dr_account_status,"
                " :dr_date_created, :dr_date_last_changed)"
            ),
            rows,
        )


def cash_account_email() -> str:
    return f"counter.sales@{_STORE_DOMAIN}"


# Three layers, each `OFFSET 0` so that PostgreSQL computes a value once per row instead of inlining
# it into every expression that uses it.
#   draws:   the hashes of row g (and of its e-mail key ek: the head of a shared-email group)
#   debtor:  type, names, the e-mail in its well-formed spelling
#   final:   the e-mail variant (missing, malformed, mixed case) and the columns
_INSERT_DEBTORS = """
INSERT INTO erp.deb_master (
    dr_cust_code, dr_cust_name, dr_cust_type, dr_email, dr_phone, dr_addr_1, dr_addr_2, dr_addr_3,
    dr_postcode, dr_abn, dr_industry_code, dr_price_code, dr_tax_code, dr_territory, dr_credit_limit,
    dr_account_status, dr_date_created, dr_date_last_changed)
SELECT
    'C' || (:first_number - 1 + g),
    CASE WHEN is_business THEN business_name ELSE first_name || ' ' || surname END,
    cust_type,
    CASE
        WHEN in_shared_group THEN personal_email
        WHEN g % 32 = 5 THEN NULL
        WHEN g % 64 = 3 THEN CASE g / 64 % 4
            WHEN 0 THEN replace(personal_email, '@', '.')
            WHEN 1 THEN email_first || '@' || email_surname
            WHEN 2 THEN replace(personal_email, '@', '@@')
            ELSE email_first || ' ' || email_surname || ek || '@' || email_domain END
        WHEN g % 40 = 7 THEN initcap(own_email)
        ELSE own_email
    END,
    pg_temp.seed_mobile(phone_draw),
    CASE WHEN g % 7 = 0 THEN 'Unit ' || (1 + g % 23) || '/' ELSE '' END || (1 + street_no) || ' ' || street,
    suburb, state, postcode,
    CASE WHEN is_business
         THEN (abn_check / 10 + 1)::text || (abn_check % 10)::text || lpad(abn_digits::text, 9, '0') END,
    CASE cust_type WHEN 'TRADE' THEN 'TRD' WHEN 'GOVT' THEN 'GOV' ELSE 'RET' END,
    CASE cust_type WHEN 'TRADE' THEN 'TR' || (1 + g % 3) WHEN 'GOVT' THEN 'GOV' WHEN 'RETAIL' THEN 'RRP'
         ELSE 'WEB' END,
    'GST',
    CASE WHEN cust_type = CAST(:master_type AS text) THEN 'ONL' ELSE state END,
    CASE cust_type WHEN 'TRADE' THEN 5000 + 500 * (street_no % 90) WHEN 'GOVT' THEN 100000 ELSE 0 END,
    CASE WHEN g % 97 = 13 THEN 'C' WHEN g % 89 = 17 THEN 'S' ELSE 'A' END,
    created_at,
    created_at + date_trunc('second', (CAST(:as_of AS timestamptz) - created_at) * changed_share)
FROM (
    SELECT *,
        CASE WHEN is_business AND NOT in_shared_group
             THEN 'accounts' || g || '@' || business_domain ELSE personal_email END AS own_email,
        pg_temp.seed_abn_weight(abn_digits) AS abn_check
    FROM (
        SELECT *,
            cust_type IN ('TRADE', 'GOVT') AS is_business,
            email_first || '.' || email_surname || ek || '@' || email_domain AS personal_email,
            CASE WHEN cust_type = 'GOVT' THEN suburb || ' ' || public_body
                 ELSE surname || ' ' || trade_word || ' Pty Ltd' END AS business_name,
            CASE WHEN cust_type = 'GOVT' THEN lower(regexp_replace(suburb, '[^a-zA-Z]', '', 'g')) || '.gov.example'
                 ELSE lower(surname_slug || trade_slug) || '.example' END AS business_domain,
            (CAST(:states AS text[]))[suburb_no] AS state,
            (CAST(:postcodes AS text[]))[suburb_no] AS postcode
        FROM (
            SELECT g, ek,
                g % 100 IN (11, 12) OR (g % 100 = 13 AND g / 100 % 2 = 0) AS in_shared_group,
                CASE WHEN type_draw < 0.60 THEN CAST(:master_type AS text) WHEN type_draw < 0.90 THEN 'TRADE'
                     WHEN type_draw < 0.95 THEN 'RETAIL' ELSE 'GOVT' END AS cust_type,
                pg_temp.seed_pick(CAST(:first_names AS text[]), :seed, g, 10) AS first_name,
                pg_temp.seed_pick(CAST(:surnames AS text[]), :seed, g, 11) AS surname,
                pg_temp.seed_pick(CAST(:surname_slugs AS text[]), :seed, g, 11) AS surname_slug,
                pg_temp.seed_pick(CAST(:first_slugs AS text[]), :seed, ek, 10) AS email_first,
                pg_temp.seed_pick(CAST(:surname_slugs AS text[]), :seed, ek, 11) AS email_surname,
                pg_temp.seed_pick(CAST(:domains AS text[]), :seed, ek, 12) AS email_domain,
                pg_temp.seed_pick(CAST(:trade_words AS text[]), :seed, g, 13) AS trade_word,
                pg_temp.seed_pick(CAST(:trade_slugs AS text[]), :seed, g, 13) AS trade_slug,
                pg_temp.seed_pick(CAST(:public_bodies AS text[]), :seed, g, 14) AS public_body,
                pg_temp.seed_pick(CAST(:streets AS text[]), :seed, g, 15) AS street,
                pg_temp.seed_int(:seed, g, 16) % 240 AS street_no,
                suburb_no,
                (CAST(:suburbs AS text[]))[suburb_no] AS suburb,
                pg_temp.seed_int(:seed, g, 18) AS phone_draw,
                pg_temp.seed_int(:seed, g, 19) % 1000000000 AS abn_digits,
                -- created 30 days to 3 years ago, changed some time since
                date_trunc('second', CAST(:as_of AS timestamptz) - interval '30 days'
                    - interval '1065 days' * pg_temp.seed_frac(:seed, g, 20)) AS created_at,
                pg_temp.seed_frac(:seed, g, 21) AS changed_share
            FROM generate_series(1, :debtors) AS g
            CROSS JOIN LATERAL (
                SELECT CASE WHEN g % 100 = 12 THEN g - 1 WHEN g % 100 = 13 AND g / 100 % 2 = 0 THEN g - 2
                            ELSE g END AS ek,
                       pg_temp.seed_frac(:seed, g, 1) AS type_draw,
                       1 + pg_temp.seed_int(:seed, g, 17) % cardinality(CAST(:suburbs AS text[])) AS suburb_no
            ) AS keys
            OFFSET 0
        ) AS draws
        OFFSET 0
    ) AS debtor
    OFFSET 0
) AS final
"""


def insert_debtors(erp: Connection, params: Mapping[str, Any]) -> int:
    return _run(erp, _INSERT_DEBTORS, params)


# ---------------------------------------------------------------------------------------------
# ERP: CRM contacts
# ---------------------------------------------------------------------------------------------

# Contacts c = 1..n; `c % 100` in 21..23 share the e-mail of their group's head (groups of 2 and 3),
# `c % 20 = 4` have no e-mail, `c % 33 = 8` are inactive.
_INSERT_CONTACTS = """
INSERT INTO erp.crm_contact (contact_id, contact_email, contact_first_name, contact_surname, contact_phone,
                             contact_active, contact_date_last_changed)
SELECT c,
    CASE WHEN c % 20 = 4 AND NOT in_shared_group THEN NULL
         ELSE pg_temp.seed_pick(CAST(:first_slugs AS text[]), :seed, ek, 40) || '.'
              || pg_temp.seed_pick(CAST(:surname_slugs AS text[]), :seed, ek, 41) || ek || '@'
              || pg_temp.seed_pick(CAST(:surname_slugs AS text[]), :seed, ek, 42)
              || pg_temp.seed_pick(CAST(:trade_slugs AS text[]), :seed, ek, 43) || '.example' END,
    pg_temp.seed_pick(CAST(:first_names AS text[]), :seed, c, 40),
    pg_temp.seed_pick(CAST(:surnames AS text[]), :seed, c, 41),
    pg_temp.seed_mobile(pg_temp.seed_int(:seed, c, 44)),
    c % 33 <> 8,
    date_trunc('second', CAST(:as_of AS timestamptz) - interval '1 day'
        - interval '1094 days' * pg_temp.seed_frac(:seed, c, 45))
FROM (
    SELECT c,
        c % 100 IN (21, 22) OR (c % 100 = 23 AND c / 100 % 2 = 0) AS in_shared_group,
        CASE WHEN c % 100 = 22 THEN c - 1 WHEN c % 100 = 23 AND c / 100 % 2 = 0 THEN c - 2 ELSE c END AS ek
    FROM generate_series(1, :contacts) AS c
    OFFSET 0
) AS contact
"""

# Every contact acts for one account; `c % 50 = 7` act for 2 to 4 (a bookkeeper, a franchise manager).
_INSERT_CONTACT_ACCOUNTS = """
INSERT INTO erp.crm_contact_account (contact_id, dr_cust_code)
SELECT c, 'C' || (:first_number + pg_temp.seed_int(:seed, c * 8 + k, 46) % :debtors)
FROM generate_series(1, :contacts) AS c
CROSS JOIN LATERAL generate_series(0, CASE WHEN c % 50 = 7 THEN 1 + c / 50 % 3 ELSE 0 END) AS k
ON CONFLICT DO NOTHING
"""


def insert_contacts(erp: Connection, s: SeedSettings, params: Mapping[str, Any]) -> None:
    if s.contacts > 0 and s.debtors > 0:
        _run(erp, _INSERT_CONTACTS, params)
        _run(erp, _INSERT_CONTACT_ACCOUNTS, params)
    insert_house_contacts(erp, s)


def house_contacts(s: SeedSettings) -> list[dict[str, Any]]:
    """One person at the shop counter on the cash account and one on the (first) staff account."""
    changed = s.as_of - timedelta(days=90)
    people = [(s.cash_code, "Pat", "Counter", f"pat.counter@{_STORE_DOMAIN}")]
    if s.excluded_codes:
        people.append((s.excluded_codes[0], "Sam", "Staffer", f"sam.staffer@{_STORE_DOMAIN}"))
    return [
        {"contact_id": s.contacts + number, "code": code, "first": first, "surname": surname, "email": email,
         "changed": changed}
        for number, (code, first, surname, email) in enumerate(people, start=1)
    ]  # fmt: skip


def insert_house_contacts(erp: Connection, s: SeedSettings) -> None:
    rows = house_contacts(s)
    with erp.begin():
        erp.execute(
            sa.text(
                "INSERT INTO erp.crm_contact (contact_id, contact_email, contact_first_name, contact_surname,"
                " contact_phone, contact_active, contact_date_last_changed)"
                " VALUES (:contact_id, :email, :first, :surname, '02 9000 0001', true, :changed)"
            ),
            rows,
        )
        erp.execute(
            sa.text("INSERT INTO erp.crm_contact_account (contact_id, dr_cust_code) VALUES (:contact_id, :code)"),
            rows,
        )


# ---------------------------------------------------------------------------------------------
# ERP facts the web rows need, handed over by COPY
# ---------------------------------------------------------------------------------------------

# Every other open trade account is on the web already (with B2B users); numbered 1..n for picking.
_COLLECT_TRADE_ACCOUNTS = """
INSERT INTO seed_trade_account
SELECT row_number() OVER (ORDER BY dr_cust_code), dr_cust_code, dr_cust_name, dr_email, dr_addr_1, dr_addr_2,
       dr_addr_3, dr_postcode, dr_phone, dr_abn, dr_industry_code, dr_date_last_changed
FROM (
    SELECT *, row_number() OVER (ORDER BY dr_cust_code) AS rank
    FROM erp.deb_master
    WHERE dr_cust_type = 'TRADE' AND dr_account_status <> 'C' AND dr_cust_code ~ '^C[0-9]+$'
) AS trade
WHERE rank % 2 = 1
"""

# In-scope debtors whose e-mail is well formed and theirs alone: a B2C user with that e-mail will be
# linked by the sync instead of getting a debtor of their own.
_COLLECT_MATCH_DEBTORS = """
INSERT INTO seed_match_debtor
SELECT row_number() OVER (ORDER BY pg_temp.seed_int(:seed, substr(dr_cust_code, 2)::bigint, 50), dr_cust_code),
       dr_email, dr_cust_name
FROM erp.deb_master AS d
WHERE dr_cust_type = CAST(:master_type AS text) AND dr_account_status = 'A' AND dr_cust_code ~ '^C[0-9]+$'
  AND dr_email ~ '^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$'
  AND NOT EXISTS (SELECT 1 FROM erp.deb_master AS o
                  WHERE lower(o.dr_email) = lower(d.dr_email) AND o.dr_cust_code <> d.dr_cust_code)
ORDER BY 1
LIMIT :wanted
"""


def match_users_wanted(users: int) -> int:
    """How many user numbers 1..users fall in the 'e-mail of a debtor' share."""
    hundreds, rest = divmod(users, 100)
    per_hundred = _MATCH_LAST - _MATCH_FIRST + 1
    return hundreds * per_hundred + max(0, min(rest, _MATCH_LAST) - _MATCH_FIRST + 1)


def hand_erp_facts_to_web(erp: Connection, web: Connection, s: SeedSettings) -> None:
    _run(erp, _COLLECT_TRADE_ACCOUNTS)
    _run(erp, _COLLECT_MATCH_DEBTORS, {"seed": s.seed, "master_type": s.master_type,
                                       "wanted": match_users_wanted(s.users)})  # fmt: skip
    _stream(erp, "COPY seed_trade_account TO STDOUT", web, "COPY seed_trade_account FROM STDIN")
    _stream(erp, "COPY seed_match_debtor TO STDOUT", web, "COPY seed_match_debtor FROM STDIN")
    # Temporary tables get no automatic statistics; the joins that use them need some.
    _run(web, "ANALYZE seed_trade_account, seed_match_debtor")


# ---------------------------------------------------------------------------------------------
# Web
# ---------------------------------------------------------------------------------------------


def insert_roles(web: Connection) -> None:
    with web.begin():
        web.execute(
            sa.text(
                "INSERT INTO web.role (role_name, description, is_b2c) VALUES"
                " ('B2C', 'Retail customer buying on their own account', true),"
                " ('B2B', 'Trade customer buying for one or more accounts', false)"
                " ON CONFLICT (role_name) DO NOTHING"
            )
        )


_INSERT_TRADE_CUSTOMERS = """
INSERT INTO web.customer (customer_code, name, order_email_address, address1, address2, address3, postcode,
                          phone_number, abn, industry_code, status, is_debtor_customer, is_cash_account,
                          auto_part_registration, updated_at)
SELECT code, name, email, addr_1, addr_2, addr_3, postcode, phone, abn, industry, 'Active', true, false,
       n IN (2, 3), changed_at
FROM seed_trade_account
"""


def insert_customers(web: Connection, s: SeedSettings) -> None:
    """The cash account and the trade accounts that are on the web; two of them approve new users."""
    with web.begin():
        web.execute(
            sa.text(
                "INSERT INTO web.customer (customer_code, name, order_email_address, address1, address2,"
                " address3, postcode, phone_number, status, is_debtor_customer, is_cash_account, updated_at)"
                " VALUES (:code, 'Cash Sales - Retail Store', :email, '1 Market Street', 'Sydney', 'NSW',"
                " '2000', '02 9000 0000', 'Active', true, true, :updated)"
            ),
            {"code": s.cash_code, "email": cash_account_email(), "updated": s.as_of - timedelta(days=3 * 365)},
        )
    _run(web, _INSERT_TRADE_CUSTOMERS)


# User numbers u = 1..n; the share of each kind is set by `u % 100` (see _MATCH_FIRST).
# The local part of every generated e-mail ends in '.<u>' (or is a debtor's, which never does), so
# no two users share an e-mail, in any case.
_INSERT_USERS = """
INSERT INTO web.app_user (user_id, email_address, name, phone_number, address1, address2, address3, postcode,
                          role, default_customer_code, status, email_verified, created_at, updated_at,
                          last_login_at, last_verified_at)
SELECT u,
    CASE kind
        WHEN 'match' THEN lower(match_email)
        WHEN 'malformed' THEN CASE u / 100 % 3
            WHEN 0 THEN email_first || ' ' || email_surname || '.' || u || '@' || email_domain
            WHEN 1 THEN email_first || email_surname || '.' || u || '@localhost'
            ELSE email_first || email_surname || '.' || u || '.' || email_domain END
        WHEN 'b2b' THEN email_first || email_surname || '.' || u || '@' || coalesce(work_domain, email_domain)
        ELSE email_first || email_surname || '.' || u || '@' || email_domain
    END,
    coalesce(match_name, first_name || ' ' || surname),
    pg_temp.seed_mobile(pg_temp.seed_int(:seed, u, 64)),
    CASE WHEN kind <> 'b2b' AND u % 9 <> 0 THEN (1 + u % 180) || ' ' || street END,
    CASE WHEN kind <> 'b2b' AND u % 9 <> 0 THEN (CAST(:suburbs AS text[]))[suburb_no] END,
    CASE WHEN kind <> 'b2b' AND u % 9 <> 0 THEN (CAST(:states AS text[]))[suburb_no] END,
    CASE WHEN kind <> 'b2b' AND u % 9 <> 0 THEN (CAST(:postcodes AS text[]))[suburb_no] END,
    CASE kind WHEN 'b2b' THEN 'B2B' ELSE 'B2C' END,
    trade_code,
    CASE WHEN u % 100 = 99 OR trade_n IN (2, 3) THEN 'PendingApproval' ELSE 'Active' END,
    u % 10 <> 1,
    created_at,
    updated_at,
    CASE WHEN u % 6 <> 0 THEN updated_at END,
    CASE WHEN u % 10 <> 1 THEN created_at END
FROM (
    SELECT u, t.n AS trade_n, t.code AS trade_code, m.email AS match_email, m.name AS match_name,
        CASE WHEN bucket BETWEEN 58 AND 97 AND t.code IS NOT NULL THEN 'b2b'
             WHEN bucket BETWEEN 50 AND 57 AND m.email IS NOT NULL THEN 'match'
             WHEN bucket = 98 THEN 'malformed'
             ELSE 'b2c' END AS kind,
        CASE WHEN split_part(t.email, '@', 2) ~ '^[a-z0-9-]+(\\.[a-z0-9-]+)+$'
             THEN split_part(t.email, '@', 2) END AS work_domain,
        pg_temp.seed_pick(CAST(:first_names AS text[]), :seed, u, 60) AS first_name,
        pg_temp.seed_pick(CAST(:surnames AS text[]), :seed, u, 61) AS surname,
        pg_temp.seed_pick(CAST(:first_slugs AS text[]), :seed, u, 60) AS email_first,
        pg_temp.seed_pick(CAST(:surname_slugs AS text[]), :seed, u, 61) AS email_surname,
        pg_temp.seed_pick(CAST(:domains AS text[]), :seed, u, 62) AS email_domain,
        pg_temp.seed_pick(CAST(:streets AS text[]), :seed, u, 63) AS street,
        1 + pg_temp.seed_int(:seed, u, 65) % cardinality(CAST(:suburbs AS text[])) AS suburb_no,
        created_at,
        created_at + date_trunc('second', (CAST(:as_of AS timestamptz) - created_at)
            * pg_temp.seed_frac(:seed, u, 66)) AS updated_at
    FROM (
        SELECT u, u % 100 AS bucket,
            date_trunc('second', CAST(:as_of AS timestamptz) - interval '1 day'
                - interval '729 days' * pg_temp.seed_frac(:seed, u, 67)) AS created_at
        FROM generate_series(1, :users) AS u
        OFFSET 0
    ) AS numbered
    LEFT JOIN seed_trade_account AS t
        ON t.n = CASE WHEN bucket BETWEEN 58 AND 97
                      THEN 1 + pg_temp.seed_int(:seed, u, 68) % NULLIF(:trade_accounts, 0) END
    LEFT JOIN seed_match_debtor AS m
        ON m.n = CASE WHEN bucket BETWEEN 50 AND 57 THEN u / 100 * 8 + bucket - 49 END
    OFFSET 0
) AS app_user
"""

# Identities were given explicitly (so that links and favourites can name them); the website's next
# user must get the number after them.
_ADVANCE_USER_IDS = """
SELECT setval(pg_get_serial_sequence('web.app_user', 'user_id'), coalesce(max(user_id), 1), max(user_id) IS NOT NULL)
FROM web.app_user
"""

# Each B2B user acts for their account; one in twenty also for a second one.
_INSERT_USER_CUSTOMERS = """
INSERT INTO web.user_customer (user_id, customer_code, initial_role, hide_in_account_select)
SELECT user_id, default_customer_code, 'B2B', false
FROM web.app_user WHERE role = 'B2B' AND default_customer_code IS NOT NULL
UNION ALL
SELECT a.user_id, t.code, 'B2B', a.user_id % 3 = 0
FROM web.app_user AS a
JOIN seed_trade_account AS t ON t.n = 1 + pg_temp.seed_int(:seed, a.user_id, 69) % NULLIF(:trade_accounts, 0)
WHERE a.role = 'B2B' AND a.default_customer_code IS NOT NULL AND a.user_id % 20 = 0
ON CONFLICT DO NOTHING
"""

# 0 to 4 saved products per B2B user; a step of 37 through a pool of 300 never repeats a product.
_INSERT_FAVOURITES = """
INSERT INTO web.favourite (user_id, customer_code, product_code)
SELECT a.user_id, a.default_customer_code,
       (CAST(:products AS text[]))[1 + (pg_temp.seed_int(:seed, a.user_id, 70) + k * 37)
                                       % cardinality(CAST(:products AS text[]))]
FROM web.app_user AS a
CROSS JOIN LATERAL generate_series(1, pg_temp.seed_int(:seed, a.user_id, 71) % 5) AS k
WHERE a.role = 'B2B' AND a.default_customer_code IS NOT NULL
"""


def insert_users(web: Connection, params: Mapping[str, Any]) -> None:
    trade_accounts = web.execute(sa.text("SELECT count(*) FROM seed_trade_account")).scalar_one()
    web.commit()
    params = {**params, "trade_accounts": trade_accounts}
    _run(web, _INSERT_USERS, params)
    _run(web, _ADVANCE_USER_IDS)
    _run(web, _INSERT_USER_CUSTOMERS, params)
    _run(web, _INSERT_FAVOURITES, params)


# Every tenth user with a well-formed e-mail may turn up at the shop counter and give it.
_COLLECT_USER_EMAILS = """
INSERT INTO seed_user_email
SELECT row_number() OVER (ORDER BY user_id), email_address
FROM web.app_user
WHERE user_id % 10 = 0 AND email_address ~ '^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$'
"""


def hand_user_emails_to_erp(web: Connection, erp: Connection) -> int:
    _run(web, _COLLECT_USER_EMAILS)
    _stream(web, "COPY seed_user_email TO STDOUT", erp, "COPY seed_user_email FROM STDIN")
    _run(erp, "ANALYZE seed_user_email")
    count = erp.execute(sa.text("SELECT count(*) FROM seed_user_email")).scalar_one()
    erp.commit()
    return count


def insert_registration_requests(erp: Connection, web: Connection, s: SeedSettings) -> None:
    """A handful of pending sign-ups, one of each way the decision can go."""
    trade_contacts = erp.execute(
        sa.text(
            "SELECT c.contact_email, min(a.dr_cust_code) FROM erp.crm_contact AS c"
            " JOIN erp.crm_contact_account AS a USING (contact_id)"
            " JOIN erp.deb_master AS d ON d.dr_cust_code = a.dr_cust_code"
            " WHERE c.contact_active AND d.dr_cust_type = 'TRADE' AND d.dr_account_status = 'A'"
            "   AND c.contact_email ~ '^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$'"
            " GROUP BY c.contact_email HAVING count(DISTINCT c.contact_id) = 1"
            " ORDER BY min(c.contact_id) LIMIT 2"
        )
    ).all()
    erp.rollback()
    requests: list[tuple[str, str | None]] = []
    if trade_contacts:
        requests.append((trade_contacts[0][0], None))  # an active trade contact: approved
    if len(trade_contacts) > 1:
        requests.append(tuple(trade_contacts[1]))  # the same, naming their account: approved
    requests += [
        (cash_account_email(), None),  # only the cash account has it: rejected
        ("someone.new@unknown.example", None),  # nobody in the ERP: rejected
        ("not an email", None),  # malformed: rejected
    ]
    if s.excluded_codes:
        requests.append((f"sam.staffer@{_STORE_DOMAIN}", None))  # only an excluded account: rejected
    rows = [
        {"email": email, "code": code, "at": s.as_of - timedelta(hours=len(requests) - number)}
        for number, (email, code) in enumerate(requests)
    ]
    with web.begin():
        web.execute(
            sa.text(
                "INSERT INTO web.registration_request (email_address, account_code, requested_at, status)"
                " VALUES (:email, :code, :at, 'pending')"
            ),
            rows,
        )


# ---------------------------------------------------------------------------------------------
# ERP: sales orders
# ---------------------------------------------------------------------------------------------

# 55% web, 20% phone, 25% in store; 60% of in-store sales go to the cash account. Of those, 40% gave
# no e-mail, 20% a web user's (sometimes typed in another case), 40% one that no user has.
# Orders older than 30 days are mostly invoiced (70); recent ones are at any stage.
_INSERT_ORDERS = """
INSERT INTO erp.sales_order (so_order_no, so_cust_code, so_order_date, so_order_status, so_source, so_email,
                             so_order_total, so_date_stamp)
SELECT 'SO' || lpad(o::text, greatest(7, length(o::text)), '0'),
    CASE WHEN on_cash_account THEN CAST(:cash_code AS text)
         ELSE 'C' || (:first_number + pg_temp.seed_int(:seed, o, 81) % :debtors) END,
    order_date,
    CASE WHEN order_date >= CAST(:as_of AS timestamptz) - interval '30 days'
             THEN pg_temp.seed_pick(CAST(:recent_statuses AS text[]), :seed, o, 82)
         WHEN status_draw < 0.85 THEN '70' WHEN status_draw < 0.95 THEN '60' ELSE '61' END,
    source,
    CASE WHEN NOT on_cash_account OR email_draw < 0.4 THEN NULL
         WHEN email_draw < 0.6 THEN (
             SELECT CASE WHEN o % 4 = 0 THEN initcap(e.email) ELSE e.email END
             FROM seed_user_email AS e
             WHERE e.n = 1 + pg_temp.seed_int(:seed, o, 83) % NULLIF(:user_emails, 0))
         ELSE 'walkin' || o || '@instore.example' END,
    round((5 + 1995 * total_draw * total_draw)::numeric, 2),
    least(CAST(:as_of AS timestamptz),
          order_date + date_trunc('second', interval '14 days' * pg_temp.seed_frac(:seed, o, 84)))
FROM (
    SELECT o, source, status_draw, email_draw, total_draw, order_date,
        source = 'POS' AND pg_temp.seed_frac(:seed, o, 85) < 0.6 AS on_cash_account
    FROM (
        SELECT o,
            CASE WHEN source_draw < 0.55 THEN 'WEB' WHEN source_draw < 0.75 THEN 'PHONE' ELSE 'POS' END AS source,
            pg_temp.seed_frac(:seed, o, 86) AS status_draw,
            pg_temp.seed_frac(:seed, o, 87) AS email_draw,
            pg_temp.seed_frac(:seed, o, 88) AS total_draw,
            date_trunc('second', CAST(:as_of AS timestamptz) - interval '1 hour'
                - interval '729 days' * pg_temp.seed_frac(:seed, o, 89)) AS order_date
        FROM generate_series(1, :orders) AS o
        CROSS JOIN LATERAL (SELECT pg_temp.seed_frac(:seed, o, 80) AS source_draw) AS draw
        OFFSET 0
    ) AS drawn
    OFFSET 0
) AS sales_order
"""


def insert_orders(erp: Connection, s: SeedSettings, params: Mapping[str, Any], user_emails: int) -> None:
    if s.orders == 0 or s.debtors == 0:
        return
    _run(erp, _INSERT_ORDERS, {**params, "user_emails": user_emails})


# ---------------------------------------------------------------------------------------------
# ERP: code conversions
# ---------------------------------------------------------------------------------------------


def default_conversions(debtors: int) -> int:
    return max(6, round(debtors * 0.005))


def plan_conversions(candidates: Sequence[str], wanted: int, next_number: int, as_of: datetime) -> list[Conversion]:
    """Renames, with a chain (A to B, later B to C) every tenth and a merge into another account every tenth.

    `candidates` are trade accounts the web already holds; each is used once, as an old code or as the
    account merged into. New codes continue the C-numbering after every existing debtor.
    """
    pairs: list[tuple[str, str]] = []
    chained_later: list[tuple[str, str]] = []
    pool = iter(candidates)
    for slot, old in enumerate(pool):
        room = wanted - len(pairs) - len(chained_later)
        if room <= 0:
            break
        if slot % 10 == 0 and room >= 2:
            middle, last = f"C{next_number}", f"C{next_number + 1}"
            next_number += 2
            pairs.append((old, middle))
            chained_later.append((middle, last))
            continue
        if slot % 10 == 1 and (target := next(pool, None)) is not None:
            pairs.append((old, target))
        else:
            pairs.append((old, f"C{next_number}"))
            next_number += 1
        # the second step of a chain comes one conversion after its first
        pairs += chained_later
        chained_later.clear()
    pairs += chained_later
    pairs = pairs[:wanted]
    step = timedelta(days=30) / (len(pairs) + 1)
    return [
        Conversion(seq, old, new, as_of - timedelta(days=30) + timedelta(seconds=int((step * seq).total_seconds())))
        for seq, (old, new) in enumerate(pairs, start=1)
    ]


def final_codes(conversions: Sequence[Conversion]) -> dict[str, tuple[str, datetime]]:
    """Each original code's code after every conversion (a chain ends at its last code), and when."""
    final: dict[str, tuple[str, datetime]] = {}
    for conversion in conversions:
        originals = [code for code, (now, _) in final.items() if now == conversion.old_code] or [conversion.old_code]
        for code in originals:
            final[code] = (conversion.new_code, conversion.converted_at)
    return final


# The ERP converts in one transaction per run: the old code leaves deb_master, contacts and orders.
_APPLY_CONVERSIONS = (
    """DELETE FROM erp.deb_master AS d USING seed_code_change AS m
       WHERE d.dr_cust_code = m.old_code AND m.is_merge""",
    """UPDATE erp.deb_master AS d SET dr_cust_code = m.new_code, dr_date_last_changed = m.converted_at
       FROM seed_code_change AS m WHERE d.dr_cust_code = m.old_code AND NOT m.is_merge""",
    """UPDATE erp.deb_master AS d SET dr_date_last_changed = m.converted_at
       FROM seed_code_change AS m WHERE d.dr_cust_code = m.new_code AND m.is_merge""",
    # a contact of both merged accounts keeps one link
    """DELETE FROM erp.crm_contact_account AS a USING seed_code_change AS m
       WHERE a.dr_cust_code = m.old_code
         AND EXISTS (SELECT 1 FROM erp.crm_contact_account AS b
                     WHERE b.contact_id = a.contact_id AND b.dr_cust_code = m.new_code)""",
    """UPDATE erp.crm_contact_account AS a SET dr_cust_code = m.new_code
       FROM seed_code_change AS m WHERE a.dr_cust_code = m.old_code""",
    """UPDATE erp.sales_order AS o SET so_cust_code = m.new_code,
              so_date_stamp = greatest(o.so_date_stamp, m.converted_at)
       FROM seed_code_change AS m WHERE o.so_cust_code = m.old_code""",
)

_CREATE_CODE_CHANGE = """
CREATE TEMP TABLE seed_code_change (old_code text PRIMARY KEY, new_code text NOT NULL,
                                    converted_at timestamptz NOT NULL, is_merge boolean NOT NULL)
ON COMMIT DROP"""
# A merge when the new code is an account the ERP already has.
_FILL_CODE_CHANGE = """
INSERT INTO seed_code_change
SELECT old_code, new_code, converted_at,
       EXISTS (SELECT 1 FROM erp.deb_master AS d WHERE d.dr_cust_code = new_code)
FROM unnest(CAST(:olds AS text[]), CAST(:news AS text[]), CAST(:ats AS timestamptz[]))
     AS m (old_code, new_code, converted_at)"""

_CONVERSION_CANDIDATES = """
SELECT code FROM seed_trade_account WHERE n > 3 ORDER BY pg_temp.seed_int(:seed, n, 90), n LIMIT :limit
"""


def convert_codes(erp: Connection, s: SeedSettings) -> None:
    """Record conversions in deb_conversion and leave the ERP as it is after them."""
    if s.conversions == 0:
        return
    candidates = list(
        erp.execute(sa.text(_CONVERSION_CANDIDATES), {"seed": s.seed, "limit": 2 * s.conversions}).scalars()
    )
    erp.rollback()
    conversions = plan_conversions(candidates, s.conversions, _FIRST_DEBTOR_NUMBER + s.debtors, s.as_of)
    if not conversions:
        return
    final = final_codes(conversions)
    with erp.begin():
        erp.execute(
            sa.text(
                "INSERT INTO erp.deb_conversion (conversion_seq, old_cust_code, new_cust_code, conversion_date)"
                " SELECT * FROM unnest(CAST(:seqs AS bigint[]), CAST(:olds AS text[]), CAST(:news AS text[]),"
                " CAST(:ats AS timestamptz[]))"
            ),
            {
                "seqs": [c.seq for c in conversions],
                "olds": [c.old_code for c in conversions],
                "news": [c.new_code for c in conversions],
                "ats": [c.converted_at for c in conversions],
            },
        )
        change = {
            "olds": list(final),
            "news": [new for new, _ in final.values()],
            "ats": [at for _, at in final.values()],
        }
        erp.execute(sa.text(_CREATE_CODE_CHANGE))
        erp.execute(sa.text(_FILL_CODE_CHANGE), change)
        for statement in _APPLY_CONVERSIONS:
            erp.execute(sa.text(statement))


# ---------------------------------------------------------------------------------------------
# Finishing
# ---------------------------------------------------------------------------------------------

_ERP_COUNTS = """
SELECT (SELECT count(*) FROM erp.deb_master), (SELECT count(*) FROM erp.crm_contact),
       (SELECT count(*) FROM erp.crm_contact_account), (SELECT count(*) FROM erp.deb_conversion),
       (SELECT count(*) FROM erp.sales_order)"""
_WEB_COUNTS = """
SELECT (SELECT count(*) FROM web.app_user), (SELECT count(*) FROM web.customer),
       (SELECT count(*) FROM web.user_customer), (SELECT count(*) FROM web.favourite),
       (SELECT count(*) FROM web.registration_request)"""
_WEB_COUNTED = ("web.app_user", "web.customer", "web.user_customer", "web.favourite", "web.registration_request")


def analyze_and_count(erp: Connection, web: Connection) -> dict[str, int]:
    """Fresh planner statistics for the sync that follows, and the rows now in each table."""
    _run(erp, "ANALYZE erp.deb_master, erp.crm_contact, erp.crm_contact_account, erp.deb_conversion,"
              " erp.sales_order")  # fmt: skip
    _run(web, "ANALYZE web.app_user, web.customer, web.user_customer, web.favourite, web.registration_request")
    counts = dict(zip(_ERP_TABLES, erp.execute(sa.text(_ERP_COUNTS)).one(), strict=True))
    counts |= dict(zip(_WEB_COUNTED, web.execute(sa.text(_WEB_COUNTS)).one(), strict=True))
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
        "first_number": _FIRST_DEBTOR_NUMBER, "debtors": s.debtors, "contacts": s.contacts,
        "orders": s.orders, "users": s.users,
    }  # fmt: skip
    progress = Progress("seed", len(_SEED_STEPS), unit="steps")
    with _seeding_session(erp) as erp_conn, _seeding_session(web) as web_conn:
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
