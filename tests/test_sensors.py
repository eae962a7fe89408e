"""Sensor ticks against real databases: the change probe and its cursor, and the failed-run warning email."""

from __future__ import annotations

import email
import json
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from tests.support import add_debtor, add_template, add_user, erp_change, one, rows, web_change, write_settings
from userdebtor_pipeline.defs.automation.failure import describe_failed_run, warning_settings
from userdebtor_pipeline.defs.automation.sensors import erp_or_web_changed_sensor, sync_run_failed_warning
from userdebtor_pipeline.defs.jobs import SYNC_JOB_NAME
from userdebtor_pipeline.defs.resources import ErpDatabase, SyncSettings, WebDatabase
from userdebtor_pipeline.defs.retailer import RETAILER_TAG, retailer_name
from userdebtor_pipeline.operations.data_docs import write_check_report
from userdebtor_pipeline.runner import run_sync


@pytest.fixture
def dbs(pipeline_env, settings_path):
    add_template(pipeline_env.erp)
    return pipeline_env


def tick(instance: dg.DagsterInstance, cursor: str | None) -> tuple[dg.RunRequest | dg.SkipReason, str | None]:
    """One evaluation as the daemon runs it: resources from the environment, the cursor it kept."""
    context = dg.build_sensor_context(instance=instance, cursor=cursor,
                                      resources={"erp": ErpDatabase(), "web": WebDatabase()})
    result = erp_or_web_changed_sensor(context)
    return result, context.cursor


# ---------------------------------------------------------------- erp_or_web_changed_sensor
def test_change_sensor_requests_a_run_only_when_something_moved(dbs):
    instance = dg.DagsterInstance.ephemeral()
    add_debtor(dbs.erp, "C100", "c100@mail.example")
    uid = add_user(dbs.web, "shopper@mail.example")

    first, cursor = tick(instance, None)
    assert isinstance(first, dg.RunRequest), "no cursor yet: one run catches up"
    assert set(json.loads(cursor)) == {"erp_debtors", "erp_contacts", "erp_sales_orders", "erp_conversions",
                                       "web_users"}

    quiet, same_cursor = tick(instance, cursor)
    assert isinstance(quiet, dg.SkipReason) and same_cursor == cursor

    erp_change(dbs.erp, "C100", dr_phone="0400 000 000")
    debtor_changed, cursor_after_debtor = tick(instance, cursor)
    assert isinstance(debtor_changed, dg.RunRequest)
    assert debtor_changed.tags["userdebtor/changed"] == "erp_debtors"
    assert debtor_changed.run_key != first.run_key

    # The cursor is what the daemon stores: a fresh evaluation (a restarted daemon) with it sees no change.
    after_restart, _ = tick(dg.DagsterInstance.ephemeral(), cursor_after_debtor)
    assert isinstance(after_restart, dg.SkipReason)

    web_change(dbs.web, uid, name="New Name")
    with dbs.erp.begin() as conn:
        conn.execute(sa.text("INSERT INTO erp.deb_conversion (conversion_seq, old_cust_code, new_cust_code,"
                             " conversion_date) VALUES (1, 'C100', 'C200', now())"))
    both, _ = tick(instance, cursor_after_debtor)
    assert isinstance(both, dg.RunRequest)
    assert both.tags["userdebtor/changed"] == "erp_conversions,web_users"


def test_change_sensor_waits_while_a_sync_is_running(dbs):
    instance = dg.DagsterInstance.ephemeral()
    _, cursor = tick(instance, None)
    add_debtor(dbs.erp, "C101", "c101@mail.example")
    # Another retailer's sync on the same instance is no reason to wait.
    instance.add_run(dg.DagsterRun(job_name=SYNC_JOB_NAME, status=dg.DagsterRunStatus.STARTED,
                                   tags={RETAILER_TAG: "another-retailer"}))
    other, _ = tick(instance, cursor)
    assert isinstance(other, dg.RunRequest)

    instance.add_run(dg.DagsterRun(job_name=SYNC_JOB_NAME, status=dg.DagsterRunStatus.STARTED,
                                   tags={RETAILER_TAG: retailer_name()}))
    waiting, kept = tick(instance, cursor)
    assert isinstance(waiting, dg.SkipReason) and "already queued or running" in waiting.skip_message
    assert kept == cursor, "the change is still ahead of the cursor for the tick after that run"


def test_change_sensor_in_the_real_job_loop(dbs):
    """A sensed change, run through the real job: the run's own writes cause one quiet follow-up at most."""
    instance = dg.DagsterInstance.ephemeral()
    _, cursor = tick(instance, None)
    add_debtor(dbs.erp, "C102", "c102@mail.example")
    request, cursor = tick(instance, cursor)
    assert isinstance(request, dg.RunRequest)
    assert run_sync().success
    follow_up, cursor = tick(instance, cursor)  # the new user's web row and the ERP echo moved the marks
    assert isinstance(follow_up, dg.RunRequest)
    outcome = run_sync()
    assert outcome.materializations["field_changes_applied"]["debtors_updated_in_erp"] == 0
    settled, _ = tick(instance, cursor)
    assert isinstance(settled, dg.SkipReason), "the follow-up run wrote nothing, so nothing moved"


# ---------------------------------------------------------------- sync_run_failed_warning
def failure_context(instance: dg.DagsterInstance, run_id: str) -> dg.RunStatusSensorContext:
    run = instance.get_run_by_id(run_id)
    failure = instance.get_records_for_run(run_id=run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
    assert run is not None and failure, "the run failed and recorded its failure event"
    return dg.build_run_status_sensor_context(
        sensor_name="sync_run_failed_warning", dagster_event=failure[0].event_log_entry.dagster_event,
        dagster_instance=instance, dagster_run=run, resources={"web": WebDatabase(), "settings": SyncSettings()})


def delivered_mail(home: Path) -> list[email.message.Message]:
    return [email.message_from_bytes(p.read_bytes()) for p in sorted((home / "mail" / "new").glob("*"))]


def test_a_run_held_by_a_check_is_emailed_once_and_recorded_as_held(dbs, settings_path, tmp_path):
    write_settings(settings_path, user_debtor={"template_customer": "NO_SUCH_TEMPLATE",
                                               "warning_emails_to": "ops@example.com"})
    add_user(dbs.web, "waits@mail.example")  # U1 needs the template, so the blocking check holds the run
    instance = dg.DagsterInstance.ephemeral()
    outcome = run_sync(instance=instance)
    assert not outcome.success and outcome.failed_checks

    report = write_check_report(outcome.run_id, "template_customer_exists", summary="template missing")

    with failure_context(instance, outcome.run_id) as context:
        sync_run_failed_warning(context)
        sync_run_failed_warning(context)  # the daemon may see a failure twice; the email goes once

    queued = rows(dbs.web, "SELECT to_address, subject, body_text, status FROM web.email_outbox"
                           " WHERE dedupe_key = :k", k=f"run_failed:{outcome.run_id}")
    assert len(queued) == 1
    assert queued[0]["to_address"] == "ops@example.com" and queued[0]["status"] == "sent"
    assert outcome.run_id in queued[0]["subject"] and "blocking check" in queued[0]["subject"]
    body = queued[0]["body_text"]
    assert "held back by a blocking data-quality check" in body and "NO_SUCH_TEMPLATE" in body
    assert "Error" not in body, "the checks' own words, not Dagster's exception"
    assert "template_customer_exists" in body
    assert str(report) in body, "the email points at the check's report"
    run_row = rows(dbs.web, "SELECT outcome, finished_at FROM userdebtor.sync_run WHERE run_id = :r",
                   r=outcome.run_id)[0]
    assert run_row["outcome"] == "held" and run_row["finished_at"] is not None
    sent = [m for m in delivered_mail(tmp_path / "home") if m["X-Userdebtor-Template"] == "sync_run_failed"]
    assert len(sent) == 1 and sent[0]["To"] == "ops@example.com"


def test_a_failed_run_names_the_step_and_the_error(dbs, monkeypatch):
    instance = dg.DagsterInstance.ephemeral()
    monkeypatch.setenv("USERDEBTOR_ERP_URL", "postgresql+psycopg://nobody:pw-123@127.0.0.1:1/erp")
    outcome = run_sync(instance=instance)
    assert not outcome.success and not outcome.failed_checks

    failed = describe_failed_run(instance, instance.get_run_by_id(outcome.run_id))
    assert failed.outcome == "failed" and failed.failed_steps == ["sync_run_started"]
    assert "cannot reach the ERP database" in failed.error and "pw-123" not in failed.error

    with failure_context(instance, outcome.run_id) as context:
        sync_run_failed_warning(context)
    email_row = rows(dbs.web, "SELECT subject, body_text, status FROM web.email_outbox WHERE dedupe_key = :k",
                     k=f"run_failed:{outcome.run_id}")[0]
    assert "in sync_run_started" in email_row["subject"]
    assert "cannot reach the ERP database" in email_row["body_text"] and email_row["status"] == "sent"
    assert one(dbs.web, "SELECT count(*) FROM userdebtor.sync_run") == 0, "the run failed before opening a row"


def test_the_warning_still_reaches_its_address_when_the_settings_file_is_broken(settings_path):
    write_settings(settings_path, user_debtor={"warning_emails_to": "ops@example.com", "no_such_key": 1},
                   email={"from_address": "sync@example.com", "smtp_port": "not a port"})
    settings = warning_settings()
    assert settings.warning_to == "ops@example.com"
    assert settings.problem and "no_such_key" in settings.problem
    assert settings.email.from_address == "store@example.com", "a broken email section falls back whole"
