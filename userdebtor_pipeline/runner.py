"""Run the sync job in this process: the same Dagster job the UI launches (used by the CLI and the tests)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from userdebtor_pipeline.masking import error_in_brief, mask_secrets

_log = logging.getLogger(__name__)
# The assets that write to erp or web, as `userdebtor sync` lists them: ran or held.
LOADS = (
    "customer_conversions_applied", "erp_debtors_created", "web_users_created", "field_changes_applied",
    "link_exits_applied", "customer_mirror", "contact_links_applied", "instant_accounts_opened",
    "verified_tokens_applied", "login_decisions_applied", "order_history_synced", "emails_delivered",
)


@dataclass
class SyncOutcome:
    run_id: str
    success: bool
    failed_checks: list[str] = field(default_factory=list)  # "asset:check" of blocking checks that held a load
    failed_steps: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    error_kinds: list[str] = field(default_factory=list)  # the class name of each error's innermost cause
    materializations: dict[str, dict[str, Any]] = field(default_factory=dict)  # asset -> metadata values
    check_metadata: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def held_by_check(self) -> bool:
        return bool(self.failed_checks)

    @property
    def held_loads(self) -> list[str]:
        """Loads that ran but wrote nothing because a check's verdict held them (U7)."""
        return sorted(a for a, meta in self.materializations.items() if meta.get("held") is True)

    @property
    def loads_written(self) -> list[str]:
        """Loads that ran and wrote (or found nothing to write)."""
        return sorted(a for a, meta in self.materializations.items()
                      if a in LOADS and meta.get("written", True) and not meta.get("held"))


def _plain(value: Any) -> Any:
    return getattr(value, "value", value)


def run_sync(
    *,
    full: bool = False,
    dry_run: bool = False,
    lift_change_guard: bool = False,
    instance: dg.DagsterInstance | None = None,
    log_level: str = "WARNING",
    job_name: str | None = None,
    ops: Mapping[str, Any] | None = None,
) -> SyncOutcome:
    """Execute the whole integration once, as a run of the instance at DAGSTER_HOME (so the UI shows it, with its
    materializations and check results) unless `instance` is given. Never raises for a failed step: the
    outcome says what failed.

    `job_name` and `ops` (the assets' config) run another job of the code location the same way, e.g. the
    invite job (I4).
    """
    from userdebtor_pipeline.definitions import defs
    from userdebtor_pipeline.defs.jobs import SYNC_JOB_NAME

    job = defs.resolve_job_def(job_name or SYNC_JOB_NAME)
    run_config: dict[str, Any] = {"ops": dict(ops)} if ops else {}
    run_config |= {
        "resources": {
            "run_options": {"config": {"full": full, "dry_run": dry_run, "lift_change_guard": lift_change_guard}}
        },
        # The terminal shows the summary that `userdebtor sync` prints; every event stays in the run's own log.
        "loggers": {"console": {"config": {"log_level": log_level}}},
    }
    if instance is None:
        from userdebtor_pipeline.instance import open_instance

        with open_instance() as instance:
            return _execute(job, run_config, instance)
    return _execute(job, run_config, instance)


def _execute(job: dg.JobDefinition, run_config: dict[str, Any], instance: dg.DagsterInstance) -> SyncOutcome:
    from userdebtor_pipeline.defs.retailer import RETAILER_TAG, retailer_name

    # The retailer as this process sees it now (the job's own tag was read when the definitions loaded).
    result = job.execute_in_process(run_config=run_config, instance=instance, raise_on_error=False,
                                    tags={RETAILER_TAG: retailer_name()})
    outcome = SyncOutcome(run_id=result.run_id, success=result.success)
    for event in result.all_events:
        if event.event_type_value == "ASSET_MATERIALIZATION":
            mat = event.event_specific_data.materialization
            outcome.materializations[mat.asset_key.to_user_string()] = {k: _plain(v) for k, v in mat.metadata.items()}
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
            outcome.check_metadata[name] = {k: _plain(v) for k, v in evaluation.metadata.items()}
            if not evaluation.passed:
                outcome.failed_checks.append(name)
        elif event.event_type_value in ("STEP_FAILURE", "RESOURCE_INIT_FAILURE"):
            outcome.failed_steps.append(event.step_key or "resources")
            error = getattr(event.event_specific_data, "error", None)
            if error is not None:
                outcome.errors.append(_root_message(error))
                outcome.error_kinds.append(_root_kind(error))
    if not outcome.success:
        _warn_about_failure(instance, result.run_id)
    return outcome


def _warn_about_failure(instance: dg.DagsterInstance, run_id: str) -> None:
    """A run from the terminal (or cron) is recorded held/failed and warned about, as the UI's sensor does."""
    from userdebtor_pipeline.db import engine_for, resolve_urls
    from userdebtor_pipeline.defs.automation.failure import warn_about_failed_run

    try:
        warn_about_failed_run(instance, instance.get_run_by_id(run_id), None, engine_for(resolve_urls().web))
    except Exception as exc:  # the outcome the caller prints matters more than the email about it
        _log.warning("could not record or warn about failed run %s: %s", run_id, mask_secrets(str(exc)))


def _root_kind(error: Any) -> str:
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return str(getattr(error, "cls_name", None) or type(error).__name__)


def _root_message(error: Any) -> str:
    """The innermost cause of a step failure, in one line: what a person needs, not Dagster's wrapping."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return error_in_brief(error.message) or mask_secrets(str(error))
