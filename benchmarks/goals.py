"""The goals table: each stage's measured figure against its goal, PASS or FAIL.

The goals are set for a million debtors and a million users. At another scale N the time goals scale linearly
(× N / 1,000,000); the rates, the memory ceiling and the speed ratio stay as they are. A goal whose stage did not
run, or whose sync failed, is a FAIL whatever its figure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

GOAL_SCALE = 1_000_000
SYNC_STAGES = ("initial_sync", "initial_followup", "full_sync", "changed_since_sync", "conversions_sync")
# Stages whose memory counts for the memory goal: every run of the project, and its email delivery.
MEMORY_STAGES = (*SYNC_STAGES, "email_delivery")


@dataclass(frozen=True)
class Goal:
    key: str
    stage: str  # the table's first column
    limit: float  # at GOAL_SCALE
    unit: str
    at_most: bool  # True: the figure must not exceed the limit; False: it must reach it
    scales: bool  # a time goal: scaled linearly with N
    measure: Callable[[Mapping[str, Any]], float | None]
    sources: tuple[str, ...]  # the stages that must have run and succeeded


def _stage(name: str, key: str) -> Callable[[Mapping[str, Any]], float | None]:
    return lambda stages: (stages.get(name) or {}).get(key)


def memory_peak_mb(stages: Mapping[str, Any]) -> float | None:
    """This process's RSS plus the largest PostgreSQL backend's RSS, at one instant, the most in any run."""
    peaks = [stages[s]["memory"].get("peak_python_plus_backend_mb") for s in MEMORY_STAGES if s in stages]
    peaks = [p for p in peaks if p is not None]
    return max(peaks) if peaks else None


def _speed_ratio(stages: Mapping[str, Any]) -> float | None:
    return (stages.get("naive_baseline") or {}).get("speed_ratio")


GOALS = (
    Goal("first_load", "first load (emails queued, not delivered)", 600.0, "s", True, True,
         _stage("initial_sync", "seconds"), ("initial_sync",)),
    Goal("nothing_new", "the run right after the first load, nothing new", 8.0, "s", True, True,
         _stage("initial_followup", "seconds"), ("initial_followup",)),
    Goal("changed_since", "changed-since, 1,000 changes", 10.0, "s", True, True,
         _stage("changed_since_sync", "seconds"), ("changed_since_sync",)),
    Goal("full_reconcile", "full reconcile, ~1% changed", 60.0, "s", True, True,
         _stage("full_sync", "seconds"), ("full_sync",)),
    Goal("conversions", "conversions", 1000.0, "/s", False, False,
         _stage("conversions_sync", "conversions_per_second"), ("conversions_sync",)),
    Goal("email_delivery", "email delivery (SMTP to a local server)", 1000.0, "/s", False, False,
         _stage("email_delivery", "emails_per_second"), ("email_delivery",)),
    Goal("memory", "peak RSS, Python + largest PostgreSQL backend", 1024.0, "MB", True, False,
         memory_peak_mb, SYNC_STAGES),
    Goal("naive_ratio", "naive row-by-row baseline / project, same scope and scale", 10.0, "x", False, False,
         _speed_ratio, ("full_sync", "naive_baseline")),
)
# The run right after the first load must also write nothing to either system.
NOTHING_NEW_ROWS = 0


def time_factor(scale: int) -> float:
    return scale / GOAL_SCALE


def evaluate_goals(scale: int, stages: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per goal: the figure, the limit at this scale, PASS/FAIL and why a FAIL that is not a figure."""
    rows = []
    for goal in GOALS:
        limit = goal.limit * time_factor(scale) if goal.scales else goal.limit
        value = goal.measure(stages)
        missing = [s for s in goal.sources if s not in stages]
        failed = [s for s in goal.sources if s in stages and not stages[s].get("success", False)]
        within = value is not None and (value <= limit if goal.at_most else value >= limit)
        row: dict[str, Any] = {"goal": goal.key, "stage": goal.stage, "value": value, "limit": round(limit, 3),
                               "unit": goal.unit, "at_most": goal.at_most, "scaled": goal.scales}
        if goal.key == "nothing_new":
            rows_written = (stages.get("initial_followup") or {}).get("rows_changed")
            row["rows_written"] = rows_written
            row["rows_limit"] = NOTHING_NEW_ROWS
            within = within and rows_written is not None and rows_written <= NOTHING_NEW_ROWS
        if goal.key == "changed_since":
            row["changes"] = ((stages.get("changed_since_sync") or {}).get("changes_before") or {}).get("changes")
        if goal.key == "email_delivery":
            row["smtp"] = bool((stages.get("email_delivery") or {}).get("smtp"))
            within = within and row["smtp"]
            if "email_delivery" in stages and not row["smtp"]:
                row["why"] = "delivered into a Maildir: SMTP not measured"
        row["passed"] = bool(within and not missing and not failed)
        row.setdefault("why", "not run: " + ", ".join(missing) if missing else
                       "failed: " + ", ".join(failed) if failed else "")
        rows.append(row)
    return rows
