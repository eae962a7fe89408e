"""A failed sync run becomes one `sync_run_failed` email to the warning address, delivered straight away.

The run failure sensor calls `warn_about_failed_run`; everything else here is plain functions over a Dagster
instance and the web database, so tests can call them with a real failed run.

A run that a blocking check held back also ends as a failed Dagster run: the email then says "held" and names
the checks, their summaries and their reports, because the person's next step differs (fix the data, or lift
the U7 guard), not because anything broke. The run's row in userdebtor.sync_run gets the outcome, so
`userdebtor status` can tell "held" from "failed".
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.engine import Connection, Engine

from userdebtor_pipeline.email import deliver_with_settings, queue_email
from userdebtor_pipeline.email.delivery import DeliveryReport
from userdebtor_pipeline.email.render import template_problems
from userdebtor_pipeline.masking import error_in_brief, mask_secrets
from userdebtor_pipeline.operations.data_docs import reports_dir
from userdebtor_pipeline.paths import mail_dir
from userdebtor_pipeline.settings import (
    EmailSettings,
    SettingsError,
    UserDebtorSettings,
    load_settings,
    read_settings_file,
)

_log = logging.getLogger(__name__)

TEMPLATE = "sync_run_failed"
# Where people open the Dagster UI, so the email can link the run: `email.ui_url` in the settings; this
# variable is read only when the setting is absent (a container that knows its own address).
UI_URL_ENV = "USERDEBTOR_UI_URL"
_MAX_ERROR_CHARS = 2_000

# What a person does when a blocking check holds a run, by check name: the one next step that fits.
CHECK_ADVICE: dict[str, str] = {
    "change_fraction_guard": (
        "The report lists every pair the run would change, with the value before and after. If the change is "
        "right (a planned bulk edit), run `userdebtor sync --allow-large-change` once, or launch the job with "
        "run_options lift_change_guard: true. If it is not, fix the data at its source; nothing was written."
    ),
    "template_customer_exists": (
        "Create the template customer in the ERP (erp.deb_master) or set user_debtor.template_customer to one "
        "that exists; the waiting web users get their debtors in the next run."
    ),
    "new_debtors_are_sound": (
        "The report lists the planned debtors whose code or email is wrong or taken: fix those users' emails "
        "on the web, or user_debtor.new_account_prefix / account_number_width if codes collide."
    ),
    "new_users_are_sound": (
        "The report lists the ERP debtors whose email is malformed, shared or already a web login: fix dr_email "
        "in the ERP (or the existing web user); the next run creates the users."
    ),
    "no_user_linked_twice": (
        "The report lists users or debtors that would get two links: usually two ERP debtors share an email. "
        "Give one of them another address, or resolve it with `userdebtor conflicts`."
    ),
    "approvals_link_only_qualifying_accounts": (
        "An approval would link an account it must not (cash, excluded or closed): check "
        "instant_accounts.cash_account_code, excluded_account_codes and the accounts' status in the ERP."
    ),
}
_STEP_ADVICE = (
    "Read the log of the failed step in the Dagster UI. Fix the cause (often a database that could not be "
    "reached, or a settings error), then launch the sync again. Rerunning is safe: the next run starts from "
    "the data as it stands and never repeats an email that was already sent."
)
_CHECK_DEFAULT_ADVICE = "Open the check's report, fix the rows it lists at their source, then run the sync again."

_RECORD_OUTCOME_SQL = sa.text(
    "UPDATE userdebtor.sync_run SET outcome = :outcome, finished_at = coalesce(finished_at, now()),"
    " summary = summary || CAST(:summary AS jsonb)"
    " WHERE run_id = :run_id AND outcome IS NULL"
)


@dataclass(frozen=True)
class HeldCheck:
    name: str  # asset:check
    summary: str


@dataclass(frozen=True)
class FailedRun:
    """What a person needs to know about one failed run, read from the instance's event log."""

    run_id: str
    job_name: str
    started_at: datetime | None
    failed_steps: list[str] = field(default_factory=list)  # steps that broke (not those a check held)
    error: str = ""
    held_by: list[HeldCheck] = field(default_factory=list)  # failed blocking checks

    @property
    def outcome(self) -> str:
        return "failed" if self.failed_steps or not self.held_by else "held"

    @property
    def step(self) -> str | None:
        if self.failed_steps:
            return ", ".join(self.failed_steps)
        return ", ".join(f"blocking check {c.name}" for c in self.held_by) or None


_CHECK_FAILED = "DagsterAssetCheckFailedError"  # how a step that a blocking check stopped ends


def _root_error(error: Any) -> tuple[str, str]:
    """The innermost cause of a failure as (class name, first line): the database or settings error itself."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    name = getattr(error, "cls_name", None) or type(error).__name__
    message = error_in_brief(getattr(error, "message", "")) or mask_secrets(str(error))
    # Serialized errors read "package.module.Class: text"; the class name alone says as much.
    head, sep, rest = message.partition(": ")
    if sep and head.endswith(name) and " " not in head:
        message = rest
    return name, message


def describe_failed_run(instance: dg.DagsterInstance, run: dg.DagsterRun,
                        failure_event: dg.DagsterEvent | None = None) -> FailedRun:
    """The failed steps, their errors and the blocking checks that failed, from the run's event log."""
    steps: list[str] = []
    errors: list[str] = []
    for record in instance.get_records_for_run(run_id=run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records:
        event = record.event_log_entry.dagster_event
        error = getattr(event.event_specific_data, "error", None) if event is not None else None
        if event is None or error is None:
            continue
        name, message = _root_error(error)
        if name == _CHECK_FAILED:
            continue  # said better by the checks' own summaries below
        steps.append(event.step_key or "")
        errors.append(f"{event.step_key}: {name}: {message}" if event.step_key else f"{name}: {message}")
    held: list[HeldCheck] = []
    for record in instance.get_records_for_run(
            run_id=run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data  # type: ignore[union-attr]
        if evaluation.passed or not evaluation.blocking:
            continue
        summary = evaluation.metadata.get("summary")
        held.append(HeldCheck(name=f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}",
                              summary=str(getattr(summary, "value", summary) or "")))
    errors += [f"blocking check {c.name} failed: {c.summary or 'see the check in the Dagster UI'}" for c in held]
    if not errors and failure_event is not None:
        # A run that failed outside any step (e.g. its worker died): the run failure event is all there is.
        errors.append(mask_secrets(failure_event.message) or "the run failed")
    record = instance.get_run_record_by_id(run.run_id)
    started = datetime.fromtimestamp(record.start_time, UTC) if record and record.start_time else None
    error = "\n".join(errors) or "the run failed without a step error; see its log in the Dagster UI"
    return FailedRun(run_id=run.run_id, job_name=run.job_name, started_at=started, failed_steps=steps,
                     error=error[:_MAX_ERROR_CHARS], held_by=held)


@dataclass(frozen=True)
class WarningSettings:
    """The two parts of the settings a failure email needs; see `warning_settings`."""

    warning_to: str | None
    email: EmailSettings
    problem: str | None = None  # why the settings file could not be used as a whole


def warning_settings(path: str | os.PathLike[str] | None = None) -> WarningSettings:
    """The recipient and the email settings, even from a settings file that a run refused.

    A settings error is a common reason for a failed run, and that is exactly when the warning must still go
    out: so when the whole file does not validate, its `user_debtor.warning_emails_to` and `email:` section
    are read on their own, each falling back to the default only if it is itself wrong.
    """
    try:
        settings = load_settings(path)
        return WarningSettings(settings.user_debtor.warning_emails_to, _usable_templates(settings.email))
    except SettingsError as exc:
        problem = str(exc)
    raw: Mapping[str, Any] = {}
    try:
        loaded = read_settings_file(path)  # bounded: an alias bomb fails here in milliseconds too
        raw = loaded if isinstance(loaded, Mapping) else {}
    except SettingsError:
        pass
    user_debtor = raw.get("user_debtor") if isinstance(raw.get("user_debtor"), Mapping) else {}
    warning_to = UserDebtorSettings.model_fields["warning_emails_to"].default
    try:
        candidate = user_debtor.get("warning_emails_to", warning_to)
        warning_to = UserDebtorSettings.model_validate({"warning_emails_to": candidate}).warning_emails_to
    except ValidationError:
        pass
    try:
        email = EmailSettings.model_validate(raw.get("email") or {})
    except ValidationError:
        email = EmailSettings()
    return WarningSettings(warning_to, _usable_templates(email), problem)


def _usable_templates(email: EmailSettings) -> EmailSettings:
    """The email settings with the built-in templates when the operator's folder is refused (A4, E1):
    a bad template is a common reason for a failed run, and the warning about it must still render."""
    if email.templates_dir and template_problems(email.templates_dir):
        return email.model_copy(update={"templates_dir": None})
    return email


def _reports_of(run_id: str) -> list[Path]:
    """Reports that blocking checks of this run wrote (operations.data_docs), for the email to point at."""
    folder = reports_dir(run_id)
    return sorted(p for p in folder.glob("*.html") if p.name != "index.html") if folder.is_dir() else []


def advice_for(failed: FailedRun) -> str:
    """The next step for a person: the held checks' own advice, else how to deal with a broken step."""
    if failed.failed_steps or not failed.held_by:
        return _STEP_ADVICE
    names = dict.fromkeys(c.name.rpartition(":")[2] for c in failed.held_by)
    return "\n".join(CHECK_ADVICE.get(name, _CHECK_DEFAULT_ADVICE) for name in names)


def failure_email_context(failed: FailedRun, *, ui_url: str | None = None,
                          settings_problem: str | None = None) -> dict[str, Any]:
    """The variables of the `sync_run_failed` template (see email/render.py TEMPLATES)."""
    if failed.outcome == "held":
        outcome = "held back by a blocking data-quality check: the loads it guards wrote nothing"
    elif failed.held_by:
        outcome = "failed, and blocking data-quality checks held part of it back"
    else:
        outcome = "failed"
    details: dict[str, str] = {"job": failed.job_name, "outcome": outcome}
    reports = _reports_of(failed.run_id)
    if reports:
        details["reports"] = ", ".join(str(p) for p in reports)
    if settings_problem:
        details["settings"] = "the settings file does not validate; this email used what could be read of it"
    return {
        "run_id": failed.run_id,
        "error": failed.error,
        "step": failed.step,
        "started_at": f"{failed.started_at:%Y-%m-%d %H:%M:%S} UTC" if failed.started_at else None,
        "ui_url": f"{ui_url.rstrip('/')}/runs/{failed.run_id}" if ui_url else None,
        "details": details,
        "held": failed.outcome == "held",
        "checks": ", ".join(c.name for c in failed.held_by) or None,
        "advice": advice_for(failed),
    }


def queue_failure_email(conn: Connection, failed: FailedRun, settings: WarningSettings,
                        ui_url: str | None = None) -> int | None:
    """Queue the email once per run (dedupe_key run_failed:<run_id>); None when queued before or no recipient."""
    if not settings.warning_to:
        return None
    return queue_email(
        conn,
        template=TEMPLATE,
        to_address=settings.warning_to,
        context=failure_email_context(failed, ui_url=ui_url, settings_problem=settings.problem),
        dedupe_key=f"run_failed:{failed.run_id}",
        templates_dir=settings.email.templates_dir,
    )


def record_run_outcome(conn: Connection, failed: FailedRun) -> int:
    """Close the run's row in userdebtor.sync_run as held or failed (a run that never opened one has none)."""
    summary = {"failed_steps": failed.failed_steps, "error": failed.error.splitlines()[0] if failed.error else None,
               "held_by": [c.name for c in failed.held_by]}
    return conn.execute(_RECORD_OUTCOME_SQL, {"outcome": failed.outcome, "summary": json.dumps(summary),
                                              "run_id": failed.run_id}).rowcount


@dataclass(frozen=True)
class FailureWarning:
    email_id: int | None
    delivery: DeliveryReport
    failed: FailedRun


def is_dry_run(run: dg.DagsterRun) -> bool:
    """A run launched with run_options dry_run (the CLI's --dry-run, or the launchpad): it never alerts."""
    config = (run.run_config or {}).get("resources", {}).get("run_options", {}).get("config", {})
    return bool(config.get("dry_run")) if isinstance(config, Mapping) else False


def warn_about_failed_run(instance: dg.DagsterInstance, run: dg.DagsterRun, failure_event: dg.DagsterEvent | None,
                          web: Engine, settings_path: str | None = None) -> FailureWarning:
    """Record the outcome, queue the email in the same transaction, then deliver the whole outbox.

    A dry run is recorded but never alerts: it wrote nothing, and the person who launched it sees its result.
    """
    failed = describe_failed_run(instance, run, failure_event)
    settings = warning_settings(settings_path)
    ui_url = settings.email.ui_url or os.environ.get(UI_URL_ENV) or None
    with web.begin() as conn:
        record_run_outcome(conn, failed)
        email_id = None if is_dry_run(run) else queue_failure_email(conn, failed, settings, ui_url=ui_url)
    # Delivered here rather than left for the next run: after a failure there may be no next run for a while.
    delivery = deliver_with_settings(web, settings.email, mail_dir=mail_dir(), move_floor=False)
    _log.info("run %s %s: failure email %s, %s sent", run.run_id, failed.outcome, email_id, delivery.sent)
    return FailureWarning(email_id=email_id, delivery=delivery, failed=failed)
