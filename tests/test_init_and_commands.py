"""The contract's commands: init (idempotent, never altering existing tables), exit codes, staging extracts."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest
import sqlalchemy as sa

from tests.support import add_debtor, add_template, add_user, erp_change, one, rows, write_settings
from userdebtor_pipeline.cli import main
from userdebtor_pipeline.db import EMBEDDED_SETTINGS, tune_embedded_server
from userdebtor_pipeline.runner import run_sync
from userdebtor_pipeline.schema import init_databases


def test_init_twice_changes_nothing(pipeline_env, capsys):
    assert main(["init"]) == 0
    out = capsys.readouterr().out
    assert "tables created: none" in out and "migrations applied: none" in out
    assert one(pipeline_env.web, "SELECT count(*) FROM userdebtor.schema_migration") >= 1


def test_init_never_alters_an_existing_table(pg_urls):
    url = pg_urls()
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # the store's own table, with a column of its own and no index of ours
        conn.execute(
            sa.text(
                "CREATE SCHEMA web; CREATE TABLE web.app_user (user_id bigint PRIMARY KEY,"
                " email_address text NOT NULL, shop_specific text)"
            )
        )
    report = init_databases(engine, engine)
    assert "web.app_user" in report.existing_tables and "web.customer" in report.created_tables
    columns = rows(
        engine,
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'web'"
        " AND table_name = 'app_user' ORDER BY ordinal_position",
    )
    assert [c["column_name"] for c in columns] == ["user_id", "email_address", "shop_specific"]
    assert one(engine, "SELECT count(*) FROM pg_indexes WHERE schemaname = 'web' AND tablename = 'app_user'") == 1
    engine.dispose()


def test_unreachable_database_exits_2_and_hides_the_password(monkeypatch, tmp_path):
    monkeypatch.setenv("USERDEBTOR_ERP_URL", "postgresql+psycopg://shop:s3cret-pw@127.0.0.1:1/erp")
    monkeypatch.setenv("USERDEBTOR_WEB_URL", "postgresql+psycopg://shop:s3cret-pw@127.0.0.1:1/web")
    monkeypatch.setenv("USERDEBTOR_HOME", str(tmp_path))
    result = subprocess.run([sys.executable, "-m", "userdebtor_pipeline.cli", "init"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "ERP database" in result.stderr and "127.0.0.1" in result.stderr
    assert "s3cret-pw" not in result.stderr + result.stdout


def test_settings_typo_exits_2_naming_the_key(pipeline_env, settings_path, capsys):
    write_settings(settings_path, user_debtor={"conflict_polcy": "hold"})
    assert main(["sync"]) == 2
    assert "user_debtor.conflict_polcy" in capsys.readouterr().err


def test_sync_exits_1_naming_the_check_that_held_a_load(pipeline_env, settings_path, capsys):
    write_settings(settings_path, user_debtor={"template_customer": "MISSING"})
    add_user(pipeline_env.web, "held@mail.example")
    assert main(["sync"]) == 1
    out = capsys.readouterr().out
    assert "template_customer_exists" in out and "MISSING" in out


def test_sync_prints_what_it_did_by_kind(pipeline_env, settings_path, capsys):
    add_template(pipeline_env.erp)
    add_user(pipeline_env.web, "printed@mail.example")
    assert main(["sync"]) == 0
    out = capsys.readouterr().out
    assert "ERP debtors created (U1)" in out and "emails" in out and "result: ok" in out


@pytest.fixture
def staged(pipeline_env, settings_path):
    add_template(pipeline_env.erp)
    return pipeline_env


def test_staging_reads_changes_since_the_watermark_and_drops_deleted_rows(staged):
    add_debtor(staged.erp, "S1", "s1@mail.example")
    add_debtor(staged.erp, "S2", None, cust_type="TRADE")
    first = run_sync().materializations["staged_erp_debtors"]
    assert first["mode"] == "full" and first["rows_read"] == 3
    assert one(staged.web, "SELECT in_master_scope FROM userdebtor.erp_debtor WHERE dr_cust_code = 'S1'") is True
    assert one(staged.web, "SELECT in_css_scope FROM userdebtor.erp_debtor WHERE dr_cust_code = 'S2'") is True

    erp_change(staged.erp, "S2", dr_cust_name="Renamed")
    with staged.erp.begin() as conn:
        conn.execute(sa.text("DELETE FROM erp.deb_master WHERE dr_cust_code = 'S1'"))
    second = run_sync(lift_change_guard=True).materializations["staged_erp_debtors"]
    assert second["mode"] == "changed_since"
    assert second["rows_changed"] == 1 and second["rows_deleted"] == 1
    assert one(staged.web, "SELECT dr_cust_name FROM userdebtor.erp_debtor WHERE dr_cust_code = 'S2'") == "Renamed"


def test_changed_filters_restage_every_debtor(staged, settings_path):
    add_debtor(staged.erp, "T1", None, cust_type="TRADE")
    run_sync()
    assert one(staged.web, "SELECT in_master_scope FROM userdebtor.erp_debtor WHERE dr_cust_code = 'T1'") is False
    write_settings(settings_path, user_debtor={"customer_master_filter": 'dr-cust-type in ("WEB_", "TRADE")'})
    assert run_sync().materializations["staged_erp_debtors"]["mode"] == "full"
    assert one(staged.web, "SELECT in_master_scope FROM userdebtor.erp_debtor WHERE dr_cust_code = 'T1'") is True


def test_seed_command_fills_empty_tables_and_refuses_full_ones(pipeline_env, capsys):
    assert main(["seed", "--debtors", "120", "--users", "120", "--seed", "3"]) == 0
    assert one(pipeline_env.erp, "SELECT count(*) FROM erp.deb_master") >= 100
    capsys.readouterr()
    assert main(["seed", "--debtors", "120", "--users", "120"]) == 2
    assert "only fills empty tables" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_shows_what_happened_and_where_to_look(pipeline_env, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("USERDEBTOR_CONFIG", str(tmp_path / "userdebtor.yaml"))
    assert main(["demo", "--debtors", "300", "--users", "300"]) == 0
    out = capsys.readouterr().out
    for expected in (
        "ERP debtors created for web users (U1)",
        "web users created for ERP debtors (U2)",
        "conflicts (U4)",
        "warning emails to the administrator",
        "where to look",
    ):
        assert expected in out
    assert one(pipeline_env.web, "SELECT count(*) FROM userdebtor.conflict") >= 1
    assert one(pipeline_env.web, "SELECT count(*) FROM web.email_outbox WHERE template = 'user_debtor_warning'") >= 1
    assert (tmp_path / "userdebtor.yaml").exists(), "the demo copies the example settings"


@pytest.mark.skipif(bool(os.environ.get("USERDEBTOR_TEST_SERVER_URL")), reason="changes the server's settings")
def test_the_embedded_server_gets_its_settings_for_bulk_work(pg_urls):
    """The embedded server checkpoints by time and WAL size fit for a million-row load, kept across restarts."""
    url = pg_urls().replace("postgresql+psycopg://", "postgresql://", 1)
    tune_embedded_server(url)
    tune_embedded_server(url)  # a second start finds them set

    with psycopg.connect(url) as conn:
        for name, value in EMBEDDED_SETTINGS.items():
            assert conn.execute("SELECT current_setting(%s)", (name,)).fetchone()[0] == value
        kept = dict(conn.execute("SELECT name, setting FROM pg_file_settings WHERE sourcefile LIKE"
                                 " '%%postgresql.auto.conf' AND applied").fetchall())
    assert set(EMBEDDED_SETTINGS) <= set(kept)


def test_an_embedded_server_that_refuses_the_settings_is_said_in_the_log(caplog):
    """A server that cannot be tuned works on at its defaults: a warning, never a failed command."""
    with caplog.at_level("WARNING", logger="userdebtor_pipeline.db"):
        tune_embedded_server("postgresql://postgres@/postgres?host=/nonexistent-socket-dir")
    assert "keeps its default WAL settings" in caplog.text
