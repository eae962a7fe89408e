"""C1-C4 end to end: ERP conversions received into web.customer_conversion and applied once, in order."""

from __future__ import annotations

import sqlalchemy as sa

from tests.support import add_debtor, add_user, erp_change, one, rows, synced
from userdebtor_pipeline.defs.conversions import assets as conversion_assets
from userdebtor_pipeline.runner import run_sync


def convert(erp, seq: int, old: str, new: str, *, erp_keeps_new: bool = False) -> None:
    """What the ERP does: the old code is gone, the new one holds the account, and the conversion is logged."""
    with erp.begin() as conn:
        if erp_keeps_new:  # a merge: the new account existed already
            conn.execute(sa.text("DELETE FROM erp.deb_master WHERE dr_cust_code = :o"), {"o": old})
        else:
            conn.execute(
                sa.text(
                    "UPDATE erp.deb_master SET dr_cust_code = :n, dr_date_last_changed = clock_timestamp()"
                    " WHERE dr_cust_code = :o"
                ),
                {"o": old, "n": new},
            )
        conn.execute(
            sa.text(
                "INSERT INTO erp.deb_conversion (conversion_seq, old_cust_code, new_cust_code) VALUES (:s, :o, :n)"
            ),
            {"s": seq, "o": old, "n": new},
        )


def web_account(web, user_id: int, code: str, products=("P1",)) -> None:
    with web.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO web.user_customer (user_id, customer_code) VALUES (:u, :c) ON CONFLICT DO NOTHING"),
            {"u": user_id, "c": code},
        )
        for product in products:
            conn.execute(
                sa.text("INSERT INTO web.favourite VALUES (:u, :c, :p) ON CONFLICT DO NOTHING"),
                {"u": user_id, "c": code, "p": product},
            )


def codes_held(web, code: str) -> int:
    return one(
        web,
        "SELECT (SELECT count(*) FROM web.customer WHERE customer_code = :c)"
        " + (SELECT count(*) FROM web.app_user WHERE default_customer_code = :c)"
        " + (SELECT count(*) FROM web.user_customer WHERE customer_code = :c)"
        " + (SELECT count(*) FROM web.favourite WHERE customer_code = :c)"
        " + (SELECT count(*) FROM userdebtor.user_debtor_link WHERE dr_cust_code = :c)",
        c=code,
    )


def test_c1_c2_a_conversion_rewrites_every_web_table_and_is_neither_deleted_nor_new(dbs):
    add_debtor(dbs.erp, "OLD1", "convert.me@mail.example", name="Before")
    synced()
    uid = one(dbs.web, "SELECT user_id FROM web.app_user WHERE email_address = 'convert.me@mail.example'")
    web_account(dbs.web, uid, "OLD1")
    convert(dbs.erp, 1, "OLD1", "NEW1")
    erp_change(dbs.erp, "NEW1", dr_cust_name="After")  # a field change in the same run

    synced()

    assert codes_held(dbs.web, "OLD1") == 0
    assert one(dbs.web, "SELECT default_customer_code FROM web.app_user WHERE user_id = :u", u=uid) == "NEW1"
    assert one(dbs.web, "SELECT dr_cust_code FROM userdebtor.user_debtor_link WHERE user_id = :u", u=uid) == "NEW1"
    assert one(dbs.web, "SELECT default_customer_code FROM userdebtor.web_user WHERE user_id = :u", u=uid) == "NEW1", (
        "staged after the conversions, the user carries the new code")
    assert one(dbs.web, "SELECT name FROM web.app_user WHERE user_id = :u", u=uid) == "After"
    assert one(dbs.web, "SELECT count(*) FROM web.app_user") == 1, "the converted debtor is not 'new' (U2)"
    assert one(dbs.web, "SELECT status FROM web.app_user WHERE user_id = :u", u=uid) == "Active", "nor 'deleted' (U6)"
    ledger = rows(dbs.web, "SELECT outcome, processed_at IS NOT NULL AS done FROM web.customer_conversion")
    assert ledger == [{"outcome": "converted", "done": True}]


def test_c3_merge_keeps_links_and_favourites_of_both_without_duplicates(dbs):
    add_debtor(dbs.erp, "A1", None, cust_type="TRADE")
    add_debtor(dbs.erp, "B1", None, cust_type="TRADE")
    u1 = add_user(dbs.web, "one@mail.example", role="B2B", default_code="A1")
    u2 = add_user(dbs.web, "two@mail.example", role="B2B", default_code="B1")
    with dbs.web.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO web.customer (customer_code, name, status) VALUES ('A1','A','Active'), ('B1','B','Active')"
            )
        )
    web_account(dbs.web, u1, "A1", ("P1", "P2"))
    web_account(dbs.web, u1, "B1", ("P1",))  # u1 already acts for B1 too: no duplicate after the merge
    web_account(dbs.web, u2, "B1", ("P9",))
    convert(dbs.erp, 10, "A1", "B1", erp_keeps_new=True)

    synced()

    assert one(dbs.web, "SELECT outcome FROM web.customer_conversion WHERE conversion_seq = 10") == "merged"
    assert codes_held(dbs.web, "A1") == 0
    assert rows(dbs.web, "SELECT user_id, customer_code FROM web.user_customer ORDER BY 1, 2") == [
        {"user_id": u1, "customer_code": "B1"},
        {"user_id": u2, "customer_code": "B1"},
    ]
    assert rows(
        dbs.web, "SELECT user_id, product_code FROM web.favourite WHERE customer_code = 'B1' ORDER BY 1, 2"
    ) == [
        {"user_id": u1, "product_code": "P1"},
        {"user_id": u1, "product_code": "P2"},
        {"user_id": u2, "product_code": "P9"},
    ]
    assert one(dbs.web, "SELECT count(*) FROM web.customer WHERE customer_code IN ('A1', 'B1')") == 1


def test_c4_chain_in_one_run_ends_at_the_last_code(dbs):
    add_debtor(dbs.erp, "CH_A", "chain@mail.example")
    synced()
    convert(dbs.erp, 1, "CH_A", "CH_B")
    convert(dbs.erp, 2, "CH_B", "CH_C")
    synced()
    assert one(dbs.web, "SELECT default_customer_code FROM web.app_user") == "CH_C"
    assert [r["outcome"] for r in rows(dbs.web, "SELECT outcome FROM web.customer_conversion ORDER BY 1")] == [
        "converted",
        "converted",
    ]


def test_c4_chain_across_two_runs(dbs):
    add_debtor(dbs.erp, "X_A", "chain2@mail.example")
    synced()
    convert(dbs.erp, 1, "X_A", "X_B")
    synced()
    convert(dbs.erp, 2, "X_B", "X_C")
    synced()
    assert one(dbs.web, "SELECT default_customer_code FROM web.app_user") == "X_C"
    assert one(dbs.web, "SELECT dr_cust_code FROM userdebtor.user_debtor_link") == "X_C"


def test_c4_a_to_b_then_b_to_a_ends_at_a_and_a_repeated_code_fails_alone(dbs):
    add_debtor(dbs.erp, "CY_A", "cycle@mail.example")
    add_debtor(dbs.erp, "LATER", "later@mail.example")
    synced()
    convert(dbs.erp, 1, "CY_A", "CY_B")
    convert(dbs.erp, 2, "CY_B", "CY_A")  # the ERP renamed it back
    with dbs.erp.begin() as conn:  # a row a broken ERP export could carry
        conn.execute(
            sa.text(
                "INSERT INTO erp.deb_conversion (conversion_seq, old_cust_code, new_cust_code) VALUES"
                " (3, 'LATER', 'LATER')"
            )
        )
    convert(dbs.erp, 4, "LATER", "LATER2")

    synced(lift_change_guard=True)

    outcomes = {r["conversion_seq"]: r["outcome"] for r in rows(dbs.web, "SELECT * FROM web.customer_conversion")}
    # Each row renames what the web holds then, as the ERP did: A to B then B to A ends at A, the user Active.
    assert outcomes == {1: "converted", 2: "converted", 3: "failed", 4: "converted"}
    user = rows(dbs.web, "SELECT default_customer_code, status FROM web.app_user"
                " WHERE email_address = 'cycle@mail.example'")[0]
    assert (user["default_customer_code"], user["status"]) == ("CY_A", "Active")
    assert one(dbs.web, "SELECT dr_cust_code FROM userdebtor.user_debtor_link l JOIN web.app_user u USING (user_id)"
               " WHERE u.email_address = 'cycle@mail.example'") == "CY_A"
    assert (
        one(
            dbs.web,
            "SELECT count(*) FROM web.email_outbox WHERE template = 'user_debtor_warning'"
            " AND dedupe_key LIKE 'warning:conversion_failed:%'",
        )
        == 1
    )


def test_c4_old_code_not_on_the_web_is_skipped_with_a_warning(dbs):
    add_debtor(dbs.erp, "NEVER_SEEN", None, cust_type="RETAIL")
    convert(dbs.erp, 1, "NEVER_SEEN", "STILL_UNSEEN")
    synced()
    assert one(dbs.web, "SELECT outcome FROM web.customer_conversion") == "skipped"
    assert (
        one(
            dbs.web,
            "SELECT count(*) FROM web.email_outbox WHERE dedupe_key = 'warning:conversion_skipped:conversion:1'",
        )
        == 1
    )


def test_c1_each_row_is_processed_once(dbs):
    add_debtor(dbs.erp, "ONCE", "once@mail.example")
    synced()
    convert(dbs.erp, 1, "ONCE", "TWICE")
    synced()
    first = one(dbs.web, "SELECT processed_at FROM web.customer_conversion")
    synced(full=True)
    assert one(dbs.web, "SELECT processed_at FROM web.customer_conversion") == first


def test_c1_disabled_sends_nothing(dbs, settings_path):
    from tests.support import write_settings

    write_settings(settings_path, customer_conversions={"enabled": False})
    add_debtor(dbs.erp, "OFF", "off@mail.example")
    synced()
    convert(dbs.erp, 1, "OFF", "OFF2")
    synced(lift_change_guard=True)
    assert one(dbs.web, "SELECT count(*) FROM web.customer_conversion") == 0


def test_c4_malformed_rows_fail_alone_and_never_hold_back_the_others(dbs):
    add_debtor(dbs.erp, "GOOD_A", "good@mail.example")
    synced()
    with dbs.erp.begin() as conn:  # rows a broken ERP export could carry, before and after a good one
        conn.execute(
            sa.text(
                "INSERT INTO erp.deb_conversion (conversion_seq, old_cust_code, new_cust_code) VALUES"
                " (1, ' ', 'NEW'), (2, 'GOOD_A ', 'GOOD_X'), (3, 'GOOD_A', ''), (5, ' GOOD_A', 'GOOD_Y')"
            )
        )
    convert(dbs.erp, 4, "GOOD_A", "GOOD_B")

    outcome = run_sync(lift_change_guard=True)

    assert outcome.success and not outcome.failed_checks, outcome.failed_checks
    found = {
        r["conversion_seq"]: (r["outcome"], r["detail"]) for r in rows(dbs.web, "SELECT * FROM web.customer_conversion")
    }
    assert {seq: o for seq, (o, _) in found.items()} == {1: "failed", 2: "failed", 3: "failed", 4: "converted",
                                                         5: "failed"}
    assert "empty code" in found[1][1] and "spaces around it" in found[2][1] and "empty code" in found[3][1]
    assert one(dbs.web, "SELECT default_customer_code FROM web.app_user") == "GOOD_B"
    failed_warnings = "SELECT count(*) FROM web.email_outbox WHERE dedupe_key LIKE 'warning:conversion_failed:%'"
    assert one(dbs.web, failed_warnings) == 4
    synced()  # nothing is held run after run
    assert one(dbs.web, "SELECT count(*) FROM web.customer_conversion WHERE processed_at IS NULL") == 0


def test_c1_c4_independent_rows_apply_together_in_waves_each_with_its_own_outcome(dbs):
    """Three independent conversions, a chain, a swap and a row for a code the web lacks, interleaved: rows that
    name different codes share a wave, a row naming an earlier row's code waits for the next one."""
    for code in ("WV_1", "WV_2", "WV_3", "WV_CA", "WV_SA"):
        add_debtor(dbs.erp, code, f"{code.lower()}@mail.example")
    synced()
    for seq, old, new in ((1, "WV_1", "WV_1N"), (2, "WV_CA", "WV_CB"), (3, "WV_SA", "WV_SB"), (4, "WV_2", "WV_2N"),
                          (5, "WV_CB", "WV_CC"), (6, "WV_SB", "WV_SA"), (7, "WV_3", "WV_3N")):
        convert(dbs.erp, seq, old, new)
    with dbs.erp.begin() as conn:
        conn.execute(sa.text("INSERT INTO erp.deb_conversion (conversion_seq, old_cust_code, new_cust_code)"
                             " VALUES (8, 'WV_GONE', 'WV_GONE2')"))

    outcome = synced(lift_change_guard=True)

    applied = outcome.materializations["customer_conversions_applied"]
    assert (applied["waves"], applied["converted"], applied["skipped"]) == (2, 7, 1)
    found = {r["conversion_seq"]: r for r in rows(dbs.web, "SELECT * FROM web.customer_conversion")}
    assert {seq: r["outcome"] for seq, r in found.items()} == {**dict.fromkeys(range(1, 8), "converted"),
                                                                8: "skipped"}
    assert found[5]["detail"].startswith("WV_CB renamed WV_CC: customer renamed 1, user default account 1")
    assert "WV_GONE is not on the web" in found[8]["detail"]
    defaults = {r["email_address"]: r["default_customer_code"] for r in rows(dbs.web, "SELECT * FROM web.app_user")}
    assert defaults == {"wv_1@mail.example": "WV_1N", "wv_2@mail.example": "WV_2N", "wv_3@mail.example": "WV_3N",
                        "wv_ca@mail.example": "WV_CC", "wv_sa@mail.example": "WV_SA"}
    assert one(dbs.web, "SELECT count(*) FROM web.customer WHERE customer_code LIKE 'WV\\_%'") == 5
    assert one(dbs.web, "SELECT count(*) FROM web.customer_conversion WHERE processed_at IS NULL") == 0


def test_c1_c4_full_waves_apply_side_by_side_and_a_chain_still_ends_at_its_last_code(dbs, monkeypatch):
    """C1/C4 at scale: when more rows are pending than one wave takes, two transactions apply waves side by side
    (waves of two rows here); each row is still applied once with its own outcome, and a chain interleaved with
    them applies in order."""
    monkeypatch.setattr(conversion_assets, "WAVE_SIZE", 2)
    plain = [f"SB_{n}" for n in range(1, 9)]
    for code in (*plain, "SB_CA"):
        add_debtor(dbs.erp, code, f"{code.lower()}@mail.example")
    synced()
    chain = {3: ("SB_CA", "SB_CB"), 7: ("SB_CB", "SB_CC"), 11: ("SB_CC", "SB_CD")}
    others = iter(plain)
    for seq in range(1, 12):
        if seq in chain:
            old, new = chain[seq]
        else:
            old = next(others)
            new = old + "N"
        convert(dbs.erp, seq, old, new)

    outcome = synced(lift_change_guard=True)

    applied = outcome.materializations["customer_conversions_applied"]
    assert (applied["converted"], applied["failed"], applied["skipped"]) == (11, 0, 0)
    ledger = rows(dbs.web, "SELECT conversion_seq, outcome, detail FROM web.customer_conversion ORDER BY 1")
    assert [r["outcome"] for r in ledger] == ["converted"] * 11
    assert ledger[6]["detail"].startswith("SB_CB renamed SB_CC: customer renamed 1, user default account 1")
    defaults = {r["email_address"]: r["default_customer_code"] for r in rows(dbs.web, "SELECT * FROM web.app_user")}
    assert defaults == {**{f"{code.lower()}@mail.example": code + "N" for code in plain},
                        "sb_ca@mail.example": "SB_CD"}
    assert codes_held(dbs.web, "SB_CA") + codes_held(dbs.web, "SB_CB") + codes_held(dbs.web, "SB_CC") == 0
