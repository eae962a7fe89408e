"""`userdebtor bench`: every stage reports seconds, rows/s and memory; the baseline and the goals are there.

No timing is asserted: these tests check the shape of the report, not the speed of this machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from benchmarks.goals import GOAL_SCALE, GOALS, SYNC_STAGES, evaluate_goals
from benchmarks.naive import naive_sync
from benchmarks.report import format_report, markdown_report
from benchmarks.systems import copy_systems, writes_between
from tests.support import one
from userdebtor_pipeline.cli import EXIT_BAD_SETUP, EXIT_OK, main

SCALE = 2_000
MEMORY_KEYS = ("python_peak_rss_mb", "python_maxrss_mb", "postgres_peak_rss_mb", "postgres_peak_pss_mb",
               "peak_total_rss_mb", "peak_total_mb", "postgres_largest_backend_rss_mb", "peak_python_plus_backend_mb")
GOAL_ROWS = ["first load (emails queued, not delivered)", "the run right after the first load, nothing new",
             "changed-since, 1,000 changes", "full reconcile, ~1% changed", "conversions",
             "email delivery (SMTP to a local server)", "peak RSS, Python + largest PostgreSQL backend",
             "naive row-by-row baseline / project, same scope and scale"]


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
def test_bench_reports_every_stage_and_the_goals_table_on_a_fresh_embedded_database(
        tmp_path: Path, embedded_home: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("USERDEBTOR_ERP_URL", "USERDEBTOR_WEB_URL", "USERDEBTOR_CONFIG", "USERDEBTOR_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "report.json"

    status = main(["bench", "--scale", str(SCALE), "--no-settle", "--home", str(embedded_home), "--out", str(out)])

    assert status == EXIT_OK
    report = json.loads(out.read_text())
    assert report["scale"] == SCALE and report["baseline_scale"] == SCALE
    assert report["database"]["embedded"] is True
    assert list(report["stages"]) == ["seed", "initial_sync", "email_delivery", "initial_followup", "full_sync",
                                      "naive_baseline", "changed_since_sync", "conversions_sync"]
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

    delivery = report["stages"]["email_delivery"]
    assert delivery["success"] and delivery["smtp"], delivery
    assert delivery["emails_sent"] > 0, "the first load's emails were queued, then delivered over SMTP"
    assert isinstance(report["stages"]["initial_followup"]["rows_changed"], int)

    changes = report["stages"]["full_sync"]["changes_before"]
    assert changes["erp_debtors_changed"] > 0 and changes["web_users_changed"] > 0
    assert changes["pairs_changed_on_both_sides"] >= 1
    assert report["stages"]["full_sync"]["tables_changed"], "the ~1% changes were synced"

    naive = report["stages"]["naive_baseline"]
    assert naive["rows_changed"] > 0, "the baseline wrote the same changes on its copy"
    assert naive["extrapolated"] is False and naive["row_writes_done"] == naive["row_writes_planned"]
    assert isinstance(naive["speed_ratio"], float)

    conversions = report["stages"]["conversions_sync"]
    assert conversions["changes_before"]["conversions"] == SCALE // 100
    assert isinstance(conversions["conversions_seconds"], float)
    assert sum(conversions["conversion_outcomes"].values()) == SCALE // 100

    goals = report["goals"]
    assert [g["stage"] for g in goals] == GOAL_ROWS
    for goal in goals:
        assert isinstance(goal["value"], int | float), goal
        assert isinstance(goal["passed"], bool), goal
    by_key = {g["goal"]: g for g in goals}
    assert by_key["first_load"]["limit"] == pytest.approx(600 * SCALE / GOAL_SCALE)  # time goals scale with N
    assert by_key["conversions"]["limit"] == 1000 and by_key["memory"]["limit"] == 1024  # rates and memory stay
    assert by_key["nothing_new"]["rows_written"] == report["stages"]["initial_followup"]["rows_changed"]

    printed = capsys.readouterr().out
    for row in ["stage", "measured", "goal", "PASS/FAIL", *GOAL_ROWS]:
        assert row in printed, row
    assert "time goals scale linearly" in printed
    markdown = out.with_suffix(".md").read_text()
    assert "| stage | measured | goal | PASS/FAIL |" in markdown
    assert all(f"| {row} |" in markdown for row in GOAL_ROWS)
    # The bench stops the servers it started: a second run in the same home starts afresh.
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


def test_bench_installed_without_its_checkout_says_where_it_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import userdebtor_pipeline.cli as cli

    monkeypatch.setattr(cli, "__file__", str(tmp_path / "site-packages" / "userdebtor_pipeline" / "cli.py"))

    status = main(["bench", "--scale", "100", "--out", str(tmp_path / "r.json")])

    assert status == EXIT_BAD_SETUP
    assert "runs from a checkout" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_writes_between_counts_only_tables_that_changed() -> None:
    before = {"erp.deb_master": (10, 5, 0), "web.app_user": (3, 3, 3)}
    after = {"erp.deb_master": (12, 9, 1), "web.app_user": (3, 3, 3), "web.customer": (4, 0, 0)}

    assert writes_between(before, after) == {
        "erp.deb_master": {"inserted": 2, "updated": 4, "deleted": 1},
        "web.customer": {"inserted": 4, "updated": 0, "deleted": 0},
    }


def test_the_naive_baseline_writes_its_sample_row_by_row_and_extrapolates_the_rest(pipeline_env) -> None:
    from userdebtor_pipeline.seed import seed_databases
    from userdebtor_pipeline.settings import Settings

    seed_databases(pipeline_env.erp, pipeline_env.web, debtors=60, users=60)

    result = naive_sync(pipeline_env.erp, pipeline_env.web, Settings(), max_row_writes=5)

    assert result["row_writes_planned"] > 5 and result["row_writes_done"] == 5 and result["extrapolated"] is True
    assert result["erp_inserts"] + result["web_inserts"] + result["erp_updates"] + result["web_updates"] >= 1
    assert result["seconds"] >= result["read_and_compare_seconds"] + result["row_loop_seconds"]


def test_the_baseline_runs_on_copies_of_the_tables_it_reads_and_writes(two_databases) -> None:
    """Only erp.deb_master and web.app_user are copied (1.3 GB at a million, not 14 GB of both whole databases), each
    into a scratch database of its own server, and dropped after."""
    from userdebtor_pipeline.db import DatabaseUrls
    from userdebtor_pipeline.seed import seed_databases
    from userdebtor_pipeline.settings import Settings

    seed_databases(two_databases.erp, two_databases.web, debtors=60, users=60)
    systems = DatabaseUrls(two_databases.erp_url, two_databases.web_url)
    copy, scratches = copy_systems(systems, "t1")
    erp, web = (sa.create_engine(url) for url in (copy.erp, copy.web))
    try:
        debtors, users = "SELECT count(*) FROM erp.deb_master", "SELECT count(*) FROM web.app_user"
        assert one(two_databases.erp, debtors) == one(erp, debtors) > 0
        copied_users = one(two_databases.web, users)
        assert copied_users == one(web, users) > 0
        assert one(web, "SELECT count(*) FROM web.favourite") == 0, "the tables the baseline does not read stay empty"

        result = naive_sync(erp, web, Settings(), max_row_writes=1_000)

        assert result["errors"] == 0, "a user the baseline inserts numbers on after the copied ones"
        assert one(web, users) > copied_users
    finally:
        erp.dispose()
        web.dispose()
        for scratch in scratches:
            scratch.drop_all()
    with two_databases.web.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM pg_database WHERE datname LIKE 'udbench_t1%'")).scalar() == 0


def _stage(seconds: float, peak_mb: float, success: bool = True, **extra: object) -> dict:
    return {"seconds": seconds, "rows_changed": 0, "rows_per_second": 0.0, "success": success,
            "memory": {"python_peak_rss_mb": peak_mb / 2, "postgres_peak_rss_mb": peak_mb / 2,
                       "peak_total_rss_mb": peak_mb, "peak_total_mb": peak_mb,
                       "postgres_largest_backend_rss_mb": peak_mb / 2, "peak_python_plus_backend_mb": peak_mb},
            "assets": {}, **extra}


def _stages_at_a_million() -> dict[str, dict]:
    return {
        "initial_sync": _stage(590.0, 900), "initial_followup": _stage(7.5, 900),
        "email_delivery": _stage(50.0, 300, emails_per_second=1200.0, smtp=True, emails_sent=60_000,
                                 transport="SMTP to 127.0.0.1:2525"),
        "full_sync": _stage(61.0, 900),
        "naive_baseline": _stage(700.0, 500, speed_ratio=11.5, extrapolated=False, row_writes_planned=20_000),
        "changed_since_sync": _stage(9.0, 1100, changes_before={"changes": 1000}),
        "conversions_sync": _stage(5.0, 800, conversions_per_second=900.0, conversions_seconds=11.1,
                                   changes_before={"conversions": 10_000}),
    }


def test_goals_pass_and_fail_against_their_limits() -> None:
    goals = {g["goal"]: g for g in evaluate_goals(GOAL_SCALE, _stages_at_a_million())}

    assert [g.key for g in GOALS] == list(goals)
    assert goals["first_load"]["passed"] is True
    assert goals["nothing_new"]["passed"] is True and goals["nothing_new"]["rows_written"] == 0
    assert goals["changed_since"]["passed"] is True and goals["changed_since"]["changes"] == 1000
    assert goals["full_reconcile"]["passed"] is False
    assert goals["conversions"]["passed"] is False
    assert goals["email_delivery"]["passed"] is True
    assert goals["memory"]["value"] == 1100 and goals["memory"]["passed"] is False
    assert goals["naive_ratio"]["passed"] is True


def test_the_run_after_the_first_load_fails_its_goal_when_it_writes_a_row() -> None:
    stages = _stages_at_a_million()
    stages["initial_followup"]["rows_changed"] = 1

    goals = {g["goal"]: g for g in evaluate_goals(GOAL_SCALE, stages)}

    assert goals["nothing_new"]["passed"] is False and goals["nothing_new"]["rows_written"] == 1


def test_a_failed_or_missing_stage_fails_its_goal_whatever_its_figure() -> None:
    stages = _stages_at_a_million()
    stages["initial_sync"]["success"] = False
    del stages["naive_baseline"]
    stages["email_delivery"]["smtp"] = False  # delivered into a Maildir: not the goal's SMTP

    goals = {g["goal"]: g for g in evaluate_goals(GOAL_SCALE, stages)}

    assert goals["first_load"]["passed"] is False and "failed" in goals["first_load"]["why"]
    assert goals["naive_ratio"]["passed"] is False and "not run" in goals["naive_ratio"]["why"]
    assert goals["email_delivery"]["passed"] is False and "SMTP" in goals["email_delivery"]["why"]
    assert goals["memory"]["passed"] is False  # a sync failed


def test_time_goals_scale_linearly_with_n_and_the_others_stay() -> None:
    goals = {g["goal"]: g for g in evaluate_goals(20_000, _stages_at_a_million())}

    assert goals["first_load"]["limit"] == pytest.approx(12.0)
    assert goals["nothing_new"]["limit"] == pytest.approx(0.16)
    assert goals["full_reconcile"]["limit"] == pytest.approx(1.2)
    assert goals["conversions"]["limit"] == 1000 and goals["email_delivery"]["limit"] == 1000
    assert goals["memory"]["limit"] == 1024 and goals["naive_ratio"]["limit"] == 10


def test_the_table_names_each_stage_and_marks_each_goal() -> None:
    stages = _stages_at_a_million()
    report = {"scale": 1000, "seed": 42, "environment": {"cpus": 2, "postgres": "18"}, "stages": stages,
              "goals": evaluate_goals(1000, stages)}

    table = format_report(report)
    markdown = markdown_report(report)

    assert "full_sync" in table and "changed_since_sync" in table
    assert "time goals scale linearly" in table
    for row in GOAL_ROWS:
        assert row in table and f"| {row} |" in markdown
    lines = {line.strip().split("  ")[0]: line for line in table.splitlines()}
    assert lines["conversions"].rstrip().endswith("FAIL")  # 900/s against >= 1,000/s
    assert "PASS" in lines["email delivery (SMTP to a local server)"]
    assert "0 rows written" in lines["the run right after the first load, nothing new"]
