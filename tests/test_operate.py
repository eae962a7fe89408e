"""Operating it: scripts (--json, --version, exit statuses), delivery failures, reports of held runs, progress,
`userdebtor invite` (I4) and least privilege. Real databases, the real job, real emails."""

from __future__ import annotations

import io
import json
import re
import uuid

import dagster as dg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tests.smtp import free_port
from tests.support import add_debtor, add_template, add_user, erp_change, one, rows, write_settings
from userdebtor_pipeline import __version__
from userdebtor_pipeline.cli import EXIT_BAD_SETUP, EXIT_FAILED, EXIT_HELD, EXIT_OK, main
from userdebtor_pipeline.db import dispose_all
from userdebtor_pipeline.defs.instant_accounts.accounts import REGISTRATION_REASONS
from userdebtor_pipeline.progress import Progress
from userdebtor_pipeline.runner import run_sync


def json_out(capsys) -> dict:
    """The whole of standard output must be one JSON document."""
    return json.loads(capsys.readouterr().out)


# ------------------------------------------------------------------------------------------ scripts


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"userdebtor {__version__}"


def test_sync_json_and_status_json_are_one_document_each(pipeline_env, settings_path, capsys):
    add_template(pipeline_env.erp)
    add_user(pipeline_env.web, "scripted@mail.example")
    assert main(["sync", "--json", "--log-level", "INFO"]) == EXIT_OK
    doc = json_out(capsys)
    assert doc["result"] == "ok" and doc["exit_status"] == EXIT_OK
    assert doc["done"]["ERP debtors created (U1)"] == 1
    assert doc["emails"]["state"] == "ok" and doc["emails"]["transport"] == "maildir"

    assert main(["status", "--json"]) == EXIT_OK
    status = json_out(capsys)
    assert status["runs"][0]["run_id"] == doc["run_id"] and status["runs"][0]["outcome"] == "succeeded"


def test_a_step_that_breaks_mid_run_exits_3_not_1(pipeline_env, settings_path, capsys):
    add_template(pipeline_env.erp)
    with pipeline_env.web.begin() as conn:  # a state table gone: a database error in the middle of the run
        conn.execute(sa.text("DROP TABLE userdebtor.plan_registration"))
    assert main(["sync", "--json"]) == EXIT_FAILED
    doc = json_out(capsys)
    assert doc["result"] == "failed" and not doc["held_by"]
    assert any("plan_registration" in f["error"] for f in doc["failed_steps"])


def test_a_bad_ui_url_is_a_settings_error_naming_the_key(pipeline_env, settings_path, capsys):
    write_settings(settings_path, email={"ui_url": "dagster.internal:3000"})
    assert main(["sync"]) == EXIT_BAD_SETUP
    assert "email.ui_url" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ E1 delivery


def test_e1_smtp_outage_is_a_backlog_warning_then_a_failure_once_retries_are_spent(pipeline_env, settings_path,
                                                                                   capsys):
    """An SMTP server that is down: first a backlog (exit 0, said loudly), then exhausted retries (exit 3)."""
    write_settings(settings_path, email={"transport": "smtp", "smtp_host": "127.0.0.1", "smtp_port": free_port(),
                                         "max_attempts": 2})
    add_template(pipeline_env.erp)
    add_debtor(pipeline_env.erp, "WEB_000001", "newuser@mail.example")  # U2 makes a user and a welcome email

    assert main(["sync"]) == EXIT_OK
    text = capsys.readouterr().out
    assert "DELIVERY FAILED to SMTP at 127.0.0.1" in text and "result: ok, with an email backlog" in text
    assert "result: ok\n" not in text

    assert main(["sync", "--json"]) == EXIT_FAILED
    doc = json_out(capsys)
    assert doc["emails"]["state"] == "failed" and doc["emails"]["failed"] == 1
    assert doc["result"] == "failed: emails could not be delivered"
    assert one(pipeline_env.web, "SELECT status FROM web.email_outbox WHERE to_address = 'newuser@mail.example'") \
        == "failed"


# ------------------------------------------------------------------------------------------ U7 reports and alerts


def _linked_pairs(env, count: int) -> list[str]:
    add_template(env.erp)
    codes = [f"WEB_{n:06d}" for n in range(1, count + 1)]
    for code in codes:
        add_debtor(env.erp, code, f"{code.lower()}@mail.example", name=f"Old name {code}")
    assert run_sync().success
    assert one(env.web, "SELECT count(*) FROM userdebtor.user_debtor_link WHERE state = 'active'") == count
    return codes


def test_u7_held_run_reports_the_pairs_with_before_and_after_and_alerts_with_advice(pipeline_env, settings_path,
                                                                                     capsys):
    write_settings(settings_path, user_debtor={"warning_emails_to": "ops@example.com"},
                   email={"ui_url": "http://dagster.internal:3000/"})
    codes = _linked_pairs(pipeline_env, 6)
    for code in codes:
        erp_change(pipeline_env.erp, code, dr_cust_name=f"New name {code}")

    # A dry run that would be held is held, and tells no one.
    assert main(["sync", "--dry-run"]) == EXIT_HELD
    capsys.readouterr()
    assert one(pipeline_env.web, "SELECT count(*) FROM web.email_outbox WHERE template = 'sync_run_failed'") == 0

    assert main(["sync"]) == EXIT_HELD
    out = capsys.readouterr().out
    assert "change_fraction_guard" in out
    report = re.search(r"^\s+(\S+change_fraction_guard\.html)$", out, re.MULTILINE)
    assert report, out
    page = open(report.group(1), encoding="utf-8").read()
    markdown = open(report.group(1)[: -len(".html")] + ".md", encoding="utf-8").read()
    assert "Failing rows (6)" in markdown, "every field change the guard held, counted"
    for code in codes:
        assert f"| {code} |" in markdown and f"Old name {code}" in markdown and f"New name {code}" in markdown
    assert "MetadataValue" not in page + markdown and "6 of 6 linked pairs" in page

    email = rows(pipeline_env.web, "SELECT subject, body_text FROM web.email_outbox WHERE template = 'sync_run_failed'")
    assert len(email) == 1
    assert "held by blocking check change_guard:change_fraction_guard" in email[0]["subject"]
    body = email[0]["body_text"]
    assert "http://dagster.internal:3000/runs/" in body and "--allow-large-change" in body


def test_gx_data_docs_of_a_failed_check_render_offline(pipeline_env):
    import great_expectations as gx
    import pandas as pd

    from userdebtor_pipeline.operations.data_docs import write_check_report

    frame = pd.DataFrame({"email": ["ok@mail.example", "no-at-sign"]})
    expectations = [gx.expectations.ExpectColumnValuesToMatchRegex(column="email", regex=r"^[^@]+@[^@]+$")]
    page = write_check_report("run-offline", "new_users_are_sound", summary="1 of 2", failing_rows=frame.tail(1),
                              frame=frame, expectations=expectations)
    gx_link = re.search(r"href='([^']+)'>Great Expectations Data Docs", page.read_text())
    gx_page = (page.parent / gx_link.group(1)).resolve().read_text()
    remote = re.findall(r"<(?:link|script)\b[^>]*(?:href|src)=[\"']https?://", gx_page)
    assert not remote, "no stylesheet or script from a CDN"
    assert "<style>" in gx_page and "no-at-sign" in gx_page


# ------------------------------------------------------------------------------------------ progress


def test_progress_prints_counts_and_rates_off_a_terminal_and_into_the_log():
    stream, lines = io.StringIO(), []

    class Log:
        def info(self, message: str) -> None:
            lines.append(message)

    with Progress("emails delivered", 4, unit="emails", log=Log(), stream=stream, every=0) as progress:
        progress.advance(3)
        progress.advance()
    printed = stream.getvalue()
    assert "emails delivered: 3 of 4 emails (75%)" in printed and "emails/s" in printed
    assert printed.rstrip().endswith("done") and "\r" not in printed, "plain lines, no bar, off a terminal"
    assert lines[-1].startswith("emails delivered: 4 of 4 emails (100%)")


def test_a_run_logs_its_delivery_progress_in_its_own_log(pipeline_env, settings_path):
    add_template(pipeline_env.erp)
    add_debtor(pipeline_env.erp, "WEB_000001", "logged@mail.example")
    instance = dg.DagsterInstance.ephemeral()
    outcome = run_sync(instance=instance)
    assert outcome.success
    messages = [e.user_message for e in instance.all_logs(outcome.run_id)]
    assert any(m.startswith("emails delivered: 1 of 1 emails") for m in messages), messages
    assert any(m.startswith("web users created (U2): 1 of 1 users") for m in messages)


# ------------------------------------------------------------------------------------------ I4 invite


@pytest.fixture
def shop(pipeline_env, settings_path):
    """An account of a type no filter selects, so only the instant-account rules touch it."""
    add_debtor(pipeline_env.erp, "ACME1", "buyer@acme.example", name="Acme", cust_type="DEBTOR")
    return pipeline_env


def test_i4_invite_approves_a_customer_of_a_qualifying_account(shop, capsys):
    assert main(["invite", "Buyer@Acme.example", "--account", "ACME1"]) == EXIT_OK
    assert "approved" in capsys.readouterr().out
    request = rows(shop.web, "SELECT * FROM web.registration_request")
    assert len(request) == 1 and request[0]["status"] == "approved" and request[0]["user_id"] is not None
    sent = rows(shop.web, "SELECT template, status FROM web.email_outbox"
                          " WHERE lower(to_address) = 'buyer@acme.example'")
    assert sent == [{"template": "instant_account_verify", "status": "sent"}], "the person gets the verify email"
    run = rows(shop.web, "SELECT outcome FROM userdebtor.sync_run ORDER BY started_at DESC LIMIT 1")[0]
    assert run["outcome"] == "succeeded"
    assert one(shop.web, "SELECT count(*) FROM userdebtor.watermark WHERE name = 'plan'") == 0, \
        "an invitation plans nothing of the user/debtor sync, so it moves no plan watermark"


def test_i4_invite_rejects_with_the_reason_in_words(shop, capsys):
    assert main(["invite", "stranger@nowhere.example"]) == EXIT_HELD
    out = capsys.readouterr().out
    assert "rejected" in out and REGISTRATION_REASONS["no_account"] in out
    request = rows(shop.web, "SELECT status, reason FROM web.registration_request")[0]
    assert request == {"status": "rejected", "reason": REGISTRATION_REASONS["no_account"]}
    assert one(shop.web, "SELECT count(*) FROM web.app_user") == 0


def test_i4_invite_never_links_the_cash_account(shop, capsys):
    add_debtor(shop.erp, "CASH", "buyer@acme.example", name="Cash sales", cust_type="DEBTOR")
    assert main(["invite", "buyer@acme.example", "--account", "CASH"]) == EXIT_HELD
    assert "CASH" in capsys.readouterr().out
    assert one(shop.web, "SELECT status FROM web.registration_request") == "rejected"
    assert one(shop.web, "SELECT count(*) FROM web.user_customer WHERE customer_code = 'CASH'") == 0


def test_i4_invite_with_bad_settings_exits_2_and_files_nothing(shop, settings_path, capsys):
    write_settings(settings_path, instant_accounts={"cash_acount_code": "CASH"})
    assert main(["invite", "buyer@acme.example"]) == EXIT_BAD_SETUP
    assert "cash_acount_code" in capsys.readouterr().err
    assert one(shop.web, "SELECT count(*) FROM web.registration_request") == 0


def test_i4_the_invite_job_is_launchable_with_config_and_the_sync_job_leaves_it_out():
    from userdebtor_pipeline.definitions import defs

    invite = defs.resolve_job_def("userdebtor_invite")
    config = invite.run_config_schema.config_type.fields["ops"].config_type.fields["merchant_invitation"]
    assert set(config.config_type.fields["config"].config_type.fields) == {"email", "account"}
    assert "registration_decisions_approvals_link_only_qualifying_accounts" in invite.graph.node_dict, \
        "I1's blocking check guards an invitation as it guards a sync"
    graph = defs.resolve_asset_graph()
    sync_assets = defs.resolve_job_def("userdebtor_sync").asset_layer.selected_asset_keys
    assert dg.AssetKey("merchant_invitation") not in sync_assets
    assert dg.AssetKey("registration_decisions") in sync_assets and graph.has(dg.AssetKey("merchant_invitation"))


# ------------------------------------------------------------------------------------------ least privilege


def test_init_and_a_sync_run_as_a_role_with_only_the_printed_grants(pipeline_env, settings_path, capsys,
                                                                    monkeypatch):
    """The owner ran init; the integration's role, with `userdebtor grants` and no CREATE, runs init and a sync."""
    role = f"integration_{uuid.uuid4().hex[:8]}"
    database = make_url(pipeline_env.web_url).database
    assert main(["grants", "--erp-role", role]) == EXIT_OK
    script = capsys.readouterr().out
    assert f'GRANT INSERT, UPDATE ON "erp"."deb_master" TO "{role}";' in script
    assert not [line for line in script.splitlines() if "CREATE" in line and not line.startswith("--")]
    with pipeline_env.web.begin() as conn:
        conn.exec_driver_sql(f'CREATE ROLE "{role}" LOGIN')
        conn.exec_driver_sql(script)
        assert not conn.execute(sa.text("SELECT has_database_privilege(:r, :d, 'CREATE')"),
                                {"r": role, "d": database}).scalar()
    as_role = make_url(pipeline_env.web_url).set(username=role, password=None).render_as_string(hide_password=False)
    monkeypatch.setenv("USERDEBTOR_ERP_URL", as_role)
    monkeypatch.setenv("USERDEBTOR_WEB_URL", as_role)
    dispose_all()
    add_template(pipeline_env.erp)
    add_user(pipeline_env.web, "least@mail.example")
    add_debtor(pipeline_env.erp, "WEB_000001", "privilege@mail.example")

    assert main(["init"]) == EXIT_OK
    assert "tables created: none" in capsys.readouterr().out
    assert main(["sync"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "ERP debtors created (U1)" in out and "web users created (U2)" in out, out
    assert one(pipeline_env.web, "SELECT count(*) FROM userdebtor.user_debtor_link WHERE state = 'active'") == 2

    with pipeline_env.web.begin() as conn:  # a table gone: init says what to do, in one line
        conn.execute(sa.text("DROP TABLE web.favourite"))
    dispose_all()
    assert main(["init"]) == EXIT_BAD_SETUP
    err = capsys.readouterr().err
    assert "web.favourite is missing" in err and "as the database owner" in err and "Traceback" not in err


def test_grants_for_two_databases_and_two_roles_carry_a_sync(two_databases, tmp_path, monkeypatch, capsys):
    """ERP and web in two databases, each with its own role and only its part of `userdebtor grants`."""
    dbs, tag = two_databases, uuid.uuid4().hex[:8]
    roles = {"erp": f"erp_integration_{tag}", "web": f"web_integration_{tag}"}
    monkeypatch.setenv("USERDEBTOR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("USERDEBTOR_CONFIG", str(write_settings(tmp_path / "userdebtor.yaml")))
    monkeypatch.setenv("USERDEBTOR_ERP_URL", dbs.erp_url)
    monkeypatch.setenv("USERDEBTOR_WEB_URL", dbs.web_url)
    for system, engine in (("erp", dbs.erp), ("web", dbs.web)):
        assert main(["grants", "--erp-role", roles["erp"], "--web-role", roles["web"], "--only", system]) == EXIT_OK
        script = capsys.readouterr().out
        with engine.begin() as conn:
            conn.exec_driver_sql(f'CREATE ROLE "{roles[system]}" LOGIN')
            conn.exec_driver_sql(script)
    for system, url in (("erp", dbs.erp_url), ("web", dbs.web_url)):
        monkeypatch.setenv(f"USERDEBTOR_{system.upper()}_URL",
                           make_url(url).set(username=roles[system]).render_as_string(hide_password=False))
    dispose_all()
    add_template(dbs.erp)
    add_user(dbs.web, "two@mail.example")

    assert main(["init"]) == EXIT_OK
    assert main(["sync", "--json"]) == EXIT_OK
    capsys.readouterr()
    assert one(dbs.erp, "SELECT count(*) FROM erp.deb_master WHERE dr_email = 'two@mail.example'") == 1
