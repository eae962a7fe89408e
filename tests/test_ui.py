"""The Dagster UI end to end: a real dagster-webserver on this project, driven through its GraphQL API.

It must list every asset, check, schedule and sensor of the definitions, and a `userdebtor_sync` launched
through it must run (in a subprocess, as the UI runs it) and succeed against the test databases.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.support import add_debtor, add_template, one

PROJECT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60
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

LAUNCH_RUN = """
mutation Launch($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PipelineNotFoundError { message }
  }
}
"""

RUN_STATUS = """
query Status($runId: ID!) {
  runOrError(runId: $runId) { __typename ... on Run { status } ... on PythonError { message } }
}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _instance_yaml(dagster_home: Path) -> None:
    """The project's dagster.yaml, but runs launch at once: without a daemon nothing would dequeue them."""
    config = yaml.safe_load((PROJECT / "deploy" / "dagster.yaml").read_text())
    config.pop("run_queue", None)
    config["run_coordinator"] = {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"}
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(config))


class Webserver:
    def __init__(self, url: str, log: Path) -> None:
        self.url, self.log = url, log

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = requests.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}},
                                 timeout=30)
        assert response.ok, f"GraphQL answered {response.status_code}: {response.text[:2000]}"
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


@pytest.fixture
def webserver(pipeline_env, settings_path, tmp_path: Path) -> Iterator[Webserver]:
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    _instance_yaml(dagster_home)
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home)}  # USERDEBTOR_* come from pipeline_env/settings_path
    log = tmp_path / "webserver.log"
    binary = Path(sys.executable).parent / "dagster-webserver"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(binary), "-m", "userdebtor_pipeline.definitions", "-h", "127.0.0.1", "-p", str(port)],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the code server and run workers go with it
        )
    server = Webserver(f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert process.poll() is None, f"dagster-webserver exited:\n{server.log_tail()}"
            assert time.monotonic() < deadline, f"dagster-webserver did not start:\n{server.log_tail()}"
            try:
                if requests.get(f"{server.url}/server_info", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        yield server
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


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

    launched = webserver.graphql(LAUNCH_RUN, {"executionParams": {
        "selector": {"repositoryLocationName": repository["location"]["name"],
                     "repositoryName": repository["name"], "jobName": "userdebtor_sync"},
        "runConfigData": {},
    }})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]

    deadline = time.monotonic() + RUN_TIMEOUT
    status = "QUEUED"
    while status not in ("SUCCESS", "FAILURE", "CANCELED"):
        assert time.monotonic() < deadline, f"run {run_id} still {status}:\n{webserver.log_tail()}"
        time.sleep(1)
        status = webserver.graphql(RUN_STATUS, {"runId": run_id})["runOrError"].get("status", status)
    assert status == "SUCCESS", f"run {run_id} ended {status}:\n{webserver.log_tail()}"

    # The run wrote to the test databases through the settings and URLs the webserver passed down.
    assert one(pipeline_env.web, "SELECT outcome FROM userdebtor.sync_run WHERE run_id = :r", r=run_id) == "succeeded"
    assert one(pipeline_env.web, "SELECT default_customer_code FROM web.app_user"
                                 " WHERE email_address = 'ui.run@mail.example'") == "C900"
