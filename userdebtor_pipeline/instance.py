"""The Dagster instance at DAGSTER_HOME: the terminal, the schedules, the sensors and the UI share its history."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import dagster as dg

from userdebtor_pipeline.paths import deploy_dir, home_dir

DAGSTER_HOME_ENV = "DAGSTER_HOME"
INSTANCE_YAML = "dagster.yaml"


def dagster_home() -> Path:
    """DAGSTER_HOME (default USERDEBTOR_HOME/dagster), holding the project's dagster.yaml.

    The folder is exported as DAGSTER_HOME, so the storage settings (`env: DAGSTER_HOME`) and any Dagster
    process started from here (`userdebtor ui`) open the same instance. An existing dagster.yaml is the
    installation's own (it may point at PostgreSQL) and is never overwritten.
    """
    home = Path(os.environ.get(DAGSTER_HOME_ENV) or home_dir() / "dagster").resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ[DAGSTER_HOME_ENV] = str(home)
    target = home / INSTANCE_YAML
    if not target.exists():
        # Copied beside it, then renamed into place: two processes starting together never read half a file.
        with tempfile.NamedTemporaryFile(dir=home, prefix=".dagster-", suffix=".yaml", delete=False) as part:
            part.write((deploy_dir() / INSTANCE_YAML).read_bytes())
        os.replace(part.name, target)
    return home


def open_instance() -> dg.DagsterInstance:
    """The instance at DAGSTER_HOME, as configured by its dagster.yaml (close it, or use it in a `with`)."""
    return dg.DagsterInstance.from_config(str(dagster_home()))
