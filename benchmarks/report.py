"""The bench's report: the facts of the machine, the table printed after a run, and the JSON and Markdown files."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy as sa

from benchmarks.goals import GOAL_SCALE, time_factor
from benchmarks.systems import DatabaseUrls, engines


def environment_facts(systems: DatabaseUrls) -> dict[str, Any]:
    _, web = engines(systems)
    facts: dict[str, Any] = {
        "python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    with web.connect() as conn:
        facts["postgres"] = conn.execute(sa.text("SHOW server_version")).scalar_one()
        for setting in ("shared_buffers", "work_mem", "maintenance_work_mem", "synchronous_commit", "max_wal_size"):
            facts[setting] = conn.execute(sa.text(f"SHOW {setting}")).scalar_one()
    try:
        facts["git_commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent, check=False).stdout.strip() or None
    except OSError:
        facts["git_commit"] = None
    return facts


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "not measured"
    digits = 2 if unit == "x" or abs(value) < 10 else 1
    return f"{value:,.{digits}f} {unit}" if unit != "x" else f"{value:,.{digits}f}x"


def goal_cells(goal: Mapping[str, Any]) -> tuple[str, str, str]:
    """The measured figure, the goal at this scale and the verdict, as the table shows them."""
    measured = _number(goal["value"], goal["unit"])
    limit = ("<= " if goal["at_most"] else ">= ") + _number(goal["limit"], goal["unit"])
    if goal["goal"] == "nothing_new":
        measured += f", {_fmt(goal['rows_written'])} rows written"
        limit += f", {goal['rows_limit']} rows"
    if goal["goal"] == "changed_since" and goal.get("changes") is not None:
        measured += f" ({goal['changes']:,} changes)"
    verdict = "PASS" if goal["passed"] else "FAIL"
    return measured, limit, verdict + (f" ({goal['why']})" if goal.get("why") else "")


def goals_header(scale: int) -> str:
    if scale == GOAL_SCALE:
        return f"goals (set for N = {GOAL_SCALE:,}):"
    return (f"goals (set for N = {GOAL_SCALE:,}; this run is N = {scale:,}: the time goals scale linearly, "
            f"x {time_factor(scale):g}; rates, memory and the speed ratio stay):")


def goals_table(report: Mapping[str, Any]) -> list[str]:
    rows = [("stage", "measured", "goal", "PASS/FAIL"), *[(g["stage"], *goal_cells(g)) for g in report["goals"]]]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [goals_header(report["scale"])]
    for i, row in enumerate(rows):
        lines.append("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
                     + "  " + row[3])
        if i == 0:
            lines.append("  " + "-" * (sum(widths) + 2 * len(widths) + len("PASS/FAIL")))
    return lines


def _stage_row(name: str, stage: Mapping[str, Any], top_assets: int) -> str:
    memory = stage["memory"]
    slow = ", ".join(f"{a} {_fmt(v['seconds'])}" for a, v in list(stage.get("assets", {}).items())[:top_assets])
    flag = "" if stage.get("success", True) else "  FAILED"
    postgres = (f"{_fmt(memory.get('postgres_peak_rss_mb'), 0)}/{_fmt(memory.get('postgres_peak_pss_mb'), 0)}/"
                f"{_fmt(memory.get('postgres_largest_backend_rss_mb'), 0)}")
    return (f"{name:<20} {_fmt(stage['seconds']):>9} {_fmt(stage['rows_changed']):>13} "
            f"{_fmt(stage['rows_per_second'], 0):>9} {_fmt(memory['python_peak_rss_mb'], 0):>10} "
            f"{postgres:>18} {_fmt(memory.get('peak_python_plus_backend_mb'), 0):>8}  {slow}{flag}")


def format_report(report: Mapping[str, Any], top_assets: int = 4) -> str:
    """The readable table printed after the run: every stage, then the goals."""
    lines = [f"userdebtor bench: N = {report['scale']:,}  (seed {report['seed']}, "
             f"{report['environment']['cpus']} CPUs, PostgreSQL {report['environment']['postgres']})", ""]
    header = (f"{'stage':<20} {'seconds':>9} {'rows changed':>13} {'rows/s':>9} {'python MB':>10} "
              f"{'pg RSS/PSS/max MB':>18} {'peak MB':>8}  slowest assets (s)")
    lines += [header, "-" * len(header)]
    for name, stage in report["stages"].items():
        lines.append(_stage_row(name, stage, top_assets))
    lines.append(f"{'':<20} (python MB: this process's RSS; pg: the server's RSS summed over its processes / its PSS"
                 " / its largest process's RSS; peak: python RSS + largest pg process RSS at one instant)")
    conversions = report["stages"].get("conversions_sync", {})
    if conversions:
        lines.append(f"conversions: {_fmt(conversions.get('changes_before', {}).get('conversions'))} applied in "
                     f"{_fmt(conversions.get('conversions_seconds'))} s "
                     f"({_fmt(conversions.get('conversions_per_second'), 0)}/s)")
    delivery = report["stages"].get("email_delivery", {})
    if delivery:
        lines.append(f"email delivery: {_fmt(delivery['emails_sent'])} emails in {_fmt(delivery['seconds'])} s "
                     f"({_fmt(delivery['emails_per_second'], 0)}/s) over {delivery['transport']}")
    naive = report["stages"].get("naive_baseline", {})
    if naive:
        sample = (f"its row loop wrote {naive['row_writes_done']:,} of {naive['row_writes_planned']:,} rows and the "
                  "rest is extrapolated" if naive["extrapolated"] else
                  f"every row written ({naive['row_writes_planned']:,})")
        lines.append(f"naive baseline: on a copy of the full reconcile's rows, {sample}; speed ratio (baseline "
                     f"seconds / project seconds): {_fmt(naive['speed_ratio'], 2)} for the whole full reconcile, "
                     f"{_fmt(naive.get('speed_ratio_user_debtor_steps'), 2)} against its user/debtor steps alone")
    if report.get("settle_seconds_waited"):
        lines.append(f"(waited {report['settle_seconds_waited']:,.0f} s before the full reconcile's changes: "
                     "see --no-settle)")
    lines += ["", *goals_table(report)]
    return "\n".join(lines)


def markdown_report(report: Mapping[str, Any]) -> str:
    """The goals table and the stages, as Markdown (written beside the JSON report)."""
    lines = [f"# userdebtor bench, N = {report['scale']:,}", "", goals_header(report["scale"]), "",
             "| stage | measured | goal | PASS/FAIL |", "|---|---|---|---|"]
    lines += [f"| {g['stage']} | " + " | ".join(goal_cells(g)) + " |" for g in report.get("goals", [])]
    lines += ["", "| stage | seconds | rows changed | python MB | largest pg process MB |", "|---|---|---|---|---|"]
    for name, stage in report.get("stages", {}).items():
        memory = stage["memory"]
        lines.append(f"| {name} | {_fmt(stage['seconds'])} | {_fmt(stage['rows_changed'])} | "
                     f"{_fmt(memory['python_peak_rss_mb'], 0)} | "
                     f"{_fmt(memory.get('postgres_largest_backend_rss_mb'), 0)} |")
    return "\n".join(lines) + "\n"


def write_report(out: Path, report: Mapping[str, Any]) -> None:
    """The JSON report at `out`, and once the goals are known, the Markdown table beside it (`.md`)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    if "goals" in report:
        out.with_suffix(".md").write_text(markdown_report(report), encoding="utf-8")
