"""`userdebtor status`, `conflicts` and `resolve` against real databases after real sync runs."""

from __future__ import annotations

import getpass
import re
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from tests.support import add_debtor, add_user, erp_change, one, rows, synced, web_change, write_settings
from userdebtor_pipeline.cli import main
from userdebtor_pipeline.defs.resources import SYNC_LOCK_KEY
from userdebtor_pipeline.schema import init_databases


# ---------------------------------------------------------------- status
def test_status_reports_runs_problems_conversions_emails_and_watermarks(dbs, capsys):
    add_debtor(dbs.erp, "C500", "owner.c500@mail.example", name="Mrs Private Person")  # U2 makes a user
    bad = add_user(dbs.web, "not an email", name="Mr Secret Name")  # U1 sets it aside
    outcome = synced()
    with dbs.web.begin() as conn:
        # A conversion the web received but has not processed yet, and an email that could not be delivered.
        conn.execute(sa.text("INSERT INTO web.customer_conversion (conversion_seq, old_code, new_code,"
                             " conversion_date, received_at) VALUES (900, 'C500', 'C501', now(), now())"))
        conn.execute(sa.text(
            "INSERT INTO web.email_outbox (template, to_address, subject, body_text, dedupe_key, status, attempts,"
            " last_error) VALUES ('user_debtor_warning', 'who@mail.example', 's', 'b', 'test:failed', 'failed', 5,"
            " 'SMTPRecipientsRefused: {''who@mail.example'': (550, b''no such user'')}')"))
    capsys.readouterr()

    assert main(["status"]) == 0
    out = capsys.readouterr().out

    assert re.search(rf"{outcome.run_id}\s.*succeeded", out), out
    assert re.search(r"U1\s+malformed_email\s+1\s.*" + f"user:{bad}", out), out
    assert re.search(r"customer conversions \(C1\): 1 pending", out)
    assert re.search(r"900\s+C500\s+C501", out)
    assert "in the ERP, not yet copied to the web: 0" in out
    assert re.search(r"failed\s+1\s", out) and "<address>" in out, "the failed email, its error without the address"
    assert re.search(r"sent\s+1\s", out), "the welcome email of the new user"
    assert re.search(r"^\s+plan\s", out, re.MULTILINE), "the plan watermark"
    # Counts, codes and ids only: no names, no email addresses.
    for private in ("owner.c500@mail.example", "Mrs Private Person", "Mr Secret Name", "who@mail.example"):
        assert private not in out


def test_status_tells_running_from_held_or_failed(dbs, capsys):
    with dbs.web.begin() as conn:
        conn.execute(sa.text("INSERT INTO userdebtor.sync_run (run_id, started_at, mode) VALUES"
                             " ('older-run', now() - interval '1 hour', 'changed_since'),"
                             " ('newest-run', now(), 'changed_since')"))
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"newest-run\s.*held or failed", out) and re.search(r"older-run\s.*held or failed", out)

    with dbs.web.connect() as lock:  # a sync holds the run lock while it writes
        lock.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": SYNC_LOCK_KEY})
        assert main(["status"]) == 0
        out = capsys.readouterr().out
        lock.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": SYNC_LOCK_KEY})
    assert re.search(r"newest-run\s.*running", out), out
    assert re.search(r"older-run\s.*held or failed", out), "only the newest unfinished run can be the running one"


def test_status_exits_2_when_the_web_database_is_unreachable(pipeline_env, monkeypatch, capsys):
    monkeypatch.setenv("USERDEBTOR_WEB_URL", "postgresql+psycopg://nobody:secret-pw@127.0.0.1:1/nowhere")
    assert main(["status"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach the web database" in err and "secret-pw" not in err


def test_status_exits_2_when_the_state_schema_is_missing(pipeline_env, pg_urls: Callable[[], str], monkeypatch,
                                                         capsys):
    monkeypatch.setenv("USERDEBTOR_WEB_URL", pg_urls())  # a database where `init` never ran
    assert main(["status"]) == 2
    assert "userdebtor init" in capsys.readouterr().err


def test_status_still_shows_the_web_side_when_the_erp_is_down(dbs, monkeypatch, capsys):
    monkeypatch.setenv("USERDEBTOR_ERP_URL", "postgresql+psycopg://nobody@127.0.0.1:1/nowhere")
    assert main(["status"]) == 2
    captured = capsys.readouterr()
    assert "ERP: UNREACHABLE" in captured.out and "emails (web.email_outbox)" in captured.out
    assert "cannot reach the ERP database" in captured.err


# ---------------------------------------------------------------- conflicts and resolve
@pytest.fixture
def held_conflicts(dbs, settings_path):
    """Two conflicts held open by `conflict_policy: hold`: Name and PhoneNumber of debtor C800."""
    write_settings(settings_path, user_debtor={"conflict_policy": "hold"})
    add_debtor(dbs.erp, "C800", "pair@mail.example", name="Pair Name", dr_phone="0411 111 111")
    synced()
    uid = one(dbs.web, "SELECT user_id FROM web.app_user WHERE email_address = 'pair@mail.example'")
    web_change(dbs.web, uid, name="Web Says", phone_number="0422 222 222")
    erp_change(dbs.erp, "C800", dr_cust_name="Erp Says", dr_phone="0433 333 333")
    synced()
    conflicts = {r["field"]: r["conflict_id"] for r in rows(
        dbs.web, "SELECT field, conflict_id FROM userdebtor.conflict WHERE status = 'open'")}
    assert set(conflicts) == {"Name", "PhoneNumber"}
    return uid, conflicts


def test_conflicts_lists_the_open_ones_with_all_three_values(dbs, held_conflicts, capsys):
    uid, conflicts = held_conflicts
    capsys.readouterr()
    assert main(["conflicts"]) == 0
    out = capsys.readouterr().out
    assert "2 open conflicts" in out
    line = next(x for x in out.splitlines() if x.startswith(f"{conflicts['Name']} "))
    assert re.search(rf"C800\s+{uid}\s+Name\s+Pair Name\s+Web Says\s+Erp Says\s+\d{{4}}-", line), line


def test_resolve_is_applied_by_the_next_sync(dbs, held_conflicts, capsys):
    uid, conflicts = held_conflicts
    assert main(["resolve", str(conflicts["Name"]), "--take", "web", "--by", "alice"]) == 0
    assert "takes the web value" in capsys.readouterr().out
    assert main(["resolve", str(conflicts["PhoneNumber"]), "--take", "erp"]) == 0

    settled = {r["field"]: r for r in rows(
        dbs.web, "SELECT field, status, winner, resolved_by, resolved_at FROM userdebtor.conflict")}
    assert (settled["Name"]["status"], settled["Name"]["winner"], settled["Name"]["resolved_by"]) == (
        "resolved", "web", "alice")
    assert settled["PhoneNumber"]["resolved_by"] == getpass.getuser(), "without --by: the OS user"
    assert settled["Name"]["resolved_at"] is not None
    # Resolving records the choice only; neither side changes until the next sync.
    assert one(dbs.erp, "SELECT dr_cust_name FROM erp.deb_master WHERE dr_cust_code = 'C800'") == "Erp Says"

    synced()

    debtor = rows(dbs.erp, "SELECT dr_cust_name, dr_phone FROM erp.deb_master WHERE dr_cust_code = 'C800'")[0]
    user = rows(dbs.web, "SELECT name, phone_number FROM web.app_user WHERE user_id = :u", u=uid)[0]
    assert debtor == {"dr_cust_name": "Web Says", "dr_phone": "0433 333 333"}
    assert user == {"name": "Web Says", "phone_number": "0433 333 333"}
    assert one(dbs.web, "SELECT count(*) FROM userdebtor.conflict WHERE status = 'applied'"
                        " AND applied_at IS NOT NULL") == 2
    assert main(["conflicts"]) == 0 and "no open conflicts" in capsys.readouterr().out

    outcome = synced()  # what the last run wrote does not come back as a change or a new conflict
    assert outcome.materializations["field_changes_applied"]["debtors_updated_in_erp"] == 0
    assert outcome.materializations["field_changes_applied"]["users_updated_on_web"] == 0
    assert one(dbs.web, "SELECT count(*) FROM userdebtor.conflict") == 2


def test_resolve_refuses_unknown_and_settled_conflicts(dbs, held_conflicts, capsys):
    _, conflicts = held_conflicts
    assert main(["resolve", "999999", "--take", "erp"]) == 2
    assert "there is no conflict 999999" in capsys.readouterr().err

    assert main(["resolve", str(conflicts["Name"]), "--take", "erp", "--by", "bob"]) == 0
    capsys.readouterr()
    assert main(["resolve", str(conflicts["Name"]), "--take", "web", "--by", "carol"]) == 2
    err = capsys.readouterr().err
    assert "already resolved" in err and "bob" in err
    assert one(dbs.web, "SELECT winner FROM userdebtor.conflict WHERE conflict_id = :c",
               c=conflicts["Name"]) == "erp", "the second attempt changed nothing"


def test_resolve_refuses_a_conflict_settled_by_policy(dbs, settings_path, capsys):
    add_debtor(dbs.erp, "C801", "policy@mail.example", name="Policy Name")
    synced()
    uid = one(dbs.web, "SELECT user_id FROM web.app_user WHERE email_address = 'policy@mail.example'")
    web_change(dbs.web, uid, name="Web Says")
    erp_change(dbs.erp, "C801", dr_cust_name="Erp Says")
    synced()  # the example settings: erp_wins
    conflict_id = one(dbs.web, "SELECT conflict_id FROM userdebtor.conflict WHERE status = 'settled'")
    assert main(["resolve", str(conflict_id), "--take", "web"]) == 2
    assert "settled by conflict_policy erp_wins" in capsys.readouterr().err


def test_resolve_exits_2_when_the_state_schema_is_missing(pipeline_env, pg_urls, monkeypatch, capsys):
    url = pg_urls()
    monkeypatch.setenv("USERDEBTOR_WEB_URL", url)
    assert main(["resolve", "1", "--take", "web"]) == 2
    assert "userdebtor init" in capsys.readouterr().err
    engine = sa.create_engine(url)
    init_databases(engine, engine)  # after `init` the same command reaches the conflict lookup
    engine.dispose()
    assert main(["resolve", "1", "--take", "web"]) == 2
    assert "there is no conflict 1" in capsys.readouterr().err


# ---------------------------------------------------------------- reports of failed checks
def test_a_failed_check_report_is_readable_html_with_gx_data_docs(pipeline_env, tmp_path):
    import great_expectations as gx
    import pandas as pd

    from userdebtor_pipeline.operations.data_docs import check_report_metadata, verdict_rows, write_check_report
    from userdebtor_pipeline.quality import validate_frame

    frame = pd.DataFrame({"user_id": [1, 2, 3], "email": ["ok@mail.example", "<script>x</script>", "no-at-sign"]})
    expectations = [gx.expectations.ExpectColumnValuesToMatchRegex(column="email", regex=r"^[^@<>]+@[^@<>]+$")]
    verdict = validate_frame(frame, expectations, "report_test")
    assert not verdict.passed

    page = write_check_report("run-42", "new_users_are_sound", summary=verdict.summary(),
                              failing_rows=verdict_rows(verdict), asset="new_users_vetted", frame=frame,
                              expectations=expectations)

    assert page == tmp_path / "home" / "reports" / "run-42" / "new_users_are_sound.html"
    text = page.read_text()
    assert "new_users_are_sound" in text and "2 of 3 rows" in text and "new_users_vetted" in text
    assert "<script>x</script>" not in text and "&lt;script&gt;" in text, "failing values are escaped"
    assert page.with_suffix(".md").read_text().startswith("# Check new_users_are_sound failed")
    gx_link = re.search(r"href='([^']+)'>Great Expectations Data Docs", text)
    assert gx_link, text
    gx_page = (page.parent / gx_link.group(1)).resolve()
    assert gx_page.is_file() and "gx/uncommitted/data_docs" in str(gx_page)
    assert "ExpectColumnValuesToMatchRegex" in gx_page.read_text() or "match" in gx_page.read_text().lower()
    assert "new_users_are_sound.html" in (page.parent / "index.html").read_text()
    assert check_report_metadata(page)["report"].value == str(page)
    assert (frame.columns.tolist(), expectations[0].id) == (["user_id", "email"], None), "inputs left unchanged"


def test_a_report_without_gx_and_with_a_hostile_run_id_stays_in_its_folder(pipeline_env, tmp_path):
    from userdebtor_pipeline.operations.data_docs import write_check_report

    page = write_check_report("../../etc", "change_fraction_guard", summary="12 of 20 linked pairs would change",
                              failing_rows=[{"linked_pairs": 20, "pairs_changing": 12}])
    assert page.parent.parent == tmp_path / "home" / "reports"
    assert "12 of 20 linked pairs would change" in page.read_text() and "pairs_changing" in page.read_text()
    assert "Great Expectations" not in page.read_text()
