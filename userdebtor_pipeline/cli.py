"""The `userdebtor` command: init, seed, sync, demo, ui, invite, status, conflicts, resolve, grants, bench.

Exit statuses (userdebtor_pipeline.exit_status): 0 done; 1 a blocking check held a load back; 2 bad settings
or an unreachable database, before anything was written; 3 a step failed for another reason.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import shutil
import sys
import traceback
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from userdebtor_pipeline import __version__
from userdebtor_pipeline.exit_status import EXIT_BAD_SETUP, EXIT_FAILED, EXIT_HELD, EXIT_OK

__all__ = ["EXIT_BAD_SETUP", "EXIT_FAILED", "EXIT_HELD", "EXIT_OK", "main"]
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


class SetupError(Exception):
    """Bad settings or an unreachable database: exit status 2 with the message."""


@contextlib.contextmanager
def refused_as_setup(*errors: type[Exception]) -> Iterator[None]:
    """These errors mean bad settings or a database out of reach: exit status 2 with their message."""
    try:
        yield
    except errors as exc:
        raise SetupError(str(exc)) from None


def _engines():
    from userdebtor_pipeline.db import DatabaseError, check_reachable, engine_for, resolve_urls

    with refused_as_setup(DatabaseError):
        urls = resolve_urls()
        erp, web = engine_for(urls.erp), engine_for(urls.web)
        check_reachable(erp, "ERP")
        check_reachable(web, "web")
    return erp, web


def _settings():
    from userdebtor_pipeline.settings import SettingsError, load_settings

    with refused_as_setup(SettingsError):
        return load_settings()


def cmd_init(args: argparse.Namespace) -> int:
    from userdebtor_pipeline.schema import InitError, init_databases

    erp, web = _engines()
    with refused_as_setup(InitError):
        report = init_databases(erp, web)
    created = ", ".join(report.created_tables) or "none (all existed)"
    migrations = ", ".join(report.applied_migrations) or "none (up to date)"
    print(f"tables created: {created}")
    print(f"state migrations applied: {migrations}")
    return EXIT_OK


def cmd_seed(args: argparse.Namespace) -> int:
    from userdebtor_pipeline.schema import init_databases
    from userdebtor_pipeline.seed import SeedError, seed_for_settings

    erp, web = _engines()
    init_databases(erp, web)
    settings = _settings_or_default()
    try:
        report = seed_for_settings(erp, web, settings, debtors=args.debtors, users=args.users, seed=args.seed)
    except SeedError as exc:
        print(f"seed: {exc}", file=sys.stderr)
        return EXIT_BAD_SETUP
    for table, count in report.counts.items():
        print(f"{table:32} {count:>10,}")
    print(f"seeded in {report.seconds:.1f} s")
    return EXIT_OK


def _settings_or_default():
    """Seeding only needs codes and prefixes: a missing settings file means the defaults."""
    from userdebtor_pipeline.settings import config_path, default_settings

    return _settings() if config_path().exists() else default_settings()


def print_json(document: Any) -> None:
    """The one JSON document of `--json` on standard output (dates as ISO text)."""
    print(json.dumps(document, indent=2, default=lambda v: v.isoformat() if hasattr(v, "isoformat") else str(v)))


def cmd_sync(args: argparse.Namespace) -> int:
    from userdebtor_pipeline.report import render_sync_summary, sync_exit_status, sync_summary
    from userdebtor_pipeline.runner import run_sync

    settings, web = _ready_to_write()
    # With --json, standard output holds the document alone: anything else printed during the run goes to stderr.
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        outcome = run_sync(full=args.full, dry_run=args.dry_run, lift_change_guard=args.allow_large_change,
                           log_level=args.log_level)
    summary = sync_summary(outcome, web, settings, dry_run=args.dry_run)
    status = sync_exit_status(summary)
    if args.json:
        print_json({**summary, "exit_status": status})
    else:
        print(render_sync_summary(summary), end="")
    return status


def _ready_to_write():
    """The settings and the web engine once the state schema is there and RULES A4's checks pass: roles,
    templates and the rest that the file alone cannot tell, before the run starts."""
    from userdebtor_pipeline.preflight import check_before_writing
    from userdebtor_pipeline.schema import state_is_ready
    from userdebtor_pipeline.settings import SettingsError

    settings = _settings()
    _, web = _engines()
    if not state_is_ready(web):
        raise SetupError("the pipeline's state schema is missing: run `userdebtor init` first")
    with refused_as_setup(SettingsError):
        check_before_writing(settings, web)
    return settings, web


def cmd_invite(args: argparse.Namespace) -> int:
    """I4: file the request and run the invite job, which decides it by I1 at once."""
    from userdebtor_pipeline.defs.instant_accounts.invite import INVITE_JOB_NAME
    from userdebtor_pipeline.report import SETUP_ERROR_KINDS, broken_steps
    from userdebtor_pipeline.runner import run_sync

    settings, web = _ready_to_write()
    outcome = run_sync(job_name=INVITE_JOB_NAME, log_level=args.log_level,
                       ops={"merchant_invitation": {"config": {"email": args.email, "account": args.account}}})
    verdict = outcome.materializations.get("invitation_decided")
    if verdict is None:
        for name in outcome.failed_checks:
            print(f"held by check {name}: {outcome.check_metadata.get(name, {}).get('summary', '')}", file=sys.stderr)
        for step, error in zip(outcome.failed_steps, outcome.errors, strict=False):
            print(f"{step}: {error}", file=sys.stderr)
        print(f"userdebtor invite: not decided (run {outcome.run_id}); the request stays pending for the next run",
              file=sys.stderr)
        broken = broken_steps(outcome)
        if broken:
            return EXIT_BAD_SETUP if all(kind in SETUP_ERROR_KINDS for _, _, kind in broken) else EXIT_FAILED
        return EXIT_HELD
    print(f"request {verdict['request_id']} for {args.email}: {verdict['status']}")
    if verdict["reason"]:
        print(f"  {verdict['reason']}")
    if verdict["status"] == "approved":
        print(f"  user {verdict['user_id']}; the confirmation email went out in run {outcome.run_id}")
        return EXIT_OK
    if verdict["status"] == "pending":  # I1 did not run: instant_accounts.enabled is false
        print("  not decided: instant accounts are switched off (instant_accounts.enabled); it waits for them")
    return EXIT_HELD


def cmd_demo(args: argparse.Namespace) -> int:
    from userdebtor_pipeline.demo import ensure_settings_file, run_demo
    from userdebtor_pipeline.paths import home_dir, mail_dir

    ensure_settings_file()
    print("== init"), cmd_init(args)

    return run_demo(args, home_dir(), mail_dir())


def cmd_ui(args: argparse.Namespace) -> int:
    from userdebtor_pipeline.instance import dagster_home as instance_home

    _engines()  # start the embedded database before the UI needs it
    dagster_home = instance_home()  # the instance `userdebtor sync` records its runs in
    command = ["dagster", "dev", "-m", "userdebtor_pipeline.definitions", "-p", str(args.port), "-h", args.host]
    print(f"Dagster UI on http://{args.host}:{args.port} (DAGSTER_HOME={dagster_home})")
    dagster = shutil.which("dagster") or str(Path(sys.executable).parent / "dagster")
    os.execv(dagster, [dagster, *command[1:]])
    return EXIT_OK


def _web_database():
    from userdebtor_pipeline.operations.state import OperationsError, web_database

    with refused_as_setup(OperationsError):
        return web_database()


def cmd_status(args: argparse.Namespace) -> int:
    from userdebtor_pipeline.operations.state import erp_database
    from userdebtor_pipeline.operations.status import collect_status, render_status

    web = _web_database()
    erp, erp_problem = erp_database()  # the web side is still worth showing while the ERP is down
    report = collect_status(web, erp, erp_problem=erp_problem, runs=args.runs)
    if args.json:
        print_json(dataclasses.asdict(report))
    else:
        print(render_status(report), end="")
    if erp_problem:
        print(f"userdebtor status: {erp_problem}", file=sys.stderr)
        return EXIT_BAD_SETUP
    return EXIT_OK


def cmd_conflicts(args: argparse.Namespace) -> int:
    from userdebtor_pipeline.operations.conflicts import count_open_conflicts, open_conflicts, render_conflicts

    web = _web_database()
    print(render_conflicts(open_conflicts(web, limit=args.limit), count_open_conflicts(web)), end="")
    return EXIT_OK


def cmd_resolve(args: argparse.Namespace) -> int:
    from userdebtor_pipeline.operations.conflicts import resolve_conflict
    from userdebtor_pipeline.operations.state import OperationsError

    web = _web_database()
    with refused_as_setup(OperationsError):
        resolution = resolve_conflict(web, args.conflict_id, args.take, args.by)
    print(resolution.describe())
    return EXIT_OK


def cmd_grants(args: argparse.Namespace) -> int:
    """Print the SQL that gives the integration's roles what they need and no more."""
    from sqlalchemy.engine import make_url

    from userdebtor_pipeline.db import DatabaseError, resolve_urls
    from userdebtor_pipeline.grants import grants_sql

    erp_database, web_database = args.erp_database, args.web_database
    if erp_database is None or web_database is None:
        with refused_as_setup(DatabaseError):
            urls = resolve_urls()
        erp_database = erp_database or make_url(urls.erp).database
        web_database = web_database or make_url(urls.web).database
    print(grants_sql(args.erp_role, args.web_role or args.erp_role, erp_database, web_database, args.only), end="")
    return EXIT_OK


def _benchmarks() -> Any:
    """The benchmark, which lives in the checkout's `benchmarks/` folder beside the package, not in the wheel."""
    import importlib

    checkout = Path(__file__).resolve().parent.parent
    if not (checkout / "benchmarks" / "scenario.py").is_file():
        raise SetupError("the benchmark runs from a checkout of the project: this installation has no benchmarks/ "
                         "folder beside the package (a wheel ships the pipeline only); clone the repository and run "
                         "`userdebtor bench` (or `python benchmarks/run.py`) there")
    if str(checkout) not in sys.path:
        sys.path.insert(0, str(checkout))
    return importlib.import_module("benchmarks.scenario")


def cmd_bench(args: argparse.Namespace) -> int:
    bench = _benchmarks()
    options = bench.BenchOptions(
        scale=args.scale, baseline_sample=args.baseline_sample, out=args.out, seed=args.seed, home=args.home,
        settle=not args.no_settle, mail=args.mail, keep_server=args.keep_server,
    )
    from userdebtor_pipeline.db import DatabaseError

    with refused_as_setup(bench.BenchError, DatabaseError):
        report = bench.run_bench(options)
    bench.print_report(report)
    return EXIT_OK if bench.all_syncs_succeeded(report) else EXIT_FAILED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="userdebtor", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"userdebtor {__version__}")
    parser.add_argument("--log-level", default="WARNING", type=str.upper, choices=LOG_LEVELS,
                        help="what reaches standard error of the logs (default WARNING); a run's own log in Dagster "
                             "keeps every event")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("init", help="create the tables where missing and migrate the pipeline's state").set_defaults(
        func=cmd_init
    )
    seed = sub.add_parser("seed", help="fill empty erp/web tables with synthetic data")
    seed.add_argument("--debtors", type=int, default=2_000)
    seed.add_argument("--users", type=int, default=2_000)
    seed.add_argument("--seed", type=int, default=42)
    seed.set_defaults(func=cmd_seed)
    sync = sub.add_parser("sync", help="run the whole integration once (the Dagster job, in process)")
    sync.add_argument("--full", action="store_true", help="reconcile everything, not only what changed")
    sync.add_argument("--dry-run", action="store_true", help="plan and report; write nothing to erp or web")
    sync.add_argument(
        "--allow-large-change",
        action="store_true",
        help="lift the change-fraction guard (U7) for this run, after checking the plan",
    )
    sync.add_argument("--json", action="store_true", help="print one JSON document on standard output, nothing else")
    sync.set_defaults(func=cmd_sync)
    demo = sub.add_parser("demo", help="init, seed, sync, then show what happened and where to look")
    demo.add_argument("--debtors", type=int, default=2_000)
    demo.add_argument("--users", type=int, default=2_000)
    demo.add_argument("--seed", type=int, default=42)
    demo.set_defaults(func=cmd_demo)
    invite = sub.add_parser("invite", help="open an instant account for a customer (I4): file a registration "
                                           "request and decide it at once, as a run would")
    invite.add_argument("email", metavar="EMAIL", help="the customer's email address")
    invite.add_argument("--account", metavar="CODE", default=None, help="the ERP account the customer orders for")
    invite.set_defaults(func=cmd_invite)
    ui = sub.add_parser("ui", help="start the Dagster UI on this project")
    ui.add_argument("--port", type=int, default=3000)
    ui.add_argument("--host", default="127.0.0.1")
    ui.set_defaults(func=cmd_ui)
    status = sub.add_parser("status", help="last runs, open conflicts, records set aside, pending conversions, "
                                           "the email backlog and the watermarks")
    status.add_argument("--runs", type=int, default=10, help="how many of the last runs to show")
    status.add_argument("--json", action="store_true", help="print one JSON document on standard output, nothing else")
    status.set_defaults(func=cmd_status)
    conflicts = sub.add_parser("conflicts", help="list the open conflicts (U4) with base, web and ERP values")
    conflicts.add_argument("--limit", type=int, default=50, help="how many to show, oldest first")
    conflicts.set_defaults(func=cmd_conflicts)
    resolve = sub.add_parser("resolve", help="settle one open conflict; the next sync applies it")
    resolve.add_argument("conflict_id", metavar="ID", type=int, help="the id that `userdebtor conflicts` shows")
    resolve.add_argument("--take", required=True, choices=("erp", "web"), help="the side whose value is kept")
    resolve.add_argument("--by", default=None, help="who decided (default: the OS user)")
    resolve.set_defaults(func=cmd_resolve)
    grants = sub.add_parser("grants", help="print the SQL granting the integration's roles what they need (run it as "
                                           "the owner after `userdebtor init`)")
    grants.add_argument("--erp-role", required=True, help="the role the integration logs in to the ERP database as")
    grants.add_argument("--web-role", default=None, help="the role for the web database (default: the ERP role)")
    grants.add_argument("--erp-database", default=None, help="default: the database of USERDEBTOR_ERP_URL")
    grants.add_argument("--web-database", default=None, help="default: the database of USERDEBTOR_WEB_URL")
    grants.add_argument("--only", choices=("erp", "web"), default=None,
                        help="print the part of one database only (when ERP and web are two databases)")
    grants.set_defaults(func=cmd_grants)
    bench = sub.add_parser("bench", help="time seed, first load, full and changed-since syncs at scale N on a fresh "
                                         "database, against a row-by-row baseline; a JSON report and a table")
    bench.add_argument("--scale", type=int, required=True, help="debtors and users to seed (N)")
    bench.add_argument("--baseline-sample", "--baseline-scale", dest="baseline_sample", type=int, default=100_000,
                       help="the row-by-row baseline runs at N on the full reconcile's rows; its row loop writes at "
                            "most this many rows and extrapolates the rest (default 100000; --baseline-scale is the "
                            "old name)")
    bench.add_argument("--out", type=Path, default=None, help="the JSON report (default ./bench-<N>.json)")
    bench.add_argument("--seed", type=int, default=42)
    bench.add_argument("--home", type=Path, default=None,
                       help="scratch USERDEBTOR_HOME of the fresh embedded database (default ./.userdebtor/bench-<N>)")
    bench.add_argument("--no-settle", action="store_true",
                       help="do not wait for the first load to leave the extracts' 5-minute re-read window")
    bench.add_argument("--mail", choices=("deliver", "hold"), default="deliver",
                       help="deliver: after the first load, deliver the outbox to a local SMTP server (timed); "
                            "hold: no mail server, emails stay queued")
    bench.add_argument("--keep-server", action="store_true", help="leave the embedded PostgreSQL running afterwards")
    bench.set_defaults(func=cmd_bench)
    for command in sub.choices.values():  # `userdebtor sync --log-level INFO` reads as well as the global form
        command.add_argument("--log-level", default=argparse.SUPPRESS, type=str.upper, choices=LOG_LEVELS,
                             help="as the global --log-level")
    return parser


def _log_to_stderr(level: str) -> None:
    """The project's own logs (and progress lines) go to standard error, from `level` up."""
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("userdebtor_pipeline").setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _log_to_stderr(args.log_level)
    try:
        return args.func(args)
    except SetupError as exc:
        from userdebtor_pipeline.masking import mask_secrets

        print(f"userdebtor {args.command}: {mask_secrets(str(exc))}", file=sys.stderr)
        return EXIT_BAD_SETUP
    except Exception as exc:  # a bug or a database error mid-command: one line, the trace only when asked
        from userdebtor_pipeline.masking import mask_secrets

        print(f"userdebtor {args.command}: failed: {type(exc).__name__}: {mask_secrets(str(exc))}", file=sys.stderr)
        if args.log_level == "DEBUG":
            traceback.print_exc()
        else:
            print("(run with --log-level DEBUG for the trace)", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":  # python -m userdebtor_pipeline.cli
    sys.exit(main())
