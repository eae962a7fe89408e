"""Schedules: a changed-since sync every few minutes, and a nightly full reconcile."""

from __future__ import annotations

import dagster as dg

from userdebtor_pipeline.defs.jobs import SYNC_JOB_NAME
from userdebtor_pipeline.settings import load_settings


def _schedule_settings():
    try:
        return load_settings().schedule
    except Exception:  # the settings are checked again, loudly, when a run starts
        from userdebtor_pipeline.settings import default_settings

        return default_settings().schedule


def sync_schedule(name: str, cron: str, timezone: str, *, full: bool, description: str) -> dg.ScheduleDefinition:
    """A schedule of the sync job, stopped until someone turns it on in the UI."""
    return dg.ScheduleDefinition(
        name=name,
        job_name=SYNC_JOB_NAME,
        cron_schedule=cron,
        execution_timezone=timezone,
        run_config={"resources": {"run_options": {"config": {"full": full}}}},
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=description,
    )


_schedule = _schedule_settings()

changed_since_sync_schedule = sync_schedule(
    "changed_since_sync", _schedule.changed_since_cron, _schedule.timezone, full=False,
    description="Syncs what changed on either side since the last good run.")

nightly_full_reconcile_schedule = sync_schedule(
    "nightly_full_reconcile", _schedule.full_reconcile_cron, _schedule.timezone, full=True,
    description="Reconciles everything, deletes included, once a night.")
