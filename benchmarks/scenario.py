"""`userdebtor bench`: time the integration at scale N on a fresh database, beside a row-by-row baseline.

One process, one report. The stages, in order:

1. seed               a fresh database (embedded under a scratch USERDEBTOR_HOME, or empty ones named by the
                      URLs), `init`, then `seed_databases` with N debtors and N users;
2. initial_sync       the first load, `run_sync(full=True, lift_change_guard=True)`; its emails stay queued (no
                      SMTP server listens yet), so it is timed without delivering them;
3. email_delivery     a local SMTP server starts and the whole outbox is delivered to it, timed (see mail.py);
4. initial_followup   the run right after the first load, with nothing new, as the change sensor starts it
                      (`run_sync(full=False)`, inside the extracts' re-read window): its seconds and the rows
                      it wrote in `erp.*` and `web.*` (PostgreSQL's insert/update/delete counters);
5. full_sync          ~1% of linked debtors and ~1% of linked users changed (names and phones; a few pairs on
                      both sides, i.e. conflicts), then the full reconcile, `run_sync(full=True)`;
   naive_baseline     the row-by-row baseline (naive.py) on a copy of the tables it reads and writes, taken
                      just before the full reconcile: the same rows, scope and scale;
6. changed_since_sync 1,000 changes (500 a side; N/40 a side below N = 20,000, at least 5), then
                      `run_sync(full=False)`;
7. conversions_sync   N/100 (at least 10) debtor code conversions done "in the ERP", then `run_sync(full=False)`.

The goals table (goals.py) closes the report. Waiting ("settle"): an extract re-reads rows stamped up to
WATERMARK_OVERLAP (5 minutes) before its watermark; a scheduled run in steady state does not, so unless
--no-settle the bench lets the overlap pass after the first load (the wait is reported, never timed).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from benchmarks.changes import COUNT_LINKED, make_changes, make_conversions
from benchmarks.goals import SYNC_STAGES, evaluate_goals
from benchmarks.mail import LocalSmtpServer, bench_settings_file, delivery_stage, free_local_port, smtp_server_available
from benchmarks.measure import measured_sync, progress, rate
from benchmarks.memory import MemorySampler, postmaster_pids
from benchmarks.naive import DEFAULT_MAX_ROW_WRITES, naive_sync
from benchmarks.report import environment_facts, format_report, write_report
from benchmarks.systems import (
    BenchError,
    DatabaseUrls,
    copy_systems,
    default_home,
    engines,
    environment,
    fresh_home,
    refuse_filled,
    settled_writes,
    stop_embedded_server,
    writes_between,
)

CHANGE_FRACTION = 0.01  # the full reconcile: ~1% of linked pairs on each side
CONFLICT_SHARE = 0.02  # of those, this share is changed on both sides
SMALL_BATCH_PER_SIDE = 500  # changed-since: 500 a side at a million


@dataclass
class BenchOptions:
    scale: int
    baseline_sample: int = DEFAULT_MAX_ROW_WRITES  # the naive baseline's row loop writes at most this many rows
    out: Path | None = None
    seed: int = 42
    home: Path | None = None
    settle: bool = True
    mail: str = "deliver"  # deliver (to a local SMTP server after the first load) | hold (emails stay queued)
    keep_server: bool = False


@dataclass
class _Setup:
    embedded_pgdata: Path | None  # None: both databases come from the URLs
    home: Path
    smtp: LocalSmtpServer | None  # the local SMTP server the delivery stage starts
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
    smtp = None
    if not os.environ.get("USERDEBTOR_CONFIG"):  # the bench's own settings: email over SMTP to a local port
        port = free_local_port()
        env["USERDEBTOR_CONFIG"] = str(bench_settings_file(home, port))
        if opts.mail == "deliver" and smtp_server_available():
            smtp = LocalSmtpServer(port)
    return _Setup(embedded_pgdata=None if external else home / "pgdata", home=home, smtp=smtp, env=env)


def _seed_keywords(settings: Any) -> dict[str, Any]:
    return {
        "prefix": settings.user_debtor.new_account_prefix,
        "width": settings.user_debtor.account_number_width,
        "template_code": settings.user_debtor.template_customer,
        "cash_code": settings.instant_accounts.cash_account_code,
        "excluded_codes": tuple(settings.instant_accounts.excluded_account_codes),
    }


def seed_stage(systems: DatabaseUrls, sampler: MemorySampler, settings: Any, scale: int, seed: int,
               as_of: datetime) -> dict[str, Any]:
    from userdebtor_pipeline.seed import default_conversions, seed_databases

    erp, web = engines(systems)
    with sampler.window() as peaks:
        started = time.perf_counter()
        report = seed_databases(erp, web, debtors=scale, users=scale, seed=seed,
                                conversions=default_conversions(scale), as_of=as_of, **_seed_keywords(settings))
        seconds = round(time.perf_counter() - started, 3)
    rows = sum(report.counts.values())
    progress(f"seed: {seconds:,.1f} s, {rows:,} rows")
    return {"stage": "seed", "success": True, "seconds": seconds, "rows_changed": rows,
            "rows_per_second": rate(rows, seconds), "memory": peaks.as_report(), "tables": report.counts}


def small_batch(scale: int) -> int:
    return max(5, min(SMALL_BATCH_PER_SIDE, scale // 40))


def conversions_wanted(scale: int) -> int:
    return max(10, scale // 100)


def _changes(systems: DatabaseUrls, linked_fraction: float | None, per_side: int | None, tag: str, salt: str) -> dict:
    _, web = engines(systems)
    with web.connect() as conn:
        linked = int(conn.execute(COUNT_LINKED).scalar_one())
    count = per_side if per_side is not None else max(1, round(linked * (linked_fraction or 0)))
    conflicts = max(1, round(count * CONFLICT_SHARE))
    changes = make_changes(systems, erp_changes=count, web_changes=count, conflicts=conflicts, tag=tag, salt=salt)
    return {**changes, "changes": changes["erp_debtors_changed"] + changes["web_users_changed"]}


def wait_for_overlap(since: float, settle: bool) -> float:
    """Let the extract's re-read window pass since `since` (a time.monotonic value); returns seconds waited."""
    from userdebtor_pipeline.defs.extract.staging import WATERMARK_OVERLAP

    if not settle:
        return 0.0
    remaining = since + WATERMARK_OVERLAP.total_seconds() + 5 - time.monotonic()
    if remaining <= 0:
        return 0.0
    progress(f"settle: waiting {remaining:,.0f} s so that the first load leaves the extracts' "
             f"{WATERMARK_OVERLAP.total_seconds():.0f} s re-read window (--no-settle skips this)")
    time.sleep(remaining)
    return round(remaining, 1)


def _naive_sync(copy: DatabaseUrls, settings: Any, max_row_writes: int) -> dict[str, Any]:
    erp, web = engines(copy)
    return naive_sync(erp, web, settings, max_row_writes)


def _naive_in_child(copy: DatabaseUrls, settings: Any, max_row_writes: int) -> dict[str, Any]:
    """The baseline in a process of its own: its whole-table frames would otherwise stay in this process's
    memory (the allocator keeps freed pages) and count against the project's runs measured after it."""
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as child:
        return child.submit(_naive_sync, copy, settings, max_row_writes).result()


def naive_stage(copy: DatabaseUrls, sampler: MemorySampler, settings: Any, max_row_writes: int,
                project: Mapping[str, Any]) -> dict[str, Any]:
    """The row-by-row baseline on the copy, against the project's full reconcile of the same rows."""
    before = settled_writes(copy)
    with sampler.window() as peaks:
        written = _naive_in_child(copy, settings, max_row_writes)
    tables = writes_between(before, settled_writes(copy))
    rows = sum(sum(delta.values()) for delta in tables.values())
    seconds = written["seconds"]
    steps = project.get("user_debtor_steps_seconds")
    progress(f"naive_baseline: {seconds:,.1f} s" + (" (extrapolated)" if written["extrapolated"] else "")
             + f", {rows:,} rows changed")
    return {"stage": "naive_baseline", "success": True, "seconds": seconds, "rows_changed": rows,
            "rows_per_second": rate(rows, seconds), "memory": peaks.as_report(), "tables_changed": tables,
            **{k: v for k, v in written.items() if k != "seconds"},
            "speed_ratio": round(seconds / project["seconds"], 2) if project["seconds"] else None,
            "speed_ratio_user_debtor_steps": round(seconds / steps, 2) if steps else None}


def full_reconcile_beside_baseline(systems: DatabaseUrls, sampler: MemorySampler, settings: Any, opts: BenchOptions,
                                   stages: dict[str, dict], notes: dict[str, Any]) -> None:
    """~1% changes, a copy of the baseline's tables, the project's full reconcile, then the baseline on the copy."""
    from userdebtor_pipeline.db import dispose_all

    changes = _changes(systems, CHANGE_FRACTION, None, tag="s3", salt=f"{opts.seed}:s3")
    scratches = []
    try:
        try:
            copy, scratches = copy_systems(systems, uuid.uuid4().hex[:8])
        except sa.exc.SQLAlchemyError as exc:
            from userdebtor_pipeline.masking import error_in_brief

            copy, notes["naive_baseline_error"] = None, error_in_brief(str(exc))
            progress(f"naive_baseline: not run: {notes['naive_baseline_error']}")
        stages["full_sync"] = measured_sync("full_sync", systems, sampler, full=True)
        stages["full_sync"]["changes_before"] = changes
        if copy is not None:
            stages["naive_baseline"] = naive_stage(copy, sampler, settings, opts.baseline_sample, stages["full_sync"])
    finally:
        dispose_all()
        for scratch in scratches:
            scratch.drop_all()


def main_stages(systems: DatabaseUrls, sampler: MemorySampler, settings: Any, opts: BenchOptions, setup: _Setup,
                as_of: datetime, stages: dict[str, dict], notes: dict[str, Any],
                checkpoint: Callable[[], None]) -> None:
    """The stages at N, each added to `stages` as it ends (and `checkpoint` called: a long run leaves a trace)."""
    n = opts.scale
    stages["seed"] = seed_stage(systems, sampler, settings, n, opts.seed, as_of)
    checkpoint()
    stages["initial_sync"] = measured_sync("initial_sync", systems, sampler, full=True, lift_change_guard=True)
    checkpoint()
    first_load_done = time.monotonic()
    if opts.mail == "deliver":
        if setup.smtp is None and "USERDEBTOR_CONFIG" in setup.env:  # no aiosmtpd: the bench's Maildir instead
            bench_settings_file(setup.home, 0, transport="maildir")
        stages["email_delivery"] = delivery_stage(systems, sampler, setup.home, setup.smtp)
        checkpoint()
    # What the change sensor starts 30 s after the first load: a changed-since run, inside the re-read window.
    stages["initial_followup"] = measured_sync("initial_followup", systems, sampler, full=False)
    checkpoint()
    notes["settle_seconds_waited"] = wait_for_overlap(first_load_done, opts.settle)
    full_reconcile_beside_baseline(systems, sampler, settings, opts, stages, notes)
    checkpoint()

    changes = _changes(systems, None, small_batch(n), tag="s4", salt=f"{opts.seed}:s4")
    stages["changed_since_sync"] = measured_sync("changed_since_sync", systems, sampler, full=False)
    stages["changed_since_sync"]["changes_before"] = changes
    checkpoint()

    conversions = make_conversions(systems, conversions_wanted(n), salt=f"{opts.seed}:s5")
    stage = measured_sync("conversions_sync", systems, sampler, full=False)
    stage["changes_before"] = conversions
    applied = stage["materializations"].get("customer_conversions_applied", {})
    stage["conversions_seconds"] = applied.get("seconds")
    stage["conversions_per_second"] = rate(conversions["conversions"], applied.get("seconds") or 0.0)
    stage["conversion_outcomes"] = {k: applied.get(k) for k in ("converted", "merged", "skipped", "failed")}
    stages["conversions_sync"] = stage


def run_bench(opts: BenchOptions) -> dict[str, Any]:
    """Run every stage and return the report (also written to opts.out as JSON, the goals beside it as .md)."""
    from userdebtor_pipeline.db import check_reachable, dispose_all, engine_for, resolve_urls
    from userdebtor_pipeline.masking import mask_secrets
    from userdebtor_pipeline.schema import init_databases
    from userdebtor_pipeline.settings import load_settings

    if opts.scale < 50:
        raise BenchError("--scale must be at least 50")
    if opts.baseline_sample < 1:
        raise BenchError("--baseline-sample must be at least 1")
    out = opts.out or Path(f"bench-{opts.scale}.json")
    setup = _prepare(opts)
    started_at = datetime.now(UTC)
    report: dict[str, Any] = {"scale": opts.scale, "baseline_scale": opts.scale,
                              "baseline_sample": opts.baseline_sample, "seed": opts.seed,
                              "started_at": started_at.isoformat(), "home": str(setup.home), "mail": opts.mail,
                              "settle": opts.settle}
    sampler: MemorySampler | None = None
    with environment(**setup.env):
        try:
            urls = resolve_urls()  # a DatabaseError here is bad setup, as for every command
            erp, web = engine_for(urls.erp), engine_for(urls.web)
            for engine, name in ((erp, "ERP"), (web, "web")):
                check_reachable(engine, name)
            systems = urls
            where = f"embedded PostgreSQL in {setup.embedded_pgdata}" if setup.embedded_pgdata else "the URLs"
            progress(f"databases: {where}; home {setup.home}")
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
                main_stages(systems, sampler, settings, opts, setup, as_of, stages, notes,
                            lambda: write_report(out, report))
            except Exception as exc:
                report["error"] = mask_secrets(f"{type(exc).__name__}: {exc}")
                write_report(out, report)  # what was measured before it broke
                raise
            report.update(notes)
            report["goals"] = evaluate_goals(opts.scale, stages)
        finally:
            if sampler is not None:
                sampler.stop()
            if setup.smtp is not None:
                setup.smtp.stop()
            dispose_all()
            if setup.embedded_pgdata is not None and not opts.keep_server:
                stop_embedded_server(setup.embedded_pgdata)
    report["finished_at"] = datetime.now(UTC).isoformat()
    report["out"] = str(out.resolve())
    write_report(out, report)
    return report


def all_syncs_succeeded(report: Mapping[str, Any]) -> bool:
    stages = report.get("stages", {})
    return all(stages.get(name, {}).get("success", False) for name in SYNC_STAGES)


def print_report(report: Mapping[str, Any], stream: Any = None) -> None:
    print(format_report(report), file=stream or sys.stdout)
    print(f"\nreport: {report.get('out')} (and the goals table in {Path(report['out']).with_suffix('.md')})",
          file=stream or sys.stdout)
