"""Dagster's own services started as real processes on loopback (webserver, daemon, gRPC code servers), and the
webserver's GraphQL API, for the tests that drive the project as an operator does."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import requests

BIN = Path(sys.executable).parent
START_TIMEOUT = 90

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

LOCATIONS = """
query Locations {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        locationOrLoadError {
          __typename
          ... on RepositoryLocation { repositories { name } }
          ... on PythonError { message }
        }
      }
    }
  }
}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    """One long-running process in its own process group (its run workers and code servers go with it)."""

    def __init__(self, name: str, command: Sequence[str], env: Mapping[str, str], cwd: Path, log: Path) -> None:
        self.name, self.log = name, log
        with log.open("wb") as out:
            self.process = subprocess.Popen([str(c) for c in command], cwd=cwd, env=dict(env), stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def log_tail(self, chars: int = 4000) -> str:
        text = self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""
        return f"--- {self.name} ({self.log}):\n{text}"

    def assert_running(self) -> None:
        assert self.process.poll() is None, f"{self.name} exited with {self.process.returncode}\n{self.log_tail()}"

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


class CodeServer(Service):
    """`dagster code-server start`: one code location served over gRPC on a free loopback port."""

    def __init__(self, location: str, module: str, env: Mapping[str, str], cwd: Path, log: Path) -> None:
        self.location, self.port = location, free_port()
        super().__init__(f"code server {location}", [
            BIN / "dagster", "code-server", "start", "-h", "127.0.0.1", "-p", str(self.port), "-m", module,
            "--location-name", location,
        ], env, cwd, log)

    def wait_until_serving(self) -> None:
        from dagster._grpc.client import DagsterGrpcClient

        client = DagsterGrpcClient(port=self.port, host="127.0.0.1")
        deadline = time.monotonic() + START_TIMEOUT
        while client.health_check_query() != "SERVING":
            self.assert_running()
            assert time.monotonic() < deadline, f"{self.name} did not start:\n{self.log_tail()}"
            time.sleep(0.5)


class Webserver(Service):
    """dagster-webserver on a free loopback port, with its GraphQL endpoint."""

    def __init__(self, target: Sequence[str], env: Mapping[str, str], cwd: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__("dagster-webserver", [BIN / "dagster-webserver", *target, "-h", "127.0.0.1",
                                               "-p", str(self.port)], env, cwd, log)

    def wait_until_up(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            self.assert_running()
            assert time.monotonic() < deadline, f"dagster-webserver did not start:\n{self.log_tail()}"
            try:
                if requests.get(f"{self.url}/server_info", timeout=2).ok:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.5)

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = requests.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}},
                                 timeout=30)
        assert response.ok, f"GraphQL answered {response.status_code}: {response.text[:2000]}"
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def wait_for_locations(self, names: set[str], *others: Service) -> dict[str, str]:
        """Location name -> repository name, once every named code location has loaded."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            loaded: dict[str, str] = {}
            for entry in self.graphql(LOCATIONS)["workspaceOrError"].get("locationEntries", []):
                load = entry.get("locationOrLoadError") or {}
                assert load.get("__typename") != "PythonError", f"{entry['name']} failed to load: {load['message']}"
                if load.get("repositories"):
                    loaded[entry["name"]] = load["repositories"][0]["name"]
            if names <= set(loaded):
                return loaded
            for service in (self, *others):
                service.assert_running()
            logs = "\n".join(s.log_tail() for s in (self, *others))
            assert time.monotonic() < deadline, f"code locations {names - set(loaded)} never loaded:\n{logs}"
            time.sleep(1)

    def launch(self, location: str, repository: str, job: str) -> str:
        launched = self.graphql(LAUNCH_RUN, {"executionParams": {
            "selector": {"repositoryLocationName": location, "repositoryName": repository, "jobName": job},
            "runConfigData": {},
        }})["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        return launched["run"]["runId"]

    def wait_for_run(self, run_id: str, timeout: float, *others: Service) -> str:
        """The run's final status (SUCCESS, FAILURE or CANCELED)."""
        deadline = time.monotonic() + timeout
        status = "QUEUED"
        while status not in ("SUCCESS", "FAILURE", "CANCELED"):
            logs = "\n".join(s.log_tail() for s in (self, *others))
            assert time.monotonic() < deadline, f"run {run_id} still {status}:\n{logs}"
            time.sleep(1)
            status = self.graphql(RUN_STATUS, {"runId": run_id})["runOrError"].get("status", status)
        return status
