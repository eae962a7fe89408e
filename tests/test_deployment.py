"""The production topology, as processes on this machine: one gRPC code server per retailer (its own settings file
and databases), dagster-webserver and dagster-daemon reading a workspace.yaml that names them, and the Dagster
instance on PostgreSQL storage (deploy/dagster.postgres.yaml, a database of its own).

The compose file (deploy/compose.yaml) runs the same services in containers; Docker cannot run here, so this is
the test of that topology.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from tests.dagster_services import BIN, CodeServer, Service, Webserver
from tests.support import add_debtor, add_template, erp_change, one, write_settings
from userdebtor_pipeline.defs.jobs import SYNC_JOB_NAME
from userdebtor_pipeline.defs.retailer import RETAILER_TAG
from userdebtor_pipeline.schema import init_databases

PROJECT = Path(__file__).resolve().parent.parent
DEPLOY = PROJECT / "deploy"
RETAILERS = ("acme", "bravo")
CHANGE_SENSOR = "erp_or_web_changed_sensor"
EDIT_TO_WEB_SECONDS = 60  # the sensor probes every 15 s; a run takes seconds
QUEUE_TIMEOUT = 300
_DONE = ("SUCCESS", "FAILURE", "CANCELED")

RUNS = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter) {
    __typename
    ... on Runs { results { runId status startTime endTime tags { key value } } }
    ... on PythonError { message }
  }
}
"""

START_SENSOR = """
mutation Start($selector: SensorSelector!) {
  startSensor(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { status } }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}
"""

LAST_TICK = """
query Tick($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { status ticks(limit: 1) { status timestamp skipReason } } }
  }
}
"""


@dataclass
class Retailer:
    name: str
    erp: sa.Engine
    web: sa.Engine
    env: dict[str, str]  # what its code server (and so its sensors and runs) sees


@dataclass
class Deployment:
    webserver: Webserver
    services: list[Service]
    repositories: dict[str, str]  # location -> repository
    retailers: dict[str, Retailer]

    def logs(self) -> str:
        return "\n".join(service.log_tail(2500) for service in self.services)

    def runs(self, retailer: str) -> list[dict[str, Any]]:
        found = self.webserver.graphql(RUNS, {"filter": {
            "pipelineName": SYNC_JOB_NAME, "tags": [{"key": RETAILER_TAG, "value": retailer}]}})["runsOrError"]
        assert found["__typename"] == "Runs", found
        return found["results"]

    def sensor(self, retailer: str) -> dict[str, Any]:
        return {"repositoryLocationName": retailer, "repositoryName": self.repositories[retailer],
                "sensorName": CHANGE_SENSOR}

    def wait(self, what: str, timeout: float, done: Callable[[], bool]) -> float:
        """Seconds until `done()`; fails with every service's log after `timeout`."""
        start = time.monotonic()
        while not done():
            for service in self.services:
                service.assert_running()
            assert time.monotonic() - start < timeout, f"{what}: not within {timeout} s\n{self.logs()}"
            time.sleep(1)
        return time.monotonic() - start


def _retailer(name: str, new_database: Callable[[], str], tmp_path: Path) -> Retailer:
    erp_url, web_url = new_database(), new_database()
    erp, web = sa.create_engine(erp_url), sa.create_engine(web_url)
    init_databases(erp, web)
    home = tmp_path / name
    home.mkdir()
    settings = write_settings(home / "userdebtor.yaml")
    env = {"USERDEBTOR_ERP_URL": erp_url, "USERDEBTOR_WEB_URL": web_url, "USERDEBTOR_CONFIG": str(settings),
           "USERDEBTOR_HOME": str(home / "home"), "USERDEBTOR_RETAILER": name}
    return Retailer(name, erp, web, env)


@pytest.fixture
def deployment(pg_urls: Callable[[], str], tmp_path: Path) -> Iterator[Deployment]:
    retailers = {name: _retailer(name, pg_urls, tmp_path) for name in RETAILERS}
    for retailer in retailers.values():
        add_template(retailer.erp)
        add_debtor(retailer.erp, "C100", f"first@{retailer.name}.example", name=f"{retailer.name} first")

    # Dagster's storage: a database of its own on the same server, as dagster.postgres.yaml expects it.
    storage_url = pg_urls().replace("postgresql+psycopg://", "postgresql://", 1)
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copyfile(DEPLOY / "dagster.postgres.yaml", dagster_home / "dagster.yaml")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("USERDEBTOR_", "DAGSTER_"))}
    base_env |= {"DAGSTER_HOME": str(dagster_home), "DAGSTER_PG_URL": storage_url}

    services: list[Service] = []
    try:
        code_servers = [CodeServer(name, "userdebtor_pipeline.definitions", base_env | retailer.env, tmp_path,
                                   tmp_path / f"code-server-{name}.log") for name, retailer in retailers.items()]
        services.extend(code_servers)
        workspace = tmp_path / "workspace.yaml"
        workspace.write_text(yaml.safe_dump({"load_from": [
            {"grpc_server": {"host": "127.0.0.1", "port": server.port, "location_name": server.location}}
            for server in code_servers]}))
        for server in code_servers:
            server.wait_until_serving()
        # The webserver and the daemon know no retailer: settings and URLs live in each code location.
        webserver = Webserver(["-w", str(workspace)], base_env, tmp_path, tmp_path / "webserver.log")
        services.append(webserver)
        services.append(Service("dagster-daemon", [BIN / "dagster-daemon", "run", "-w", str(workspace)], base_env,
                                tmp_path, tmp_path / "daemon.log"))
        webserver.wait_until_up()
        repositories = webserver.wait_for_locations(set(RETAILERS), *services)
        yield Deployment(webserver, services, repositories, retailers)
    finally:
        for service in reversed(services):
            service.stop()
        for retailer in retailers.values():
            retailer.erp.dispose()
            retailer.web.dispose()


def _user_name(retailer: Retailer) -> str | None:
    return one(retailer.web, "SELECT name FROM web.app_user WHERE default_customer_code = 'C100'")


ASSET_KEYS = """
query Assets { assetNodes { assetKey { path } } }
"""


def server_assets(deployment: Deployment) -> set[str]:
    return {"/".join(node["assetKey"]["path"]) for node in deployment.webserver.graphql(ASSET_KEYS)["assetNodes"]}


def _overlaps(runs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    ordered = sorted(runs, key=lambda run: run["startTime"])
    return [(a["runId"], b["runId"]) for a, b in zip(ordered, ordered[1:], strict=False)
            if b["startTime"] < a["endTime"]]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_production_topology_runs_two_retailers_one_run_at_a_time_each(deployment: Deployment) -> None:
    # Each location's assets live under its retailer's name, so the two never merge in the asset graph.
    assets = server_assets(deployment)
    for name in RETAILERS:
        assert f"{name}/user_debtor_plan" in assets and f"{name}/web_users_created" in assets
    assert "user_debtor_plan" not in assets

    server = deployment.webserver

    # The change sensor, switched on through GraphQL as an operator does in the UI; and three runs launched at
    # once, two for acme. Every run queues on the retailer tag that its location's job carries.
    for name in RETAILERS:
        started = server.graphql(START_SENSOR, {"selector": deployment.sensor(name)})["startSensor"]
        assert started["__typename"] == "Sensor", started
        assert started["sensorState"]["status"] == "RUNNING"
    launched = {name: [server.launch(name, deployment.repositories[name], SYNC_JOB_NAME)
                       for _ in range(2 if name == "acme" else 1)] for name in RETAILERS}

    def quiet(name: str) -> bool:
        """Every run has ended and the sensor has looked since, finding nothing to do."""
        runs = deployment.runs(name)
        if any(run["status"] not in _DONE for run in runs):
            return False
        ticks = server.graphql(LAST_TICK, {"selector": deployment.sensor(name)})["sensorOrError"]
        last = (ticks["sensorState"]["ticks"] or [None])[0]
        ended = max((run["endTime"] or 0 for run in runs), default=0)
        return last is not None and last["status"] == "SKIPPED" and last["timestamp"] > ended

    # The sensor's first tick has no cursor and catches up once (after the launched runs); then it is still.
    for name in RETAILERS:
        deployment.wait(f"{name}'s runs end and its change sensor settles", QUEUE_TIMEOUT,
                        lambda name=name: quiet(name))
    for name in RETAILERS:
        runs = deployment.runs(name)
        assert set(launched[name]) <= {run["runId"] for run in runs}
        assert all(run["status"] == "SUCCESS" for run in runs), (runs, deployment.logs())
        assert all({"key": RETAILER_TAG, "value": name} in run["tags"] for run in runs)
        assert not _overlaps(runs), f"two {name} runs ran at once: {runs}"
        assert _user_name(deployment.retailers[name]) == f"{name} first"  # U2 through the location's own URLs

    # An operator's edit in acme's ERP: acme's sensor starts a run that reaches acme's web within a minute;
    # bravo, on the same instance, neither runs nor changes.
    before = {name: {run["runId"] for run in deployment.runs(name)} for name in RETAILERS}
    acme, bravo = deployment.retailers["acme"], deployment.retailers["bravo"]
    erp_change(acme.erp, "C100", dr_cust_name="acme renamed")
    edited = time.monotonic()

    deployment.wait("acme's web shows the edit", EDIT_TO_WEB_SECONDS, lambda: _user_name(acme) == "acme renamed")

    def sensed_run_succeeded() -> bool:
        new = [run for run in deployment.runs("acme") if run["runId"] not in before["acme"]]
        assert not [run for run in new if run["status"] in ("FAILURE", "CANCELED")], (new, deployment.logs())
        return bool(new) and all(run["status"] == "SUCCESS" for run in new)

    deployment.wait("acme's sensed run succeeds", EDIT_TO_WEB_SECONDS - (time.monotonic() - edited),
                    sensed_run_succeeded)
    sensed = [run for run in deployment.runs("acme") if run["runId"] not in before["acme"]]
    assert {"key": "userdebtor/trigger", "value": CHANGE_SENSOR} in sensed[0]["tags"]
    assert {run["runId"] for run in deployment.runs("bravo")} == before["bravo"]
    assert _user_name(bravo) == "bravo first"


def test_instance_yaml_variants_differ_only_in_storage_launcher_and_total_runs() -> None:
    """One home per rule: the queue, monitoring, retention and logging settings are the same in every variant."""
    variants = {name: yaml.safe_load((DEPLOY / name).read_text())
                for name in ("dagster.yaml", "dagster.postgres.yaml", "dagster.docker.yaml")}
    for config in variants.values():
        config.pop("storage")
        config.pop("run_launcher", None)
        config["run_queue"].pop("max_concurrent_runs")
    assert variants["dagster.postgres.yaml"] == variants["dagster.yaml"]
    assert variants["dagster.docker.yaml"] == variants["dagster.yaml"]
    limits = variants["dagster.yaml"]["run_queue"]["tag_concurrency_limits"]
    assert {"key": RETAILER_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
