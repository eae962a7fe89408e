"""The assembled Dagster definitions: they load, they read left to right, and they are snapshotted, so a change
of the graph shows up in review as a snapshot diff.

After an intended change: `.venv/bin/python -m pytest tests/test_definitions.py --snapshot-update`, then review
and commit the diff of tests/__snapshots__/test_definitions.ambr.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from tests.support import write_settings
from userdebtor_pipeline.defs.domains import RUN_ORDER


def snapshot_of(defs: dg.Definitions) -> dict[str, Any]:
    """What a reviewer needs to see of the graph: names, groups, stages, blocking flags, selections, timings."""
    graph = defs.resolve_asset_graph()
    # One line per asset and per check, so a review diff reads as "this asset moved group".
    assets = {key.to_user_string(): f"{graph.get(key).group_name} / {', '.join(sorted(graph.get(key).kinds))}"
              for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string())}
    checks = {f"{key.asset_key.to_user_string()}:{key.name}": "blocking" if graph.get(key).blocking else "warn"
              for key in sorted(graph.asset_check_keys, key=lambda k: (k.asset_key.to_user_string(), k.name))}
    jobs = {}
    for job in sorted(defs.jobs or [], key=lambda j: j.name):
        selection = getattr(job, "selection", None)
        keys = selection.resolve(graph) if selection is not None else set()
        jobs[job.name] = {"selection": str(selection), "assets": sorted(k.to_user_string() for k in keys)}
    schedules = {s.name: {"cron": s.cron_schedule, "timezone": s.execution_timezone, "job": s.job_name,
                          "default_status": s.default_status.value}
                 for s in sorted(defs.schedules or [], key=lambda s: s.name)}
    sensors = {s.name: {"type": s.sensor_type.value, "minimum_interval_seconds": s.minimum_interval_seconds,
                        "default_status": s.default_status.value,
                        "jobs": sorted(target.job_name for target in s.targets)}
               for s in sorted(defs.sensors or [], key=lambda s: s.name)}
    return {"assets": assets, "asset_checks": checks, "jobs": jobs, "schedules": schedules, "sensors": sensors}


@pytest.fixture
def defs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dg.Definitions:
    # The schedules read their cron and time zone from the settings: pin them to the example's.
    monkeypatch.setenv("USERDEBTOR_CONFIG", str(write_settings(tmp_path / "userdebtor.yaml")))
    from userdebtor_pipeline.definitions import defs

    return defs


def test_definitions_load_without_errors(defs: dg.Definitions) -> None:
    # What `dg check defs` checks, without starting a process: every selection, dependency and resource resolves.
    dg.Definitions.validate_loadable(defs)
    repository = defs.get_repository_def()
    assert repository.has_job("userdebtor_sync")
    assert {"erp_or_web_changed_sensor", "sync_run_failed_warning"} <= {s.name for s in repository.sensor_defs}


def test_definitions_match_the_snapshot(defs: dg.Definitions, snapshot) -> None:
    assert snapshot_of(defs) == snapshot


def test_the_sync_job_covers_every_asset_and_the_sensors_target_it(defs: dg.Definitions) -> None:
    current = snapshot_of(defs)
    invitation = current["jobs"]["userdebtor_invite"]["assets"]
    invitation_only = [a for a in invitation if a not in current["jobs"]["userdebtor_sync"]["assets"]]
    assert invitation_only == ["invitation_decided", "merchant_invitation"], "I4's invitation runs in its own job"
    assert current["jobs"]["userdebtor_sync"]["assets"] == [a for a in current["assets"] if a not in invitation_only], (
        "one run is the whole integration")
    sensors = current["sensors"]
    assert sensors["erp_or_web_changed_sensor"] == {"type": "STANDARD", "minimum_interval_seconds": 15,
                                                    "default_status": "STOPPED", "jobs": ["userdebtor_sync"]}
    assert sensors["sync_run_failed_warning"]["type"] == "RUN_STATUS"
    assert set(current["schedules"]) == {"changed_since_sync", "nightly_full_reconcile"}


def test_the_group_graph_reads_left_to_right_in_run_order(defs: dg.Definitions) -> None:
    """Collapsed to groups, every edge points right: the groups are the domains in the order a run takes them."""
    graph = defs.resolve_asset_graph()
    groups = {key: graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert set(groups.values()) == set(RUN_ORDER)
    assert list(RUN_ORDER[:6]) == ["conversions", "user_debtor", "contacts", "instant_accounts", "orders", "access"]
    assert RUN_ORDER[6] == "notify"
    backwards = sorted(f"{parent.to_user_string()} ({groups[parent]}) -> {key.to_user_string()} ({groups[key]})"
                       for key in groups for parent in graph.get(key).parent_keys
                       if RUN_ORDER.index(groups[parent]) > RUN_ORDER.index(groups[key]))
    assert backwards == [], "an edge points back left, so the collapsed group graph loops"


def test_every_asset_names_its_stage(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    stages = {"extract", "plan", "check", "load", "notify"}
    unstaged = sorted(key.to_user_string() for key in graph.get_all_asset_keys()
                      if len(graph.get(key).kinds & stages) != 1)
    assert unstaged == []
    staged = {key.to_user_string() for key in graph.get_all_asset_keys() if "extract" in graph.get(key).kinds}
    assert staged >= {"staged_erp_debtors", "staged_web_users", "staged_debtor_conversions"}
    assert graph.get(dg.AssetKey("staged_debtor_conversions")).group_name == "conversions", (
        "a staged extract sits with the first domain that reads it")
