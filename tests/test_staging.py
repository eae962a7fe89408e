"""Staging by what changed (issue Scale): rows by their change stamp, the overlap and deletes by key-range checksums.

The ERP and the web are two databases here, so every ERP read crosses by COPY as in production; `stage` is called
directly, as the extract assets call it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
import sqlalchemy as sa
from psycopg import sql

from tests.support import one, rows
from userdebtor_pipeline.defs.extract import staging
from userdebtor_pipeline.defs.extract.assets import CONTACT_ACCOUNTS, CONTACTS, WEB_CUSTOMERS, stamped_since_run_start
from userdebtor_pipeline.defs.extract.checksums import BUCKETS
from userdebtor_pipeline.defs.extract.staging import ExtractResult, ExtractSpec, keys_in, stage

CONTACT_COUNT = 3 * BUCKETS  # several rows a bucket, so that a differing range is a small part of the table


@pytest.fixture
def crm(two_databases):
    """A CRM of contacts stamped over the last hour, each acting for one account, staged once whole."""
    with two_databases.erp.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO erp.crm_contact (contact_id, contact_email, contact_first_name, contact_surname,"
            " contact_date_last_changed)"
            " SELECT i, 'c' || i || '@example.com', 'Pat', 'Buyer', now() - interval '1 hour' + i * interval '1 ms'"
            "   FROM generate_series(1, :n) i"), {"n": CONTACT_COUNT})
        conn.execute(sa.text("INSERT INTO erp.crm_contact_account (contact_id, dr_cust_code)"
                             " SELECT i, 'C' || (i % 97) FROM generate_series(1, :n) i"), {"n": CONTACT_COUNT})
    assert staged(two_databases, CONTACTS, full=True).read == CONTACT_COUNT
    assert staged(two_databases, CONTACT_ACCOUNTS, full=True).read == CONTACT_COUNT
    return two_databases


def staged(dbs, spec: ExtractSpec, *, full: bool = False, source=None) -> ExtractResult:
    with dbs.web.begin() as conn:
        return stage(spec, source=conn if source == "web" else dbs.erp, web=conn, full=full)


def change_seqs(dbs) -> dict[int, int]:
    return {r["contact_id"]: r["change_seq"]
            for r in rows(dbs.web, "SELECT contact_id, change_seq FROM userdebtor.erp_contact")}


def test_a_run_with_nothing_new_reads_no_row(crm) -> None:
    for spec in (CONTACTS, CONTACT_ACCOUNTS):
        result = staged(crm, spec)
        assert (result.read, result.changed, result.deleted) == (0, 0, 0), spec.name


def test_a_changed_contact_is_staged_and_an_unchanged_one_is_not(crm) -> None:
    before = change_seqs(crm)
    with crm.erp.begin() as conn:
        conn.execute(sa.text("UPDATE erp.crm_contact SET contact_surname = 'Seller',"
                             " contact_date_last_changed = clock_timestamp() WHERE contact_id = 7"))

    result = staged(crm, CONTACTS)

    assert (result.mode, result.read, result.changed, result.deleted) == ("changed_since", 1, 1, 0)
    assert one(crm.web, "SELECT contact_surname FROM userdebtor.erp_contact WHERE contact_id = 7") == "Seller"
    after = change_seqs(crm)
    assert after[7] > before[7]
    assert {k: v for k, v in after.items() if k != 7} == {k: v for k, v in before.items() if k != 7}


@pytest.mark.parametrize("compared_by", ["key and stamp", "key-range checksums", "key-range checksums past the cap"])
def test_a_change_that_committed_late_with_an_older_stamp_is_found_in_its_key_range(crm, compared_by,
                                                                                     monkeypatch) -> None:
    """The overlap: a row stamped before the watermark but committed after the last read is read again, alone or
    with the other rows of its key range, not every row stamped in the overlap. A table whose mirror has no index
    on its stamp (the orders) compares the overlap's rows by key and stamp, up to a cap; past it, and for the other
    tables, by key-range checksums."""
    spec = CONTACTS if compared_by == "key-range checksums" else replace(CONTACTS, overlap_by_key=True)
    if compared_by == "key-range checksums past the cap":
        monkeypatch.setattr(staging, "OVERLAP_KEYS_AT_MOST", 10)
    watermark = one(crm.web, "SELECT value FROM userdebtor.watermark WHERE name = 'erp_contact'")
    with crm.erp.begin() as conn:
        conn.execute(sa.text("UPDATE erp.crm_contact SET contact_phone = '0400 000 000',"
                             " contact_date_last_changed = :late WHERE contact_id = 11"),
                     {"late": watermark - timedelta(seconds=30)})
        conn.execute(sa.text("UPDATE erp.crm_contact SET contact_date_last_changed = :stamp"
                             " WHERE contact_id BETWEEN 100 AND 2000"), {"stamp": watermark - timedelta(minutes=1)})
    staged(crm, spec)  # the many rows stamped a minute before the watermark are taken once...

    with crm.erp.begin() as conn:
        conn.execute(sa.text("UPDATE erp.crm_contact SET contact_phone = '0400 111 111',"
                             " contact_date_last_changed = :late WHERE contact_id = 12"),
                     {"late": watermark - timedelta(seconds=20)})
    result = staged(crm, spec)  # ...and not again, though all of them are in the overlap

    assert result.changed == 1
    assert 1 <= result.read < 2 * CONTACT_COUNT / BUCKETS + 10
    if compared_by == "key and stamp":
        assert result.read == 1, "only the row whose stamp the mirror lacks"
    assert one(crm.web, "SELECT contact_phone FROM userdebtor.erp_contact WHERE contact_id = 12") == "0400 111 111"
    assert one(crm.web, "SELECT contact_phone FROM userdebtor.erp_contact WHERE contact_id = 11") == "0400 000 000"


def test_a3_a_restage_that_finds_nothing_newer_leaves_the_overlap_to_the_next_staging(crm) -> None:
    """A3: a restage (for what the run's own loads wrote) that finds nothing newer than the watermark does not compare
    the overlap again. The watermark stays, so the next staging compares the same overlap and finds a late commit; a
    restage that does find newer rows moves the watermark, and compares the overlap as any staging does."""
    watermark = one(crm.web, "SELECT value FROM userdebtor.watermark WHERE name = 'erp_contact'")

    def late_commit(contact_id: int, phone: str) -> None:
        with crm.erp.begin() as conn:
            conn.execute(sa.text("UPDATE erp.crm_contact SET contact_phone = :p,"
                                 " contact_date_last_changed = :late WHERE contact_id = :i"),
                         {"p": phone, "i": contact_id, "late": watermark - timedelta(seconds=20)})

    def restaged() -> ExtractResult:
        with crm.web.begin() as conn:
            return stage(CONTACTS, source=crm.erp, web=conn, full=False, restage=True)

    late_commit(12, "0400 111 111")
    assert (restaged().read, one(crm.web, "SELECT value FROM userdebtor.watermark WHERE name = 'erp_contact'")) == (
        0, watermark)
    assert staged(crm, CONTACTS).changed == 1
    assert one(crm.web, "SELECT contact_phone FROM userdebtor.erp_contact WHERE contact_id = 12") == "0400 111 111"

    late_commit(13, "0400 222 222")
    with crm.erp.begin() as conn:
        conn.execute(sa.text("UPDATE erp.crm_contact SET contact_date_last_changed = clock_timestamp()"
                             " WHERE contact_id = 14"))
    assert restaged().changed == 2
    assert one(crm.web, "SELECT contact_phone FROM userdebtor.erp_contact WHERE contact_id = 13") == "0400 222 222"


def test_a_deleted_contact_is_found_through_its_differing_key_range(crm) -> None:
    with crm.erp.begin() as conn:
        conn.execute(sa.text("DELETE FROM erp.crm_contact WHERE contact_id IN (5, 2500)"))

    result = staged(crm, CONTACTS)

    assert (result.read, result.changed, result.deleted) == (0, 0, 2)
    assert one(crm.web, "SELECT count(*) FROM userdebtor.erp_contact") == CONTACT_COUNT - 2
    assert one(crm.web, "SELECT count(*) FROM userdebtor.erp_contact WHERE contact_id IN (5, 2500)") == 0


def test_a_delete_balanced_by_an_insert_is_still_found(crm) -> None:
    """The count compares the source with the mirror after the run's new rows are in: an insert cannot hide a delete."""
    with crm.erp.begin() as conn:
        conn.execute(sa.text("DELETE FROM erp.crm_contact WHERE contact_id = 9"))
        conn.execute(sa.text("INSERT INTO erp.crm_contact (contact_id, contact_email, contact_date_last_changed)"
                             " VALUES (:n, 'new@example.com', clock_timestamp())"), {"n": CONTACT_COUNT + 1})

    result = staged(crm, CONTACTS)

    assert (result.read, result.changed, result.deleted) == (1, 1, 1)
    assert one(crm.web, "SELECT count(*) FROM userdebtor.erp_contact") == CONTACT_COUNT


def test_the_crm_master_is_staged_by_the_key_ranges_that_differ(crm) -> None:
    """No change stamp: an account a contact gains and one it loses are found by checksum, the rest is not read."""
    with crm.erp.begin() as conn:
        conn.execute(sa.text("DELETE FROM erp.crm_contact_account WHERE contact_id = 40"))
        conn.execute(sa.text("INSERT INTO erp.crm_contact_account (contact_id, dr_cust_code) VALUES (41, 'NEW')"))

    result = staged(crm, CONTACT_ACCOUNTS)

    assert (result.mode, result.changed, result.deleted) == ("checksums", 1, 1)
    assert result.read < 4 * CONTACT_COUNT / BUCKETS + 10  # the rows of two ranges, not the table
    staged_pairs = rows(crm.web, "SELECT contact_id, dr_cust_code FROM userdebtor.erp_contact_account"
                                 " WHERE contact_id IN (40, 41) ORDER BY 1, 2")
    assert [(r["contact_id"], r["dr_cust_code"]) for r in staged_pairs] == [(41, "C41"), (41, "NEW")]


def test_a_web_customer_whose_flags_change_is_staged_in_place(crm) -> None:
    with crm.web.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO web.customer (customer_code, name, status, updated_at)"
            " SELECT 'W' || i, 'Shop ' || i, 'Active', now() FROM generate_series(1, 500) i"))
    assert staged(crm, WEB_CUSTOMERS, source="web").changed == 500
    with crm.web.begin() as conn:
        conn.execute(sa.text("UPDATE web.customer SET auto_part_registration = true WHERE customer_code = 'W9'"))

    result = staged(crm, WEB_CUSTOMERS, source="web")

    assert (result.changed, result.deleted) == (1, 0)
    assert one(crm.web, "SELECT auto_part_registration FROM userdebtor.web_customer WHERE customer_code = 'W9'")


def test_a_full_reconcile_finds_a_change_the_stamps_do_not_show_reading_only_its_range(crm) -> None:
    """--full trusts no stamp, yet copies only the key ranges whose checksums of key and content differ: a change the
    ERP made without a new stamp, then a delete; a table that did not change is not read at all."""
    with crm.erp.begin() as conn:
        conn.execute(sa.text("UPDATE erp.crm_contact SET contact_surname = 'Quiet' WHERE contact_id = 21"))
    assert staged(crm, CONTACTS).changed == 0, "by stamp, nothing changed"

    result = staged(crm, CONTACTS, full=True)

    assert (result.mode, result.changed, result.deleted) == ("verified", 1, 0)
    assert result.read < 2 * CONTACT_COUNT / BUCKETS + 10  # the rows of one range, not the table
    assert one(crm.web, "SELECT contact_surname FROM userdebtor.erp_contact WHERE contact_id = 21") == "Quiet"
    with crm.erp.begin() as conn:
        conn.execute(sa.text("DELETE FROM erp.crm_contact WHERE contact_id = 22"))
    assert (staged(crm, CONTACTS, full=True).deleted, one(crm.web, "SELECT count(*) FROM userdebtor.erp_contact")) \
        == (1, CONTACT_COUNT - 1)
    again = staged(crm, CONTACTS, full=True)
    assert (again.read, again.changed, again.deleted) == (0, 0, 0)


def test_two_web_customers_that_swap_their_flags_are_both_staged(crm) -> None:
    """A row's content is summed with its key: two accounts of one key range that trade their status leave the
    range's sum of contents alone, and would be missed if the contents were summed without their keys."""
    with crm.web.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO web.customer (customer_code, name, status, updated_at)"
            " SELECT 'W' || i, 'Shop ' || i, CASE WHEN i % 2 = 0 THEN 'Active' ELSE 'Inactive' END, now()"
            "   FROM generate_series(1, 5000) i"))
    staged(crm, WEB_CUSTOMERS, source="web")
    pair = rows(crm.web, "SELECT min(customer_code) FILTER (WHERE status = 'Active') AS active,"
                         "       min(customer_code) FILTER (WHERE status = 'Inactive') AS inactive"
                         "  FROM web.customer GROUP BY hashtextextended(customer_code, 0) & :mask"
                         " HAVING count(DISTINCT status) = 2 LIMIT 1", mask=BUCKETS - 1)[0]
    with crm.web.begin() as conn:
        conn.execute(sa.text("UPDATE web.customer SET status = CASE WHEN status = 'Active' THEN 'Inactive'"
                             " ELSE 'Active' END WHERE customer_code IN (:a, :b)"),
                     {"a": pair["active"], "b": pair["inactive"]})

    result = staged(crm, WEB_CUSTOMERS, source="web")

    assert result.changed == 2
    assert one(crm.web, "SELECT status FROM userdebtor.web_customer WHERE customer_code = :c",
               c=pair["active"]) == "Inactive"


def test_a3_the_customer_rows_a_run_wrote_are_found_through_the_stamp_index(two_databases) -> None:
    """A3 at scale: a run stages the customer rows its loads wrote before each plan that reads them, up to three
    times a run; they are found through web.customer's stamp index, not a read of every account (0.14 s a time
    at 1.4 million). With sequential scans off, a query the index cannot serve would still show one."""
    with two_databases.web.connect() as conn:
        pg = conn.connection.driver_connection
        pg.execute("SET enable_seqscan = off")
        query = sql.SQL("EXPLAIN SELECT customer_code FROM web.customer WHERE {w}").format(
            w=stamped_since_run_start("a-run"))
        plan = "\n".join(row[0] for row in pg.execute(query).fetchall())
        conn.rollback()
    assert "customer_updated_at_idx" in plan and "Seq Scan on customer" not in plan, plan


def test_the_keys_read_again_from_the_source_are_literals_whatever_they_hold(two_databases) -> None:
    """The overlap's stale keys travel to the source as SQL literals: a key the ERP holds with a quote, a semicolon
    or a backslash in it selects its own row and nothing else, and runs no SQL of its own."""
    hostile = ("SO'1); DROP TABLE erp.sales_order; --", "SO\\2", "SO 3")
    with two_databases.erp.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO erp.sales_order (so_order_no, so_cust_code, so_order_date, so_order_status, so_source,"
            " so_order_total) SELECT k, 'C1', now(), 'open', 'WEB', 1 FROM unnest(CAST(:keys AS text[])) k"),
            {"keys": [*hostile, "SO4"]})
    with two_databases.erp.connect() as conn:
        pg = conn.connection.driver_connection
        query = sql.SQL("SELECT so_order_no FROM erp.sales_order WHERE {w} ORDER BY 1").format(
            w=keys_in(("so_order_no",), [(key,) for key in hostile]))
        picked = [row[0] for row in pg.execute(query).fetchall()]
    assert picked == sorted(hostile)
    assert one(two_databases.erp, "SELECT count(*) FROM erp.sales_order") == 4


def _indexes(dbs, table: str) -> list[tuple[str, str]]:
    return [(r["name"], r["definition"]) for r in rows(
        dbs.web, "SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS definition FROM pg_index i"
                 " JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = CAST(:t AS regclass) ORDER BY 1",
        t=table)]


def test_a_first_load_into_an_empty_mirror_builds_its_indexes_after_the_rows(two_databases, monkeypatch) -> None:
    """A first load takes its rows without the mirror's secondary indexes and builds them after, in the same
    transaction: the mirror ends with every index it had, as it was defined, and the rows to find through them."""
    dbs = two_databases
    before = _indexes(dbs, "userdebtor.erp_contact")
    assert len(before) > 1  # the primary key and secondary indexes (change_seq, email key)
    monkeypatch.setattr(staging, "BUILD_INDEXES_AFTER_ROWS", 10)
    with dbs.erp.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO erp.crm_contact (contact_id, contact_email, contact_first_name, contact_surname,"
            " contact_date_last_changed) SELECT i, 'c' || i || '@example.com', 'Pat', 'Buyer', now()"
            "   FROM generate_series(1, 50) i"))
    built_after: list[int] = []  # how many indexes each load built after its rows
    original = staging._Staging.indexes_to_build_after

    def spy(self: staging._Staging, rows: int) -> list[str]:
        definitions = original(self, rows)
        built_after.append(len(definitions))
        return definitions

    monkeypatch.setattr(staging._Staging, "indexes_to_build_after", spy)

    assert staged(dbs, CONTACTS, full=True).changed == 50
    assert built_after == [len(before) - 1] and _indexes(dbs, "userdebtor.erp_contact") == before
    assert one(dbs.web, "SELECT contact_id FROM userdebtor.erp_contact"
                        " WHERE userdebtor.email_key(contact_email) = 'c7@example.com'") == 7

    # A mirror with rows keeps its indexes: a later load adds index entries row by row.
    with dbs.erp.begin() as conn:
        conn.execute(sa.text("UPDATE erp.crm_contact SET contact_surname = 'Seller',"
                             " contact_date_last_changed = now()"))
    assert staged(dbs, CONTACTS, full=True).changed == 50
    assert built_after[1:] == [0] and _indexes(dbs, "userdebtor.erp_contact") == before


def test_a_load_reads_a_mirror_analyzed_while_empty_once_not_once_a_row(two_databases) -> None:
    """A mirror the planner takes for empty (analyzed with no rows: a fresh install, or a table emptied) is read
    once by a load of many rows, not scanned again for each row the load inserts, its own new rows included (the
    first load of 500,000 orders at 100,000 debtors ran for more than 15 minutes so)."""
    dbs = two_databases
    with dbs.erp.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO erp.crm_contact (contact_id, contact_email, contact_first_name, contact_surname,"
            " contact_date_last_changed) SELECT i, 'c' || i || '@example.com', 'Pat', 'Buyer', now()"
            "   FROM generate_series(1, 2000) i"))
    with dbs.web.begin() as conn:
        conn.execute(sa.text("ANALYZE userdebtor.erp_contact"))
    with dbs.web.begin() as conn:
        # A hash of the rows read no longer fits in memory (as 150,000 contacts do not in the server's default 4 MB),
        # so a plan that probes the mirror for each row costs the least, for a mirror thought empty.
        conn.execute(sa.text("SET LOCAL work_mem = '64kB'"))
        assert stage(CONTACTS, source=dbs.erp, web=conn, full=True).changed == 2000
        scans = conn.execute(sa.text("SELECT pg_stat_get_xact_numscans('userdebtor.erp_contact'::regclass)")).scalar()
    assert scans < 10, f"the mirror was scanned {scans} times by one load"
