"""Whether a sync of this retailer is already on its way: sensors skip a tick rather than queue a second run."""

from __future__ import annotations

import dagster as dg

from userdebtor_pipeline.defs.jobs import SYNC_JOB_NAME
from userdebtor_pipeline.defs.retailer import RETAILER_TAG, retailer_name

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
