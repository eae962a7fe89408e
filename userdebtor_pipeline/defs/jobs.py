"""The jobs people launch (from the UI, `userdebtor sync` or `userdebtor invite`), with schedules and sensors."""

from __future__ import annotations

import dagster as dg

from userdebtor_pipeline.defs.instant_accounts.invite import INVITE_GROUP, invite_job

SYNC_JOB_NAME = "userdebtor_sync"

from userdebtor_pipeline.defs.retailer import DEFAULT_RETAILER, RETAILER_ENV, RETAILER_TAG, retailer_name  # noqa: E402, F401

# One process for the whole run: the run lock and the database pools live for the run, and the work is
# in PostgreSQL anyway, so more processes would only add start-up time.
sync_job = dg.define_asset_job(
    SYNC_JOB_NAME,
    selection=dg.AssetSelection.all() - dg.AssetSelection.groups(INVITE_GROUP),  # everything but I4's invitation
    executor_def=dg.in_process_executor,
    tags={RETAILER_TAG: retailer_name()},
    description="The whole integration once: extract, conversions, plan, checks, loads, emails.",
)


_IN_PROGRESS = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
                dg.DagsterRunStatus.STARTED]


def sync_in_progress(context: dg.SensorEvaluationContext) -> bool:
    """A sync of this retailer already queued or running reads the latest data anyway, and a second one would only
    wait for the run lock. Other retailers' runs on the same instance do not count."""
    try:
        instance = context.instance
    except Exception:  # a context built without an instance (a unit test): nothing can be running
        return False
    return bool(instance.get_run_records(filters=dg.RunsFilter(
        job_name=SYNC_JOB_NAME, statuses=_IN_PROGRESS, tags={RETAILER_TAG: retailer_name()}), limit=1))


def all_jobs() -> list:
    return [sync_job, invite_job]


def all_schedules() -> list:
    from userdebtor_pipeline.defs.ops.schedules import schedules

    return list(schedules)


def all_sensors() -> list:
    from userdebtor_pipeline.defs.ops.sensors import sensors

    return list(sensors)
