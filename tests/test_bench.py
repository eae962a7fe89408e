"""`userdebtor bench`: every stage reports seconds, rows/s and memory; the baseline and the goals are there.

No timing is asserted: these tests check the shape of the report, not the speed of this machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from userdebtor_pipeline.bench import (
    GOAL_SCALE,
    MEMORY_GOAL,
    SYNC_STAGES,
    evaluate_goals,
    format_report,
    writes_between,
)
from userdebtor_pipeline.cli import EXIT_BAD_SETUP, EXIT_OK, main

SCALE = 300
MEMORY_KEYS = ("python_peak_rss_mb", "python_maxrss_mb", "postgres_peak_rss_mb", "postgres_peak_pss_mb",
               "peak_total_rss_mb", "peak_total_mb")


def _assert_measured(stage: dict, name: str) -> None:
    assert isinstance(stage["seconds"], float) and stage["seconds"] > 0, name
    assert isinstance(stage["rows_changed"], int) and stage["rows_changed"] >= 0, name
    assert isinstance(stage["rows_per_second"], float) and stage["rows_per_second"] >= 0, name
    memory = stage["memory"]
    for key in MEMORY_KEYS:
        assert key in memory, f"{name}: memory.{key}"
    assert memory["python_peak_rss_mb"] > 0, name
    assert memory["postgres_peak_rss_mb"] > 0, f"{name}: the embedded server's processes were sampled"


@pytest.mark.slow
def test_bench_reports_every_stage_on_a_fresh_embedded_database(tmp_path: Path, embedded_home: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("USERDEBTOR_ERP_URL", "USERDEBTOR_WEB_URL", "USERDEBTOR_CONFIG", "USERDEBTOR_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "report.json"

    status = main(["bench", "--scale", str(SCALE), "--baseline-scale", str(SCALE), "--no-settle",
                   "--home", str(embedded_home), "--out", str(out)])

    assert status == EXIT_OK
    report = json.loads(out.read_text())
    assert report["scale"] == SCALE and report["baseline_scale"] == SCALE
    assert report["database"]["embedded"] is True
    assert list(report["stages"]) == ["seed", *SYNC_STAGES]
    for name, stage in report["stages"].items():
        _assert_measured(stage, name)
    for name in SYNC_STAGES:
        stage = report["stages"][name]
        assert stage["success"], (name, stage["errors"], stage["failed_checks"])
        assert stage["assets"], f"{name}: per-asset seconds"
        assert all(isinstance(a["seconds"], float) for a in stage["assets"].values())
        assert stage["steps"], f"{name}: step durations from the Dagster event log"
        assert stage["memory_by_step"], f"{name}: memory peaks put on the steps that ran at the time"
    assert report["stages"]["initial_sync"]["rows_changed"] > 0

    changes = report["stages"]["full_sync"]["changes_before"]
    assert changes["erp_debtors_changed"] > 0 and changes["web_users_changed"] > 0
    assert changes["pairs_changed_on_both_sides"] >= 1
    assert report["stages"]["full_sync"]["tables_changed"], "the ~1% changes were synced"

    conversions = report["stages"]["conversions_sync"]
    assert conversions["changes_before"]["conversions"] == 10  # N/100, at least 10
    assert isinstance(conversions["conversions_seconds"], float)
    assert sum(conversions["conversion_outcomes"].values()) == 10

    baseline = report["baseline"]
    assert baseline["scale"] == SCALE
    for name in ("seed", "initial_sync", "project_full_sync", "naive"):
        _assert_measured(baseline[name], f"baseline.{name}")
    assert baseline["naive"]["rows_changed"] > 0
    assert isinstance(baseline["speed_ratio"], float)

    assert [g["goal"] for g in report["goals"]] == ["full sync", "changed-since sync", MEMORY_GOAL]
    assert all(isinstance(g["passed"], bool) and g["applies_at_this_scale"] is False for g in report["goals"])

    printed = capsys.readouterr().out
    for word in ("seed", "full_sync", "changed_since_sync", "conversions_sync", "goals", "baseline", "speed ratio"):
        assert word in printed
    # The bench stops the server it started: a second run in the same home starts afresh.
    assert not (embedded_home / "pgdata" / "postmaster.pid").exists()


def test_bench_refuses_databases_that_hold_rows(pipeline_env, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from userdebtor_pipeline.seed import seed_databases

    seed_databases(pipeline_env.erp, pipeline_env.web, debtors=60, users=60)

    status = main(["bench", "--scale", "100", "--out", str(tmp_path / "report.json")])

    assert status == EXIT_BAD_SETUP
    assert "empty databases" in capsys.readouterr().err
    assert not (tmp_path / "report.json").exists()


def test_bench_refuses_a_home_it_did_not_make(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("USERDEBTOR_ERP_URL", "USERDEBTOR_WEB_URL"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "precious"
    home.mkdir()
    (home / "notes.txt").write_text("not the bench's")

    status = main(["bench", "--scale", "100", "--home", str(home), "--out", str(tmp_path / "r.json")])

    assert status == EXIT_BAD_SETUP
    assert "did not make" in capsys.readouterr().err
    assert (home / "notes.txt").exists()


def test_writes_between_counts_only_tables_that_changed() -> None:
    before = {"erp.deb_master": (10, 5, 0), "web.app_user": (3, 3, 3)}
    after = {"erp.deb_master": (12, 9, 1), "web.app_user": (3, 3, 3), "web.customer": (4, 0, 0)}

    assert writes_between(before, after) == {
        "erp.deb_master": {"inserted": 2, "updated": 4, "deleted": 1},
        "web.customer": {"inserted": 4, "updated": 0, "deleted": 0},
    }


def _stage(seconds: float, peak_mb: float, success: bool = True) -> dict:
    return {"seconds": seconds, "rows_changed": 100, "rows_per_second": 100 / seconds, "success": success,
            "memory": {"python_peak_rss_mb": peak_mb / 2, "postgres_peak_rss_mb": peak_mb / 2,
                       "peak_total_rss_mb": peak_mb, "peak_total_mb": peak_mb}, "assets": {}}


def test_goals_pass_and_fail_against_their_limits() -> None:
    stages = {"full_sync": _stage(59.0, 900), "changed_since_sync": _stage(11.0, 1600),
              "conversions_sync": _stage(5.0, 800)}

    goals = {g["goal"]: g for g in evaluate_goals(GOAL_SCALE, stages)}

    assert goals["full sync"]["passed"] is True
    assert goals["changed-since sync"]["passed"] is False
    peak = goals[MEMORY_GOAL]
    assert peak["value"] == 1600 and peak["passed"] is False
    assert all(g["applies_at_this_scale"] for g in goals.values())


def test_a_failed_sync_fails_its_goal_whatever_its_time() -> None:
    stages = {"full_sync": _stage(1.0, 100, success=False), "changed_since_sync": _stage(1.0, 100)}

    goals = {g["goal"]: g["passed"] for g in evaluate_goals(GOAL_SCALE, stages)}

    assert goals["full sync"] is False
    assert goals["changed-since sync"] is True


def test_the_table_names_each_stage_and_marks_each_goal() -> None:
    stages = {"seed": _stage(2.0, 100), "full_sync": _stage(30.0, 900), "changed_since_sync": _stage(12.0, 900)}
    report = {"scale": 1000, "seed": 42, "environment": {"cpus": 2, "postgres": "18"}, "stages": stages,
              "goals": evaluate_goals(1000, stages)}

    table = format_report(report)

    assert "full_sync" in table and "changed_since_sync" in table
    assert "[PASS] full sync" in table
    assert "[FAIL] changed-since sync" in table
    assert "for reference" in table  # the goals are set for N = 1,000,000
