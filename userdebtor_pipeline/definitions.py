"""The Dagster code location: every domain's assets and checks, the resources, the job, schedules, sensors."""

from __future__ import annotations

import dagster as dg

from userdebtor_pipeline.defs import jobs
from userdebtor_pipeline.defs.domains import all_asset_checks, all_assets
from userdebtor_pipeline.defs.resources import default_resources


def _for_this_retailer(assets: list, checks: list) -> tuple[list, list]:
    """Asset keys under the retailer's name (acme/user_debtor_plan) when USERDEBTOR_RETAILER names one: the code
    locations of many retailers on one Dagster instance then keep apart in the asset graph and its history,
    where equal keys would merge. One retailer (no name) keeps the plain keys."""
    retailer = jobs.retailer_name()
    if retailer == jobs.DEFAULT_RETAILER:
        return assets, checks
    # The loader Dagster uses for load_assets_from_modules(key_prefix=...): it renames keys, deps and checks.
    from dagster._core.definitions.module_loaders.object_list import DagsterObjectsList

    prefixed = DagsterObjectsList([*assets, *checks]).assets_with_loadable_prefix([retailer])
    return list(prefixed.assets_defs_and_specs), list(prefixed.checks_defs)


_assets, _checks = _for_this_retailer(all_assets(), all_asset_checks())

defs = dg.Definitions(
    assets=_assets,
    asset_checks=_checks,
    jobs=jobs.all_jobs(),
    schedules=jobs.all_schedules(),
    sensors=jobs.all_sensors(),
    resources=default_resources(),
)
