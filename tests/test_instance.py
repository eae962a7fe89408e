"""Every run is a run of the Dagster instance at DAGSTER_HOME: a sync from the terminal is recorded there with its
materializations and check results, so the UI, the schedules and the sensors see the same history."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

# The code location loads once per process, as a code server's does: a retailer named later tags the runs only.
from tests.support import a_finished_and_a_held_run
from userdebtor_pipeline import definitions  # noqa: F401
from userdebtor_pipeline.defs.jobs import SYNC_JOB_NAME
from userdebtor_pipeline.defs.retailer import DEFAULT_RETAILER, RETAILER_ENV, RETAILER_TAG, retailer_name
from userdebtor_pipeline.instance import INSTANCE_YAML, dagster_home, open_instance
from userdebtor_pipeline.instance_storage import OPEN_FILES, EventLogKeepingFilesOpen

PROJECT = Path(__file__).resolve().parent.parent


def _check_evaluations(instance: dg.DagsterInstance, run_id: str) -> dict[str, bool]:
    evaluations = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.event_specific_data
        evaluations[f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"] = evaluation.passed
    return evaluations


def test_dagster_home_defaults_to_userdebtor_home_with_the_projects_instance_yaml(pipeline_env, monkeypatch,
                                                                                   tmp_path) -> None:
    monkeypatch.delenv("DAGSTER_HOME")
    home = dagster_home()
    assert home == (tmp_path / "home" / "dagster").resolve()
    assert (home / INSTANCE_YAML).read_text() == (PROJECT / "deploy" / INSTANCE_YAML).read_text()

    # The installation's own dagster.yaml (say, on PostgreSQL) is never overwritten.
    (home / INSTANCE_YAML).write_text("telemetry:\n  enabled: false\n")
    assert (dagster_home() / INSTANCE_YAML).read_text() == "telemetry:\n  enabled: false\n"


def test_event_log_files_stay_open_and_dagsters_own_storage_reads_them(monkeypatch, tmp_path) -> None:
    """The instance keeps each event log file open (a bounded few at once); what it writes is Dagster's own
    SQLite storage, read back by Dagster's stock classes as if they had written it, and wiped as theirs."""
    home = tmp_path / "dagster"
    monkeypatch.setenv("DAGSTER_HOME", str(home))

    @dg.asset
    def probe() -> int:
        return 1

    with open_instance() as instance:
        storage = instance.event_log_storage
        assert isinstance(storage, EventLogKeepingFilesOpen)
        runs = [dg.materialize([probe], instance=instance).run_id for _ in range(OPEN_FILES + 2)]
        assert 0 < len(storage._open) <= OPEN_FILES
        written = {run_id: len(instance.all_logs(run_id)) for run_id in runs}

    stock_config = tmp_path / "stock"
    stock_config.mkdir()
    (stock_config / INSTANCE_YAML).write_text(f"storage:\n  sqlite:\n    base_dir: {home}\n")
    with dg.DagsterInstance.from_config(str(stock_config)) as stock:
        assert type(stock.event_log_storage).__name__ == "SqliteEventLogStorage"
        assert {run_id: len(stock.all_logs(run_id)) for run_id in runs} == written
        assert all(count > 5 for count in written.values())
        latest = stock.get_latest_materialization_event(dg.AssetKey("probe"))
        assert latest is not None and latest.run_id == runs[-1]

    with open_instance() as instance:
        instance.wipe()
        assert instance.get_latest_materialization_event(dg.AssetKey("probe")) is None
        assert not list((home / "history" / "runs").glob(f"{runs[0]}.db"))


def test_the_ui_finds_no_dagster_yaml_to_ignore() -> None:
    # `dagster dev` warns that a dagster.yaml in its working folder is ignored when DAGSTER_HOME is elsewhere:
    # the project's lives in deploy/ and is copied into DAGSTER_HOME instead.
    assert not (PROJECT / "dagster.yaml").exists()
    assert (PROJECT / "deploy" / INSTANCE_YAML).is_file()


@pytest.mark.slow
def test_terminal_runs_are_runs_of_the_instance_at_dagster_home(pipeline_env, settings_path, monkeypatch) -> None:
    monkeypatch.setenv(RETAILER_ENV, "acme")
    succeeded, held = a_finished_and_a_held_run(pipeline_env, settings_path, "terminal@mail.example", "Terminal Run")
    assert "new_debtors_vetted:template_customer_exists" in held.failed_checks

    # A second process (the UI, the daemon) opening DAGSTER_HOME sees both runs, as they ended.
    with open_instance() as instance:
        records = {r.dagster_run.run_id: r.dagster_run for r in instance.get_run_records(
            filters=dg.RunsFilter(job_name=SYNC_JOB_NAME, run_ids=[succeeded.run_id, held.run_id]))}
        assert set(records) == {succeeded.run_id, held.run_id}
        assert records[succeeded.run_id].status == dg.DagsterRunStatus.SUCCESS
        assert records[held.run_id].status == dg.DagsterRunStatus.FAILURE
        assert records[succeeded.run_id].tags[RETAILER_TAG] == "acme"

        # Materializations and check results, as the asset catalog shows them.
        for asset in succeeded.materializations:
            latest = instance.get_latest_materialization_event(dg.AssetKey.from_user_string(asset))
            assert latest is not None, f"{asset} is not recorded as materialized"
        assert set(_check_evaluations(instance, succeeded.run_id)) == set(succeeded.check_metadata)
        assert _check_evaluations(instance, held.run_id)["new_debtors_vetted:template_customer_exists"] is False


def test_the_retailer_name_is_one_asset_key_part(monkeypatch) -> None:
    monkeypatch.delenv(RETAILER_ENV, raising=False)
    assert retailer_name() == DEFAULT_RETAILER
    monkeypatch.setenv(RETAILER_ENV, " acme_shop ")
    assert retailer_name() == "acme_shop"
    monkeypatch.setenv(RETAILER_ENV, "acme/shop")
    with pytest.raises(ValueError, match="USERDEBTOR_RETAILER must be letters, digits and _ only"):
        retailer_name()
