"""The domains of the integration, in the order a run goes through them."""

from __future__ import annotations

import importlib
from functools import cache

import dagster as dg

# Each module has `assets` and may have `asset_checks`. The notify stage is built last, from the loads.
DOMAIN_MODULES = (
    "userdebtor_pipeline.defs.extract.assets",
    "userdebtor_pipeline.defs.conversions.assets",
    "userdebtor_pipeline.defs.user_debtor.plan",
    "userdebtor_pipeline.defs.user_debtor.checks",
    "userdebtor_pipeline.defs.user_debtor.load",
    "userdebtor_pipeline.defs.contacts.assets",
    "userdebtor_pipeline.defs.instant_accounts.assets",
    "userdebtor_pipeline.defs.instant_accounts.invite",
    "userdebtor_pipeline.defs.orders.assets",
    "userdebtor_pipeline.defs.access.assets",
)


@cache
def _domain_definitions() -> tuple[list, list]:
    assets: list = []
    checks: list = []
    for name in DOMAIN_MODULES:
        module = importlib.import_module(name)
        assets.extend(getattr(module, "assets", []))
        checks.extend(getattr(module, "asset_checks", []))
    from userdebtor_pipeline.defs.notify.assets import build_notify_assets

    loads = [key for a in assets for key in a.keys if a.group_names_by_key.get(key) in ("conversions", "load")]
    from userdebtor_pipeline.defs.user_debtor.checks import change_guard

    assets.extend(build_notify_assets(loads, [change_guard.key]))
    return assets, checks


def all_assets() -> list[dg.AssetsDefinition]:
    return list(_domain_definitions()[0])


def all_asset_checks() -> list[dg.AssetChecksDefinition]:
    return list(_domain_definitions()[1])
