"""What the sensors that start a sync share: how they are declared, and whether a sync is already on its way."""

from __future__ import annotations

import dagster as dg

from userdebtor_pipeline.defs.jobs import SYNC_JOB_NAME
from userdebtor_pipeline.defs.retailer import RETAILER_TAG, retailer_name

# The probes cost milliseconds, so a change on either side starts a run within 15 s.
PROBE_INTERVAL_SECONDS = 15

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


def sync_starting_sensor(name: str, description: str):
    """The decorator of a sensor that starts the sync job: probed every PROBE_INTERVAL_SECONDS, off until
    someone turns it on in the UI."""
    return dg.sensor(name=name, job_name=SYNC_JOB_NAME, minimum_interval_seconds=PROBE_INTERVAL_SECONDS,
                     default_status=dg.DefaultSensorStatus.STOPPED, description=description)
