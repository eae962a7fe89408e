"""One measured sync: its seconds, each asset's and step's seconds, rows it changed, memory."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from benchmarks.memory import MemorySampler
from benchmarks.systems import DatabaseUrls, settled_writes, writes_between


def step_windows(instance: Any, run_id: str) -> dict[str, tuple[float, float]]:
    """When each step of a run (assets and checks) started and ended, from STEP_START / STEP_SUCCESS|FAILURE."""
    started: dict[str, float] = {}
    windows: dict[str, tuple[float, float]] = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or not event.step_key:
            continue
        kind = event.event_type_value
        if kind == "STEP_START":
            started[event.step_key] = record.timestamp
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE") and event.step_key in started:
            windows[event.step_key] = (started[event.step_key], record.timestamp)
    return windows


def step_seconds(instance: Any, run_id: str) -> dict[str, float]:
    """Seconds of each step of a run: the duration Dagster reports, else its window in the event log."""
    windows = step_windows(instance, run_id)
    seconds = {step: round(end - start, 3) for step, (start, end) in windows.items()}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is not None and event.event_type_value == "STEP_SUCCESS" and event.step_key:
            duration = getattr(event.event_specific_data, "duration_ms", None)
            if duration is not None:
                seconds[event.step_key] = round(duration / 1000, 3)
    return seconds


def asset_seconds(materializations: Mapping[str, Mapping[str, Any]], steps: Mapping[str, float]) -> dict[str, dict]:
    """Per asset: its own `seconds` metadata where it reports one, else its step's duration."""
    assets: dict[str, dict] = {}
    for asset, metadata in materializations.items():
        own = metadata.get("seconds")
        if isinstance(own, int | float):
            assets[asset] = {"seconds": round(float(own), 3), "source": "metadata", "step_seconds": steps.get(asset)}
        elif asset in steps:
            assets[asset] = {"seconds": steps[asset], "source": "step", "step_seconds": steps[asset]}
    return dict(sorted(assets.items(), key=lambda item: -item[1]["seconds"]))


def user_debtor_steps() -> set[str]:
    """Steps of the user/debtor sync proper (U1-U7): its two extracts, its plan, checks and loads; what the
    row-by-row baseline also does. The other domains (contacts, orders, ...) and email delivery are left out."""
    import importlib

    names = {"staged_erp_debtors", "staged_web_users"}
    for module in ("plan", "checks", "load"):
        loaded = importlib.import_module(f"userdebtor_pipeline.defs.user_debtor.{module}")
        for definition in [*getattr(loaded, "assets", []), *getattr(loaded, "asset_checks", [])]:
            names.add(definition.node_def.name)
    return names


def rate(rows: int, seconds: float) -> float:
    return round(rows / seconds, 1) if seconds > 0 else 0.0


def _load_average() -> float:
    return round(os.getloadavg()[0], 2)


def _rows_staged(materializations: Mapping[str, Mapping[str, Any]]) -> int:
    return sum(int(m.get("rows_read", 0) or 0) for name, m in materializations.items() if name.startswith("staged_"))


def measured_sync(name: str, systems: DatabaseUrls, sampler: MemorySampler, *, full: bool,
                  lift_change_guard: bool = False) -> dict[str, Any]:
    """Run the sync job once in process and report its time, per-asset times, rows changed, rows/s, memory."""
    import dagster as dg

    from userdebtor_pipeline.runner import run_sync

    before = settled_writes(systems)
    load_before = _load_average()
    instance = dg.DagsterInstance.ephemeral()
    with sampler.window() as peaks:
        started = time.perf_counter()
        outcome = run_sync(full=full, lift_change_guard=lift_change_guard, instance=instance)
        seconds = round(time.perf_counter() - started, 3)
    memory = peaks.as_report()
    after = settled_writes(systems)
    tables = writes_between(before, after)
    rows_changed = sum(sum(delta.values()) for delta in tables.values())
    steps = step_seconds(instance, outcome.run_id)
    staged = _rows_staged(outcome.materializations)
    report = {
        "stage": name,
        "mode": "full" if full else "changed_since",
        "success": outcome.success,
        "seconds": seconds,
        "rows_changed": rows_changed,
        "rows_per_second": rate(rows_changed, seconds),
        "user_debtor_steps_seconds": round(sum(v for k, v in steps.items() if k in user_debtor_steps()), 3),
        "rows_staged": staged,
        "rows_staged_per_second": rate(staged, seconds),
        "memory": memory,
        "memory_by_step": peaks.by_step(step_windows(instance, outcome.run_id)),
        "load_average_1min": {"before": load_before, "after": _load_average()},  # other work on the machine
        "assets": asset_seconds(outcome.materializations, steps),
        "steps": dict(sorted(steps.items(), key=lambda item: -item[1])),
        "tables_changed": tables,
        "failed_checks": outcome.failed_checks,
        "failed_steps": outcome.failed_steps,
        "errors": outcome.errors,
        "materializations": _small_metadata(outcome.materializations),
    }
    progress(f"{name}: {seconds:,.1f} s, {rows_changed:,} rows changed, "
              f"python {memory['python_peak_rss_mb']:,.0f} MB, postgres {memory['postgres_peak_rss_mb'] or 0:,.0f} MB"
              f" RSS / {memory['postgres_peak_pss_mb'] or 0:,.0f} MB PSS"
              + ("" if outcome.success else f", FAILED: {'; '.join(outcome.errors or outcome.failed_checks)[:300]}"))
    return report


def _small_metadata(materializations: Mapping[str, Mapping[str, Any]]) -> dict[str, dict]:
    """The numbers of each materialization (the Markdown samples are left out of the report)."""
    return {
        asset: {k: v for k, v in meta.items()
                if isinstance(v, bool | int | float) or (isinstance(v, str) and len(v) < 80)}
        for asset, meta in materializations.items()
    }


def progress(line: str) -> None:
    print(f"[bench {datetime.now().strftime('%H:%M:%S')}] {line}", flush=True)

