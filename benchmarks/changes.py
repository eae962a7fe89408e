"""Changes made "by the two systems" between syncs, set-based: field edits on both sides and code conversions."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from benchmarks.systems import DatabaseUrls, engines

# Linked pairs in a fixed, seeded pseudo-random order: the first `erp` are changed in the ERP, the next ones
# (starting `conflicts` before the end of the ERP's) on the web, so `conflicts` pairs change on both sides.
_PICK_LINKED_PAIRS = sa.text("""
SELECT l.user_id, l.dr_cust_code
  FROM userdebtor.user_debtor_link l
 WHERE l.state = 'active'
 ORDER BY md5(l.link_id::text || ':' || CAST(:salt AS text))
 LIMIT :n
""")
COUNT_LINKED = sa.text("SELECT count(*) FROM userdebtor.user_debtor_link WHERE state = 'active'")

# The ERP's own edit: a name and a phone, stamped as the ERP stamps every change.
_ERP_EDIT = sa.text("""
UPDATE erp.deb_master d
   SET dr_cust_name = d.dr_cust_name || ' (ERP ' || CAST(:tag AS text) || ')',
       dr_phone = '02 ' || lpad((abs(hashtext(d.dr_cust_code || CAST(:tag AS text))) % 10000)::text, 4, '0')
                  || ' ' || lpad((abs(hashtext(CAST(:tag AS text) || d.dr_cust_code)) % 10000)::text, 4, '0'),
       dr_date_last_changed = now()
  FROM unnest(CAST(:codes AS text[])) AS c(code)
 WHERE d.dr_cust_code = c.code
""")

# The website's own edit of a user's name and phone, stamped as the website stamps every change.
_WEB_EDIT = sa.text("""
UPDATE web.app_user u
   SET name = coalesce(u.name, 'Customer') || ' (web ' || CAST(:tag AS text) || ')',
       phone_number = '04' || lpad((abs(hashtext(u.user_id::text || CAST(:tag AS text))) % 100)::text, 2, '0')
                      || ' ' || lpad((abs(hashtext(CAST(:tag AS text) || u.user_id::text)) % 1000000)::text, 6, '0'),
       updated_at = now()
  FROM unnest(CAST(:ids AS bigint[])) AS c(id)
 WHERE u.user_id = c.id
""")


def make_changes(systems: DatabaseUrls, *, erp_changes: int, web_changes: int, conflicts: int, tag: str,
                 salt: str) -> dict[str, Any]:
    """Change `erp_changes` linked debtors in the ERP and `web_changes` linked users on the web, of which
    `conflicts` pairs on both sides (name and phone, each side to its own value)."""
    erp, web = engines(systems)
    started = time.perf_counter()
    with web.connect() as conn:
        linked = int(conn.execute(COUNT_LINKED).scalar_one())
        conflicts = min(conflicts, erp_changes, web_changes)
        wanted = min(linked, erp_changes + web_changes - conflicts)
        pairs = conn.execute(_PICK_LINKED_PAIRS, {"salt": salt, "n": wanted}).all()
    erp_pairs = pairs[:erp_changes]
    web_pairs = pairs[max(0, len(erp_pairs) - conflicts):][:web_changes]
    with erp.begin() as conn:
        erp_rows = conn.execute(_ERP_EDIT, {"tag": tag, "codes": [code for _, code in erp_pairs]}).rowcount
    with web.begin() as conn:
        web_rows = conn.execute(_WEB_EDIT, {"tag": tag, "ids": [user_id for user_id, _ in web_pairs]}).rowcount
    both = len({code for _, code in erp_pairs} & {code for _, code in web_pairs})
    return {"linked_pairs": linked, "erp_debtors_changed": erp_rows, "web_users_changed": web_rows,
            "pairs_changed_on_both_sides": both, "seconds": round(time.perf_counter() - started, 3)}


# Conversions done in the ERP: a row in deb_conversion, and the debtor under its new code (the old row gone),
# with its contacts' links and orders moved along, in one transaction as the ERP does.
_CONVERSION_STEPS = (
    """CREATE TEMP TABLE bench_conversion (seq bigint PRIMARY KEY, old_code text NOT NULL UNIQUE,
                                           new_code text NOT NULL UNIQUE) ON COMMIT DROP""",
    """INSERT INTO bench_conversion (seq, old_code, new_code)
       SELECT base.n + o.ord, o.old_code,
              CAST(:prefix AS text) || lpad((base.next + o.ord)::text, 7, '0')
         FROM unnest(CAST(:olds AS text[])) WITH ORDINALITY AS o(old_code, ord)
        CROSS JOIN (SELECT (SELECT coalesce(max(conversion_seq), 0) FROM erp.deb_conversion) AS n,
                           (SELECT coalesce(max(substr(dr_cust_code, length(CAST(:prefix AS text)) + 1)::bigint), 0)
                              FROM erp.deb_master
                             WHERE dr_cust_code ~ ('^' || CAST(:prefix AS text) || '[0-9]{7}$')) AS next) AS base""",
    """INSERT INTO erp.deb_conversion (conversion_seq, old_cust_code, new_cust_code, conversion_date)
       SELECT seq, old_code, new_code, now() FROM bench_conversion""",
    """INSERT INTO erp.deb_master (dr_cust_code, dr_cust_name, dr_cust_type, dr_email, dr_phone, dr_addr_1,
              dr_addr_2, dr_addr_3, dr_addr_4, dr_addr_5, dr_addr_6, dr_postcode, dr_abn, dr_industry_code,
              dr_price_code, dr_tax_code, dr_territory, dr_credit_limit, dr_account_status, dr_date_created,
              dr_date_last_changed)
       SELECT c.new_code, d.dr_cust_name, d.dr_cust_type, d.dr_email, d.dr_phone, d.dr_addr_1, d.dr_addr_2,
              d.dr_addr_3, d.dr_addr_4, d.dr_addr_5, d.dr_addr_6, d.dr_postcode, d.dr_abn, d.dr_industry_code,
              d.dr_price_code, d.dr_tax_code, d.dr_territory, d.dr_credit_limit, d.dr_account_status,
              d.dr_date_created, now()
         FROM erp.deb_master d JOIN bench_conversion c ON c.old_code = d.dr_cust_code""",
    "DELETE FROM erp.deb_master d USING bench_conversion c WHERE d.dr_cust_code = c.old_code",
    """UPDATE erp.crm_contact_account a SET dr_cust_code = c.new_code
         FROM bench_conversion c WHERE a.dr_cust_code = c.old_code""",
    """UPDATE erp.sales_order o SET so_cust_code = c.new_code, so_date_stamp = greatest(o.so_date_stamp, now())
         FROM bench_conversion c WHERE o.so_cust_code = c.old_code""",
)
CONVERSION_PREFIX = "CNV"


def make_conversions(systems: DatabaseUrls, count: int, salt: str) -> dict[str, Any]:
    """Convert `count` linked debtors (web accounts) to new codes in the ERP."""
    erp, web = engines(systems)
    started = time.perf_counter()
    with web.connect() as conn:
        olds = [code for _, code in conn.execute(_PICK_LINKED_PAIRS, {"salt": salt, "n": count}).all()]
    rows: list[int] = []
    with erp.begin() as conn:
        for statement in _CONVERSION_STEPS:
            rows.append(conn.execute(sa.text(statement), {"olds": olds, "prefix": CONVERSION_PREFIX}).rowcount)
    return {"conversions": rows[2], "debtors_recoded": rows[3], "contact_links_moved": rows[5],
            "orders_moved": rows[6], "seconds": round(time.perf_counter() - started, 3)}

