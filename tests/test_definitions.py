"""The assembled Dagster definitions, snapshotted: a change of the graph shows up in review as a golden diff.

Regenerate after an intended change with `UPDATE_GOLDEN=1 pytest tests/test_definitions.py` and commit the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from tests.support import write_settings

GOLDEN = Path(__file__).resolve().parent / "golden" / "definitions.json"


def snapshot(defs: dg.Definitions) -> dict[str, Any]:
    """What a reviewer needs to see of the graph: names, groups, blocking flags, selections, timings."""
    graph = defs.resolve_asset_graph()
    # One line per asset and per check in the golden file, so a review diff reads as "this asset moved group".
    assets = {key.to_user_string(): graph.get(key).group_name
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
                        "jobs": sorted(j.name for j in s.jobs) if s.has_jobs else []}
               for s in sorted(defs.sensors or [], key=lambda s: s.name)}
    return {"assets": assets, "asset_checks": checks, "jobs": jobs, "schedules": schedules, "sensors": sensors}


@pytest.fixture
def defs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dg.Definitions:
    # The schedules read their cron and time zone from the settings: pin them to the example's.
    monkeypatch.setenv("USERDEBTOR_CONFIG", str(write_settings(tmp_path / "userdebtor.yaml")))
    from userdebtor_pipeline.definitions import defs

    return defs


def test_definitions_load_without_errors(defs: dg.Definitions) -> None:
    dg.Definitions.validate_loadable(defs)
    repository = defs.get_repository_def()
    assert repository.has_job("userdebtor_sync")
    assert {"erp_or_web_changed_sensor", "sync_run_failed_warning"} <= {s.name for s in repository.sensor_defs}


def test_definitions_match_the_golden_snapshot(defs: dg.Definitions) -> None:
    current = snapshot(defs)
    text = json.dumps(current, indent=2, sort_keys=False) + "\n"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(text, encoding="utf-8")
    assert GOLDEN.exists(), f"no golden file yet: run UPDATE_GOLDEN=1 pytest {Path(__file__).name}"
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    for part in golden.keys() | current.keys():
        assert current.get(part) == golden.get(part), (
            f"the {part} of the definitions changed; if intended, regenerate with UPDATE_GOLDEN=1 and review the "
            "diff of tests/golden/definitions.json")


def test_the_sync_job_covers_every_asset_and_the_sensors_target_it(defs: dg.Definitions) -> None:
    current = snapshot(defs)
    invitation = [name for name, group in current["assets"].items() if group == "invite"]
    assert invitation == ["invitation_decided", "merchant_invitation"], "I4's invitation runs in its own job"
    assert current["jobs"]["userdebtor_sync"]["assets"] == [a for a in current["assets"] if a not in invitation], (
        "one run is the whole integration")
    sensors = current["sensors"]
    assert sensors["erp_or_web_changed_sensor"] == {"type": "STANDARD", "minimum_interval_seconds": 15,
                                                    "default_status": "STOPPED", "jobs": ["userdebtor_sync"]}
    assert sensors["sync_run_failed_warning"]["type"] == "RUN_STATUS"
    assert set(current["schedules"]) == {"changed_since_sync", "nightly_full_reconcile"}
