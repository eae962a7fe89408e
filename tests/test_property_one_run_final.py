"""A3 as a property: seeded worlds, random edits on both sides between runs, the rules' invariants after every
run, and an immediate second run that changes no table of `erp` or `web` and queues no email.

Each seed is one world under one conflict policy; a round is a batch of random two-sided edits (field edits,
same-field conflicts, email changes, new users and debtors, deletes, scope changes, conversions with merges
and chains, contacts added and removed, orders added, changed and deleted, in-store orders, registrations and
logins), a run (changed-since or full), the invariants, and a second run. A failure names the seed, the round
and the edits, and how to replay it:

    PROPERTY_SEED=7 PROPERTY_ROUNDS=5 .venv/bin/python -m pytest tests/test_property_one_run_final.py
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.support import rows, write_settings
from tests.world import fingerprints
from userdebtor_pipeline.runner import run_sync
from userdebtor_pipeline.seed import seed_databases
from userdebtor_pipeline.settings import default_settings

pytestmark = pytest.mark.slow

POLICIES = ("erp_wins", "web_wins", "newest_wins", "hold")
# (seed, conflict policy): every policy, a few hundred rows each, a handful of rounds; a few minutes in all.
DEFAULT_CASES = [(101, "erp_wins"), (202, "web_wins"), (303, "newest_wins"), (404, "hold")]
ROUNDS = int(os.environ.get("PROPERTY_ROUNDS", "3"))
DEBTORS = USERS = 120
CASH = "CASH"
# The default sync fields, from the contract's field map: (web column, ERP column) and each one's setting name.
_SYNCED = default_settings().user_debtor.sync_field_specs()
SYNC_FIELDS = tuple((spec.user_column, spec.debtor_column) for spec in _SYNCED)
SETTING_OF_FIELD = {spec.user_column: spec.name for spec in _SYNCED}


def _cases() -> list[tuple[int, str]]:
    if "PROPERTY_SEED" in os.environ:
        seed = int(os.environ["PROPERTY_SEED"])
        return [(seed, os.environ.get("PROPERTY_POLICY", POLICIES[seed % len(POLICIES)]))]
    return DEFAULT_CASES


# ---------------------------------------------------------------------------------------------- edits


def _deleted_orders(erp: Engine) -> int:
    with erp.connect() as conn:
        return conn.execute(sa.text("SELECT n_tup_del FROM pg_stat_user_tables"
                                    " WHERE schemaname = 'erp' AND relname = 'sales_order'")).scalar() or 0


@dataclass
class World:
    erp: Engine
    web: Engine
    rng: random.Random
    log: list[str] = field(default_factory=list)
    serial: int = 0
    orders_deleted: int = 0
    deleted_orders_published: int = 0

    def next(self) -> int:
        self.serial += 1
        return self.serial

    def pick(self, engine: Engine, query: str, k: int, **params: Any) -> list[Any]:
        with engine.connect() as conn:
            found = list(conn.execute(sa.text(query), params).scalars())
        return self.rng.sample(found, min(k, len(found)))

    def run(self, engine: Engine, what: str, statement: str, **params: Any) -> None:
        self.log.append(what)
        with engine.begin() as conn:  # one edit, one transaction: its statements run one by one
            for part in statement.split(";"):
                done = conn.execute(sa.text(part), params)
                if part.strip().startswith("DELETE FROM erp.sales_order"):
                    self.orders_deleted += done.rowcount

    def wait_for_published_deletes(self) -> None:
        """Let the ERP server publish its count of deleted orders, which staging reads (within seconds of a
        delete; one later than that is found by the run after, see staged_sales_orders)."""
        deadline = time.monotonic() + 30
        while _deleted_orders(self.erp) < self.deleted_orders_published + self.orders_deleted:
            assert time.monotonic() < deadline, "the ERP server did not publish its count of deleted orders"
            time.sleep(0.2)
        self.deleted_orders_published, self.orders_deleted = _deleted_orders(self.erp), 0


def _linked_pairs(world: World, k: int) -> list[tuple[int, str]]:
    picked = world.pick(world.web, "SELECT user_id || ' ' || dr_cust_code FROM userdebtor.user_debtor_link"
                                   " WHERE state = 'active' ORDER BY 1", k)
    return [(int(p.split(" ")[0]), p.split(" ")[1]) for p in picked]


def web_edit(world: World, user_id: int, column: str, value: Any) -> None:
    world.run(world.web, f"web: user {user_id} {column}={value!r}",
              f"UPDATE web.app_user SET {column} = :v, updated_at = clock_timestamp() WHERE user_id = :u",  # noqa: S608
              v=value, u=user_id)


def erp_edit(world: World, code: str, column: str, value: Any) -> None:
    world.run(world.erp, f"erp: debtor {code} {column}={value!r}",
              f"UPDATE erp.deb_master SET {column} = :v, dr_date_last_changed = clock_timestamp()"  # noqa: S608
              " WHERE dr_cust_code = :c", v=value, c=code)


def field_edits(world: World) -> None:
    rng = world.rng
    for user_id, code in _linked_pairs(world, 6):
        web_column, erp_column = rng.choice(SYNC_FIELDS[1:])
        side = rng.choice(("web", "erp", "both", "both_alike"))
        value = f"{web_column} {world.next()}"
        if side in ("web", "both", "both_alike"):
            web_edit(world, user_id, web_column, value)
        if side in ("erp", "both_alike"):
            erp_edit(world, code, erp_column, value)
        if side == "both":  # a same-field conflict
            erp_edit(world, code, erp_column, f"{value} (ERP)")


def email_changes(world: World) -> None:
    pairs = _linked_pairs(world, 3)
    if pairs:
        user_id, _ = pairs[0]
        web_edit(world, user_id, "email_address", f"moved{world.next()}@people.example")
    if len(pairs) > 1:
        _, code = pairs[1]
        erp_edit(world, code, "dr_email", f"erp.moved{world.next()}@people.example")
    if len(pairs) > 2:  # U5: to an address another web user logs in with
        _, code = pairs[2]
        taken = world.pick(world.web, "SELECT email_address FROM web.app_user ORDER BY user_id", 1)
        if taken:
            erp_edit(world, code, "dr_email", taken[0])


def new_users_and_debtors(world: World) -> None:
    n = world.next()
    world.run(world.web, f"web: new B2C user new{n}@people.example",
              "INSERT INTO web.app_user (email_address, name, role, status, email_verified, created_at, updated_at)"
              " VALUES (:e, :n, 'B2C', 'Active', true, now(), clock_timestamp())",
              e=f"new{n}@people.example", n=f"New user {n}")
    n = world.next()
    code = f"P{n:05d}"
    world.run(world.erp, f"erp: new debtor {code}",
              "INSERT INTO erp.deb_master (dr_cust_code, dr_cust_name, dr_cust_type, dr_email, dr_date_created,"
              " dr_date_last_changed) VALUES (:c, :n, :t, :e, now(), clock_timestamp())",
              c=code, n=f"New debtor {n}", t=world.rng.choice(("WEB_", "WEB_", "TRADE")), e=f"debtor{n}@firms.example")


def deletes_and_scope(world: World) -> None:
    for _, code in _linked_pairs(world, 2):
        if world.rng.random() < 0.5:
            world.run(world.erp, f"erp: delete debtor {code}",
                      "DELETE FROM erp.crm_contact_account WHERE dr_cust_code = :c;"
                      " DELETE FROM erp.sales_order WHERE so_cust_code = :c;"
                      " DELETE FROM erp.deb_master WHERE dr_cust_code = :c", c=code)
        else:
            erp_edit(world, code, "dr_cust_type", "RETAIL")
    for code in world.pick(world.erp, "SELECT dr_cust_code FROM erp.deb_master WHERE dr_cust_type = 'RETAIL'"
                                      " ORDER BY 1", 1):
        erp_edit(world, code, "dr_cust_type", "WEB_")


_RENAME_IN_THE_ERP = (
    "UPDATE erp.deb_master SET dr_cust_code = :new, dr_date_last_changed = clock_timestamp()"
    " WHERE dr_cust_code = :old;"
    " UPDATE erp.crm_contact_account SET dr_cust_code = :new WHERE dr_cust_code = :old;"
    " UPDATE erp.sales_order SET so_cust_code = :new, so_date_stamp = clock_timestamp() WHERE so_cust_code = :old;"
    " INSERT INTO erp.deb_conversion"
    " SELECT coalesce(max(conversion_seq), 0) + 1, :old, :new, now() FROM erp.deb_conversion"
)
# A merge: the old account's contacts and orders move to the surviving one, and the old row goes.
_MERGE_IN_THE_ERP = (
    "DELETE FROM erp.crm_contact_account a WHERE dr_cust_code = :old AND EXISTS (SELECT 1 FROM"
    " erp.crm_contact_account b WHERE b.contact_id = a.contact_id AND b.dr_cust_code = :new);"
    " UPDATE erp.crm_contact_account SET dr_cust_code = :new WHERE dr_cust_code = :old;"
    " UPDATE erp.sales_order SET so_cust_code = :new, so_date_stamp = clock_timestamp() WHERE so_cust_code = :old;"
    " DELETE FROM erp.deb_master WHERE dr_cust_code = :old;"
    " INSERT INTO erp.deb_conversion"
    " SELECT coalesce(max(conversion_seq), 0) + 1, :old, :new, now() FROM erp.deb_conversion"
)


def conversions(world: World) -> None:
    """The ERP converts codes: a rename, a merge into an existing code, and now and then a chain in one go."""
    codes = world.pick(world.erp, "SELECT dr_cust_code FROM erp.deb_master WHERE dr_cust_type IN ('WEB_', 'TRADE')"
                                  " ORDER BY 1", 3)
    if len(codes) < 3:
        return
    renamed = f"R{world.next():05d}"
    world.run(world.erp, f"erp: convert {codes[0]} -> {renamed}", _RENAME_IN_THE_ERP, old=codes[0], new=renamed)
    if world.rng.random() < 0.5:  # a chain: the new code converted again
        again = f"R{world.next():05d}"
        world.run(world.erp, f"erp: convert {renamed} -> {again}", _RENAME_IN_THE_ERP, old=renamed, new=again)
    world.run(world.erp, f"erp: merge {codes[1]} into {codes[2]}", _MERGE_IN_THE_ERP, old=codes[1], new=codes[2])


def contacts(world: World) -> None:
    n = world.next()
    accounts = world.pick(world.erp, "SELECT dr_cust_code FROM erp.deb_master WHERE dr_cust_type IN ('WEB_', 'TRADE')"
                                     " ORDER BY 1", 2)
    if accounts:
        world.run(world.erp, f"erp: contact {900000 + n} for {accounts}",
                  "INSERT INTO erp.crm_contact (contact_id, contact_email, contact_first_name, contact_active,"
                  " contact_date_last_changed) VALUES (:i, :e, 'Pat', true, clock_timestamp());"
                  " INSERT INTO erp.crm_contact_account SELECT :i, unnest(CAST(:codes AS text[]))",
                  i=900000 + n, e=f"contact{n}@firms.example", codes=accounts)
    for contact_id, code in (p.split(" ") for p in world.pick(
            world.erp, "SELECT contact_id || ' ' || dr_cust_code FROM erp.crm_contact_account ORDER BY 1", 1)):
        world.run(world.erp, f"erp: contact {contact_id} no longer acts for {code}",
                  "DELETE FROM erp.crm_contact_account WHERE contact_id = :i AND dr_cust_code = :c",
                  i=int(contact_id), c=code)
    for contact_id in world.pick(world.erp, "SELECT contact_id FROM erp.crm_contact WHERE contact_active"
                                            " ORDER BY 1", 1):
        world.run(world.erp, f"erp: contact {contact_id} inactive",
                  "UPDATE erp.crm_contact SET contact_active = false, contact_date_last_changed = clock_timestamp()"
                  " WHERE contact_id = :i", i=contact_id)


def orders(world: World) -> None:
    n = world.next()
    for code in world.pick(world.erp, "SELECT dr_cust_code FROM erp.deb_master WHERE dr_cust_code <> :cash"
                                      " ORDER BY 1", 2, cash=CASH):
        world.run(world.erp, f"erp: order SX{n} for {code}",
                  "INSERT INTO erp.sales_order VALUES (:no, :c, now() - interval '3 days', '10', 'WEB', NULL, 99.5,"
                  " clock_timestamp())", no=f"SX{n}-{code}", c=code)
    for email in world.pick(world.web, "SELECT email_address FROM web.app_user ORDER BY 1", 1):
        world.run(world.erp, f"erp: in-store order PX{n} for {email}",
                  "INSERT INTO erp.sales_order VALUES (:no, :cash, now() - interval '1 day', '10', 'POS', :e, 12,"
                  " clock_timestamp())", no=f"PX{n}", cash=CASH, e=email.upper())
    for order_no in world.pick(world.erp, "SELECT so_order_no FROM erp.sales_order ORDER BY 1", 2):
        if world.rng.random() < 0.5:
            world.run(world.erp, f"erp: order {order_no} deleted",
                      "DELETE FROM erp.sales_order WHERE so_order_no = :no", no=order_no)
        else:
            world.run(world.erp, f"erp: order {order_no} status 61",
                      "UPDATE erp.sales_order SET so_order_status = '61', so_date_stamp = clock_timestamp()"
                      " WHERE so_order_no = :no", no=order_no)


def sign_ups(world: World) -> None:
    for email in world.pick(world.erp, "SELECT contact_email FROM erp.crm_contact WHERE contact_active"
                                       " AND contact_email IS NOT NULL ORDER BY 1", 1):
        world.run(world.web, f"web: registration request {email}",
                  "INSERT INTO web.registration_request (email_address, requested_at) VALUES (:e, now())", e=email)
    for user_id in world.pick(world.web, "SELECT user_id FROM web.app_user WHERE role = 'B2B' ORDER BY 1", 1):
        world.run(world.web, f"web: login of user {user_id}",
                  "INSERT INTO web.login_event (user_id, occurred_at) VALUES (:u, now())", u=user_id)


EDITS = (field_edits, email_changes, new_users_and_debtors, deletes_and_scope, conversions, contacts, orders,
         sign_ups)


# ---------------------------------------------------------------------------------------------- invariants


def _fail_rows(what: str, found: list[dict[str, Any]]) -> str | None:
    return f"{what}: {found[:5]}" if found else None


def pairs_are_equal(world: World, policy: str) -> str | None:
    """U4/U5: every active pair in scope is equal on each sync field, but for open conflicts and blocked emails."""
    differing: list[dict[str, Any]] = []
    with world.web.connect() as conn:
        links = [dict(r) for r in conn.execute(sa.text(
            "SELECT l.link_id, l.user_id, l.dr_cust_code, to_jsonb(u) AS web FROM userdebtor.user_debtor_link l"
            " JOIN web.app_user u USING (user_id) WHERE l.state = 'active'")).mappings()]
        excused = {(r[0], r[1]) for r in conn.execute(sa.text(
            "SELECT link_id, field FROM userdebtor.conflict WHERE status = 'open'"))}
        blocked = set(conn.execute(sa.text(
            "SELECT subject FROM userdebtor.plan_set_aside WHERE kind IN ('email_collision', 'erp_email_unusable',"
            " 'web_name_empty') UNION SELECT subject FROM userdebtor.problem WHERE resolved_at IS NULL"
            " AND kind IN ('email_collision', 'erp_email_unusable', 'web_name_empty')")).scalars())
    with world.erp.connect() as conn:
        debtors = {r["dr_cust_code"]: dict(r) for r in conn.execute(sa.text(
            "SELECT * FROM erp.deb_master WHERE dr_cust_type LIKE 'WEB\\_%'"
            " AND dr_cust_code = ANY(:codes)"), {"codes": [link["dr_cust_code"] for link in links]}).mappings()}
    for link in links:
        debtor = debtors.get(link["dr_cust_code"])
        if debtor is None:
            continue  # left scope or the ERP: U6's, not U4's
        for web_column, erp_column in SYNC_FIELDS:
            web_value, erp_value = link["web"][web_column], debtor[erp_column]
            if web_column == "email_address":
                web_value, erp_value = (v.strip().lower() if v else v for v in (web_value, erp_value))
            if web_value == erp_value or (link["link_id"], SETTING_OF_FIELD[web_column]) in excused:
                continue
            if any(s.startswith(f"link:{link['link_id']}/") for s in blocked):
                continue
            differing.append({"link": link["link_id"], "field": web_column, "web": web_value, "erp": erp_value})
    return _fail_rows("linked pairs differ (U4)", differing)


def one_login_per_address(world: World, baseline: int) -> str | None:
    found = rows(world.web, "SELECT lower(btrim(email_address)) AS email, count(*) FROM web.app_user GROUP BY 1"
                            " HAVING count(*) > 1")
    return _fail_rows("two logins for one address (A2)", found) if len(found) > baseline else None


def no_converted_code_on_the_web(world: World) -> str | None:
    with world.erp.connect() as conn:
        live = set(conn.execute(sa.text("SELECT dr_cust_code FROM erp.deb_master")).scalars())
    found = [r for r in rows(world.web, (
        "SELECT c.old_code, t.place FROM web.customer_conversion c CROSS JOIN LATERAL ("
        " SELECT 'customer' AS place FROM web.customer WHERE customer_code = c.old_code"
        " UNION ALL SELECT 'app_user' FROM web.app_user WHERE default_customer_code = c.old_code"
        " UNION ALL SELECT 'user_customer' FROM web.user_customer WHERE customer_code = c.old_code"
        " UNION ALL SELECT 'order_history' FROM web.order_history WHERE customer_code = c.old_code) t"
        " WHERE c.outcome IN ('converted', 'merged')")) if r["old_code"] not in live]
    return _fail_rows("converted-away codes still on the web (C2)", found)


def order_history_is_the_o1_o2_set(world: World) -> str | None:
    """O1/O2: exactly the orders of linked or integrated accounts, and in-store orders of a (proven) user."""
    with world.erp.connect() as conn:
        erp_orders = [dict(r) for r in conn.execute(sa.text(
            "SELECT so_order_no, so_cust_code, so_source, lower(btrim(so_email)) AS email, so_order_status,"
            " so_order_date < now() - interval '364 days' AS near_cutoff FROM erp.sales_order"
            " WHERE so_order_status <> '61' AND so_order_date >= now() - interval '366 days'")).mappings()]
    with world.web.connect() as conn:
        shown_accounts = set(conn.execute(sa.text(
            "SELECT customer_code FROM web.customer WHERE is_debtor_customer AND customer_code <> :cash"
            " UNION SELECT dr_cust_code FROM userdebtor.user_debtor_link WHERE state = 'active'"), {"cash": CASH}
        ).scalars())
        users = {}
        for email, user_id, proven in conn.execute(sa.text(
                "SELECT lower(btrim(email_address)), user_id, email_verified FROM web.app_user")):
            users.setdefault(email, []).append((user_id, proven))
        history = {r[0]: (r[1], r[2]) for r in conn.execute(sa.text(
            "SELECT order_no, customer_code, user_id FROM web.order_history"))}
    problems = []
    expected: set[str] = set()
    maybe: set[str] = set()  # an unproven user's in-store orders wait for proof under A1: either is right
    for order in erp_orders:
        if order["near_cutoff"]:
            maybe.add(order["so_order_no"])
        elif order["so_cust_code"] == CASH:
            owners = users.get(order["email"] or "", [])
            if order["so_source"] == "POS" and len(owners) == 1:
                (expected if owners[0][1] else maybe).add(order["so_order_no"])
        elif order["so_cust_code"] in shown_accounts:
            expected.add(order["so_order_no"])
    shown = set(history)
    in_erp = {o["so_order_no"]: o for o in erp_orders}
    problems += [{"missing": o, "erp": in_erp[o]} for o in sorted(expected - shown)]
    problems += [{"unexpected": o, "shown as": history[o], "erp": in_erp.get(o)}
                 for o in sorted(shown - expected - maybe)]
    return _fail_rows("order history is not the O1/O2 set", problems)


def customer_mirror_is_the_m3_set(world: World) -> str | None:
    with world.erp.connect() as conn:
        css = {r["dr_cust_code"]: dict(r) for r in conn.execute(sa.text(
            "SELECT dr_cust_code, dr_cust_name, dr_email, dr_account_status FROM erp.deb_master"
            " WHERE dr_cust_type IN ('WEB_', 'TRADE')")).mappings()}
        every = set(conn.execute(sa.text("SELECT dr_cust_code FROM erp.deb_master")).scalars())
    with world.web.connect() as conn:
        web = {r["customer_code"]: dict(r) for r in conn.execute(sa.text(
            "SELECT customer_code, name, order_email_address, status, is_debtor_customer FROM web.customer"
        )).mappings()}
    problems = []
    for code, debtor in css.items():
        row = web.get(code)
        status = "Inactive" if debtor["dr_account_status"] == "C" else "Active"
        if row is None or (row["name"], row["order_email_address"], row["status"], row["is_debtor_customer"]) != (
                debtor["dr_cust_name"], debtor["dr_email"], status, True):
            problems.append({"code": code, "web": row, "erp": debtor})
    problems += [{"gone_but_not_inactive": code} for code, row in web.items()
                 if row["is_debtor_customer"] and code not in every and row["status"] != "Inactive"]
    return _fail_rows("the customer mirror is not the M3 set", problems)


# ---------------------------------------------------------------------------------------------- the property


def _outbox(web: Engine) -> int:
    with web.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM web.email_outbox")).scalar()


@pytest.mark.parametrize(("seed", "policy"), _cases(), ids=lambda v: str(v))
def test_a3_property_every_run_is_final(pipeline_env, tmp_path, monkeypatch, seed: int, policy: str) -> None:
    settings = write_settings(tmp_path / "userdebtor.yaml", user_debtor={"conflict_policy": policy},
                              safety={"max_change_fraction": 1.0})
    monkeypatch.setenv("USERDEBTOR_CONFIG", str(settings))
    seed_databases(pipeline_env.erp, pipeline_env.web, debtors=DEBTORS, users=USERS, seed=seed)
    world = World(erp=pipeline_env.erp, web=pipeline_env.web, rng=random.Random(seed))
    world.deleted_orders_published = _deleted_orders(world.erp)
    baseline = len(rows(world.web, "SELECT 1 FROM web.app_user GROUP BY lower(btrim(email_address))"
                                   " HAVING count(*) > 1"))
    replay = f"replay: PROPERTY_SEED={seed} PROPERTY_POLICY={policy} PROPERTY_ROUNDS={ROUNDS} " \
             f".venv/bin/python -m pytest -p no:cacheprovider tests/test_property_one_run_final.py"

    for round_no in range(ROUNDS + 1):
        if round_no:  # round 0 is the first load of the seeded world
            world.log.append(f"-- round {round_no}")
            for edit in world.rng.sample(EDITS, k=world.rng.randint(3, len(EDITS))):
                edit(world)
            world.wait_for_published_deletes()
        full = world.rng.random() < 0.3
        where = f"seed {seed}, policy {policy}, round {round_no} ({'full' if full else 'changed-since'} run)"
        outcome = run_sync(full=full)
        assert outcome.success, f"{where}: {outcome.failed_checks} {outcome.errors}\n{replay}\n" + "\n".join(world.log)
        broken = [p for p in (
            pairs_are_equal(world, policy), one_login_per_address(world, baseline),
            no_converted_code_on_the_web(world), order_history_is_the_o1_o2_set(world),
            customer_mirror_is_the_m3_set(world)) if p]
        assert not broken, f"{where}:\n" + "\n".join(broken) + f"\n{replay}\nedits:\n" + "\n".join(world.log[-40:])

        before, emails = fingerprints(world.erp, world.web), _outbox(world.web)
        again = run_sync(full=not full)
        after = fingerprints(world.erp, world.web)
        changed = [t for t in before if before[t] != after[t]]
        assert again.success and not changed and _outbox(world.web) == emails, (
            f"{where}: the second run wrote {changed} and queued {_outbox(world.web) - emails} emails\n{replay}\n"
            "edits:\n" + "\n".join(world.log[-40:]))
