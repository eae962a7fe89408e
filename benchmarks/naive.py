"""The naive baseline: the row-by-row script a person writes without this project.

It runs in the same bench run as the project, at the same scale, on a copy of the same rows (the full
reconcile's ~1% changes included). Its row loop writes at most `max_row_writes` rows (one statement and one
commit each); when it has more to write, the rest is extrapolated from the rate of the sample it wrote. At the
bench's scales that cap is reached only where the loop alone would run for hours.
"""

from __future__ import annotations

import re
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

DEFAULT_MAX_ROW_WRITES = 100_000


def naive_sync(erp: Engine, web: Engine, settings: Any, max_row_writes: int = DEFAULT_MAX_ROW_WRITES
               ) -> dict[str, Any]:
    """Read both sides whole into pandas, merge, compare field by field, write row by row with a commit each.

    Pairs are users of the configured roles and debtors matching the customer master filter, matched by code
    (the user's default account, with the same email), else by email. A changed pair takes the newer side's
    values (there is no record of the last synced values, so no three-way compare). An unmatched user gets a
    debtor, an unmatched debtor a user, each with its own INSERT.

    Returns what it wrote and its seconds: reading and comparing, the row loop, and the whole run with the
    unwritten rows' share of the loop extrapolated (`extrapolated` says whether it was).
    """
    import pandas as pd

    started = time.perf_counter()

    from userdebtor_pipeline.defs.common import EMAIL_PATTERN
    from userdebtor_pipeline.filters import DEB_MASTER_COLUMNS, filter_columns_of, parse_filter
    from userdebtor_pipeline.settings import field_spec

    user_debtor = settings.user_debtor
    deb_master = sa.table("deb_master", *[sa.column(c) for c in DEB_MASTER_COLUMNS], schema="erp")
    in_scope = sa.func.coalesce(parse_filter(user_debtor.customer_master_filter, filter_columns_of(deb_master)),
                                sa.false())
    with erp.connect() as conn:
        debtors = pd.read_sql(sa.select(deb_master, in_scope.label("in_scope")), conn)
    with web.connect() as conn:
        users = pd.read_sql(sa.text("SELECT * FROM web.app_user"), conn)

    fields = [field_spec(name) for name in user_debtor.sync_fields]
    debtors = debtors[debtors["in_scope"]]
    users = users[users["role"].isin(user_debtor.roles_requiring_erp_account)]
    # The same person on both sides: the user's account is the debtor and the emails agree (other users on
    # that account act for it, e.g. a bookkeeper, and are not its pair).
    by_code = users.merge(debtors, left_on="default_customer_code", right_on="dr_cust_code", how="inner")
    by_code = by_code[by_code["email_address"].str.lower() == by_code["dr_email"].str.lower()]
    unmatched_users = users[users["default_customer_code"].isna()].assign(key=lambda f: f["email_address"].str.lower())
    free_debtors = debtors[~debtors["dr_cust_code"].isin(by_code["dr_cust_code"])].assign(
        key=lambda f: f["dr_email"].str.lower())
    by_email = unmatched_users.merge(free_debtors.drop_duplicates("key"), on="key", how="inner")

    pairs = pd.concat([by_code, by_email], ignore_index=True)
    differs = pd.Series(False, index=pairs.index)
    for spec in fields:
        web_value, erp_value = pairs[spec.user_column], pairs[spec.debtor_column]
        differs |= ~((web_value == erp_value) | (web_value.isna() & erp_value.isna()))
    changed = pairs[differs | pairs["default_customer_code"].isna()]
    web_newer = changed["updated_at"] > changed["dr_date_last_changed"]

    written = {"erp_updates": 0, "web_updates": 0, "erp_inserts": 0, "web_inserts": 0, "errors": 0}
    app_user = sa.table("app_user", *[sa.column(c) for c in (
        "user_id", "email_address", "name", "phone_number", "address1", "address2", "address3", "address4",
        "address5", "address6", "postcode", "abn", "industry_code", "role", "default_customer_code", "status",
        "email_verified", "created_at", "updated_at")], schema="web")

    def plain(value: Any) -> Any:
        return None if value is None or (not isinstance(value, str) and pd.isna(value)) else value

    planned: list[tuple[Engine, Any, str]] = []

    def write(engine: Engine, statement: Any, counter: str) -> None:
        planned.append((engine, statement, counter))

    for row in changed[web_newer].itertuples(index=False):
        values = {spec.debtor_column: plain(getattr(row, spec.user_column)) for spec in fields}
        write(erp, sa.update(deb_master).where(deb_master.c.dr_cust_code == row.dr_cust_code)
              .values(**values, dr_date_last_changed=sa.func.now()), "erp_updates")
        if plain(row.default_customer_code) is None:  # matched by email: the user's account is that debtor
            write(web, sa.update(app_user).where(app_user.c.user_id == row.user_id)
                  .values(default_customer_code=row.dr_cust_code, updated_at=sa.func.now()), "web_updates")
    for row in changed[~web_newer].itertuples(index=False):
        values = {spec.user_column: plain(getattr(row, spec.debtor_column)) for spec in fields}
        write(web, sa.update(app_user).where(app_user.c.user_id == row.user_id)
              .values(**values, default_customer_code=row.dr_cust_code, updated_at=sa.func.now()), "web_updates")

    # Users with no debtor: a new debtor each, numbered after the highest code with the prefix.
    email_ok = re.compile(EMAIL_PATTERN)
    lonely_users = unmatched_users[~unmatched_users["user_id"].isin(by_email["user_id"])]
    prefix, width = user_debtor.new_account_prefix, user_debtor.account_number_width
    numbers = debtors["dr_cust_code"].str.extract(f"^{re.escape(prefix)}([0-9]+)$")[0].dropna().astype(int)
    next_number = int(numbers.max()) + 1 if len(numbers) else 1
    for row in lonely_users.itertuples(index=False):
        if not isinstance(row.email_address, str) or not email_ok.match(row.email_address):
            continue
        code = f"{prefix}{next_number:0{width}d}"
        next_number += 1
        write(erp, sa.insert(deb_master).values(
            dr_cust_code=code, dr_cust_name=plain(row.name) or row.email_address, dr_cust_type=prefix,
            dr_email=row.email_address, dr_phone=plain(row.phone_number), dr_addr_1=plain(row.address1),
            dr_addr_2=plain(row.address2), dr_addr_3=plain(row.address3), dr_postcode=plain(row.postcode),
            dr_account_status="A",
            dr_date_created=sa.func.now(), dr_date_last_changed=sa.func.now()), "erp_inserts")
        write(web, sa.update(app_user).where(app_user.c.user_id == row.user_id)
              .values(default_customer_code=code, updated_at=sa.func.now()), "web_updates")

    # Debtors with no user: a new user each, unless that email already logs in.
    with web.connect() as conn:
        logins = set(pd.read_sql(sa.text("SELECT lower(email_address) AS e FROM web.app_user"), conn)["e"])
    lonely_debtors = free_debtors[~free_debtors["dr_cust_code"].isin(by_email["dr_cust_code"])]
    lonely_debtors = lonely_debtors[~lonely_debtors["dr_cust_code"].isin(users["default_customer_code"])]
    for row in lonely_debtors.itertuples(index=False):
        if not isinstance(row.dr_email, str) or not email_ok.match(row.dr_email) or row.key in logins:
            continue
        logins.add(row.key)
        write(web, sa.insert(app_user).values(
            email_address=row.dr_email, name=row.dr_cust_name, phone_number=plain(row.dr_phone),
            address1=plain(row.dr_addr_1), address2=plain(row.dr_addr_2), address3=plain(row.dr_addr_3),
            postcode=plain(row.dr_postcode),
            role=user_debtor.default_role_for_new_users, default_customer_code=row.dr_cust_code, status="Active",
            email_verified=False, created_at=sa.func.now(), updated_at=sa.func.now()), "web_inserts")
    compared = time.perf_counter()
    sample = planned[:max_row_writes]
    for engine, statement, counter in sample:
        try:
            with engine.begin() as conn:  # one statement, one commit
                written[counter] += conn.execute(statement).rowcount
        except sa.exc.IntegrityError:
            written["errors"] += 1
    looped = time.perf_counter()
    loop_seconds = looped - compared
    whole_loop = loop_seconds * len(planned) / len(sample) if sample else 0.0
    return {**written, "pairs_compared": len(pairs), "pairs_differing": len(changed),
            "row_writes_planned": len(planned), "row_writes_done": len(sample),
            "extrapolated": len(sample) < len(planned),
            "read_and_compare_seconds": round(compared - started, 3), "row_loop_seconds": round(loop_seconds, 3),
            "seconds": round(compared - started + whole_loop, 3)}

