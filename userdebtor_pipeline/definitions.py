"""The Dagster code location: every domain's assets and checks, the resources, the job, schedules, sensors."""

from __future__ import annotations

import dagster as dg

from userdebtor_pipeline.defs import jobs
from userdebtor_pipeline.defs.domains import all_asset_checks, all_assets
from userdebtor_pipeline.defs.resources import default_resources

defs = dg.Definitions(
    assets=all_assets(),
    asset_checks=all_asset_checks(),
    jobs=jobs.all_jobs(),
    schedules=jobs.all_schedules(),
    sensors=jobs.all_sensors(),
    resources=default_resources(),
)
