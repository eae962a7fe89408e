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


_schedule = _schedule_settings()

changed_since_sync_schedule = dg.ScheduleDefinition(
    name="changed_since_sync",
    job_name=SYNC_JOB_NAME,
    cron_schedule=_schedule.changed_since_cron,
    execution_timezone=_schedule.timezone,
    run_config={"resources": {"run_options": {"config": {"full": False}}}},
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Syncs what changed on either side since the last good run.",
)

nightly_full_reconcile_schedule = dg.ScheduleDefinition(
    name="nightly_full_reconcile",
    job_name=SYNC_JOB_NAME,
    cron_schedule=_schedule.full_reconcile_cron,
    execution_timezone=_schedule.timezone,
    run_config={"resources": {"run_options": {"config": {"full": True}}}},
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Reconciles everything, deletes included, once a night.",
)
