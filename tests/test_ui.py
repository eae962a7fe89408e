"""The Dagster UI end to end: a real dagster-webserver on this project, driven through its GraphQL API.

It must list every asset, check, schedule and sensor of the definitions, and a `userdebtor_sync` launched
through it must run (in a subprocess, as the UI runs it) and succeed against the test databases.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.dagster_services import START_TIMEOUT, Webserver
from tests.support import add_debtor, add_template, one

PROJECT = Path(__file__).resolve().parent.parent
RUN_TIMEOUT = 60

REPOSITORY_QUERY = """
query Repository {
  repositoriesOrError {
    __typename
    ... on RepositoryConnection {
      nodes {
        name
        location { name }
        jobs { name }
        schedules { name cronSchedule executionTimezone }
        sensors { name sensorType minIntervalSeconds }
        assetNodes {
          assetKey { path }
          groupName
          assetChecksOrError { ... on AssetChecks { checks { name blocking } } }
        }
      }
    }
    ... on PythonError { message }
  }
  workspaceOrError {
    ... on Workspace { locationEntries { name locationOrLoadError { __typename ... on PythonError { message } } } }
  }
}
"""

def _instance_yaml(dagster_home: Path) -> None:
    """The project's dagster.yaml, but runs launch at once: without a daemon nothing would dequeue them."""
    config = yaml.safe_load((PROJECT / "deploy" / "dagster.yaml").read_text())
    config.pop("run_queue", None)
    config["run_coordinator"] = {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"}
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(config))


@pytest.fixture
def webserver(pipeline_env, settings_path, tmp_path: Path) -> Iterator[Webserver]:
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    _instance_yaml(dagster_home)
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home)}  # USERDEBTOR_* come from pipeline_env/settings_path
    server = Webserver(["-m", "userdebtor_pipeline.definitions"], env, tmp_path, tmp_path / "webserver.log")
    try:
        server.wait_until_up()
        yield server
    finally:
        server.stop()


def _repository(server: Webserver) -> dict[str, Any]:
    """The code location once it has loaded (the webserver answers before its code server is ready)."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        data = server.graphql(REPOSITORY_QUERY)
        for entry in data["workspaceOrError"].get("locationEntries", []):
            load = entry.get("locationOrLoadError") or {}
            assert load.get("__typename") != "PythonError", f"the code location failed to load: {load['message']}"
        nodes = data["repositoriesOrError"].get("nodes") or []
        if nodes:
            return nodes[0]
        assert time.monotonic() < deadline, f"the code location never loaded:\n{server.log_tail()}"
        time.sleep(1)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_ui_lists_the_project_and_runs_the_sync(webserver: Webserver, pipeline_env) -> None:
    from userdebtor_pipeline.definitions import defs

    add_template(pipeline_env.erp)
    add_debtor(pipeline_env.erp, "C900", "ui.run@mail.example", name="UI Run")  # U2: the run makes a user

    repository = _repository(webserver)

    graph = defs.resolve_asset_graph()
    listed_assets = {"/".join(node["assetKey"]["path"]): node["groupName"] for node in repository["assetNodes"]}
    assert listed_assets == {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()}
    listed_checks = {
        f"{'/'.join(node['assetKey']['path'])}:{check['name']}"
        for node in repository["assetNodes"]
        for check in (node["assetChecksOrError"] or {}).get("checks", [])
    }
    assert listed_checks == {f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.asset_check_keys}
    assert {s["name"]: (s["cronSchedule"], s["executionTimezone"]) for s in repository["schedules"]} == {
        s.name: (s.cron_schedule, s.execution_timezone) for s in defs.schedules}
    assert {s["name"] for s in repository["sensors"]} == {s.name for s in defs.sensors}
    assert "userdebtor_sync" in {j["name"] for j in repository["jobs"]}

    run_id = webserver.launch(repository["location"]["name"], repository["name"], "userdebtor_sync")
    status = webserver.wait_for_run(run_id, RUN_TIMEOUT)
    assert status == "SUCCESS", f"run {run_id} ended {status}:\n{webserver.log_tail()}"

    # The run wrote to the test databases through the settings and URLs the webserver passed down.
    assert one(pipeline_env.web, "SELECT outcome FROM userdebtor.sync_run WHERE run_id = :r", r=run_id) == "succeeded"
    assert one(pipeline_env.web, "SELECT default_customer_code FROM web.app_user"
                                 " WHERE email_address = 'ui.run@mail.example'") == "C900"
