"""`userdebtor bench`: time the integration at scale N on a fresh database, against a row-by-row baseline.

One process, one report. The stages, in order:

1. seed              a fresh database (embedded under a scratch USERDEBTOR_HOME, or empty ones named by the
                     URLs), `init`, then `seed_databases` with N debtors and N users;
2. initial_sync      the first load: `run_sync(full=True, lift_change_guard=True)`;
   initial_followup  the next full run, which completes the first load: pairs matched by email in the first
                     run get their first field sync here (the plan runs before the load that links them);
3. full_sync         ~1% of linked debtors and ~1% of linked users changed (names and phones; a few pairs on
                     both sides, i.e. conflicts), then `run_sync(full=True)`;
4. changed_since     1,000 changes (500 a side), then `run_sync(full=False)`;
5. conversions       N/100 (at least 10) debtor code conversions done "in the ERP" (deb_conversion rows, the old
                     deb_master row gone and a new one under the new code), then `run_sync(full=False)`.

Every sync reports its seconds, the seconds of each asset (the asset's own `seconds` metadata where it has
one, else its step's duration from the Dagster event log), the rows it changed in the two systems (the
inserts, updates and deletes PostgreSQL counted in `erp.*` and `web.*` while it ran), rows per second, and
peak memory: this process (sampled, and getrusage's lifetime maximum) and the PostgreSQL server (the RSS
and PSS of the postmaster and all its children, sampled every 0.2 s in a background thread), with the steps
that ran at the highest samples. The RSS sum counts the shared buffer pool once per backend; the memory goal
therefore takes this process's RSS plus the server's PSS (shared pages split among the processes mapping them).

The baseline is the script a person writes without this project: read `erp.deb_master` and `web.app_user`
whole into pandas, merge on code (then email), compare field by field, and write each changed row with its
own UPDATE/INSERT and commit. It runs at `--baseline-scale` on a fresh seed (first load and follow-up done by
the project, then the same ~1% changes), cloned into two databases so that the baseline and the project's
full sync start from identical rows.

Mail: `--mail deliver` (default) delivers every email into the home's Maildir, as a person's demo would; at a
million that is ~2 million welcome emails, one Python-built MIME file each (hours). `--mail hold` points SMTP at a
closed local port: delivery stops at its first attempt and the emails stay queued (rendering and queueing them is
still timed; delivering them is not).

Waiting ("settle"): an extract re-reads rows stamped up to WATERMARK_OVERLAP (5 minutes) before its
watermark, so a changed-since run within 5 minutes of the first load would re-read that load's million rows.
A scheduled run in steady state does not; so, unless --no-settle, the bench lets the overlap pass between the
first load and the stage-3 changes (the wait is reported, never timed as part of a stage).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from userdebtor_pipeline.masking import error_in_brief, mask_secrets

_log = logging.getLogger(__name__)

MB = 1024 * 1024
MARKER = ".userdebtor-bench"  # a home folder the bench made, and may wipe
SAMPLE_SECONDS = 0.2

# Goals, set for N = 1,000,000.
GOAL_SCALE = 1_000_000
GOAL_FULL_SYNC_SECONDS = 60.0
GOAL_CHANGED_SINCE_SECONDS = 10.0
GOAL_PEAK_MEMORY_MB = 1536.0

CHANGE_FRACTION = 0.01  # stage 3: ~1% of linked pairs on each side
CONFLICT_SHARE = 0.02  # of those, this share is changed on both sides
SMALL_BATCH_PER_SIDE = 500  # stage 4
SYNC_STAGES = ("initial_sync", "initial_followup", "full_sync", "changed_since_sync", "conversions_sync")


class BenchError(RuntimeError):
    """The bench cannot run: a database that is not empty, a home folder that is not the bench's, ..."""


@dataclass
class BenchOptions:
    scale: int
    baseline_scale: int | None = None
    out: Path | None = None
    seed: int = 42
    home: Path | None = None
    settle: bool = True
    mail: str = "deliver"  # deliver (Maildir under the home) | hold (SMTP at a closed port: emails stay queued)
    keep_server: bool = False

    def resolved_baseline_scale(self) -> int:
        return self.baseline_scale if self.baseline_scale is not None else min(self.scale, 20_000)


# ---------------------------------------------------------------------------------------------
# Memory: this process and the PostgreSQL servers, sampled in a background thread
# ---------------------------------------------------------------------------------------------


@dataclass
class MemoryPeaks:
    """Peaks of one stage, and its samples (time, python RSS, postgres PSS) so peaks can be put on steps.

    PostgreSQL's RSS is summed over its processes as asked, but every backend that touched the shared buffer
    pool counts that pool again; PSS shares each page among the processes that map it, so the PSS sum is the
    memory the server really holds. The goal uses this process's RSS plus the server's PSS.
    """

    python_rss: int = 0
    postgres_rss: int = 0
    postgres_pss: int = 0
    total_rss: int = 0  # this process + PostgreSQL RSS, at the same instant
    total: int = 0  # this process RSS + PostgreSQL PSS, at the same instant
    samples: int = 0
    timeline: list[tuple[float, int, int]] = field(default_factory=list)

    def as_report(self) -> dict[str, Any]:
        maxrss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        return {
            "python_peak_rss_mb": round(self.python_rss / MB, 1),
            "python_maxrss_mb": round(maxrss_kb / 1024, 1),
            "postgres_peak_rss_mb": round(self.postgres_rss / MB, 1) if self.samples else None,
            "postgres_peak_pss_mb": round(self.postgres_pss / MB, 1) if self.samples else None,
            "peak_total_rss_mb": round(self.total_rss / MB, 1),
            "peak_total_mb": round(self.total / MB, 1),
            "samples": self.samples,
        }

    def by_step(self, windows: Mapping[str, tuple[float, float]], top: int = 8) -> dict[str, dict[str, float]]:
        """The steps that raised this process's memory most while they ran (its RSS rarely falls back, so the
        step that set a peak is the one that grew it), with the peaks of this process and of the server."""
        peaks: dict[str, dict[str, float]] = {}
        for step, (start, end) in windows.items():
            before = [py for at, py, _ in self.timeline if at <= start]
            inside = [(py, pg) for at, py, pg in self.timeline if start <= at <= end]
            if inside:
                python_peak = max(py for py, _ in inside)
                baseline = before[-1] if before else inside[0][0]
                peaks[step] = {"python_growth_mb": round(max(0, python_peak - baseline) / MB, 1),
                               "python_peak_rss_mb": round(python_peak / MB, 1),
                               "postgres_peak_pss_mb": round(max(pg for _, pg in inside) / MB, 1)}
        ranked = sorted(peaks.items(), key=lambda item: (-item[1]["python_growth_mb"],
                                                         -item[1]["postgres_peak_pss_mb"]))
        return dict(ranked[:top])


class MemorySampler(threading.Thread):
    """Samples RSS of this process and of each PostgreSQL server (postmaster and children) every 0.2 s."""

    def __init__(self, postmaster_pids: list[int], interval: float = SAMPLE_SECONDS) -> None:
        super().__init__(name="bench-memory-sampler", daemon=True)
        self._me = psutil.Process()
        self._postmasters = [psutil.Process(pid) for pid in postmaster_pids]
        self._interval = interval
        self._stop_event = threading.Event()
        self._lock = threading.Lock()
        self._peaks = MemoryPeaks()

    def sample(self) -> None:
        python_rss = self._me.memory_info().rss
        pg_rss = pg_pss = 0
        seen = 0
        for postmaster in self._postmasters:
            try:
                processes = [postmaster, *postmaster.children(recursive=True)]
            except psutil.Error:
                continue
            for process in processes:
                try:
                    info = process.memory_full_info()
                except psutil.Error:  # a backend that ended meanwhile
                    continue
                pg_rss += info.rss
                pg_pss += getattr(info, "pss", info.rss)
                seen += 1
        with self._lock:
            peaks = self._peaks
            peaks.python_rss = max(peaks.python_rss, python_rss)
            if seen:
                peaks.postgres_rss = max(peaks.postgres_rss, pg_rss)
                peaks.postgres_pss = max(peaks.postgres_pss, pg_pss)
                peaks.samples += 1
            peaks.total_rss = max(peaks.total_rss, python_rss + pg_rss)
            peaks.total = max(peaks.total, python_rss + pg_pss)
            peaks.timeline.append((time.time(), python_rss, pg_pss))

    def run(self) -> None:
        while not self._stop_event.wait(self._interval):
            self.sample()

    def stop(self) -> None:
        self._stop_event.set()

    @contextmanager
    def window(self) -> Iterator[MemoryPeaks]:
        """Peaks of one stage: reset at its start, sampled once more at its end (short stages count too)."""
        with self._lock:
            self._peaks = MemoryPeaks()
        self.sample()
        peaks = self._peaks
        yield peaks
        self.sample()


def postmaster_pids(engines: list[Engine]) -> list[int]:
    """The postmaster of each database's server when it runs on this machine (a backend's parent)."""
    pids: set[int] = set()
    for engine in engines:
        try:
            with engine.connect() as conn:
                backend = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            parent = psutil.Process(backend).parent()
        except (psutil.Error, sa.exc.SQLAlchemyError):  # a server on another machine: not sampled
            continue
        if parent is not None and "postgres" in parent.name():
            pids.add(parent.pid)
    return sorted(pids)


# ---------------------------------------------------------------------------------------------
# Rows changed: what PostgreSQL counted in the two systems' tables
# ---------------------------------------------------------------------------------------------

_TABLE_WRITES = sa.text(
    "SELECT schemaname || '.' || relname, n_tup_ins, n_tup_upd, n_tup_del"
    " FROM pg_stat_user_tables WHERE schemaname = ANY(:schemas)"
)


@dataclass(frozen=True)
class Systems:
    """The ERP and web databases the bench measures (maybe one database)."""

    erp_url: str
    web_url: str

    @property
    def same_database(self) -> bool:
        return self.erp_url == self.web_url

    def engines(self) -> tuple[Engine, Engine]:
        from userdebtor_pipeline.db import engine_for

        return engine_for(self.erp_url), engine_for(self.web_url)


def _read_writes(systems: Systems) -> dict[str, tuple[int, int, int]]:
    erp, web = systems.engines()
    targets = [(web, ["erp", "web"])] if systems.same_database else [(erp, ["erp"]), (web, ["web"])]
    counts: dict[str, tuple[int, int, int]] = {}
    for engine, schemas in targets:
        with engine.connect() as conn:
            for table, ins, upd, dele in conn.execute(_TABLE_WRITES, {"schemas": schemas}):
                counts[table] = (int(ins), int(upd), int(dele))
    return counts


def settled_writes(systems: Systems, timeout: float = 6.0) -> dict[str, tuple[int, int, int]]:
    """Table write counters once every backend has flushed them: pools closed, then read until stable."""
    from userdebtor_pipeline.db import dispose_all

    dispose_all()  # a backend flushes its counters when it exits
    deadline = time.monotonic() + timeout
    previous = _read_writes(systems)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        current = _read_writes(systems)
        if current == previous:
            return current
        previous = current
    return previous


def writes_between(before: Mapping[str, tuple[int, int, int]],
                   after: Mapping[str, tuple[int, int, int]]) -> dict[str, dict[str, int]]:
    changed: dict[str, dict[str, int]] = {}
    for table, (ins, upd, dele) in after.items():
        b_ins, b_upd, b_del = before.get(table, (0, 0, 0))
        delta = {"inserted": ins - b_ins, "updated": upd - b_upd, "deleted": dele - b_del}
        if any(delta.values()):
            changed[table] = delta
    return changed


# ---------------------------------------------------------------------------------------------
# One measured sync
# ---------------------------------------------------------------------------------------------


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


def _rate(rows: int, seconds: float) -> float:
    return round(rows / seconds, 1) if seconds > 0 else 0.0


def _load_average() -> float:
    return round(os.getloadavg()[0], 2)


def _rows_staged(materializations: Mapping[str, Mapping[str, Any]]) -> int:
    return sum(int(m.get("rows_read", 0) or 0) for name, m in materializations.items() if name.startswith("staged_"))


def measured_sync(name: str, systems: Systems, sampler: MemorySampler, *, full: bool,
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
        "rows_per_second": _rate(rows_changed, seconds),
        "user_debtor_steps_seconds": round(sum(v for k, v in steps.items() if k in user_debtor_steps()), 3),
        "rows_staged": staged,
        "rows_staged_per_second": _rate(staged, seconds),
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
    _progress(f"{name}: {seconds:,.1f} s, {rows_changed:,} rows changed, "
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


def _progress(line: str) -> None:
    print(f"[bench {datetime.now().strftime('%H:%M:%S')}] {line}", flush=True)


# ---------------------------------------------------------------------------------------------
# Changes made "by the two systems" between syncs, set-based
# ---------------------------------------------------------------------------------------------

# Linked pairs in a fixed, seeded pseudo-random order: the first `erp` are changed in the ERP, the next ones
# (starting `conflicts` before the end of the ERP's) on the web, so `conflicts` pairs change on both sides.
_PICK_LINKED_PAIRS = sa.text("""
SELECT l.user_id, l.dr_cust_code
  FROM userdebtor.user_debtor_link l
 WHERE l.state = 'active'
 ORDER BY md5(l.link_id::text || ':' || CAST(:salt AS text))
 LIMIT :n
""")
_COUNT_LINKED = sa.text("SELECT count(*) FROM userdebtor.user_debtor_link WHERE state = 'active'")

# The ERP's own edit: a name and a phone, stamped as the ERP stamps every change.
_ERP_EDIT = sa.text("""
UPDATE erp.deb_master d
   SET dr_cust_name = d.dr_cust_name || ' (ERP ' || CAST(:tag AS text) || ')',
       dr_phone = '02 ' || lpad((abs(hashtext(d.dr_cust_code || CAST(:tag AS text))) % 10000)::text, 4, '0')
                  || ' ' || lpad((abs(hashtext(CAST(:tag AS text) || d.dr_cust_code)) % 10000)::text, 4, '0'),
       dr_date_last_changed = now()
  FROM unnest(CAST(:codes AS text[])) AS c(code)
 WHERE d.dr_cust_code = c.code
""")

# The website's own edit of a user's name and phone, stamped as the website stamps every change.
_WEB_EDIT = sa.text("""
UPDATE web.app_user u
   SET name = coalesce(u.name, 'Customer') || ' (web ' || CAST(:tag AS text) || ')',
       phone_number = '04' || lpad((abs(hashtext(u.user_id::text || CAST(:tag AS text))) % 100)::text, 2, '0')
                      || ' ' || lpad((abs(hashtext(CAST(:tag AS text) || u.user_id::text)) % 1000000)::text, 6, '0'),
       updated_at = now()
  FROM unnest(CAST(:ids AS bigint[])) AS c(id)
 WHERE u.user_id = c.id
""")


def make_changes(systems: Systems, *, erp_changes: int, web_changes: int, conflicts: int, tag: str,
                 salt: str) -> dict[str, Any]:
    """Change `erp_changes` linked debtors in the ERP and `web_changes` linked users on the web, of which
    `conflicts` pairs on both sides (name and phone, each side to its own value)."""
    erp, web = systems.engines()
    started = time.perf_counter()
    with web.connect() as conn:
        linked = int(conn.execute(_COUNT_LINKED).scalar_one())
        conflicts = min(conflicts, erp_changes, web_changes)
        wanted = min(linked, erp_changes + web_changes - conflicts)
        pairs = conn.execute(_PICK_LINKED_PAIRS, {"salt": salt, "n": wanted}).all()
    erp_pairs = pairs[:erp_changes]
    web_pairs = pairs[max(0, len(erp_pairs) - conflicts):][:web_changes]
    with erp.begin() as conn:
        erp_rows = conn.execute(_ERP_EDIT, {"tag": tag, "codes": [code for _, code in erp_pairs]}).rowcount
    with web.begin() as conn:
        web_rows = conn.execute(_WEB_EDIT, {"tag": tag, "ids": [user_id for user_id, _ in web_pairs]}).rowcount
    both = len({code for _, code in erp_pairs} & {code for _, code in web_pairs})
    return {"linked_pairs": linked, "erp_debtors_changed": erp_rows, "web_users_changed": web_rows,
            "pairs_changed_on_both_sides": both, "seconds": round(time.perf_counter() - started, 3)}


# Conversions done in the ERP: a row in deb_conversion, and the debtor under its new code (the old row gone),
# with its contacts' links and orders moved along, in one transaction as the ERP does.
_CONVERSION_STEPS = (
    """CREATE TEMP TABLE bench_conversion (seq bigint PRIMARY KEY, old_code text NOT NULL UNIQUE,
                                           new_code text NOT NULL UNIQUE) ON COMMIT DROP""",
    """INSERT INTO bench_conversion (seq, old_code, new_code)
       SELECT base.n + o.ord, o.old_code,
              CAST(:prefix AS text) || lpad((base.next + o.ord)::text, 7, '0')
         FROM unnest(CAST(:olds AS text[])) WITH ORDINALITY AS o(old_code, ord)
        CROSS JOIN (SELECT (SELECT coalesce(max(conversion_seq), 0) FROM erp.deb_conversion) AS n,
                           (SELECT coalesce(max(substr(dr_cust_code, length(CAST(:prefix AS text)) + 1)::bigint), 0)
                              FROM erp.deb_master
                             WHERE dr_cust_code ~ ('^' || CAST(:prefix AS text) || '[0-9]{7}$')) AS next) AS base""",
    """INSERT INTO erp.deb_conversion (conversion_seq, old_cust_code, new_cust_code, conversion_date)
       SELECT seq, old_code, new_code, now() FROM bench_conversion""",
    """INSERT INTO erp.deb_master (dr_cust_code, dr_cust_name, dr_cust_type, dr_email, dr_phone, dr_addr_1,
              dr_addr_2, dr_addr_3, dr_addr_4, dr_addr_5, dr_addr_6, dr_postcode, dr_abn, dr_industry_code,
              dr_price_code, dr_tax_code, dr_territory, dr_credit_limit, dr_account_status, dr_date_created,
              dr_date_last_changed)
       SELECT c.new_code, d.dr_cust_name, d.dr_cust_type, d.dr_email, d.dr_phone, d.dr_addr_1, d.dr_addr_2,
              d.dr_addr_3, d.dr_addr_4, d.dr_addr_5, d.dr_addr_6, d.dr_postcode, d.dr_abn, d.dr_industry_code,
              d.dr_price_code, d.dr_tax_code, d.dr_territory, d.dr_credit_limit, d.dr_account_status,
              d.dr_date_created, now()
         FROM erp.deb_master d JOIN bench_conversion c ON c.old_code = d.dr_cust_code""",
    "DELETE FROM erp.deb_master d USING bench_conversion c WHERE d.dr_cust_code = c.old_code",
    """UPDATE erp.crm_contact_account a SET dr_cust_code = c.new_code
         FROM bench_conversion c WHERE a.dr_cust_code = c.old_code""",
    """UPDATE erp.sales_order o SET so_cust_code = c.new_code, so_date_stamp = greatest(o.so_date_stamp, now())
         FROM bench_conversion c WHERE o.so_cust_code = c.old_code""",
)
CONVERSION_PREFIX = "CNV"


def make_conversions(systems: Systems, count: int, salt: str) -> dict[str, Any]:
    """Convert `count` linked debtors (web accounts) to new codes in the ERP."""
    erp, web = systems.engines()
    started = time.perf_counter()
    with web.connect() as conn:
        olds = [code for _, code in conn.execute(_PICK_LINKED_PAIRS, {"salt": salt, "n": count}).all()]
    rows: list[int] = []
    with erp.begin() as conn:
        for statement in _CONVERSION_STEPS:
            rows.append(conn.execute(sa.text(statement), {"olds": olds, "prefix": CONVERSION_PREFIX}).rowcount)
    return {"conversions": rows[2], "debtors_recoded": rows[3], "contact_links_moved": rows[5],
            "orders_moved": rows[6], "seconds": round(time.perf_counter() - started, 3)}


# ---------------------------------------------------------------------------------------------
# The baseline: what a person writes without this project
# ---------------------------------------------------------------------------------------------


def naive_sync(erp: Engine, web: Engine, settings: Any) -> dict[str, int]:
    """Read both sides whole into pandas, merge, compare field by field, write row by row with a commit each.

    Pairs are users of the configured roles and debtors matching the customer master filter, matched by code
    (the user's default account, with the same email), else by email. A changed pair takes the newer side's
    values (there is no record of the last synced values, so no three-way compare). An unmatched user gets a
    debtor, an unmatched debtor a user, each with its own INSERT.
    """
    import pandas as pd

    from userdebtor_pipeline.defs.common import EMAIL_PATTERN
    from userdebtor_pipeline.filters import DEB_MASTER_COLUMNS, filter_columns_of, parse_filter
    from userdebtor_pipeline.settings import field_spec

    user_debtor = settings.user_debtor
    deb_master = sa.table("deb_master", *[sa.column(c) for c in DEB_MASTER_COLUMNS], schema="erp")
    in_scope = sa.func.coalesce(parse_filter(user_debtor.customer_master_filter, filter_columns_of(deb_master)),
                                sa.false())
    with erp.connect() as conn:
        debtors = pd.read_sql(sa.select(deb_master, in_scope.label("in_scope")), conn)
    with web.connect() as conn:
        users = pd.read_sql(sa.text("SELECT * FROM web.app_user"), conn)

    fields = [field_spec(name) for name in user_debtor.sync_fields]
    debtors = debtors[debtors["in_scope"]]
    users = users[users["role"].isin(user_debtor.roles_requiring_erp_account)]
    # The same person on both sides: the user's account is the debtor and the emails agree (other users on
    # that account act for it, e.g. a bookkeeper, and are not its pair).
    by_code = users.merge(debtors, left_on="default_customer_code", right_on="dr_cust_code", how="inner")
    by_code = by_code[by_code["email_address"].str.lower() == by_code["dr_email"].str.lower()]
    unmatched_users = users[users["default_customer_code"].isna()].assign(key=lambda f: f["email_address"].str.lower())
    free_debtors = debtors[~debtors["dr_cust_code"].isin(by_code["dr_cust_code"])].assign(
        key=lambda f: f["dr_email"].str.lower())
    by_email = unmatched_users.merge(free_debtors.drop_duplicates("key"), on="key", how="inner")

    pairs = pd.concat([by_code, by_email], ignore_index=True)
    differs = pd.Series(False, index=pairs.index)
    for spec in fields:
        web_value, erp_value = pairs[spec.user_column], pairs[spec.debtor_column]
        differs |= ~((web_value == erp_value) | (web_value.isna() & erp_value.isna()))
    changed = pairs[differs | pairs["default_customer_code"].isna()]
    web_newer = changed["updated_at"] > changed["dr_date_last_changed"]

    written = {"erp_updates": 0, "web_updates": 0, "erp_inserts": 0, "web_inserts": 0, "errors": 0}
    app_user = sa.table("app_user", *[sa.column(c) for c in (
        "user_id", "email_address", "name", "phone_number", "address1", "address2", "address3", "address4",
        "address5", "address6", "postcode", "abn", "industry_code", "role", "default_customer_code", "status",
        "email_verified", "created_at", "updated_at")], schema="web")

    def plain(value: Any) -> Any:
        return None if value is None or (not isinstance(value, str) and pd.isna(value)) else value

    def write(engine: Engine, statement: Any, counter: str) -> None:
        try:
            with engine.begin() as conn:  # one statement, one commit
                written[counter] += conn.execute(statement).rowcount
        except sa.exc.IntegrityError:
            written["errors"] += 1

    for row in changed[web_newer].itertuples(index=False):
        values = {spec.debtor_column: plain(getattr(row, spec.user_column)) for spec in fields}
        write(erp, sa.update(deb_master).where(deb_master.c.dr_cust_code == row.dr_cust_code)
              .values(**values, dr_date_last_changed=sa.func.now()), "erp_updates")
        if plain(row.default_customer_code) is None:  # matched by email: the user's account is that debtor
            write(web, sa.update(app_user).where(app_user.c.user_id == row.user_id)
                  .values(default_customer_code=row.dr_cust_code, updated_at=sa.func.now()), "web_updates")
    for row in changed[~web_newer].itertuples(index=False):
        values = {spec.user_column: plain(getattr(row, spec.debtor_column)) for spec in fields}
        write(web, sa.update(app_user).where(app_user.c.user_id == row.user_id)
              .values(**values, default_customer_code=row.dr_cust_code, updated_at=sa.func.now()), "web_updates")

    # Users with no debtor: a new debtor each, numbered after the highest code with the prefix.
    email_ok = re.compile(EMAIL_PATTERN)
    lonely_users = unmatched_users[~unmatched_users["user_id"].isin(by_email["user_id"])]
    prefix, width = user_debtor.new_account_prefix, user_debtor.account_number_width
    numbers = debtors["dr_cust_code"].str.extract(f"^{re.escape(prefix)}([0-9]+)$")[0].dropna().astype(int)
    next_number = int(numbers.max()) + 1 if len(numbers) else 1
    for row in lonely_users.itertuples(index=False):
        if not isinstance(row.email_address, str) or not email_ok.match(row.email_address):
            continue
        code = f"{prefix}{next_number:0{width}d}"
        next_number += 1
        write(erp, sa.insert(deb_master).values(
            dr_cust_code=code, dr_cust_name=plain(row.name) or row.email_address, dr_cust_type=prefix,
            dr_email=row.email_address, dr_phone=plain(row.phone_number), dr_addr_1=plain(row.address1),
            dr_addr_2=plain(row.address2), dr_addr_3=plain(row.address3), dr_postcode=plain(row.postcode),
            dr_account_status="A",
            dr_date_created=sa.func.now(), dr_date_last_changed=sa.func.now()), "erp_inserts")
        write(web, sa.update(app_user).where(app_user.c.user_id == row.user_id)
              .values(default_customer_code=code, updated_at=sa.func.now()), "web_updates")

    # Debtors with no user: a new user each, unless that email already logs in.
    with web.connect() as conn:
        logins = set(pd.read_sql(sa.text("SELECT lower(email_address) AS e FROM web.app_user"), conn)["e"])
    lonely_debtors = free_debtors[~free_debtors["dr_cust_code"].isin(by_email["dr_cust_code"])]
    lonely_debtors = lonely_debtors[~lonely_debtors["dr_cust_code"].isin(users["default_customer_code"])]
    for row in lonely_debtors.itertuples(index=False):
        if not isinstance(row.dr_email, str) or not email_ok.match(row.dr_email) or row.key in logins:
            continue
        logins.add(row.key)
        write(web, sa.insert(app_user).values(
            email_address=row.dr_email, name=row.dr_cust_name, phone_number=plain(row.dr_phone),
            address1=plain(row.dr_addr_1), address2=plain(row.dr_addr_2), address3=plain(row.dr_addr_3),
            postcode=plain(row.dr_postcode),
            role=user_debtor.default_role_for_new_users, default_customer_code=row.dr_cust_code, status="Active",
            email_verified=False, created_at=sa.func.now(), updated_at=sa.func.now()), "web_inserts")
    written["pairs_compared"] = len(pairs)
    written["pairs_differing"] = len(changed)
    return written


# ---------------------------------------------------------------------------------------------
# Databases: a fresh embedded server under a scratch home, or empty databases named by the URLs
# ---------------------------------------------------------------------------------------------

_FILLED_STATE = sa.text(
    "SELECT (SELECT count(*) FROM userdebtor.user_debtor_link) + (SELECT count(*) FROM userdebtor.sync_run)"
)


@contextmanager
def environment(**values: str | None) -> Iterator[None]:
    """Set (or with None, remove) environment variables for the block; restore them after."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def default_home(scale: int) -> Path:
    return Path(".userdebtor") / f"bench-{scale}"


def fresh_home(home: Path) -> Path:
    """An empty home for the embedded server. A folder the bench made before is wiped (its server stopped)."""
    home = home.resolve()
    if home.exists() and any(home.iterdir()):
        if not (home / MARKER).exists():
            raise BenchError(f"{home} holds files the bench did not make; give an empty or new --home")
        stop_embedded_server(home / "pgdata")
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    (home / MARKER).write_text("made by `userdebtor bench`; wiped by the next bench run with this home\n")
    return home


def stop_embedded_server(pgdata: Path, timeout: float = 60.0) -> bool:
    """Fast shutdown (SIGINT to its postmaster, by pid) of the embedded server in `pgdata`, if it runs."""
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return False
    try:
        pid = int(pid_file.read_text().split()[0])
        postmaster = psutil.Process(pid)
        if "postgres" not in postmaster.name():
            return False
        postmaster.send_signal(signal.SIGINT)
        postmaster.wait(timeout)
    except (ValueError, IndexError, psutil.NoSuchProcess):
        return False
    except psutil.TimeoutExpired:
        _log.warning("the embedded PostgreSQL in %s did not stop within %.0f s", pgdata, timeout)
        return False
    return True


def refuse_filled(erp: Engine, web: Engine) -> None:
    """Databases named by URLs must be empty: the bench seeds them and measures a first load."""
    from userdebtor_pipeline.seed import SeedError, refuse_filled_tables

    with erp.connect() as erp_conn, web.connect() as web_conn:
        try:
            refuse_filled_tables(erp_conn, web_conn)
        except SeedError as exc:
            raise BenchError(f"the bench needs empty databases: {exc}") from None
        if web_conn.execute(_FILLED_STATE).scalar_one():
            raise BenchError("the bench needs empty databases: the pipeline's state (schema userdebtor) has runs")


def _database_url(server_url: str, database: str) -> str:
    return make_url(server_url).set(database=database).render_as_string(hide_password=False)


class ScratchDatabases:
    """Databases the bench creates on a server for the baseline, and drops again."""

    def __init__(self, server_url: str) -> None:
        self._admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
        self._server_url = server_url
        self.made: list[str] = []

    def create(self, name: str, template: str | None = None, attempts: int = 30) -> str:
        from psycopg import sql

        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement = sql.SQL("{} TEMPLATE {}").format(statement, sql.Identifier(template))
        for attempt in range(attempts):
            try:
                with self._admin.connect() as conn:
                    conn.connection.driver_connection.execute(statement)
                break
            except sa.exc.OperationalError:
                # A template in use (an autovacuum worker, a closing backend) cannot be copied yet.
                if attempt == attempts - 1:
                    raise
                time.sleep(1)
        self.made.append(name)
        return _database_url(self._server_url, name)

    def drop_all(self) -> None:
        from psycopg import sql

        for name in reversed(self.made):
            try:
                with self._admin.connect() as conn:
                    conn.connection.driver_connection.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            except sa.exc.SQLAlchemyError as exc:
                _log.warning("could not drop scratch database %s: %s", name, exc)
        self.made.clear()
        self._admin.dispose()


# ---------------------------------------------------------------------------------------------
# Settings the bench runs with
# ---------------------------------------------------------------------------------------------


def bench_settings_file(home: Path, mail: str) -> Path:
    """Every default, with email into the home's Maildir ('deliver') or held in the outbox ('hold')."""
    path = home / "userdebtor.bench.yaml"
    if mail == "hold":
        port = _closed_local_port()
        text = (f"# written by `userdebtor bench --mail hold`: no mail server listens on port {port}, so delivery\n"
                "# stops at its first attempt and every email stays queued in web.email_outbox.\n"
                f"email:\n  transport: smtp\n  smtp_host: 127.0.0.1\n  smtp_port: {port}\n")
    else:
        text = "# written by `userdebtor bench`: every setting at its default (email into the home's Maildir)\n"
    path.write_text(text, encoding="utf-8")
    return path


def _closed_local_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _seed_keywords(settings: Any) -> dict[str, Any]:
    return {
        "prefix": settings.user_debtor.new_account_prefix,
        "width": settings.user_debtor.account_number_width,
        "template_code": settings.user_debtor.template_customer,
        "cash_code": settings.instant_accounts.cash_account_code,
        "excluded_codes": tuple(settings.instant_accounts.excluded_account_codes),
    }


# ---------------------------------------------------------------------------------------------
# The stages
# ---------------------------------------------------------------------------------------------


def seed_stage(systems: Systems, sampler: MemorySampler, settings: Any, scale: int, seed: int,
               as_of: datetime) -> dict[str, Any]:
    from userdebtor_pipeline.seed import default_conversions, seed_databases

    erp, web = systems.engines()
    with sampler.window() as peaks:
        started = time.perf_counter()
        report = seed_databases(erp, web, debtors=scale, users=scale, seed=seed,
                                conversions=default_conversions(scale), as_of=as_of, **_seed_keywords(settings))
        seconds = round(time.perf_counter() - started, 3)
    rows = sum(report.counts.values())
    _progress(f"seed: {seconds:,.1f} s, {rows:,} rows")
    return {"stage": "seed", "success": True, "seconds": seconds, "rows_changed": rows,
            "rows_per_second": _rate(rows, seconds), "memory": peaks.as_report(), "tables": report.counts}


def _small_batch(scale: int) -> int:
    return max(5, min(SMALL_BATCH_PER_SIDE, scale // 40))


def conversions_wanted(scale: int) -> int:
    return max(10, scale // 100)


def _changes(systems: Systems, linked_fraction: float | None, per_side: int | None, tag: str, salt: str) -> dict:
    _, web = systems.engines()
    with web.connect() as conn:
        linked = int(conn.execute(_COUNT_LINKED).scalar_one())
    count = per_side if per_side is not None else max(1, round(linked * (linked_fraction or 0)))
    conflicts = max(1, round(count * CONFLICT_SHARE))
    return make_changes(systems, erp_changes=count, web_changes=count, conflicts=conflicts, tag=tag, salt=salt)


def wait_for_overlap(since: float, settle: bool) -> float:
    """Let the extract's re-read window pass since `since` (a time.monotonic value); returns seconds waited."""
    from userdebtor_pipeline.defs.extract.staging import WATERMARK_OVERLAP

    if not settle:
        return 0.0
    remaining = since + WATERMARK_OVERLAP.total_seconds() + 5 - time.monotonic()
    if remaining <= 0:
        return 0.0
    _progress(f"settle: waiting {remaining:,.0f} s so that the first load leaves the extracts' "
              f"{WATERMARK_OVERLAP.total_seconds():.0f} s re-read window (--no-settle skips this)")
    time.sleep(remaining)
    return round(remaining, 1)


def main_stages(systems: Systems, sampler: MemorySampler, settings: Any, opts: BenchOptions, as_of: datetime,
                stages: dict[str, dict], notes: dict[str, Any], checkpoint: Callable[[], None]) -> None:
    """The stages at N, each added to `stages` as it ends (and `checkpoint` called: a long run leaves a trace)."""
    n = opts.scale
    stages["seed"] = seed_stage(systems, sampler, settings, n, opts.seed, as_of)
    checkpoint()
    stages["initial_sync"] = measured_sync("initial_sync", systems, sampler, full=True, lift_change_guard=True)
    checkpoint()
    stages["initial_followup"] = measured_sync("initial_followup", systems, sampler, full=True,
                                               lift_change_guard=True)
    checkpoint()
    first_load_done = time.monotonic()
    notes["settle_seconds_waited"] = wait_for_overlap(first_load_done, opts.settle)

    changes = _changes(systems, CHANGE_FRACTION, None, tag="s3", salt=f"{opts.seed}:s3")
    stages["full_sync"] = measured_sync("full_sync", systems, sampler, full=True)
    stages["full_sync"]["changes_before"] = changes
    checkpoint()

    changes = _changes(systems, None, _small_batch(n), tag="s4", salt=f"{opts.seed}:s4")
    stages["changed_since_sync"] = measured_sync("changed_since_sync", systems, sampler, full=False)
    stages["changed_since_sync"]["changes_before"] = changes
    checkpoint()

    conversions = make_conversions(systems, conversions_wanted(n), salt=f"{opts.seed}:s5")
    stage = measured_sync("conversions_sync", systems, sampler, full=False)
    stage["changes_before"] = conversions
    applied = stage["materializations"].get("customer_conversions_applied", {})
    stage["conversions_seconds"] = applied.get("seconds")
    stage["conversions_per_second"] = _rate(conversions["conversions"], applied.get("seconds") or 0.0)
    stage["conversion_outcomes"] = {k: applied.get(k) for k in ("converted", "merged", "skipped", "failed")}
    stages["conversions_sync"] = stage


def baseline_stage(systems: Systems, sampler: MemorySampler, settings: Any, opts: BenchOptions,
                   as_of: datetime) -> dict[str, Any]:
    """At the baseline scale: a fresh seed, the project's first load, ~1% changes; then, on identical copies,
    the project's full sync and the row-by-row baseline."""
    from userdebtor_pipeline.db import dispose_all, engine_for
    from userdebtor_pipeline.schema import init_databases

    m = opts.resolved_baseline_scale()
    scratch = ScratchDatabases(systems.web_url)
    tag = uuid.uuid4().hex[:8]
    result: dict[str, Any] = {"scale": m}
    try:
        prepared_url = scratch.create(f"udbench_{tag}_project")
        prepared = Systems(prepared_url, prepared_url)
        init_databases(engine_for(prepared_url), engine_for(prepared_url))
        with environment(USERDEBTOR_ERP_URL=prepared_url, USERDEBTOR_WEB_URL=prepared_url):
            result["seed"] = seed_stage(prepared, sampler, settings, m, opts.seed, as_of)
            result["initial_sync"] = measured_sync("baseline: initial_sync", prepared, sampler, full=True,
                                                   lift_change_guard=True)
            result["initial_followup"] = measured_sync("baseline: initial_followup", prepared, sampler, full=True,
                                                       lift_change_guard=True)
            result["changes"] = _changes(prepared, CHANGE_FRACTION, None, tag="b3", salt=f"{opts.seed}:s3")
            dispose_all()  # a database in use cannot be copied
            naive_url = scratch.create(f"udbench_{tag}_naive", template=f"udbench_{tag}_project")
            result["project_full_sync"] = measured_sync("baseline: project full_sync", prepared, sampler, full=True)
        naive_systems = Systems(naive_url, naive_url)
        before = settled_writes(naive_systems)
        erp, web = naive_systems.engines()
        with sampler.window() as peaks:
            started = time.perf_counter()
            written = naive_sync(erp, web, settings)
            seconds = round(time.perf_counter() - started, 3)
        tables = writes_between(before, settled_writes(naive_systems))
        rows = sum(sum(delta.values()) for delta in tables.values())
        result["naive"] = {"stage": "baseline: naive", "success": True, "seconds": seconds, "rows_changed": rows,
                           "rows_per_second": _rate(rows, seconds), "memory": peaks.as_report(),
                           "writes": written, "tables_changed": tables}
        _progress(f"baseline: naive row by row: {seconds:,.1f} s, {rows:,} rows changed")
        project = result["project_full_sync"]["seconds"]
        result["speed_ratio"] = round(seconds / project, 2) if project else None
        # Like for like: only the project's user/debtor steps, which is all the baseline does.
        steps = result["project_full_sync"]["user_debtor_steps_seconds"]
        result["speed_ratio_user_debtor_steps"] = round(seconds / steps, 2) if steps else None
    finally:
        dispose_all()
        scratch.drop_all()
    return result


# ---------------------------------------------------------------------------------------------
# Goals, report, table
# ---------------------------------------------------------------------------------------------


MEMORY_GOAL = "peak memory (python RSS + postgres PSS, any sync)"


def sync_memory_peak_mb(stages: Mapping[str, dict]) -> float:
    """The most memory (this process's RSS + the server's PSS, at one instant) seen during any sync at N."""
    return max((stages[s]["memory"]["peak_total_mb"] for s in SYNC_STAGES if s in stages), default=0.0)


def evaluate_goals(scale: int, stages: Mapping[str, dict]) -> list[dict[str, Any]]:
    applies = scale >= GOAL_SCALE
    goals = [
        ("full sync", "full_sync", stages["full_sync"]["seconds"], GOAL_FULL_SYNC_SECONDS, "s"),
        ("changed-since sync", "changed_since_sync", stages["changed_since_sync"]["seconds"],
         GOAL_CHANGED_SINCE_SECONDS, "s"),
        (MEMORY_GOAL, None, sync_memory_peak_mb(stages), GOAL_PEAK_MEMORY_MB, "MB"),
    ]
    return [
        {"goal": name, "stage": stage, "value": value, "limit": limit, "unit": unit,
         # A timing counts only if its own sync went through; the memory peak, only if every sync did.
         "passed": bool(value < limit and (stages[stage]["success"] if stage else
                                           all(stages[s]["success"] for s in SYNC_STAGES if s in stages))),
         "applies_at_this_scale": applies}
        for name, stage, value, limit, unit in goals
    ]


def environment_facts(systems: Systems) -> dict[str, Any]:
    _, web = systems.engines()
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


def format_report(report: Mapping[str, Any], top_assets: int = 4) -> str:
    """The readable table printed after the run."""
    lines = [f"userdebtor bench: N = {report['scale']:,}  (seed {report['seed']}, "
             f"{report['environment']['cpus']} CPUs, PostgreSQL {report['environment']['postgres']})", ""]
    header = (f"{'stage':<20} {'seconds':>9} {'rows changed':>13} {'rows/s':>9} {'python MB':>10} "
              f"{'pg RSS/PSS MB':>14} {'peak MB':>8}  slowest assets (s)")
    lines += [header, "-" * len(header)]

    def row(name: str, stage: Mapping[str, Any]) -> str:
        memory = stage["memory"]
        slow = ", ".join(f"{a} {_fmt(v['seconds'])}" for a, v in list(stage.get("assets", {}).items())[:top_assets])
        flag = "" if stage.get("success", True) else "  FAILED"
        postgres = f"{_fmt(memory.get('postgres_peak_rss_mb'), 0)}/{_fmt(memory.get('postgres_peak_pss_mb'), 0)}"
        return (f"{name:<20} {_fmt(stage['seconds']):>9} {_fmt(stage['rows_changed']):>13} "
                f"{_fmt(stage['rows_per_second'], 0):>9} {_fmt(memory['python_peak_rss_mb'], 0):>10} "
                f"{postgres:>14} {_fmt(memory.get('peak_total_mb'), 0):>8}  {slow}{flag}")

    for name, stage in report["stages"].items():
        lines.append(row(name, stage))
    conversions = report["stages"].get("conversions_sync", {})
    if conversions:
        lines.append(f"{'':<20} conversions: {_fmt(conversions['changes_before']['conversions'])} applied in "
                     f"{_fmt(conversions.get('conversions_seconds'))} s "
                     f"({_fmt(conversions.get('conversions_per_second'), 0)}/s)")
    lines.append(f"{'':<20} (python MB: this process's RSS; pg: the server's RSS summed over its processes / its PSS;"
                 " peak: python RSS + pg PSS at one instant)")
    if report.get("settle_seconds_waited"):
        lines.append(f"(waited {report['settle_seconds_waited']:,.0f} s before the stage-3 changes: see --no-settle)")
    lines.append("")
    lines.append(f"goals (set for N = {GOAL_SCALE:,}"
                 + ("" if report["scale"] >= GOAL_SCALE else f"; this run is N = {report['scale']:,}, for reference")
                 + "):")
    for goal in report["goals"]:
        verdict = "PASS" if goal["passed"] else "FAIL"
        lines.append(f"  [{verdict}] {goal['goal']:<50} {_fmt(goal['value'])} {goal['unit']} "
                     f"(limit {_fmt(goal['limit'])} {goal['unit']})")
    baseline = report.get("baseline")
    if baseline and "naive" in baseline:
        lines.append("")
        lines.append(f"baseline at {baseline['scale']:,} (same data shape, ~1% changes a side):")
        lines.append(row("  naive row-by-row", baseline["naive"]))
        lines.append(row("  project full sync", baseline["project_full_sync"]))
        steps = baseline["project_full_sync"].get("user_debtor_steps_seconds")
        lines.append(f"  speed ratio (baseline seconds / project seconds): {_fmt(baseline['speed_ratio'], 2)} for the "
                     f"whole sync, {_fmt(baseline.get('speed_ratio_user_debtor_steps'), 2)} against the project's "
                     f"user/debtor steps alone ({_fmt(steps)} s)")
    elif baseline and "error" in baseline:
        lines.append(f"baseline: not run: {baseline['error']}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------


@dataclass
class _Setup:
    embedded_pgdata: Path | None  # None: both databases come from the URLs
    home: Path
    env: dict[str, str | None] = field(default_factory=dict)


def _prepare(opts: BenchOptions) -> _Setup:
    from userdebtor_pipeline.db import ERP_URL_ENV, WEB_URL_ENV

    external = bool(os.environ.get(ERP_URL_ENV) and os.environ.get(WEB_URL_ENV))
    if external:
        home = (opts.home or Path(os.environ.get("USERDEBTOR_HOME", ".userdebtor"))).resolve()
        home.mkdir(parents=True, exist_ok=True)
    else:
        home = fresh_home(opts.home or default_home(opts.scale))
    env: dict[str, str | None] = {"USERDEBTOR_HOME": str(home)}
    if not os.environ.get("USERDEBTOR_CONFIG"):
        env["USERDEBTOR_CONFIG"] = str(bench_settings_file(home, opts.mail))
    return _Setup(embedded_pgdata=None if external else home / "pgdata", home=home, env=env)


def run_bench(opts: BenchOptions) -> dict[str, Any]:
    """Run every stage and return the report (also written to opts.out as JSON)."""
    from userdebtor_pipeline.db import DatabaseError, check_reachable, dispose_all, engine_for, resolve_urls
    from userdebtor_pipeline.schema import init_databases
    from userdebtor_pipeline.settings import load_settings

    if opts.scale < 50:
        raise BenchError("--scale must be at least 50")
    if opts.resolved_baseline_scale() < 50:
        raise BenchError("--baseline-scale must be at least 50")
    out = opts.out or Path(f"bench-{opts.scale}.json")
    setup = _prepare(opts)
    started_at = datetime.now(UTC)
    report: dict[str, Any] = {"scale": opts.scale, "baseline_scale": opts.resolved_baseline_scale(),
                              "seed": opts.seed, "started_at": started_at.isoformat(), "home": str(setup.home),
                              "mail": opts.mail, "settle": opts.settle}
    sampler: MemorySampler | None = None
    with environment(**setup.env):
        try:
            try:
                urls = resolve_urls()
                erp, web = engine_for(urls.erp), engine_for(urls.web)
                check_reachable(erp, "ERP")
                check_reachable(web, "web")
            except DatabaseError as exc:
                raise BenchError(str(exc)) from None
            systems = Systems(urls.erp, urls.web)
            where = f"embedded PostgreSQL in {setup.embedded_pgdata}" if setup.embedded_pgdata else "the URLs"
            _progress(f"databases: {where}; home {setup.home}")
            init_databases(erp, web)
            refuse_filled(erp, web)
            settings = load_settings()
            report["settings_file"] = os.environ.get("USERDEBTOR_CONFIG")
            report["database"] = {"embedded": setup.embedded_pgdata is not None,
                                  "pgdata": str(setup.embedded_pgdata) if setup.embedded_pgdata else None,
                                  "same_database": systems.same_database}
            report["environment"] = environment_facts(systems)
            pids = postmaster_pids([erp, web])
            report["database"]["sampled_postmaster_pids"] = pids
            sampler = MemorySampler(pids)
            sampler.start()
            # The same day's rows for every seed of this run (the seed counts dates back from `as_of`).
            as_of = started_at.replace(hour=0, minute=0, second=0, microsecond=0)
            stages: dict[str, dict] = {}
            notes: dict[str, Any] = {}
            report["stages"] = stages
            try:
                main_stages(systems, sampler, settings, opts, as_of, stages, notes, lambda: _write(out, report))
            except Exception as exc:
                report["error"] = mask_secrets(f"{type(exc).__name__}: {exc}")
                _write(out, report)  # what was measured before it broke
                raise
            report.update(notes)
            report["goals"] = evaluate_goals(opts.scale, stages)
            _write(out, report)  # the numbers at N survive a baseline that fails
            try:
                report["baseline"] = baseline_stage(systems, sampler, settings, opts, as_of)
            except (sa.exc.SQLAlchemyError, BenchError) as exc:
                report["baseline"] = {"scale": opts.resolved_baseline_scale(), "error": error_in_brief(str(exc))}
                _progress(f"baseline: not run: {report['baseline']['error']}")
        finally:
            if sampler is not None:
                sampler.stop()
            dispose_all()
            if setup.embedded_pgdata is not None and not opts.keep_server:
                stop_embedded_server(setup.embedded_pgdata)
    report["finished_at"] = datetime.now(UTC).isoformat()
    report["out"] = str(out.resolve())
    _write(out, report)
    return report


def _write(out: Path, report: Mapping[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")


def all_syncs_succeeded(report: Mapping[str, Any]) -> bool:
    stages = list(report.get("stages", {}).values())
    baseline = report.get("baseline") or {}
    stages += [baseline[k] for k in ("initial_sync", "initial_followup", "project_full_sync") if k in baseline]
    return all(stage.get("success", False) for stage in stages)


def print_report(report: Mapping[str, Any], stream: Any = None) -> None:
    print(format_report(report), file=stream or sys.stdout)
    print(f"\nreport: {report.get('out')}", file=stream or sys.stdout)


__all__ = [
    "BenchError",
    "BenchOptions",
    "all_syncs_succeeded",
    "format_report",
    "naive_sync",
    "print_report",
    "run_bench",
]
