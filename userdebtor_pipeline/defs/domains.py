"""The domains of the integration, found by Dagster in the folders of `defs/`, grouped so the graph reads left to right.

Every folder of `defs/` that holds assets is a domain, and Dagster's loader finds its assets and checks: a new
asset in a domain's module is in the location without being listed anywhere. In the UI each domain is a group,
in the order a run goes through them (RUN_ORDER). An asset sits in its domain's group unless an earlier domain
reads it, then in that earlier group: the staged extracts go to the first domain that plans from them, I3's
verified tokens to the users and debtors (they are applied before the web users are staged), so the collapsed
group graph has no cycle. The stage an asset was written for (its `group_name`: extract, plan, load, notify)
becomes its kind, and an asset of a `checks` module is of stage `check`.
"""

from __future__ import annotations

import importlib
import pkgutil
import warnings
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from types import ModuleType

import dagster as dg

from userdebtor_pipeline.defs.instant_accounts.invite import INVITE_GROUP, INVITE_JOB_NAME
from userdebtor_pipeline.defs.jobs import OWN_JOB_TAG
from userdebtor_pipeline.defs.notify.assets import build_notify_assets
from userdebtor_pipeline.defs.retailer import DEFAULT_RETAILER, retailer_name

# The groups, left to right. I4's invitation runs in its own job, after a sync's notify stage.
RUN_ORDER = ("conversions", "user_debtor", "contacts", "instant_accounts", "orders", "access", "notify", INVITE_GROUP)
# The folder of the staged extracts: no group of its own, its assets go to the first domain that reads them.
EXTRACT = "extract"
# The stage each asset was written for, by the group its module gave it: the conversions and I4's invitation
# write to the web, so they are loads.
STAGE_OF_GROUP = {"extract": "extract", "plan": "plan", "load": "load", "notify": "notify",
                  "conversions": "load", INVITE_GROUP: "load"}


@dataclass(frozen=True)
class Found:
    """Every asset and check of the domain folders, each asset key with its domain and stage."""

    assets: list[dg.AssetsDefinition]
    checks: list[dg.AssetChecksDefinition]
    domain: dict[dg.AssetKey, str]
    stage: dict[dg.AssetKey, str]


def _domain_packages() -> dict[str, ModuleType]:
    """The folders of `defs/`, extract first, then in run order: a folder's assets are its own unless an
    earlier folder holds them (a later domain imports an earlier one's assets to depend on them)."""
    import userdebtor_pipeline.defs as defs_package

    names = [m.name for m in pkgutil.iter_modules(defs_package.__path__) if m.ispkg]
    order = (EXTRACT, *RUN_ORDER)
    names.sort(key=lambda name: (order.index(name) if name in order else len(order), name))
    return {name: importlib.import_module(f"{defs_package.__name__}.{name}") for name in names}


def _written_in(asset: dg.AssetsDefinition) -> str:
    """The module of the function an asset runs (a factory's module for an asset a factory made)."""
    function = getattr(asset.op.compute_fn, "decorated_fn", asset.op.compute_fn)
    return getattr(function, "__module__", "")


def _stage(asset: dg.AssetsDefinition, key: dg.AssetKey) -> str:
    written_for = asset.group_names_by_key[key]
    if written_for == "plan" and _written_in(asset).endswith(".checks"):
        return "check"
    if written_for not in STAGE_OF_GROUP:
        raise ValueError(f"asset {key.to_user_string()} has group_name {written_for!r}; give it the stage it "
                         f"belongs to, one of {', '.join(sorted(set(STAGE_OF_GROUP.values())))}")
    return STAGE_OF_GROUP[written_for]


def _blocking_check_keys(assets: Iterable[dg.AssetsDefinition],
                         checks: Iterable[dg.AssetChecksDefinition]) -> set[dg.AssetKey]:
    specs = [spec for a in assets for spec in a.check_specs] + [spec for c in checks for spec in c.check_specs]
    return {spec.asset_key for spec in specs if spec.blocking}


def _children(assets: Iterable[dg.AssetsDefinition]) -> dict[dg.AssetKey, set[dg.AssetKey]]:
    children: dict[dg.AssetKey, set[dg.AssetKey]] = defaultdict(set)
    for asset in assets:
        for key in asset.keys:
            for parent in asset.asset_deps.get(key, ()):
                children[parent].add(key)
    return children


@cache
def found() -> Found:
    """The domains' assets and checks as Dagster's loader finds them, and the notify stage built from the loads."""
    assets: dict[dg.AssetKey, dg.AssetsDefinition] = {}
    domain: dict[dg.AssetKey, str] = {}
    for name, package in _domain_packages().items():
        for asset in dg.load_assets_from_package_module(package):
            if not isinstance(asset, dg.AssetsDefinition) or asset.key in assets:
                continue
            if name not in (EXTRACT, *RUN_ORDER):
                raise ValueError(f"defs/{name} holds assets but is not a domain of RUN_ORDER in {__name__}")
            assets.update(dict.fromkeys(asset.keys, asset))
            domain.update({key: asset.group_names_by_key[key] if asset.group_names_by_key[key] == INVITE_GROUP
                           else name for key in asset.keys})
    checks = list(dg.load_asset_checks_from_package_module(importlib.import_module(__package__)))
    unique = list({id(asset): asset for asset in assets.values()}.values())
    stage = {key: _stage(asset, key) for asset in unique for key in asset.keys}
    # The notify stage follows every load of the sync, and the assets whose blocking checks hold loads from
    # inside them (U7: no load reads them, so nothing else would wait for their verdict).
    children = _children(unique)
    loads = [key for key, kind in stage.items() if kind == "load" and domain[key] != INVITE_GROUP]
    holds = [key for key in _blocking_check_keys(unique, checks) if not children.get(key)]
    notify = build_notify_assets(sorted(loads, key=str), sorted(holds, key=str))
    for asset in notify:
        domain.update(dict.fromkeys(asset.keys, "notify"))
        stage.update(dict.fromkeys(asset.keys, "notify"))
    return Found([*unique, *notify], checks, domain, stage)


def groups(everything: Found) -> dict[dg.AssetKey, str]:
    """Each asset's group: its domain's, or the earliest group that reads it (so no edge points back left)."""
    children = _children(everything.assets)
    last = len(RUN_ORDER)

    @cache
    def place(key: dg.AssetKey) -> int:
        own = RUN_ORDER.index(everything.domain[key]) if everything.domain[key] in RUN_ORDER else last
        return min([own, *(place(child) for child in children.get(key, ()))])

    placed = {key: place(key) for key in everything.domain}
    unread = sorted(key.to_user_string() for key, index in placed.items() if index == last)
    if unread:
        raise ValueError(f"staged extracts that no domain reads: {', '.join(unread)}")
    return {key: RUN_ORDER[index] for key, index in placed.items()}


def _placed(asset: dg.AssetsDefinition, everything: Found, group: dict[dg.AssetKey, str]) -> dg.AssetsDefinition:
    def place(spec: dg.AssetSpec) -> dg.AssetSpec:
        own_job = {OWN_JOB_TAG: INVITE_JOB_NAME} if everything.domain[spec.key] == INVITE_GROUP else {}
        return spec.replace_attributes(group_name=group[spec.key]).merge_attributes(
            kinds={everything.stage[spec.key]}, tags={"userdebtor/domain": everything.domain[spec.key], **own_job})

    return asset.map_asset_specs(place)


def _for_this_retailer(assets: list, checks: list) -> tuple[list, list]:
    """Asset keys under the retailer's name (acme/user_debtor_plan) when USERDEBTOR_RETAILER names one: the code
    locations of many retailers on one Dagster instance then keep apart in the asset graph and its history,
    where equal keys would merge. One retailer (no name) keeps the plain keys."""
    retailer = retailer_name()
    if retailer == DEFAULT_RETAILER:
        return assets, checks
    # The loader Dagster uses for load_assets_from_modules(key_prefix=...): it renames keys, deps and checks.
    from dagster._core.definitions.module_loaders.object_list import DagsterObjectsList

    prefixed = DagsterObjectsList([*assets, *checks]).assets_with_loadable_prefix([retailer])
    return list(prefixed.assets_defs_and_specs), list(prefixed.checks_defs)


def domain_definitions() -> list[dg.Definitions]:
    """One `Definitions` per group, in run order, for `Definitions.merge`."""
    everything = found()
    group = groups(everything)
    assets, checks = _for_this_retailer([_placed(a, everything, group) for a in everything.assets], everything.checks)
    by_group: dict[str, dg.Definitions] = {}
    for name in RUN_ORDER:
        mine = [a for a in assets if next(iter(a.specs)).group_name == name]
        keys = {key for a in mine for key in a.keys}
        guarding = [c for c in checks if next(iter(c.check_specs)).asset_key in keys]
        by_group[name] = dg.Definitions(assets=mine, asset_checks=guarding)
    return list(by_group.values())


def automation_definitions() -> dg.Definitions:
    """Every job, schedule and sensor in `defs/` (the sync job, I4's invitation job, `automation/`, the domains'
    own sensors), as Dagster's loader finds them."""
    # The loader is marked preview; its notice on every command would read to a user like a fault of theirs.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        every = dg.load_definitions_from_package_module(importlib.import_module(__package__))
    return dg.Definitions(jobs=every.jobs, schedules=every.schedules, sensors=every.sensors)
